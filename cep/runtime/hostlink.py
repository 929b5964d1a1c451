"""One host of a multi-host pipeline (`hosts:`, `cep run FILE --host NAME`).

Each host's `cep run --host` supervises only the processes placed on it (`cep.compiler.hosts`),
in its own run directory; its workers connect to the other hosts' over tcp, as the plan says.
What the supervisors of different hosts must tell each other is the end of stream: a consumer
worker acknowledges each END frame to its supervisor, which relays it to the producer worker,
and the producer may close its sockets only then. Across hosts that relay is the `HostLink`:
each supervisor binds a ROUTER on its host's link endpoint (the host's first port) and connects a
DEALER to every other host's, CURVE on both when the pipeline has keys. A DEALER queues what it
sends until its peer is there, so a host that starts later, or again, still gets it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgpack
import zmq

from cep.config.problems import did_you_mean
from cep.errors import UserError
from cep.plan import Plan
from cep.runtime import security
from cep.runtime.transport import bind


def host_plan(plan: Plan, host: str, run_dir_given: bool) -> Plan:
    """The plan `cep run --host HOST` runs: HOST checked, and unless the run directory was
    given, one of its own beside the pipeline's (`NAME@HOST`), so hosts sharing a machine (or
    a directory) never share checkpoints or a lock."""
    if not plan.hosts:
        raise UserError(f"--host {host}: pipeline {plan.name!r} lists no hosts (add hosts: {{NAME: {{address: ...}}}} "
                        "and deploy: {NODE: {host: NAME}})")
    if host not in plan.hosts:
        raise UserError(f"--host {host}: no such host in pipeline {plan.name!r} "
                        f"({did_you_mean(host, plan.hosts, 'known hosts')})")
    if run_dir_given:
        return plan
    run_dir = Path(plan.run_dir).with_name(f"{Path(plan.run_dir).name}@{host}")
    return dataclasses.replace(plan, run_dir=str(run_dir), control=f"ipc://{run_dir / 'control'}")


def local_view(plan: Plan, host: str) -> Plan:
    """What one host's status counts: its processes and their nodes, the edges in and out of
    them, and the remote nodes those edges come from (their gaps are counted there)."""
    processes = tuple(p for p in plan.processes if p.host == host)
    names = {p.name for p in processes}
    edges = tuple(e for e in plan.edges if e.producer in names or e.consumer in names)
    kept = {node for p in processes for node in p.nodes} | {e.node for e in edges}
    return dataclasses.replace(plan, processes=processes, edges=edges,
                               nodes={node: spec for node, spec in plan.nodes.items() if node in kept})


class HostLink:
    """The supervisor-to-supervisor channel of one host: END acknowledgements for producer
    workers on other hosts go out, those for this host's producers come in."""

    def __init__(self, context: zmq.Context, plan: Plan, host: str) -> None:
        self.plan = plan
        self.host = host
        self.refused = 0  # messages that cannot be from a consumer on another host
        self._host_of = {worker: p.host for p in plan.processes for worker in p.workers}
        gate = security.Gate(context, security.load_keys(Path(plan.curve_keys))) if plan.curve_keys else None
        self.gate = gate
        self.inbox = context.socket(zmq.ROUTER)
        self.inbox.setsockopt(zmq.LINGER, 0)
        self.inbox.setsockopt(zmq.MAXMSGSIZE, 65536)
        if gate is not None:
            gate.serve(self.inbox)
        bind(self.inbox, plan.hosts[host])
        self.peers: dict[str, zmq.Socket] = {}
        for name, endpoint in plan.hosts.items():
            if name == host:
                continue
            peer = context.socket(zmq.DEALER)
            peer.setsockopt(zmq.LINGER, 2000)  # a last acknowledgement still reaches a peer that is there
            if gate is not None:
                gate.dial(peer)
            peer.connect(endpoint)
            self.peers[name] = peer

    def is_local(self, worker: str) -> bool:
        return self._host_of.get(worker) == self.host

    def forward(self, message: dict[str, Any]) -> None:
        """An END acknowledgement for a producer worker on another host: to that host's supervisor."""
        peer = self.peers.get(self._host_of.get(message["producer"]))
        if peer is not None:
            peer.send(msgpack.packb({key: message[key] for key in ("t", "edge", "producer", "consumer")}))

    def receive(self) -> list[dict[str, Any]]:
        """END acknowledgements from other hosts for this host's producer workers; anything else
        (undecodable, another kind, a producer not here, a consumer not elsewhere) is refused."""
        accepted = []
        while True:
            try:
                frames = self.inbox.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return accepted
            message = self._plausible(frames[1]) if len(frames) == 2 else None
            if message is None:
                self.refused += 1
            else:
                accepted.append(message)

    def _plausible(self, raw: bytes) -> dict[str, Any] | None:
        try:
            message = msgpack.unpackb(raw, raw=False)
        except Exception:  # whatever a peer sent: refused, never raised
            return None
        if not isinstance(message, dict) or message.get("t") != "eos":
            return None
        edge = next((e for e in self.plan.edges if e.id == message.get("edge")), None)
        if edge is None:
            return None
        producer, consumer = message.get("producer"), message.get("consumer")
        if (producer not in self.plan.process(edge.producer).workers or not self.is_local(producer)
                or consumer not in self.plan.process(edge.consumer).workers or self.is_local(consumer)):
            return None
        return message

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        self.inbox.close(0)
        if self.gate is not None:
            self.gate.close()
