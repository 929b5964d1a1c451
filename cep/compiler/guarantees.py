"""What `exactly_once` asks of the components it runs through, checked before anything runs.

Delivery is propagated back from the sinks (`placement.delivery_wanted`); every node that feeds an
exactly_once sink, and the sink itself, must be able to take part in checkpoints:
- a source must replay (`replayable=True` in its marker: file replays and seeded synthetic ticks;
  a live feed cannot);
- an operator, rule or sink that keeps state must declare it (`checkpoint=True` in its marker and
  `BuildContext.keep_state` in its factory); one that keeps none qualifies as it is.
Every offender is reported, each naming its node, with a hint.
"""
from __future__ import annotations

import networkx as nx

from cep.compiler.placement import delivery_wanted
from cep.config.models import Pipeline
from cep.errors import Problem
from cep.plugins import Component, Registry

HINT = ("use delivery at_least_once for this part of the pipeline, or a component that checkpoints "
        "its state (see BuildContext.keep_state)")


def check_exactly_once(pipeline: Pipeline, graph: nx.DiGraph, registry: Registry) -> list[Problem]:
    problems = []
    for node_id, data in graph.nodes(data=True):
        if delivery_wanted(pipeline, graph, [node_id]) != "exactly_once":
            continue
        kind, spec = data["kind"], data["spec"]
        where = pipeline.locate(data["section"], node_id)
        if kind in ("order", "venue"):
            continue  # the executor checkpoints; a venue deduplicates by client order id instead
        if kind == "stream":
            for op in spec.ops:
                reason = _unable(registry.get("operator", op.name))
                if reason:
                    problems.append(Problem(f'stream "{node_id}": operator {op.name} {reason}; exactly_once '
                                            "needs it checkpointed", where, HINT))
            continue
        component = registry.get(kind, spec.type)
        if kind == "source":
            if component is not None and not component.replayable:
                problems.append(Problem(f'source "{node_id}": {spec.type} cannot replay; '
                                        "exactly_once needs a replayable source", where,
                                        "replay a file (csv, jsonl) or synthetic ticks, or use at_least_once"))
            continue
        reason = _unable(component, sink=kind == "sink")
        if reason:
            problems.append(Problem(f'{kind} "{node_id}": {spec.type} {reason}; exactly_once needs it '
                                    "checkpointed", where, HINT))
    return problems


def _unable(component: Component | None, sink: bool = False) -> str | None:
    """Why a component cannot take part in checkpoints, or None."""
    if component is None or component.checkpoint:
        return None  # unknown components are reported elsewhere
    if sink:
        return "has effects it cannot undo (no checkpoint hook)"
    if component.state != "stateless":
        return "keeps state without a checkpoint hook"
    return None
