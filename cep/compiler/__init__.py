"""Pipeline -> logical graph -> checks -> physical plan. One call, `compile_pipeline`, serves
`cep validate`, `cep graph` and `cep run`, so what is printed is what runs."""
from __future__ import annotations

import os
from pathlib import Path

from cep.compiler.fields import check_fields
from cep.compiler.graph import Checked, build_graph
from cep.compiler.guarantees import check_exactly_once
from cep.compiler.placement import GATEWAY_NICE, Endpoints, place, role_of, wire
from cep.compiler.trading import trading_node_plan
from cep.config.models import Pipeline
from cep.config.problems import in_file_order
from cep.errors import CompileError, ConfigError, Problem
from cep.plan import NodePlan, Plan, ProcessPlan
from cep.plugins import Registry
from cep.runtime import security

__all__ = ["compile_pipeline", "default_run_dir"]


def default_run_dir(pipeline: Pipeline) -> Path:
    """Where a pipeline's ipc sockets live: `$CEP_RUN_DIR` or a per-user tmp dir, per pipeline."""
    if pipeline.transport.dir:
        return (pipeline.base_dir / pipeline.transport.dir).resolve()
    base = os.environ.get("CEP_RUN_DIR") or f"/tmp/cep-{os.getuid()}"
    return Path(base) / pipeline.name


def compile_pipeline(pipeline: Pipeline, registry: Registry, run_dir: Path | None = None) -> Plan:
    """The plan for `pipeline`, or a UserError listing every problem (warnings ride on the plan):
    those its deferred load found (`load_pipeline(defer_errors=True)`, a ConfigError then) and
    the graph's, references, cycles, deploy targets, field names and delivery, in one pass."""
    checked = build_graph(pipeline)
    graph = checked.graph
    nodes = {node_id: _node_plan(pipeline, node_id, data, registry, tuple(graph.predecessors(node_id)))
             for node_id, data in graph.nodes(data=True)}
    warnings = _check(pipeline, registry, checked, nodes)
    run_dir = run_dir or default_run_dir(pipeline)
    live = {n for n in graph if graph.nodes[n]["kind"] == "source" and _is_live(graph.nodes[n]["spec"], registry)}
    processes = []
    for name, members in place(pipeline, graph, nodes).items():
        parallelism = max((pipeline.deploy[n].parallelism for n in members if n in pipeline.deploy), default=1)
        keys = {nodes[n].key for n in members if n in pipeline.deploy and pipeline.deploy[n].parallelism > 1}
        if parallelism > 1 and (len(keys) != 1 or None in keys):
            raise CompileError(Problem(
                f'process "{name}": parallelism {parallelism} needs one partition key, found {sorted(map(str, keys))}',
                pipeline.locate("deploy"), "set partition_by on the rule or key_by on the stream"))
        role = role_of(members, graph)
        processes.append(ProcessPlan(name=name, role=role, nodes=tuple(members), parallelism=parallelism,
                                     partition_key=keys.pop() if parallelism > 1 else None,
                                     nice=_niceness(pipeline, members, role, live)))

    def backpressure_of(node_id: str) -> str:
        explicit = [graph.nodes[s]["spec"].backpressure for s in _sources_of(graph, node_id)]
        chosen = next((b for b in explicit if b), None) or pipeline.defaults.backpressure
        if chosen:
            return chosen
        return "drop" if any(s in live for s in _sources_of(graph, node_id)) else "block"

    edges = wire(pipeline, graph, nodes, processes, Endpoints(pipeline, run_dir), backpressure_of)
    return Plan(
        name=pipeline.name, pipeline=str(pipeline.path) if pipeline.path else None,
        base_dir=str(pipeline.base_dir), plugins=tuple(str((pipeline.base_dir / p).resolve()) for p in pipeline.plugins),
        nodes=nodes, processes=tuple(processes), edges=tuple(edges), run_dir=str(run_dir),
        control=f"ipc://{run_dir / 'control'}", batch_size=pipeline.defaults.batch_size,
        dead_letter=str(pipeline.base_dir / pipeline.defaults.dead_letter),
        warnings=tuple(str(w) for w in warnings), max_sequence_jump=pipeline.security.max_sequence_jump,
        curve_keys=str(security.keys_directory(pipeline)) if pipeline.security.curve else None,
        metrics_port=pipeline.metrics.port if pipeline.metrics else None)


def _check(pipeline: Pipeline, registry: Registry, checked: Checked,
           nodes: dict[str, NodePlan]) -> list[Problem]:
    """Every check in one pass: the deferred load's problems, the graph's, field names, delivery,
    partition keys and sockets. Raises one UserError listing every error in file order; returns
    the warnings."""
    acyclic = checked.acyclic()
    socket_errors, socket_warnings = security.check_pipeline(pipeline)
    field_problems = check_fields(pipeline, acyclic, registry, checked.unknown_inputs)
    errors = [*pipeline._problems, *checked.errors,
              *(p for p in field_problems if p.severity == "error"),
              *check_exactly_once(pipeline, acyclic, registry), *_unkeyed_parallelism(pipeline, nodes),
              *socket_errors]
    if errors:
        raise (ConfigError if pipeline._problems else CompileError)(in_file_order(errors))
    return [*pipeline._warnings, *checked.warnings, *_component_warnings(pipeline, checked.graph),
            *(p for p in field_problems if p.severity == "warning"), *socket_warnings]


def _unkeyed_parallelism(pipeline: Pipeline, nodes: dict[str, NodePlan]) -> list[Problem]:
    """A node deployed on several workers must say how records are split among them (a process
    whose nodes have different keys is refused later, when processes are placed)."""
    return [Problem(f'deploy "{node_id}": parallelism {deploy.parallelism} needs a partition key',
                    pipeline.locate("deploy", node_id, "parallelism"),
                    "set partition_by on the rule or key_by on the stream")
            for node_id, deploy in pipeline.deploy.items()
            if deploy.parallelism > 1 and node_id in nodes and nodes[node_id].key is None]


def _niceness(pipeline: Pipeline, members: list[str], role: str, live: set[str]) -> int:
    """What `deploy` says for the process's nodes (the highest), else GATEWAY_NICE for a gateway
    whose sources all wait for their reader (a replay). A gateway of a live feed keeps its
    priority: starved, it would not slow the feed but lose it, where ZeroMQ's high-water mark
    drops on the publisher's side, out of sight of cep's counters."""
    deploys = [pipeline.deploy[n] for n in members if n in pipeline.deploy]
    explicit = [deploy.nice for deploy in deploys if deploy.nice is not None]
    if explicit:
        return max(explicit)
    return GATEWAY_NICE if role == "gateway" and not live.intersection(members) else 0


def _component_warnings(pipeline: Pipeline, graph) -> list[Problem]:
    """Warnings a component's params report about themselves (`params.warnings()`, optional)."""
    found = []
    for node_id, data in graph.nodes(data=True):
        report = getattr(getattr(data["spec"], "config", None), "warnings", None)
        if callable(report):
            where = pipeline.locate(data["section"], node_id)
            found += [Problem(f'{data["kind"]} "{node_id}": {text}', where, severity="warning") for text in report()]
    return found


def _node_plan(pipeline: Pipeline, node_id: str, data: dict, registry: Registry,
               graph_inputs: tuple[str, ...]) -> NodePlan:
    spec = data["spec"]
    kind = data["kind"]
    if kind == "stream":
        key = spec.key_by
        stateless = True
        ops = [("key_by", spec.key_by)] if spec.key_by else []
        for op in spec.ops:
            ops.append((op.name, op.args))
            component = registry.get("operator", op.name)
            if component is not None:
                stateless = stateless and component.state == "stateless"
                if component.sets_key:
                    key = op.config.field if op.config is not None and hasattr(op.config, "field") else op.args
        return NodePlan(id=node_id, kind="stream", type="stream", inputs=spec.from_,
                        ops=tuple(ops), key=key, stateless=stateless)
    if kind in ("order", "venue"):
        return trading_node_plan(pipeline, node_id, kind, spec, graph_inputs)
    key = spec.partition_by if kind == "rule" else None
    return NodePlan(id=node_id, kind=kind, type=spec.type, inputs=getattr(spec, "from_", ()),
                    params=dict(spec.params), key=key, stateless=False)


def _sources_of(graph, node_id: str) -> list[str]:
    import networkx as nx
    found = [n for n in nx.ancestors(graph, node_id) if graph.nodes[n]["kind"] == "source"]
    return sorted(found + ([node_id] if graph.nodes[node_id]["kind"] == "source" else []))


def _is_live(spec, registry: Registry) -> bool:
    component = registry.get("source", spec.type)
    return bool(component and component.live)
