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
from typing import Any, Iterator

import networkx as nx

from cep.config.models import OrderSpec, Pipeline
from cep.errors import Problem
from cep.plan import NodePlan

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
    """Each executor names a venue that exists; each `quotes:` names market data, not signals."""
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
