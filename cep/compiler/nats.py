"""Which edges travel over NATS JetStream, and the NATS settings checked and carried on the plan.

An edge between two processes is a ZeroMQ socket pair unless NATS carries it: the transport of
the node that sends it (`transport: {kind: nats}` on a source, stream or rule), else that of the
sink it feeds (on a sink: the edges into it), else the pipeline's (`transport: {kind: nats}`
carries every edge). `kind: zeromq` on a node keeps its edges on ZeroMQ under a NATS pipeline.
This module is the one place that decides it (`over_nats`); hosts and wiring decide where the
ZeroMQ edges' sockets live, and only for them.

A NATS edge keeps its place in the plan; its `subject` says what carries it (`cep.<pipeline>.<node>`
for market data, which every consuming process reads, `....<node>.<consumer process>` for
signals), and its endpoints become inproc addresses inside the consuming worker, where a bridge
hands the messages to the same inlets ZeroMQ edges use (`cep.runtime.transport.jetstream`).
Every worker of a consuming process reads the whole subject through a durable consumer of its
own and keeps its partition's records, as every worker's subscriber does on ZeroMQ; so a NATS
edge carries one topic (`TICK.*`), never a topic per partition.
Every NATS edge of a pipeline uses one set of servers and credentials, given on the pipeline's
`transport:` or on a node's, and one JetStream stream, `CEP_<pipeline>`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import networkx as nx
from pydantic import ValidationError

from cep.compiler.wiring import market_data_topic
from cep.config.models import NatsOptions, Pipeline
from cep.errors import Location, Problem
from cep.jetstream.client import NatsConnection
from cep.jetstream.edges import CONNECTION_KEYS, LIMIT_KEYS, subject
from cep.jetstream.streams import StreamLimits
from cep.plan import EdgePlan, ProcessPlan

NATS_KEYS = CONNECTION_KEYS + LIMIT_KEYS
NODE_SECTIONS = {"sources": "source", "streams": "stream", "rules": "rule", "sinks": "sink"}
ONE_SERVER_SET = ("a pipeline's NATS edges share one set of servers and credentials: give them once, "
                  "on the pipeline's transport:")


@dataclass(frozen=True)
class Chosen:
    """A node's own `transport:`: where it is written and what it says."""

    section: str
    node: str
    kind: str

    @property
    def named(self) -> str:
        return f'{NODE_SECTIONS[self.section]} "{self.node}"'

    def place(self, pipeline: Pipeline, *key: str) -> Location | None:
        return pipeline.locate(self.section, self.node, "transport", *key)


def chosen_transports(pipeline: Pipeline) -> dict[str, Chosen]:
    """Every node that says which transport carries its edges, by id."""
    return {node: Chosen(section, node, spec.transport.kind)
            for section in NODE_SECTIONS for node, spec in getattr(pipeline, section).items()
            if spec.transport is not None}


def uses_nats(pipeline: Pipeline) -> bool:
    return pipeline.transport.kind == "nats" or any(
        chosen.kind == "nats" for chosen in chosen_transports(pipeline).values())


# -- the settings --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One NATS option as written: on whose `transport:`, where, beside which kind."""

    key: str
    value: Any
    owner: str                   # "transport" (the pipeline's) or 'rule "up5": transport'
    place: Location | None
    kind: str                    # the kind written beside it

    @property
    def at(self) -> tuple[int, int]:
        return (self.place.line, self.place.col) if self.place else (0, 0)


def nats_settings(pipeline: Pipeline) -> tuple[dict[str, Any] | None, list[Problem]]:
    """`(settings, problems)`: the NATS options of the pipeline's and its nodes' `transport:`,
    merged and checked (TLS files resolved against the pipeline file); None when no edge is
    NATS. Options that no NATS edge uses, one option given two different ways, and options
    without a `url` anywhere are problems."""
    written = _written(pipeline)
    if not uses_nats(pipeline):
        if pipeline._broken:  # a node left out for its own mistakes may be the one that said nats
            return None, []
        return None, [Problem(f"{o.owner}: {o.key} is a setting of kind: nats, not of kind: {o.kind}", o.place,
                              "write kind: nats (on the pipeline's transport: for every edge, or on a "
                              "stream, rule or sink for its edges), or remove it")
                      for o in written]
    given: dict[str, Option] = {}
    problems: list[Problem] = []
    for option in written:
        first = given.get(option.key)
        if option.kind == "zeromq":
            problems.append(Problem(f"{option.owner}: {option.key} is a setting of kind: nats, not of kind: zeromq",
                                    option.place, "write kind: nats, or remove it"))
        elif first is not None and first.value != option.value:
            problems.append(Problem(f"{option.owner}: {option.key} differs from the one given by {first.owner} "
                                    f"(at {first.place})", option.place, ONE_SERVER_SET))
        elif first is None:
            given[option.key] = option
    if given and "url" not in given:
        first = next(iter(given.values()))
        problems.append(Problem(f"{first.owner}: {first.key} is given without a url: no NATS server is named",
                                first.place, "add url: nats://HOST:4222 to the pipeline's transport:"))
    return _checked(given, pipeline, problems), problems


def _written(pipeline: Pipeline) -> list[Option]:
    """Every NATS option written, in file order."""
    found = [Option(key, value, "transport", pipeline.locate("transport", key), pipeline.transport.kind)
             for key, value in _options(pipeline.transport)]
    for chosen in chosen_transports(pipeline).values():
        spec = getattr(pipeline, chosen.section)[chosen.node].transport
        found += [Option(key, value, f"{chosen.named}: transport", chosen.place(pipeline, key), chosen.kind)
                  for key, value in _options(spec)]
    return sorted(found, key=lambda option: option.at)


def _options(transport: NatsOptions) -> list[tuple[str, Any]]:
    return [(key, getattr(transport, key)) for key in NATS_KEYS if getattr(transport, key) is not None]


def _checked(given: dict[str, Option], pipeline: Pipeline, problems: list[Problem]) -> dict[str, Any]:
    """The options validated as the connection and the stream's limits, each mistake located
    where its key was written."""
    settings: dict[str, Any] = {}
    values = {key: option.value for key, option in given.items()}
    try:
        settings.update(NatsConnection.model_validate(
            {k: v for k, v in values.items() if k in CONNECTION_KEYS},
            context={"base_dir": pipeline.base_dir}).model_dump(exclude_none=True))
    except ValidationError as exc:
        problems += _problems(exc, given, pipeline)
    try:
        limits = {k: v for k, v in values.items() if k in LIMIT_KEYS}
        StreamLimits.model_validate(limits)
        settings.update(limits)
    except ValidationError as exc:
        problems += _problems(exc, given, pipeline)
    return settings


def _problems(exc: ValidationError, given: dict[str, Option], pipeline: Pipeline) -> list[Problem]:
    """Each error at the option it is about (one about several, such as a certificate without
    its key, at the pipeline's `transport:`)."""
    found = []
    for error in exc.errors():
        option = given.get(str(error["loc"][0])) if error["loc"] else None
        message = error["msg"].removeprefix("Value error, ")
        if option is None:
            found.append(Problem(f"transport: {message}", pipeline.locate("transport")))
        else:
            found.append(Problem(f"{option.owner}: {option.key}: {message}", option.place))
    return found


# -- the edges -----------------------------------------------------------------------------------
def over_nats(pipeline: Pipeline, graph: nx.DiGraph, edges: list[EdgePlan],
              processes: list[ProcessPlan]) -> tuple[list[EdgePlan], list[Problem]]:
    """The edges, those NATS carries on their subject, and every problem: a node whose
    `transport:` has no edge to carry, a market-data node that would reach some readers over
    NATS and others over ZeroMQ."""
    chooser = _Chooser(pipeline, graph, {process.name: process for process in processes})
    kinds = {edge.id: chooser.kind(edge) for edge in edges if edge.pattern in ("pub/sub", "push/pull")}
    problems = chooser.problems + _mixed_market_data(pipeline, edges, kinds, chooser) + _idle(pipeline, chooser)
    moved = []
    for edge in edges:
        if kinds.get(edge.id) != "nats":  # request/reply stays on ZeroMQ, as does what no one moved
            moved.append(edge)
        else:
            moved.append(_on_subject(pipeline, edge, chooser.processes[edge.producer],
                                     chooser.processes[edge.consumer]))
    return moved, problems


def _on_subject(pipeline: Pipeline, edge: EdgePlan, producer: ProcessPlan, consumer: ProcessPlan) -> EdgePlan:
    """The edge as its subject carries it: inproc endpoints in each consumer worker (one XPUB
    for market data, a PULL per worker for signals, as on ZeroMQ), an ack endpoint per producer
    worker, one topic."""
    address = f"inproc://cep-nats/{edge.id}"
    acks = tuple(f"{address}.ack.{worker}" for worker in producer.workers)
    if edge.pattern == "pub/sub":  # market data: one subject for every consuming process
        on_subject = subject(pipeline.name, edge.node, None)
        endpoints, topic = (address,), market_data_topic(1)
    else:
        on_subject = subject(pipeline.name, edge.node, edge.consumer)
        endpoints, topic = tuple(f"{address}.{worker}" for worker in consumer.workers), edge.topic
    return replace(edge, subject=on_subject, endpoints=endpoints, topic=topic, topic_partitions=1,
                   acks=acks if edge.delivery.reliable else ())


class _Chooser:
    """Decides each edge's transport: the sending node's `transport:`, else the sinks' it feeds
    (in its consuming process), else the pipeline's. Remembers who decided, to name them."""

    def __init__(self, pipeline: Pipeline, graph: nx.DiGraph, processes: dict[str, ProcessPlan]) -> None:
        self.pipeline = pipeline
        self.graph = graph
        self.processes = processes
        self.chosen = chosen_transports(pipeline)
        self.default = "nats" if pipeline.transport.kind == "nats" else "zeromq"
        self.decided_by: dict[str, Chosen | None] = {}  # edge id -> the node transport that decided it
        self.used: set[Chosen] = set()  # the node transports some edge follows
        self.problems: list[Problem] = []

    def kind(self, edge: EdgePlan) -> str:
        own = self.chosen.get(edge.node)  # a sink sends nothing: never an edge's node
        sinks = [self.chosen[node] for node in self.processes[edge.consumer].nodes
                 if node in self.chosen and self.chosen[node].section == "sinks"
                 and nx.has_path(self.graph, edge.node, node)]
        self.used.update(sinks)
        decider = own or (sinks[0] if sinks else None)
        for sink in sinks:
            if sink.kind != decider.kind:
                self.problems.append(Problem(
                    f"{sink.named}: transport: kind {sink.kind} for the edge {edge.id}, but {decider.named} "
                    f"says kind {decider.kind}", sink.place(self.pipeline, "kind"),
                    f'give them the same kind, or write transport: only on "{edge.node}"'))
        self.decided_by[edge.id] = decider
        if decider is None:
            return self.default
        self.used.add(decider)
        return decider.kind


def _mixed_market_data(pipeline: Pipeline, edges: list[EdgePlan], kinds: dict[str, str],
                       chooser: _Chooser) -> list[Problem]:
    """A market-data node publishes once for every process that reads it, so its readers get it
    the same way: a sink's `transport:` cannot move one of them alone."""
    problems = []
    for node in dict.fromkeys(edge.node for edge in edges if edge.pattern == "pub/sub"):
        mine = [edge for edge in edges if edge.node == node and edge.pattern == "pub/sub"]
        if len({kinds[edge.id] for edge in mine}) < 2:
            continue
        for edge in mine:
            by = chooser.decided_by[edge.id]
            if by is None:
                continue
            others = ", ".join(e.consumer for e in mine if kinds[e.id] != by.kind)
            problems.append(Problem(
                f'{by.named}: transport: kind {by.kind} for "{node}", which other processes ({others}) read '
                f"over {'zeromq' if by.kind == 'nats' else 'nats'}; market data reaches every reader the same way",
                by.place(pipeline, "kind"), f'write transport: {{kind: {by.kind}}} on "{node}" instead'))
    return problems


def _idle(pipeline: Pipeline, chooser: _Chooser) -> list[Problem]:
    """A node's `transport:` with no edge to carry: it sends nothing to (a sink: receives nothing
    from) another process."""
    problems = []
    for chosen in chooser.chosen.values():
        if chosen in chooser.used:
            continue
        if chosen.section == "sinks":
            problems.append(Problem(
                f"{chosen.named}: transport: it receives nothing from another process, so no edge is there to "
                "carry", chosen.place(pipeline),
                "remove it: what it reads runs in its process, so nothing crosses to it"))
            continue
        home = ", ".join(sorted(p.name for p in chooser.processes.values() if chosen.node in p.nodes)) or "?"
        problems.append(Problem(
            f"{chosen.named}: transport: it sends nothing to another process (it runs in {home}, beside what "
            "reads it), so no edge is there to carry", chosen.place(pipeline),
            f"remove it, or give it a process of its own (deploy: {{{chosen.node}: {{process: NAME}}}})"))
    return problems
