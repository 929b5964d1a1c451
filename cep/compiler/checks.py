"""Every check of a pipeline's graph, collected rather than raised one at a time: the deferred
load's problems, the graph's (references, cycles, deploy targets), field names, delivery
guarantees, socket security, and what components say about their own params. Placement adds its
parallelism problems to the same findings (`cep.compiler.placement.place`); the façade raises them
all at once, in file order."""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from cep.compiler.fields import check_fields
from cep.compiler.graph import Checked
from cep.compiler.guarantees import check_guarantees
from cep.config.models import Pipeline
from cep.config.problems import in_file_order
from cep.errors import CompileError, ConfigError, Problem
from cep.plugins import Registry
from cep.runtime import security


@dataclass
class Findings:
    """Errors (validation fails) and warnings (it does not; they ride on the plan)."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    config: bool = False  # the load found problems: the report is a ConfigError, else a CompileError

    def raise_errors(self) -> None:
        """One UserError listing every error in file order, if there is any."""
        if self.errors:
            raise (ConfigError if self.config else CompileError)(in_file_order(self.errors))


def check(pipeline: Pipeline, registry: Registry, checked: Checked, acyclic: nx.DiGraph) -> Findings:
    """What the graph step found, and every check that walks the (`acyclic`) graph."""
    socket_errors, socket_warnings = security.check_pipeline(pipeline)
    field_problems = check_fields(pipeline, acyclic, registry, checked.unknown_inputs)
    return Findings(
        errors=[*pipeline._problems, *checked.errors, *(p for p in field_problems if p.severity == "error"),
                *check_guarantees(pipeline, acyclic, registry), *socket_errors],
        warnings=[*pipeline._warnings, *checked.warnings, *_component_warnings(pipeline, checked.graph),
                  *(p for p in field_problems if p.severity == "warning"), *socket_warnings],
        config=bool(pipeline._problems))


def _component_warnings(pipeline: Pipeline, graph: nx.DiGraph) -> list[Problem]:
    """Warnings a component's params report about themselves (`params.warnings()`, optional)."""
    found = []
    for node_id, data in graph.nodes(data=True):
        report = getattr(getattr(data["spec"], "config", None), "warnings", None)
        if callable(report):
            where = pipeline.locate(data["section"], node_id)
            found += [Problem(f'{data["kind"]} "{node_id}": {text}', where, severity="warning") for text in report()]
    return found
