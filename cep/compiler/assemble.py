"""The last step: the plan itself, plain data from the placed processes and the wired edges, and
the plan of each node (what a worker builds it from)."""
from __future__ import annotations

from pathlib import Path

import networkx as nx

from cep.compiler.trading import trading_node_plan
from cep.config.models import Pipeline
from cep.errors import Problem
from cep.plan import EdgePlan, NodePlan, Plan, ProcessPlan
from cep.plugins import Registry
from cep.runtime import security


def node_plans(pipeline: Pipeline, graph: nx.DiGraph, registry: Registry) -> dict[str, NodePlan]:
    """Every node of the graph as a worker will build it: raw params, a stream's ops, the key its
    input is partitioned by, and whether it keeps state."""
    return {node_id: _node_plan(pipeline, node_id, data, registry, tuple(graph.predecessors(node_id)))
            for node_id, data in graph.nodes(data=True)}


def assemble(pipeline: Pipeline, nodes: dict[str, NodePlan], processes: list[ProcessPlan],
             edges: list[EdgePlan], run_dir: Path, warnings: list[Problem]) -> Plan:
    return Plan(
        name=pipeline.name, pipeline=str(pipeline.path) if pipeline.path else None,
        base_dir=str(pipeline.base_dir), plugins=tuple(str((pipeline.base_dir / p).resolve()) for p in pipeline.plugins),
        nodes=nodes, processes=tuple(processes), edges=tuple(edges), run_dir=str(run_dir),
        control=f"ipc://{run_dir / 'control'}", batch_size=pipeline.defaults.batch_size,
        frame_size=pipeline.defaults.frame_size,
        dead_letter=str(pipeline.base_dir / pipeline.defaults.dead_letter),
        warnings=tuple(str(w) for w in warnings), max_sequence_jump=pipeline.security.max_sequence_jump,
        curve_keys=str(security.keys_directory(pipeline)) if pipeline.security.curve else None,
        metrics_port=pipeline.metrics.port if pipeline.metrics else None)


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
