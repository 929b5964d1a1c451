"""Type flow: which record fields reach each node, so an expression naming a field that cannot
exist is an error at validate time (with "did you mean"), not a dead letter at run time.

Sources declare their fields (`fields=` on the marker); each operator step answers
`expressions(fields, key)` and `output_fields(fields, key)` itself (see
`cep.components.operators.common.OpParams`); rules and plugin steps that do not answer make the
fields downstream unknown, and unknown fields are not checked (never a false error).
"""
from __future__ import annotations

import networkx as nx

from cep.config.models import Pipeline
from cep.errors import ExpressionError, Problem
from cep.events import OrderEvent
from cep.expressions import compile_expression
from cep.plugins import Registry

Fields = frozenset[str] | None  # None: not known here


def check_fields(pipeline: Pipeline, graph: nx.DiGraph, registry: Registry,
                 unknown_inputs: set[str] = frozenset()) -> list[Problem]:
    """Every expression and key field checked against the fields that reach it, in `graph`
    (acyclic) order; what reaches a node of `unknown_inputs` is not known, so not checked.
    Warnings of steps (`OpParams.input_warnings`) come with severity "warning"."""
    problems: list[Problem] = []
    known: dict[str, Fields] = {}
    for node_id in nx.topological_sort(graph):
        data = graph.nodes[node_id]
        kind, spec = data["kind"], data["spec"]
        if kind == "source":
            component = registry.get("source", spec.type)
            known[node_id] = frozenset(component.fields) if component and component.fields else None
            continue
        inputs = [known.get(upstream) for upstream in graph.predecessors(node_id)]
        fields: Fields = (None if not inputs or None in inputs or node_id in unknown_inputs
                          else frozenset.intersection(*inputs))
        if kind == "stream":
            known[node_id] = _stream(pipeline, node_id, spec, fields, problems)
        elif kind == "rule":
            known[node_id] = _rule(pipeline, node_id, spec, fields, registry, problems)
        elif kind == "order":
            known[node_id] = frozenset(OrderEvent.FIELDS)
    return problems


def _rule(pipeline: Pipeline, node_id: str, spec, fields: Fields, registry: Registry,
          problems: list[Problem]) -> Fields:
    """Checks a rule's partition key and expressions; returns the fields it emits (its marker's)."""
    if fields is not None and spec.partition_by and spec.partition_by not in fields:
        problems.append(_unknown_field(spec.partition_by, fields, f'rule "{node_id}": partition_by',
                                       pipeline.locate("rules", node_id, "partition_by")))
    if fields is not None and hasattr(spec.config, "expressions"):
        _check(spec.config, fields, spec.partition_by, f'rule "{node_id}"',
               pipeline.locate("rules", node_id), problems)
    component = registry.get("rule", spec.type)
    return frozenset(component.fields) if component and component.fields else None


def _stream(pipeline: Pipeline, node_id: str, spec, fields: Fields, problems: list[Problem]) -> Fields:
    key = None
    if spec.key_by:
        if fields is not None and spec.key_by not in fields:
            problems.append(_unknown_field(spec.key_by, fields, f'stream "{node_id}": key_by',
                                           pipeline.locate("streams", node_id, "key_by")))
        key = spec.key_by
    for op in spec.ops:
        config = op.config
        if fields is None or config is None or not hasattr(config, "output_fields"):
            return None
        where = pipeline.locate("streams", node_id, "ops", op.index, op.name)
        subject = f'stream "{node_id}": {op.name}'
        if op.name == "key_by":
            if config.field not in fields:
                problems.append(_unknown_field(config.field, fields, subject, where))
            key = config.field
        _check(config, fields, key, subject, where, problems)
        problems.extend(Problem(f"{subject}: {text}", where, severity="warning")
                        for text in config.input_warnings(fields, key))
        fields = config.output_fields(fields, key)
    return fields


def _check(config, fields: frozenset[str], key: str | None, subject: str, where, problems: list[Problem]) -> None:
    for use in config.expressions(fields, key):
        try:
            compile_expression(use.source, fields=use.fields, bound=use.bound, location=where)
        except ExpressionError as exc:
            problems.extend(Problem(f"{subject}: {p.message}", p.location or where, p.hint) for p in exc.problems)


def _unknown_field(name: str, fields: frozenset[str], subject: str, where) -> Problem:
    import difflib
    close = difflib.get_close_matches(name, sorted(fields), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "fields here: " + ", ".join(sorted(fields))
    return Problem(f"{subject}: no field '{name}' reaches this step", where, hint)
