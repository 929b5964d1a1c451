"""One host of a multi-host pipeline (`hosts:`, `cep run FILE --host NAME`).

Each host's `cep run --host` supervises only the processes placed on it (`cep.compiler.hosts`),
in its own run directory; its workers connect to the other hosts' over tcp, as the plan says.
What the supervisors of different hosts must tell each other is the end of stream: a consumer
worker acknowledges each END frame to its supervisor, which relays it to the producer worker,
and the producer may close its sockets only then. Across hosts that relay is the `HostLink`:
each supervisor binds a ROUTER on its host's link endpoint (the host's first port) and connects a
DEALER to every other host's, CURVE on both when the pipeline has keys. A DEALER queues what it
sends until its peer is there, so a host that starts later, or again, still gets it.

The link is also where hosts find out that they run one pipeline. Each time a host's DEALER
completes a handshake with a peer (at its start, and after the peer restarted) it says hello
with the digest of its plan (`digest`: the parts every host compiles alike), and the peer
answers on that connection with a welcome carrying its own. One connection is enough for both
to know: a host that started first may hear the other's hello, start, and end its run before
its own DEALER connected (it retries after ZeroMQ's reconnect interval), and its welcome is
then the only word the other gets from it. A hello or welcome with another digest is refused
and said on both sides; END acknowledgements carry the digest too. The supervisor starts its
workers only once every host its processes exchange data with has said (in a hello or a
welcome) that it runs the same digest, so hosts given different files never mix their records. What each peer link is doing (waiting since when, connected,
refused) is `HostLink.states`, which the status file and `cep top` show.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

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
    return plan.in_run_dir(str(run_dir))


def local_view(plan: Plan, host: str) -> Plan:
    """What one host's status counts: its processes and their nodes, the edges in and out of
    them, and the remote nodes those edges come from (their gaps are counted there)."""
    processes = tuple(p for p in plan.processes if p.host == host)
    names = {p.name for p in processes}
    edges = tuple(e for e in plan.edges if e.producer in names or e.consumer in names)
    kept = {node for p in processes for node in p.nodes} | {e.node for e in edges}
    return dataclasses.replace(plan, processes=processes, edges=edges,
                               nodes={node: spec for node, spec in plan.nodes.items() if node in kept})


SHARED = ("name", "nodes", "processes", "edges", "hosts", "batch_size", "frame_size", "max_sequence_jump")
"""What every host of a pipeline must compile alike; not where each keeps its files (run directory,
keys, dead letters, the pipeline's path) nor its NATS settings (the edges name their subjects)."""
WAITING, CONNECTED, DIFFERENT = "waiting", "connected", "different pipeline"
MAX_LINK_MESSAGE = 65536
"""The largest message a link takes from a peer (a hello, a welcome, an END acknowledgement)."""
LINK_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


def digest(plan: Plan) -> str:
    """A short digest of what every host of `plan` must agree on: nodes (with their parameters),
    processes and their hosts, edges with their delivery and endpoints, the hosts' links. An
    ipc endpoint is one host's own (in its run directory), so it is left out."""
    data = plan.to_dict()
    for edge in data["edges"]:
        for key in ("endpoints", "acks"):
            edge[key] = [point for point in edge[key] if not point.startswith("ipc://")]
    shared = json.dumps({key: data.get(key) for key in SHARED}, sort_keys=True, default=str)
    return hashlib.sha256(shared.encode()).hexdigest()[:16]


@dataclasses.dataclass
class PeerState:
    """This host's view of another host: its link address, whether it said hello with our
    digest (`connected`), with another (`different pipeline`), or not yet or not since it went
    away (`waiting`), and since when (time.time())."""

    address: str
    state: str = WAITING
    since: float = dataclasses.field(default_factory=time.time)
    digest: str | None = None  # the peer's, from its last hello or welcome (kept while it is away)

    def become(self, state: str, digest: str | None = None) -> bool:
        """Move to `state` (with the peer's digest, if it said one); True if anything changed."""
        digest = self.digest if digest is None else digest
        changed = (state, digest) != (self.state, self.digest)
        if state != self.state:
            self.since = time.time()
        self.state, self.digest = state, digest
        return changed


class HostLink:
    """The supervisor-to-supervisor channel of one host: hellos both ways, END acknowledgements
    for producer workers on other hosts out, those for this host's producers in."""

    def __init__(self, context: zmq.Context, plan: Plan, host: str,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.plan = plan
        self.host = host
        self.digest = digest(plan)
        self.refused = 0  # messages that cannot be from a consumer on another host
        self.different = 0  # hellos from a host running a different pipeline
        self.on_notice = on_notice or (lambda text: None)
        self._host_of = {worker: p.host for p in plan.processes for worker in p.workers}
        self.partners = _partners(plan, host)
        gate = security.gate_for(context, plan, host)
        self.gate = gate
        self.inbox = context.socket(zmq.ROUTER)
        self.inbox.setsockopt(zmq.LINGER, 2000)  # a welcome still leaves when the run ends right after it
        self.inbox.setsockopt(zmq.MAXMSGSIZE, MAX_LINK_MESSAGE)
        if gate is not None:
            gate.serve(self.inbox)
        bind(self.inbox, plan.hosts[host])
        self.peers: dict[str, zmq.Socket] = {}
        self.monitors: dict[str, zmq.Socket] = {}
        self.peer_states = {name: PeerState(endpoint) for name, endpoint in plan.hosts.items() if name != host}
        self._hello_due: set[str] = set()
        for name, endpoint in plan.hosts.items():
            if name == host:
                continue
            peer = context.socket(zmq.DEALER)
            peer.setsockopt(zmq.LINGER, 2000)  # a last acknowledgement still reaches a peer that is there
            peer.setsockopt(zmq.MAXMSGSIZE, MAX_LINK_MESSAGE)  # what comes back: the peer's welcome
            if gate is not None:
                gate.dial(peer, endpoint)
            self.monitors[name] = peer.get_monitor_socket(LINK_EVENTS)
            peer.connect(endpoint)
            self.peers[name] = peer

    def is_local(self, worker: str) -> bool:
        return self._host_of.get(worker) == self.host

    def agreed(self) -> bool:
        """Every host this one exchanges data with said it runs this plan (the supervisor
        starts its workers only then). A peer that said so and went away since (its run ended
        first: a gateway's part can be over in a blink) still runs the same pipeline."""
        return all(self.peer_states[name].digest == self.digest for name in self.partners)

    def states(self) -> dict[str, dict[str, Any]]:
        """Per other host: its link address, `state`, `since` (time.time()) and its digest."""
        return {name: dataclasses.asdict(state) for name, state in self.peer_states.items()}

    def forward(self, message: dict[str, Any]) -> None:
        """An END acknowledgement for a producer worker on another host: to that host's supervisor."""
        peer = self.peers.get(self._host_of.get(message["producer"]))
        if peer is not None:
            peer.send(msgpack.packb({"host": self.host, "digest": self.digest,
                                     **{key: message[key] for key in ("t", "edge", "producer", "consumer")}}))

    def receive(self) -> list[dict[str, Any]]:
        """END acknowledgements from other hosts for this host's producer workers. Hellos and
        the peer links' connection events update `states`; anything else (undecodable, another
        kind, another digest, a producer not here, a consumer not elsewhere) is refused."""
        self._watch_peers()
        accepted = []
        while True:
            try:
                frames = self.inbox.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return accepted
            message = _decoded(frames[1].bytes) if len(frames) == 2 else None
            if message is not None and message.get("t") == "hello" and self._hello(message, self._sender(frames[1])):
                self._welcome(frames[0].bytes)
                continue
            if message is not None and self._plausible(message):
                accepted.append(message)
            else:
                self.refused += 1

    def _welcome(self, identity: bytes) -> None:
        """Answer a hello on its connection with our digest (`_welcomed` reads it)."""
        try:
            self.inbox.send_multipart([identity, self._greeting("welcome")], zmq.NOBLOCK)
        except zmq.ZMQError:  # the peer went away meanwhile: its next hello gets one
            pass

    def _greeting(self, kind: str) -> bytes:
        return msgpack.packb({"t": kind, "host": self.host, "digest": self.digest})

    def _welcomed(self) -> None:
        """The peers' answers to our hellos: each says which pipeline the peer runs, as a hello
        of its own would. Whoever answers on a link is that link's peer (with per-host CURVE
        keys, the connection authenticated the peer's key); anything else is refused."""
        for name, peer in self.peers.items():
            while True:
                try:
                    raw = peer.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                message = _decoded(raw)
                if (message is None or message.get("t") != "welcome" or message.get("host") != name
                        or not self._hello(message, name)):
                    self.refused += 1

    def _watch_peers(self) -> None:
        """A peer link that completed a handshake (the peer started, or started again) gets our
        hello; one that lost its peer waits for it again."""
        self._welcomed()
        for name, monitor in self.monitors.items():
            while monitor.poll(0):
                event = recv_monitor_message(monitor)["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self._hello_due.add(name)
                else:  # gone (or ended its run): shown in the status, not said, as every run ends so
                    self.peer_states[name].become(WAITING)
        for name in list(self._hello_due):
            try:
                self.peers[name].send(self._greeting("hello"), zmq.NOBLOCK)
                self._hello_due.discard(name)
            except zmq.Again:  # its queue is full: next time
                pass

    def _sender(self, frame: zmq.Frame) -> str | None:
        """With per-host CURVE keys, the host whose key the sender's connection authenticated
        ("" for none); None when keys do not tell hosts apart."""
        if self.gate is None or not self.gate.keys.hosts:
            return None
        return self.gate.keys.host_of(frame.get("User-Id").encode()) or ""

    def _hello(self, message: dict[str, Any], sender: str | None) -> bool:
        """A peer's hello: connected if it runs our plan, refused and said if not. False if it
        is no hello of another host of the pipeline, or says it comes from a host whose key its
        connection does not hold."""
        name, theirs = message.get("host"), message.get("digest")
        state = self.peer_states.get(name) if isinstance(name, str) else None
        if state is None or not isinstance(theirs, str) or sender not in (None, name):
            return False
        if theirs == self.digest:
            state.become(CONNECTED, theirs)
            return True
        self.different += 1
        if state.become(DIFFERENT, theirs):
            self.on_notice(f"host {name} runs a different pipeline (digest {theirs}, ours {self.digest}): "
                           "deploy the same file to every host")
        return True

    def _plausible(self, message: dict[str, Any]) -> bool:
        """An END acknowledgement of this pipeline, for a producer worker here from a consumer
        worker on another host."""
        if message.get("t") != "eos" or message.get("digest") != self.digest:
            return False
        edge = next((e for e in self.plan.edges if e.id == message.get("edge")), None)
        if edge is None:
            return False
        producer, consumer = message.get("producer"), message.get("consumer")
        return (producer in self.plan.process(edge.producer).workers and self.is_local(producer)
                and consumer in self.plan.process(edge.consumer).workers and not self.is_local(consumer))

    def notes(self) -> list[str]:
        """What the run's summary says about the link: what it refused, counted."""
        notes = []
        if self.refused:  # someone who is not a peer host wrote to it
            notes.append(f"host link {self.plan.hosts[self.host]} refused {self.refused} "
                         "messages that cannot come from another host's consumers")
        if self.different:
            notes.append(f"host link {self.plan.hosts[self.host]} refused {self.different} hellos "
                         "from a host running a different pipeline")
        if self.gate is not None and self.gate.count_refusals():
            notes.append(f"host link {self.plan.hosts[self.host]} refused {self.gate.refused} tcp handshakes "
                         "from peers without a host's key")
        return notes

    def close(self) -> None:
        for monitor in self.monitors.values():
            monitor.close(0)
        for peer in self.peers.values():
            peer.close()
        self.inbox.close()  # with its LINGER: a welcome just sent still leaves
        if self.gate is not None:
            self.gate.close()


def _partners(plan: Plan, host: str) -> set[str]:
    """The other hosts whose processes exchange data with this host's."""
    host_of = {process.name: process.host for process in plan.processes}
    return {host_of[end] for edge in plan.edges for end in (edge.producer, edge.consumer)
            if host in (host_of[edge.producer], host_of[edge.consumer]) and host_of[end] != host}


def _decoded(raw: bytes) -> dict[str, Any] | None:
    try:
        message = msgpack.unpackb(raw, raw=False)
    except Exception:  # whatever a peer sent: refused, never raised
        return None
    return message if isinstance(message, dict) else None
