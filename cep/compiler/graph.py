"""The logical graph of a pipeline and every check on it, all errors collected at once.

Nodes are the pipeline's sources, streams, rules and sinks (networkx DiGraph, node attribute
`kind` and `spec`); an edge u -> v means v reads u (`from:`). Errors name the component kind and
id and point at the line of the offending key, as Vector's compiler does
(`stream "quotes": reads "tiks", which does not exist (did you mean "ticks"?)`); warnings
(a source nobody reads) are kept apart and do not fail validation.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import networkx as nx

from cep.compiler.trading import LABELS, check_trading, inputs_written, merge_inputs
from cep.config.models import Pipeline
from cep.errors import Problem

SECTIONS = (("source", "sources"), ("stream", "streams"), ("venue", "venues"), ("rule", "rules"),
            ("sink", "sinks"), ("order", "orders"))
"""In this order: a venue takes each batch of quotes before the rules and executors do (in one
process, an executor's request finds its venue up to date)."""
READABLE = ("source", "stream", "rule", "order")  # what a `from:` may name


@dataclass
class Checked:
    graph: nx.DiGraph
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    unknown_inputs: set[str] = field(default_factory=set)
    """Nodes that read something missing, broken or in a cycle: what reaches them is unknown."""

    def acyclic(self) -> nx.DiGraph:
        """The graph without the edges of its cycles (reported already), for checks that walk
        it in topological order; the nodes of a cycle are in `unknown_inputs`."""
        graph = self.graph.copy()
        for component in nx.strongly_connected_components(self.graph):
            if len(component) > 1 or any(self.graph.has_edge(n, n) for n in component):
                graph.remove_edges_from([(u, v) for u, v in self.graph.edges(component)
                                         if v in component])
                self.unknown_inputs.update(component)
        return graph


def build_graph(pipeline: Pipeline) -> Checked:
    """The logical graph plus the problems found building it (references, cycles, orphans)."""
    result = Checked(nx.DiGraph())
    _add_nodes(pipeline, result)
    _add_edges(pipeline, result)
    check_trading(pipeline, result)
    merge_inputs(pipeline, result)
    _check_cycles(pipeline, result)
    _check_deploy(pipeline, result)
    _check_ends(pipeline, result)
    return result


def _add_nodes(pipeline: Pipeline, result: Checked) -> None:
    graph = result.graph
    for kind, section in SECTIONS:
        for node_id, spec in getattr(pipeline, section).items():
            if node_id in graph:
                other = graph.nodes[node_id]["kind"]
                result.errors.append(Problem(
                    f'{kind} "{node_id}": the id is already used by a {other}',
                    pipeline.locate(section, node_id), "ids must be unique across sections"))
                continue
            graph.add_node(node_id, kind=kind, spec=spec, section=section)


def _add_edges(pipeline: Pipeline, result: Checked) -> None:
    """An edge per `from:` entry; a missing or broken upstream makes the reader's input unknown."""
    graph = result.graph
    readable = [n for n, data in graph.nodes(data=True) if data["kind"] in READABLE]
    for node_id, data in list(graph.nodes(data=True)):
        if data["kind"] == "source":
            continue
        for written, upstream in inputs_written(pipeline, data["section"], node_id, data["spec"]):
            where = pipeline.locate(*written)
            if upstream in pipeline._broken or {written, written[:-1]} & pipeline._unresolved:
                result.unknown_inputs.add(node_id)  # reported with its own mistakes
            elif upstream not in graph:
                result.unknown_inputs.add(node_id)
                close = difflib.get_close_matches(upstream, readable, n=1, cutoff=0.5)
                hint = f'did you mean "{close[0]}"?' if close else (
                    "known: " + ", ".join(sorted(readable)) if readable else "declare it first")
                result.errors.append(Problem(
                    f'{LABELS.get(data["section"], data["kind"])} "{node_id}": reads "{upstream}", which does not exist',
                    where, hint))
            elif graph.nodes[upstream]["kind"] == "sink":
                result.errors.append(Problem(
                    f'{LABELS.get(data["section"], data["kind"])} "{node_id}": reads sink "{upstream}", but sinks produce nothing',
                    where, "read a source, stream or rule instead"))
            else:
                graph.add_edge(upstream, node_id)


def _check_cycles(pipeline: Pipeline, result: Checked) -> None:
    graph = result.graph
    declared = {node_id: index for index, node_id in enumerate(graph)}
    for cycle in nx.simple_cycles(graph):
        first = min(range(len(cycle)), key=lambda index: declared[cycle[index]])
        cycle = cycle[first:] + cycle[:first]  # from the node written first: the same every run
        path = " -> ".join([*cycle, cycle[0]])
        where = pipeline.locate(graph.nodes[cycle[0]]["section"], cycle[0], "from")
        result.errors.append(Problem(f"cycle: {path}", where,
                                     "a stream cannot read, directly or not, its own output"))


def _check_deploy(pipeline: Pipeline, result: Checked) -> None:
    for node_id in pipeline.deploy:
        if node_id not in result.graph:
            close = difflib.get_close_matches(node_id, list(result.graph), n=1, cutoff=0.5)
            result.errors.append(Problem(f'deploy "{node_id}": no such node',
                                         pipeline.locate("deploy", node_id),
                                         f'did you mean "{close[0]}"?' if close else None))


def _check_ends(pipeline: Pipeline, result: Checked) -> None:
    """A node whose output goes nowhere (a warning); a pipeline without sources (an error,
    unless the sources written were left out for their own mistakes)."""
    graph = result.graph
    for node_id, data in graph.nodes(data=True):
        if data["kind"] not in ("sink", "venue") and graph.out_degree(node_id) == 0:
            result.warnings.append(Problem(
                f'{data["kind"]} "{node_id}" has no consumers', pipeline.locate(data["section"], node_id),
                "its output goes nowhere; read it from a stream, rule or sink", severity="warning"))
    broken_sources = any(len(path) == 2 and path[0] == "sources" and path[1] in pipeline._broken
                         for path in pipeline._locations)
    if not broken_sources and not any(data["kind"] == "source" for _, data in graph.nodes(data=True)):
        result.errors.append(Problem("the pipeline has no sources", pipeline.locate("sources"),
                                     "add one, e.g. sources: {ticks: {type: synthetic}}"))
