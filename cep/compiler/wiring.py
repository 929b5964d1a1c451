"""Which sockets join the placed processes: an edge per (producing node, consuming process) where
the two live in different processes, with its endpoints, delivery and backpressure.

Market data (what sources and streams emit) fans out over PUB/SUB, under a topic per instrument
partition where a consumer is partitioned by instrument (else one `TICK.*` topic; see
`EdgePlan`); what rules emit (signals) travels over PUSH/PULL. Endpoints are ipc socket files in
the run directory, or consecutive loopback TCP ports.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import networkx as nx

from cep.compiler.guarantees import delivery_wanted
from cep.compiler.placement import live_sources
from cep.config.models import Pipeline
from cep.plan import Delivery, EdgePlan, NodePlan, ProcessPlan
from cep.plugins import Registry


def default_run_dir(pipeline: Pipeline) -> Path:
    """Where a pipeline's ipc sockets live: `$CEP_RUN_DIR` or a per-user tmp dir, per pipeline."""
    if pipeline.transport.dir:
        return (pipeline.base_dir / pipeline.transport.dir).resolve()
    base = os.environ.get("CEP_RUN_DIR") or f"/tmp/cep-{os.getuid()}"
    return Path(base) / pipeline.name


class Endpoints:
    """Hands out endpoints: ipc socket files in the run directory, or loopback TCP ports."""

    def __init__(self, pipeline: Pipeline, run_dir: Path) -> None:
        self.transport = pipeline.transport
        self.run_dir = run_dir
        self.next_port = pipeline.transport.base_port

    def __call__(self, name: str, binder: str, peers: Iterable[str]) -> str:
        """The endpoint called `name`, bound by process `binder` and connected to by `peers` (with
        hosts, whether they are on the binder's host decides between ipc and tcp)."""
        if self.transport.kind in ("ipc", "nats"):  # nats: what stays on ZeroMQ stays local
            return f"ipc://{self.run_dir / name}"
        port, self.next_port = self.next_port, self.next_port + 1
        return f"tcp://{self.transport.host}:{port}"


def wire(pipeline: Pipeline, graph: nx.DiGraph, processes: list[ProcessPlan], nodes: dict[str, NodePlan],
         endpoint: Endpoints, registry: Registry) -> list[EdgePlan]:
    """Every edge between the processes, in topological order of the producing nodes."""
    hosts: dict[str, list[ProcessPlan]] = defaultdict(list)
    for process in processes:
        for node_id in process.nodes:
            hosts[node_id].append(process)
    live = live_sources(graph, registry)
    edges: list[EdgePlan] = []
    known: dict[str, tuple[str, ...]] = {}  # endpoints handed out, by name: one XPUB per node, ...
    for node_id in nx.topological_sort(graph):
        for consumer in _consumer_processes(node_id, graph, hosts):
            if node_id in consumer.nodes:
                continue  # fused: the node runs in its consumer's process
            (producer,) = hosts[node_id]  # a node feeding another process is never replicated
            readers = [n for n in graph.successors(node_id) if n in consumer.nodes]
            delivery = delivery_wanted(pipeline, graph, readers)
            if nodes[node_id].kind in ("source", "stream"):  # one XPUB for every reading process
                peers = tuple(p.name for p in _consumer_processes(node_id, graph, hosts) if node_id not in p.nodes)
                pattern, endpoints = "pub/sub", _named(known, f"{node_id}.pub", endpoint, producer.name, peers)
                topic_partitions = _topic_partitions(node_id, graph, hosts)
                topic, acks_name = market_data_topic(topic_partitions), f"{node_id}.ack"
            else:
                pattern, topic, topic_partitions, peers = "push/pull", node_id, 1, (consumer.name,)
                endpoints = tuple(endpoint(f"{worker}.{node_id}.pull", consumer.name, (producer.name,))
                                  for worker in consumer.workers)
                acks_name = f"{node_id}.{consumer.name}.ack"
            edges.append(EdgePlan(
                id=f"{node_id}->{consumer.name}", node=node_id, producer=producer.name,
                consumer=consumer.name, pattern=pattern, endpoints=endpoints, topic=topic, delivery=delivery,
                backpressure="block" if delivery.reliable else _backpressure(pipeline, graph, node_id, live),
                partition_key=consumer.partition_key if consumer.parallelism > 1 else None,
                topic_partitions=topic_partitions, acks=_acks(delivery, acks_name, producer, peers, endpoint, known)))
    return edges


def _named(known: dict[str, tuple[str, ...]], name: str, endpoint: Endpoints, binder: str,
           peers: tuple[str, ...]) -> tuple[str, ...]:
    """The one endpoint called `name`, handed out the first time it is asked for."""
    if name not in known:
        known[name] = (endpoint(name, binder, peers),)
    return known[name]


def _acks(delivery: Delivery, name: str, producer: ProcessPlan, peers: tuple[str, ...], endpoint: Endpoints,
          known: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Where each producer worker takes acknowledgements on a reliable edge from `peers`: one per
    node for pub/sub (one XPUB serves every consumer), one per edge for push/pull; none otherwise."""
    if not delivery.reliable:
        return ()
    if name not in known:
        known[name] = tuple(endpoint(f"{worker}.{name}", producer.name, peers) for worker in producer.workers)
    return known[name]


def _backpressure(pipeline: Pipeline, graph: nx.DiGraph, node_id: str, live: set[str]) -> str:
    """What an unreliable edge does when its consumer is full: what its sources say
    (`backpressure:`), else the pipeline's default, else drop when a live feed reaches it (waiting
    would lose the feed, out of sight) and block for a replay."""
    sources = _sources_of(graph, node_id)
    explicit = [graph.nodes[s]["spec"].backpressure for s in sources]
    chosen = next((b for b in explicit if b), None) or pipeline.defaults.backpressure
    if chosen:
        return chosen
    return "drop" if live.intersection(sources) else "block"


def _sources_of(graph: nx.DiGraph, node_id: str) -> list[str]:
    found = [n for n in nx.ancestors(graph, node_id) if graph.nodes[n]["kind"] == "source"]
    return sorted(found + ([node_id] if graph.nodes[node_id]["kind"] == "source" else []))


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
