"""The physical plan: frozen plain data that `cep graph` prints and `cep run` executes.

Nothing here runs anything. A plan names every process (and its workers when a node is
parallel), the pipeline nodes inside each, and every edge that crosses a process boundary with its
socket pattern, endpoints and delivery guarantee. `to_dict()` is the JSON form (`cep graph
--format json`); `Plan.from_dict` rebuilds it, which is how a worker process receives its slice.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Iterable, Literal

BATCH_SIZE = 256
"""Records a source puts in one batch, by default (`defaults.batch_size`): how much it reads at a
time. What a worker passes through its graph at once grows beyond it under load (a burst of frames
read in one pass goes through as one batch); what crosses a socket is bounded by FRAME_SIZE."""
FRAME_SIZE = 256
"""The most records one frame carries, by default (`defaults.frame_size`): an outlet cuts what a
pass of its worker produced into frames of at most this many. With `EdgePlan.hwm` it bounds what
waits in a socket and what a reliable edge's window holds."""

NodeKind = Literal["source", "stream", "rule", "sink", "venue", "order"]
Pattern = Literal["pub/sub", "push/pull", "dealer/router"]


class Delivery(StrEnum):
    """What an edge promises about the records it carries, weakest first.

    A `str` (its value is the name written in YAML, printed by `cep graph` and carried by the
    plan's JSON), so comparing or serialising it as a string still works; decide by its properties,
    never by comparing names. What each mode asks of the components it runs through is
    checked in `cep.compiler.guarantees`; how it is kept is the transport's business.
    """

    AT_MOST_ONCE = "at_most_once"
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"

    @property
    def reliable(self) -> bool:
        """Frames are kept until the consumer acknowledges them and resent after a crash, so the
        edge has ack endpoints and never drops: its producer blocks on a full consumer."""
        return self is not Delivery.AT_MOST_ONCE

    @property
    def checkpoints(self) -> bool:
        """Workers on the path checkpoint their state with their input offsets and restart from
        it, so every source must replay and every stateful component must checkpoint."""
        return self is Delivery.EXACTLY_ONCE

    @property
    def removes_duplicates(self) -> bool:
        """A consumer drops what it had processed before a restart, rather than pass it on."""
        return self is Delivery.EXACTLY_ONCE

    @classmethod
    def strongest(cls, modes: Iterable[Delivery | str]) -> Delivery:
        """The strongest of `modes`, modes or their names (what a path leading to all of them
        must give)."""
        order = list(cls)
        return cls(max(modes, key=order.index))


@dataclass(frozen=True)
class NodePlan:
    """One pipeline node: a source, a stream (its ops), a rule or a sink, with raw params."""

    id: str
    kind: NodeKind
    type: str                              # component name; "stream" for streams
    inputs: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    ops: tuple[tuple[str, Any], ...] = ()  # streams: (operator name, raw args) in order
    key: str | None = None                 # the field its input is partitioned by, if any
    stateless: bool = True                 # may be replicated into every consumer's process


@dataclass(frozen=True)
class ProcessPlan:
    """An OS process (or `parallelism` of them, one per key partition) hosting some nodes."""

    name: str
    role: Literal["gateway", "strategy", "stream", "sink", "executor", "venue"]
    nodes: tuple[str, ...]
    parallelism: int = 1
    partition_key: str | None = None
    nice: int = 0  # added to the niceness its workers inherit (see compiler.placement.GATEWAY_NICE)
    host: str | None = None  # the `hosts:` entry it runs on (None: a one-host pipeline)

    @property
    def workers(self) -> tuple[str, ...]:
        if self.parallelism == 1:
            return (self.name,)
        return tuple(f"{self.name}.{index}" for index in range(self.parallelism))


@dataclass(frozen=True)
class EdgePlan:
    """Events of node `node` leaving process `producer` for process `consumer`.

    pub/sub: the producer binds one endpoint (XPUB) that every consumer subscribes to, topic
    `topic`. Market data goes out under one topic, `TICK.*`, unless some consumer of the node is
    partitioned by instrument: then under `topic_partitions` topics `TICK.<p>`, p the instrument's
    partition among `topic_partitions` (the least common multiple of those consumers'
    parallelism), so each worker drops the frames of other partitions unread. (A topic per
    instrument, as before, made a frame per instrument per pass: over 1,000 instruments
    end-to-end throughput fell to 0.13M ticks/s, 75k with two workers.)
    push/pull: every consumer worker binds its own PULL endpoint (`endpoints`, one per worker)
    and the producer routes records by `partition_key`.
    Reliable delivery (`Delivery.reliable`) adds `acks`: the endpoint each producer worker binds
    for its consumers' acknowledgements (one per producer worker; empty for `at_most_once`).
    """

    id: str
    node: str
    producer: str
    consumer: str
    pattern: Pattern
    endpoints: tuple[str, ...]
    topic: str
    delivery: Delivery
    backpressure: Literal["block", "drop"]
    partition_key: str | None = None
    topic_partitions: int = 1
    hwm: int = 1000  # frames (each at most `Plan.frame_size` records) a socket queues; also the
                     # unacknowledged window of a reliable edge, per consumer worker (`delivery.Window`)
    acks: tuple[str, ...] = ()
    subject: str | None = None  # NATS: the JetStream subject that carries the edge (None: ZeroMQ)

    def __post_init__(self) -> None:
        object.__setattr__(self, "delivery", Delivery(self.delivery))  # from a name too (JSON, tests)


@dataclass(frozen=True)
class Plan:
    name: str
    pipeline: str | None                   # path of the pipeline file, for the worker's registry
    base_dir: str
    plugins: tuple[str, ...]
    nodes: dict[str, NodePlan]
    processes: tuple[ProcessPlan, ...]
    edges: tuple[EdgePlan, ...]
    run_dir: str                           # ipc socket files, control endpoint, lock
    control: str                           # the supervisor's endpoint
    batch_size: int = BATCH_SIZE           # records per source batch
    frame_size: int = FRAME_SIZE           # records per frame, at most
    dead_letter: str = "out/deadletter.jsonl"
    warnings: tuple[str, ...] = ()
    curve_keys: str | None = None          # tcp: CURVE keys directory (`security.curve.keys`), absolute
    max_sequence_jump: int = 100_000       # frames a receiver lets a stream skip (`security.max_sequence_jump`)
    metrics_port: int | None = None        # Prometheus metrics on 127.0.0.1 (`metrics.port`)
    hosts: dict[str, str] = field(default_factory=dict)  # host -> its supervisor link (`cep.compiler.hosts`)
    nats: dict[str, Any] | None = None     # `transport: {kind: nats}`: servers, credentials, stream limits

    def process(self, name: str) -> ProcessPlan:
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(name)

    def process_of_worker(self, worker: str) -> tuple[ProcessPlan, int]:
        for process in self.processes:
            if worker in process.workers:
                return process, process.workers.index(worker)
        raise KeyError(worker)

    def edges_from(self, process: str) -> list[EdgePlan]:
        return [edge for edge in self.edges if edge.producer == process]

    def edges_to(self, process: str) -> list[EdgePlan]:
        return [edge for edge in self.edges if edge.consumer == process]

    def workers(self, host: str | None = None) -> list[str]:
        """Every worker, or those of the processes on `host`."""
        return [worker for process in self.processes for worker in process.workers
                if host is None or process.host == host]

    def in_run_dir(self, run_dir: str) -> "Plan":
        """The plan run from `run_dir` instead: its control socket and every ipc endpoint moved
        there (one host's processes of a multi-host plan, `cep run --host`)."""
        old = f"ipc://{self.run_dir}/"

        def moved(endpoints: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(f"ipc://{run_dir}/{e.removeprefix(old)}" if e.startswith(old) else e for e in endpoints)
        edges = tuple(replace(edge, endpoints=moved(edge.endpoints), acks=moved(edge.acks)) for edge in self.edges)
        return replace(self, run_dir=run_dir, control=f"ipc://{run_dir}/control", edges=edges)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [asdict(node) for node in self.nodes.values()]
        for process, raw in zip(self.processes, data["processes"]):
            raw["workers"] = list(process.workers)
            if process.host is None:  # a one-host plan reads as before hosts existed
                del raw["host"]
        if not self.hosts:
            del data["hosts"]
        for raw in data["edges"]:
            raw["from"], raw["to"] = raw.pop("producer"), raw.pop("consumer")
            raw["delivery"] = str(raw["delivery"])  # plain data, as the JSON form reads
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        data = dict(data)
        nodes = {}
        for raw in data.pop("nodes"):
            raw = dict(raw, inputs=tuple(raw["inputs"]), ops=tuple(tuple(op) for op in raw["ops"]))
            nodes[raw["id"]] = NodePlan(**raw)
        processes = tuple(ProcessPlan(**{k: (tuple(v) if k == "nodes" else v)
                                         for k, v in raw.items() if k != "workers"})
                          for raw in data.pop("processes"))
        edges = []
        for raw in data.pop("edges"):
            raw = dict(raw)
            raw["producer"], raw["consumer"] = raw.pop("from"), raw.pop("to")
            raw["endpoints"] = tuple(raw["endpoints"])
            raw["acks"] = tuple(raw.get("acks", ()))
            edges.append(EdgePlan(**raw))
        return cls(nodes=nodes, processes=processes, edges=tuple(edges),
                   plugins=tuple(data.pop("plugins")), warnings=tuple(data.pop("warnings")), **data)
