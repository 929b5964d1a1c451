"""The trading sections in the logical graph: what venues and order executors read, and the
checks only they need.

An order executor (`orders:`) reads its signals (`from:`) and quotes (its own `quotes:`, else its
venue's); a venue (`venues:`) reads its `quotes:`. Both are graph nodes like any other, so
references, cycles and field checks treat them as they treat rules. The executor's requests to
its venue are not a graph edge (the venue produces nothing a `from:` may read): they become the
request/reply edge of the plan (`cep.compiler.placement`).
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Iterator

import networkx as nx

from cep.config.models import OrderSpec, Pipeline, StreamSpec
from cep.errors import Problem
from cep.plan import EdgePlan, NodePlan

MARKET_DATA = ("source", "stream")
"""What a `quotes:` may name."""
LABELS = {"venues": "venue", "orders": "order executor"}
"""How messages name a node of each section."""


def quotes_of(pipeline: Pipeline, spec: OrderSpec) -> str | None:
    """The quotes an executor prices against: its own `quotes:`, else its venue's."""
    if spec.quotes is not None:
        return spec.quotes
    venue = pipeline.venues.get(spec.venue)
    return venue.quotes if venue is not None else None


def inputs_written(pipeline: Pipeline, section: str, node_id: str, spec: Any) -> Iterator[tuple[tuple, str]]:
    """(key path, upstream id) of every input a node reads, as written in the file."""
    if section == "venues":
        yield (section, node_id, "quotes"), spec.quotes
        return
    for index, upstream in enumerate(spec.from_):
        yield (section, node_id, "from", index), upstream
    if section == "orders":
        quotes = quotes_of(pipeline, spec)
        if quotes is not None:
            where = (section, node_id, "quotes") if spec.quotes is not None else ("venues", spec.venue, "quotes")
            yield where, quotes


def check_trading(pipeline: Pipeline, result: Any) -> None:
    """Each executor names a venue that exists and no other executor names; each `quotes:` names
    market data, not signals."""
    graph: nx.DiGraph = result.graph
    for oid, spec in pipeline.orders.items():
        if spec.venue not in pipeline.venues and spec.venue not in pipeline._broken:
            close = difflib.get_close_matches(spec.venue, list(pipeline.venues), n=1, cutoff=0.5)
            result.errors.append(Problem(
                f'order executor "{oid}": venue "{spec.venue}" does not exist',
                pipeline.locate("orders", oid, "venue"),
                f'did you mean "{close[0]}"?' if close else (
                    "known: " + ", ".join(sorted(pipeline.venues)) if pipeline.venues
                    else "declare it under venues:, e.g. venues: {paper: {type: paper, quotes: quotes}}")))
    served: dict[str, str] = {}  # venue -> the executor it serves
    for oid, spec in pipeline.orders.items():
        if spec.venue in served:
            result.errors.append(Problem(
                f'order executor "{oid}": venue "{spec.venue}" serves order executor "{served[spec.venue]}" '
                "already (a venue matches each request at the event time its one executor has reached)",
                pipeline.locate("orders", oid, "venue"),
                f"give each executor a venue of its own, e.g. venues: {{{spec.venue}2: "
                f"{{type: {pipeline.venues[spec.venue].type}, quotes: ...}}}}"))
        served.setdefault(spec.venue, oid)
    own_quotes = [("venues", vid, spec.quotes) for vid, spec in pipeline.venues.items()]
    own_quotes += [("orders", oid, spec.quotes) for oid, spec in pipeline.orders.items() if spec.quotes]
    for section, node_id, quotes in own_quotes:  # an executor's default is its venue's, checked there
        if quotes in graph and graph.nodes[quotes]["kind"] not in MARKET_DATA:
            result.errors.append(Problem(
                f'{LABELS[section]} "{node_id}": quotes "{quotes}" is a {graph.nodes[quotes]["kind"]}, '
                f"not market data", pipeline.locate(section, node_id, "quotes"),
                "name a source or stream of quotes"))

def trading_node_plan(pipeline: Pipeline, node_id: str, kind: str, spec: Any,
                      inputs: tuple[str, ...]) -> NodePlan:
    """An executor's or a venue's node: its inputs as the graph has them (signals, then quotes);
    an executor's params carry its venue and which input is its quotes."""
    if kind == "venue":
        return NodePlan(id=node_id, kind="venue", type=spec.type, inputs=inputs,
                        params={**spec.params, "quotes": spec.quotes}, stateless=False)
    return NodePlan(id=node_id, kind="order", type="executor", inputs=inputs, stateless=False,
                    params={**spec.params, "venue": spec.venue, "quotes": quotes_of(pipeline, spec)})


def merge_inputs(pipeline: Pipeline, result: Any) -> None:
    """Give each executor one input, `<id>.in`: its signals and quotes merged in the process that
    makes the signals (`beside` tells the placement), so they reach the executor over one socket
    in the order the strategy made them (see `cep.orders.node`)."""
    graph: nx.DiGraph = result.graph
    for oid, spec in pipeline.orders.items():
        inputs = list(graph.predecessors(oid)) if oid in graph else []
        if not inputs:
            continue
        merge = f"{oid}.in"
        if merge in graph:
            result.errors.append(Problem(f'order executor "{oid}": the id "{merge}" is taken, and the executor '
                                         "needs it for its input", pipeline.locate("orders", oid),
                                         f'rename the node "{merge}"'))
            continue
        quotes = quotes_of(pipeline, spec)
        makers = set().union(set(), *(_makers(graph, s) for s in inputs if s != quotes))
        if not makers:  # it reads no signals (its `from:` is broken, and reported)
            continue
        rules = {n for n in makers if graph.nodes[n]["kind"] == "rule"}
        graph.add_node(merge, kind="stream", section="orders", beside=tuple(sorted(rules or makers)),
                       spec=StreamSpec(id=merge, **{"from": tuple(inputs)}))
        graph.remove_edges_from([(upstream, oid) for upstream in inputs])
        graph.add_edges_from([(upstream, merge) for upstream in inputs] + [(merge, oid)])


def _makers(graph: nx.DiGraph, node: str) -> set[str]:
    """The rules or sources (through streams) whose records `node` carries."""
    if graph.nodes[node]["kind"] != "stream":
        return {node}
    return set().union(set(), *(_makers(graph, upstream) for upstream in graph.predecessors(node)))


def signals_in_several_workers(pipeline: Pipeline, processes: list) -> list[Problem]:
    """An executor decides its merged input in the order it was made, so the signals it reads
    must be made in one worker (checked before the wiring, which gives a node one producer)."""
    problems = []
    for oid in pipeline.orders:
        merged = [process for process in processes if f"{oid}.in" in process.nodes]
        if len(merged) > 1 or any(process.parallelism > 1 for process in merged):
            names = ", ".join(f"{p.name} x{p.parallelism}" if p.parallelism > 1 else p.name for p in merged)
            problems.append(Problem(
                f'order executor "{oid}": its signals are made in several workers ({names}), so their order '
                "would differ from run to run", pipeline.locate("orders", oid, "from"),
                "run the rules it reads in one process, with parallelism 1 (deploy: {RULE: {process: strategy}})"))
    return problems


def request_edges(pipeline: Pipeline, nodes: dict[str, NodePlan], processes: list, endpoint: Callable[..., str],
                  edges: list[EdgePlan]) -> list[EdgePlan]:
    """Each executor's request/reply edge to its venue (DEALER -> ROUTER, the venue binds)."""
    host = {node_id: process for process in processes for node_id in process.nodes}
    found = []
    for oid, spec in pipeline.orders.items():
        if oid not in nodes or spec.venue not in nodes:
            continue
        delivery = next((edge.delivery for edge in edges if edge.node == oid),
                        next((edge.delivery for edge in edges if edge.consumer == host[oid].name),
                             pipeline.defaults.delivery))
        venue, executor = host[spec.venue], host[oid].name
        found.append(EdgePlan(id=f"{oid}->{venue.name}", node=oid, producer=executor, consumer=venue.name,
                              pattern="dealer/router",
                              endpoints=(endpoint(f"{spec.venue}.router", venue.name, (executor,)),),
                              topic="requests", delivery=delivery, backpressure="block"))
    return found
