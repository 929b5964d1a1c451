"""Where each node runs and which sockets join the processes (DESIGN §4).

Default placement: each source is a process (its gateway); rules sharing a parallelism and
partition key are one strategy process; each sink is a process; a stream is fused into the process
of its consumer, and replicated into each consumer's process when its operators are stateless.
`deploy: {NODE: {parallelism: N, process: NAME}}` overrides. Market data (what sources and
streams emit) fans out over PUB/SUB, under a topic per instrument partition where a consumer is
partitioned by instrument (else one `TICK.*` topic; see `EdgePlan`); what rules emit (signals)
travels over PUSH/PULL.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import networkx as nx

from cep.config.models import Pipeline
from cep.plan import EdgePlan, NodePlan, ProcessPlan


GATEWAY_NICE = 5
"""Gateways of replays (processes whose sources wait for their reader; a live feed's would drop
instead) run this much nicer than the processes after them, so when processes share the cores
the events already in flight get through before a gateway brings in more. Measured at 50,000
ticks/s paced on 2 cores: p50 source to sink 0.34-0.36 -> 0.28 ms (the raw pyzmq chain's is
0.19 with or without it); throughput at full speed unchanged.
`deploy: {NODE: {nice: N}}` sets a node's process's niceness instead."""


def place(pipeline: Pipeline, graph: nx.DiGraph, nodes: dict[str, NodePlan]) -> dict[str, list[str]]:
    """Process name -> node ids (a replicated stream appears in several processes)."""
    owner: dict[str, set[str]] = {}

    def pinned(node_id: str, default: str) -> str:
        deploy = pipeline.deploy.get(node_id)
        return deploy.process if deploy and deploy.process else default

    for node_id, data in graph.nodes(data=True):
        kind = data["kind"]
        if kind == "source":
            owner[node_id] = {pinned(node_id, f"gateway-{node_id}")}
        elif kind == "rule":
            deploy = pipeline.deploy.get(node_id)
            parallelism = deploy.parallelism if deploy else 1
            group = "strategy" if parallelism == 1 else f"strategy-x{parallelism}-{nodes[node_id].key}"
            owner[node_id] = {pinned(node_id, group)}
        elif kind in ("sink", "venue"):
            owner[node_id] = {pinned(node_id, f"{kind}-{node_id}")}
        elif kind == "order":
            owner[node_id] = {pinned(node_id, f"executor-{node_id}")}

    for node_id in reversed(list(nx.topological_sort(graph))):
        if graph.nodes[node_id]["kind"] != "stream":
            continue
        deploy = pipeline.deploy.get(node_id)
        consumers = set().union(*(owner[c] for c in graph.successors(node_id))) if graph.out_degree(node_id) else set()
        if deploy and (deploy.process or deploy.parallelism > 1):
            owner[node_id] = {deploy.process or f"stream-{node_id}"}
        elif len(consumers) == 1 or (consumers and nodes[node_id].stateless):
            owner[node_id] = consumers
        else:
            owner[node_id] = {f"stream-{node_id}"}

    processes: dict[str, list[str]] = defaultdict(list)
    for node_id in nx.topological_sort(graph):
        for process in sorted(owner[node_id]):
            processes[process].append(node_id)
    return dict(processes)


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


class Endpoints:
    """Hands out endpoints: ipc socket files in the run directory, or loopback TCP ports."""

    def __init__(self, pipeline: Pipeline, run_dir: Path) -> None:
        self.transport = pipeline.transport
        self.run_dir = run_dir
        self.next_port = pipeline.transport.base_port

    def __call__(self, name: str) -> str:
        if self.transport.kind == "ipc":
            return f"ipc://{self.run_dir / name}"
        port, self.next_port = self.next_port, self.next_port + 1
        return f"tcp://{self.transport.host}:{port}"


def wire(pipeline: Pipeline, graph: nx.DiGraph, nodes: dict[str, NodePlan],
         processes: list[ProcessPlan], endpoint: Endpoints, backpressure_of) -> list[EdgePlan]:
    """One edge per (producing node, consuming process) where the two live in different processes."""
    hosts: dict[str, list[ProcessPlan]] = defaultdict(list)
    for process in processes:
        for node_id in process.nodes:
            hosts[node_id].append(process)
    edges: list[EdgePlan] = []
    pub_endpoints: dict[str, str] = {}
    ack_endpoints: dict[str, tuple[str, ...]] = {}
    for node_id in nx.topological_sort(graph):
        for consumer in _consumer_processes(node_id, graph, hosts):
            if node_id in consumer.nodes:
                continue  # fused: the node runs in its consumer's process
            (producer,) = hosts[node_id]  # a node feeding another process is never replicated
            pubsub = nodes[node_id].kind in ("source", "stream")
            readers = [n for n in graph.successors(node_id) if n in consumer.nodes]
            delivery = delivery_wanted(pipeline, graph, readers)
            if pubsub:
                if node_id not in pub_endpoints:
                    pub_endpoints[node_id] = endpoint(f"{node_id}.pub")
                endpoints = (pub_endpoints[node_id],)
                topic_partitions = _topic_partitions(node_id, graph, hosts)
                topic = market_data_topic(topic_partitions)
            else:
                endpoints = tuple(endpoint(f"{worker}.{node_id}.pull") for worker in consumer.workers)
                topic, topic_partitions = node_id, 1
            acks = _ack_endpoints(delivery, node_id, consumer if not pubsub else None, producer,
                                  endpoint, ack_endpoints)
            edges.append(EdgePlan(
                id=f"{node_id}->{consumer.name}", node=node_id, producer=producer.name,
                consumer=consumer.name, pattern="pub/sub" if pubsub else "push/pull",
                endpoints=endpoints, topic=topic, delivery=delivery,
                backpressure="block" if acks else backpressure_of(node_id),  # reliable: never drop
                partition_key=consumer.partition_key if consumer.parallelism > 1 else None,
                topic_partitions=topic_partitions, acks=acks))
    return edges


def _ack_endpoints(delivery: str, node_id: str, consumer: ProcessPlan | None, producer: ProcessPlan,
                   endpoint: Endpoints, known: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Where each producer worker takes acknowledgements: none for at_most_once; one per node
    for pub/sub (one XPUB serves every consumer), one per edge for push/pull."""
    if delivery == "at_most_once":
        return ()
    name = f"{node_id}.ack" if consumer is None else f"{node_id}.{consumer.name}.ack"
    if name not in known:
        known[name] = tuple(endpoint(f"{worker}.{name}") for worker in producer.workers)
    return known[name]


def market_data_topic(topic_partitions: int) -> str:
    """How a pub/sub edge's topics read (`cep graph`): `TICK.*`, or `TICK.0`..`TICK.<n-1>`."""
    return "TICK.*" if topic_partitions == 1 else f"TICK.0..{topic_partitions - 1}"


def _topic_partitions(node_id: str, graph: nx.DiGraph, hosts) -> int:
    """1, or the least common multiple of the parallelism of the consumer processes partitioned
    by instrument: a partition among that many is one partition of each of them (partitions are
    a hash modulo the count)."""
    return math.lcm(*(process.parallelism for process in _consumer_processes(node_id, graph, hosts)
                      if process.parallelism > 1 and process.partition_key == "instrument"))


def _consumer_processes(node_id: str, graph: nx.DiGraph, hosts) -> list[ProcessPlan]:
    seen: dict[str, ProcessPlan] = {}
    for successor in graph.successors(node_id):
        for process in hosts[successor]:
            seen.setdefault(process.name, process)
    return list(seen.values())


def delivery_wanted(pipeline: Pipeline, graph: nx.DiGraph, readers: list[str]) -> str:
    """The strongest guarantee any sink at or downstream of `readers` (the nodes an edge feeds)
    asks for, propagated back: an edge that leads only to an at-most-once sink stays cheap."""
    order = ("at_most_once", "at_least_once", "exactly_once")
    wanted = [pipeline.defaults.delivery]
    for downstream in set(readers).union(*(nx.descendants(graph, n) for n in readers)):
        data = graph.nodes[downstream]
        if data["kind"] == "sink" and data["spec"].delivery:
            wanted.append(data["spec"].delivery)
    return max(wanted, key=order.index)
