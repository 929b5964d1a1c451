"""Where each node runs: the processes of the plan, and every problem of their parallelism.

Default placement (DESIGN §4): each source is a process (its gateway); rules sharing a
parallelism and partition key are one strategy process; each sink is a process; a stream is fused
into the process of its consumer, and replicated into each consumer's process when its operators
are stateless. `deploy: {NODE: {parallelism: N, process: NAME, nice: N}}` overrides. Which
sockets then join the processes is `cep.compiler.wiring`'s business.
"""
from __future__ import annotations

from collections import defaultdict

import networkx as nx

from cep.config.models import Pipeline
from cep.errors import Problem
from cep.plan import NodePlan, ProcessPlan
from cep.plugins import Registry

GATEWAY_NICE = 5
"""Gateways of replays (processes whose sources wait for their reader; a live feed's would drop
instead) run this much nicer than the processes after them, so when processes share the cores
the events already in flight get through before a gateway brings in more. Measured at 50,000
ticks/s paced on 2 cores: p50 source to sink 0.34-0.36 -> 0.28 ms (the raw pyzmq chain's is
0.19 with or without it); throughput at full speed unchanged.
`deploy: {NODE: {nice: N}}` sets a node's process's niceness instead."""

KEY_HINT = "set partition_by on the rule or key_by on the stream"


def place(pipeline: Pipeline, graph: nx.DiGraph, nodes: dict[str, NodePlan],
          registry: Registry) -> tuple[list[ProcessPlan], list[Problem]]:
    """The processes hosting `graph` (acyclic), and every parallelism problem: each parallel node
    without a partition key, each process whose parallel nodes disagree on the key."""
    live = live_sources(graph, registry)
    problems = _unkeyed_parallelism(pipeline, nodes)
    processes = []
    for name, members in group(pipeline, graph, nodes).items():
        parallel = [n for n in members if n in pipeline.deploy and pipeline.deploy[n].parallelism > 1]
        keys = {nodes[n].key: n for n in parallel if nodes[n].key is not None}  # key -> a node keyed by it
        if len(keys) > 1:
            problems.append(_mixed_keys(pipeline, name, parallel, nodes, keys))
        role = role_of(members, graph)
        processes.append(ProcessPlan(
            name=name, role=role, nodes=tuple(members),
            parallelism=max((pipeline.deploy[n].parallelism for n in parallel), default=1),
            partition_key=min(keys, default=None), nice=niceness(pipeline, members, role, live)))
    return processes, problems


def group(pipeline: Pipeline, graph: nx.DiGraph, nodes: dict[str, NodePlan]) -> dict[str, list[str]]:
    """Process name -> its node ids in topological order (a replicated stream appears in several
    processes)."""
    owner = {node_id: {_home(pipeline, node_id, data, nodes)}
             for node_id, data in graph.nodes(data=True) if data["kind"] != "stream"}
    for node_id in reversed(list(nx.topological_sort(graph))):  # a stream's readers are placed first
        if graph.nodes[node_id]["kind"] == "stream":
            owner[node_id] = _stream_homes(pipeline, graph, nodes, node_id, owner)
    processes: dict[str, list[str]] = defaultdict(list)
    for node_id in nx.topological_sort(graph):
        for process in sorted(owner[node_id]):
            processes[process].append(node_id)
    return dict(processes)


def _home(pipeline: Pipeline, node_id: str, data: dict, nodes: dict[str, NodePlan]) -> str:
    """The process of a node other than a stream: `deploy.process` if given, else the source's
    gateway, the strategy of the rules of one parallelism and key, an order executor's, a sink's or
    a venue's own."""
    deploy = pipeline.deploy.get(node_id)
    if deploy and deploy.process:
        return deploy.process
    if data["kind"] == "source":
        return f"gateway-{node_id}"
    if data["kind"] == "rule":
        parallelism = deploy.parallelism if deploy else 1
        return "strategy" if parallelism == 1 else f"strategy-x{parallelism}-{nodes[node_id].key}"
    if data["kind"] == "order":
        return f"executor-{node_id}"
    return f"{data['kind']}-{node_id}"  # a sink or a venue


def _stream_homes(pipeline: Pipeline, graph: nx.DiGraph, nodes: dict[str, NodePlan], node_id: str,
                  owner: dict[str, set[str]]) -> set[str]:
    """A stream's processes: an executor's merged input's are those of the rules it merges; else
    its own when deployed (a process or parallelism), else its readers' one, or each of its
    readers' when it keeps no state, else its own."""
    deploy = pipeline.deploy.get(node_id)
    beside = set().union(set(), *(owner.get(n, ()) for n in graph.nodes[node_id].get("beside", ())))
    if beside:  # an executor's input, merged where its signals are made
        return beside
    if deploy and (deploy.process or deploy.parallelism > 1):
        return {deploy.process or f"stream-{node_id}"}
    readers = set().union(*(owner[reader] for reader in graph.successors(node_id)))
    if len(readers) == 1 or (readers and nodes[node_id].stateless):
        return readers
    return {f"stream-{node_id}"}


def role_of(members: list[str], graph: nx.DiGraph) -> str:
    kinds = {graph.nodes[n]["kind"] for n in members}
    if "source" in kinds:
        return "gateway"
    if "rule" in kinds:
        return "strategy"
    if "order" in kinds:
        return "executor"
    if "venue" in kinds:
        return "venue"
    if "sink" in kinds:
        return "sink"
    return "stream"


def niceness(pipeline: Pipeline, members: list[str], role: str, live: set[str]) -> int:
    """What `deploy` says for the process's nodes (the highest), else GATEWAY_NICE for a gateway
    whose sources all wait for their reader (a replay). A gateway of a live feed keeps its
    priority: starved, it would not slow the feed but lose it, where ZeroMQ's high-water mark
    drops on the publisher's side, out of sight of cep's counters."""
    deploys = [pipeline.deploy[n] for n in members if n in pipeline.deploy]
    explicit = [deploy.nice for deploy in deploys if deploy.nice is not None]
    if explicit:
        return max(explicit)
    return GATEWAY_NICE if role == "gateway" and not live.intersection(members) else 0


def live_sources(graph: nx.DiGraph, registry: Registry) -> set[str]:
    """The sources that do not wait for their reader (a live feed, marked `live=True`)."""
    found = set()
    for node_id, data in graph.nodes(data=True):
        component = registry.get("source", data["spec"].type) if data["kind"] == "source" else None
        if component and component.live:
            found.add(node_id)
    return found


def _unkeyed_parallelism(pipeline: Pipeline, nodes: dict[str, NodePlan]) -> list[Problem]:
    """A node deployed on several workers must say how records are split among them."""
    return [Problem(f'deploy "{node_id}": parallelism {deploy.parallelism} needs a partition key',
                    pipeline.locate("deploy", node_id, "parallelism"), KEY_HINT)
            for node_id, deploy in pipeline.deploy.items()
            if deploy.parallelism > 1 and node_id in nodes and nodes[node_id].key is None]


def _mixed_keys(pipeline: Pipeline, name: str, parallel: list[str], nodes: dict[str, NodePlan],
                keys: dict[str, str]) -> Problem:
    """A process is split among its workers by one key; its parallel nodes name several. Points at
    the deploy entry that put the second key's node in the process."""
    parallelism = max(pipeline.deploy[n].parallelism for n in parallel)
    by_node = ", ".join(f"{n} by {nodes[n].key}" for n in parallel if nodes[n].key is not None)
    second = sorted(keys.values(), key=parallel.index)[1]
    return Problem(f'process "{name}": parallelism {parallelism} needs one partition key, found '
                   f'{sorted(keys)} ({by_node})', pipeline.locate("deploy", second, "process"),
                   "partition its nodes by the same field, or deploy them to different processes")
