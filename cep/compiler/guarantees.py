"""Delivery in one place: what each part of the pipeline must give, and what that asks of the
components it runs through, checked before anything runs.

Delivery is propagated back from the sinks (Vector's way): an edge gives the strongest guarantee
any sink at or after it asks for (`delivery_wanted`), so a path that leads only to at-most-once
sinks stays cheap. Where the delivery wanted checkpoints (`Delivery.checkpoints`: exactly_once),
every node on the path, and the sink itself, must be able to take part in checkpoints:
- a source must replay (`replayable=True` in its marker: file replays and seeded synthetic ticks;
  a live feed cannot);
- an operator, rule or sink that keeps state must declare it (`checkpoint=True` in its marker and
  `BuildContext.keep_state` in its factory); one that keeps none qualifies as it is.
Every offender is reported, each naming its node, with a hint. What a mode implies for an edge
(acks, blocking, checkpoints) is a property of `cep.plan.Delivery`; how it is kept on the wire
is the transport's business.
"""
from __future__ import annotations

import networkx as nx

from cep.config.models import Pipeline
from cep.errors import Problem
from cep.plan import Delivery
from cep.plugins import Component, Registry

HINT = ("use delivery at_least_once for this part of the pipeline, or a component that checkpoints "
        "its state (see BuildContext.keep_state)")


def delivery_wanted(pipeline: Pipeline, graph: nx.DiGraph, readers: list[str]) -> Delivery:
    """The strongest guarantee any sink at or downstream of `readers` (the nodes an edge feeds)
    asks for, else the pipeline's default."""
    wanted = [pipeline.defaults.delivery]
    for downstream in set(readers).union(*(nx.descendants(graph, n) for n in readers)):
        data = graph.nodes[downstream]
        if data["kind"] == "sink" and data["spec"].delivery:
            wanted.append(data["spec"].delivery)
    return Delivery.strongest(wanted)


def check_guarantees(pipeline: Pipeline, graph: nx.DiGraph, registry: Registry) -> list[Problem]:
    """Every node that cannot give the delivery wanted of it, in `graph` (acyclic) order."""
    problems = []
    for node_id, data in graph.nodes(data=True):
        wanted = delivery_wanted(pipeline, graph, [node_id])
        if wanted.checkpoints:
            problems += _cannot_checkpoint(pipeline, registry, node_id, data, wanted)
    return problems


def _cannot_checkpoint(pipeline: Pipeline, registry: Registry, node_id: str, data: dict,
                       wanted: Delivery) -> list[Problem]:
    """Why node `node_id` cannot take part in the checkpoints `wanted` needs: nothing, or one
    problem per offending component (a stream's operators each)."""
    kind, spec = data["kind"], data["spec"]
    where = pipeline.locate(data["section"], node_id)
    if kind in ("order", "venue"):
        return []  # the executor checkpoints; a venue deduplicates by client order id instead
    if kind == "stream":
        return [Problem(f'stream "{node_id}": operator {op.name} {reason}; {wanted} needs it checkpointed',
                        where, HINT)
                for op in spec.ops if (reason := _unable(registry.get("operator", op.name)))]
    component = registry.get(kind, spec.type)
    if kind == "source":
        if component is not None and not component.replayable:
            return [Problem(f'source "{node_id}": {spec.type} cannot replay; {wanted} needs a replayable source',
                            where, "replay a file (csv, jsonl) or synthetic ticks, or use at_least_once")]
        return []
    reason = _unable(component, sink=kind == "sink")
    if reason:
        return [Problem(f'{kind} "{node_id}": {spec.type} {reason}; {wanted} needs it checkpointed', where, HINT)]
    return []


def _unable(component: Component | None, sink: bool = False) -> str | None:
    """Why a component cannot take part in checkpoints, or None."""
    if component is None or component.checkpoint:
        return None  # unknown components are reported elsewhere
    if sink:
        return "has effects it cannot undo (no checkpoint hook)"
    if component.state != "stateless":
        return "keeps state without a checkpoint hook"
    return None
