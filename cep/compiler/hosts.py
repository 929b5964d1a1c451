"""Which host each process runs on, and the tcp endpoints that join processes across hosts.

`hosts: {NAME: {address: A, port: P}}` names the machines; `deploy: {NODE: {host: NAME}}` puts a
node's process on one (a process without such a node runs on the first host listed). Every
host's `cep run FILE --host NAME` compiles the same file into the same plan and starts only its
own processes, so the endpoints must come out the same in every invocation without the
invocations talking: an endpoint that a process on another host connects to is tcp on the
address of the host of the process that binds it (a pub/sub producer's XPUB and its
acknowledgement sockets, a push/pull consumer worker's PULL), on consecutive ports of that host
in plan order from P + 1; one that only processes of the binder's host use stays what it is on
one host (ipc, moved into the host's run directory by `cep run --host`). Port P itself is the
host's supervisor link (`cep.runtime.hostlink`), which carries end-of-stream acknowledgements
between hosts. P defaults to a port derived from the pipeline's name.

Hosts on addresses other machines can reach need CURVE (`security: {curve: {keys: DIR}}`):
without it anyone who reaches a port could inject frames.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import zlib
from pathlib import Path
from typing import Iterable

from cep.compiler.wiring import Endpoints
from cep.config.models import Pipeline
from cep.config.problems import did_you_mean
from cep.errors import Problem
from cep.plan import Plan, ProcessPlan
from cep.runtime.security import host_keys_hint, is_loopback

DERIVED_PORTS = (20_000, 10_000)
"""A host without `port:` starts at 20000 + (crc32 of the pipeline's name) mod 10000: below the
kernel's ephemeral range, the same on every machine."""


def base_port(pipeline: Pipeline, host: str) -> int:
    """The host's first port: its link; its bound data sockets take the ones after it."""
    port = pipeline.hosts[host].port
    if port is not None:
        return port
    low, span = DERIVED_PORTS
    return low + zlib.crc32(pipeline.name.encode()) % span


def link_endpoint(pipeline: Pipeline, host: str) -> str:
    return f"tcp://{pipeline.hosts[host].address}:{base_port(pipeline, host)}"


def on_hosts(pipeline: Pipeline, processes: list[ProcessPlan]) -> tuple[list[ProcessPlan], list[Problem]]:
    """The processes with their host (none without `hosts:`), and every problem: a node deployed
    on a host not listed, a process whose nodes name different hosts, a host other machines can
    reach without CURVE."""
    problems = _unknown_hosts(pipeline) + _unbindable_hosts(pipeline) + _unguarded_hosts(pipeline)
    if not pipeline.hosts:
        return processes, problems
    default = next(iter(pipeline.hosts))
    placed = []
    for process in processes:
        named = {node: pipeline.deploy[node].host for node in process.nodes
                 if node in pipeline.deploy and pipeline.deploy[node].host in pipeline.hosts}
        if len(set(named.values())) > 1:
            problems.append(_split_process(pipeline, process, named))
        host = min(named.values(), key=list(pipeline.hosts).index, default=default)
        placed.append(dataclasses.replace(process, host=host))
    return placed, problems


def _unknown_hosts(pipeline: Pipeline) -> list[Problem]:
    problems = []
    for node, deploy in pipeline.deploy.items():
        if deploy.host is None or deploy.host in pipeline.hosts or deploy.host in pipeline._broken:
            continue  # (a host left out for its own mistake is reported as such)
        hint = (did_you_mean(deploy.host, pipeline.hosts, "known hosts") if pipeline.hosts
                else "list it under hosts: {NAME: {address: ...}}")
        problems.append(Problem(f'deploy "{node}": no host "{deploy.host}"', pipeline.locate("deploy", node, "host"),
                                hint))
    return problems


def _unbindable_hosts(pipeline: Pipeline) -> list[Problem]:
    """A host's processes bind its address, and a socket binds an IP address, not a name."""
    return [Problem(f'host "{name}": address {host.address!r} is not an IP address',
                    pipeline.locate("hosts", name, "address"),
                    "give the IP address its processes listen on (they bind it)")
            for name, host in pipeline.hosts.items() if not _is_ip(host.address)]


def _unguarded_hosts(pipeline: Pipeline) -> list[Problem]:
    """A host others can reach, without CURVE: its ports would take anyone's frames."""
    if pipeline.security.curve is not None:
        return []
    hint = "add `security: {curve: {keys: DIR}}` to the pipeline and " + host_keys_hint(pipeline.hosts)
    return [Problem(f'host "{name}": {host.address} is reachable from other machines, and tcp between hosts '
                    "needs CURVE", pipeline.locate("hosts", name, "address"), hint)
            for name, host in pipeline.hosts.items() if not is_loopback(host.address) and _is_ip(host.address)]


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return False


def _split_process(pipeline: Pipeline, process: ProcessPlan, named: dict[str, str]) -> Problem:
    """One process cannot span hosts: points at the deploy entry of the node on the second host."""
    order = list(pipeline.hosts)
    second = sorted(named, key=lambda node: (order.index(named[node]), process.nodes.index(node)))[-1]
    where = ", ".join(f"{node} on {host}" for node, host in named.items())
    return Problem(f'process "{process.name}" has nodes deployed on different hosts ({where})',
                   pipeline.locate("deploy", second, "host"),
                   "deploy them on one host, or give them different processes (deploy: {NODE: {process: NAME}})")


class HostEndpoints(Endpoints):
    """Endpoints of a multi-host plan: where every peer is on the binding process's host, what
    it would be on one host (ipc, moved into that host's run directory by `Plan.in_run_dir`);
    else tcp on the address of the binding process's host, ports counted per host from its base
    port + 1, in the order the wiring asks (plan order)."""

    def __init__(self, pipeline: Pipeline, run_dir: Path, processes: list[ProcessPlan]) -> None:
        super().__init__(pipeline, run_dir)
        self.pipeline = pipeline
        self.host_of = {process.name: process.host for process in processes}
        self.next_ports = {name: base_port(pipeline, name) + 1 for name in pipeline.hosts}

    def __call__(self, name: str, binder: str, peers: Iterable[str]) -> str:
        host = self.host_of[binder]
        if all(self.host_of[peer] == host for peer in peers):
            return super().__call__(name, binder, peers)
        port = self.next_ports[host]
        self.next_ports[host] = port + 1
        return f"tcp://{self.pipeline.hosts[host].address}:{port}"


def endpoints_for(pipeline: Pipeline, run_dir: Path, processes: list[ProcessPlan]) -> Endpoints:
    return HostEndpoints(pipeline, run_dir, processes) if pipeline.hosts else Endpoints(pipeline, run_dir)


def with_links(pipeline: Pipeline, plan: Plan) -> Plan:
    """The plan with each host's supervisor link endpoint."""
    if not pipeline.hosts:
        return plan
    return dataclasses.replace(plan, hosts={name: link_endpoint(pipeline, name) for name in pipeline.hosts})
