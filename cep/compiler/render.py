"""`cep graph`: the plan as text, Graphviz DOT, Mermaid or JSON. Renderers read the plan only."""
from __future__ import annotations

import json

from cep.compiler.plan import Plan


def render(plan: Plan, fmt: str) -> str:
    return {"text": to_text, "dot": to_dot, "mermaid": to_mermaid, "json": to_json}[fmt](plan)


def _node_label(plan: Plan, node_id: str) -> str:
    node = plan.nodes[node_id]
    if node.kind == "stream":
        ops = " | ".join(name for name, _ in node.ops) or "merge"
        return f"{node_id} (stream: {ops})"
    return f"{node_id} ({node.kind}: {node.type})"


def to_text(plan: Plan) -> str:
    lines = [f"pipeline {plan.name}: {len(plan.processes)} processes, {len(plan.workers())} workers, "
             f"{len(plan.edges)} socket edges"]
    for process in plan.processes:
        workers = f" x{process.parallelism} by {process.partition_key}" if process.parallelism > 1 else ""
        nice = f" nice {process.nice}" if process.nice else ""
        lines.append(f"  process {process.name} [{process.role}]{workers}{nice}")
        for node_id in process.nodes:
            inputs = f" <- {', '.join(plan.nodes[node_id].inputs)}" if plan.nodes[node_id].inputs else ""
            lines.append(f"    {_node_label(plan, node_id)}{inputs}")
    lines.append("  edges")
    for edge in plan.edges:
        lines.append(f"    {edge.node}: {edge.producer} -> {edge.consumer}  {edge.pattern}  "
                     f"topic {edge.topic}  {edge.delivery}, backpressure {edge.backpressure}")
        for endpoint in edge.endpoints:
            lines.append(f"      {endpoint}")
        for endpoint in edge.acks:
            lines.append(f"      acks {endpoint}")
    for warning in plan.warnings:
        lines.append(f"  {warning}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(plan: Plan) -> str:
    lines = [f"digraph {_quote(plan.name)} {{", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for index, process in enumerate(plan.processes):
        lines += [f"  subgraph cluster_{index} {{", f"    label={_quote(_process_label(process))};",
                  "    style=rounded;"]
        for node_id in process.nodes:
            lines.append(f"    {_quote(process.name + '/' + node_id)} [label={_quote(_node_label(plan, node_id))}];")
        lines.append("  }")
    for producer, upstream, consumer, target, edge in _arcs(plan):
        attributes = f' [label="{edge.pattern}\\n{edge.delivery}", style=bold]' if edge else ""
        lines.append(f"  {_quote(producer + '/' + upstream)} -> {_quote(consumer + '/' + target)}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _process_label(process) -> str:
    workers = f" x{process.parallelism}" if process.parallelism > 1 else ""
    return f"{process.name}{workers} [{process.role}]"


def _arcs(plan: Plan):
    """Every (producer process, node, consumer process, node, socket edge or None) pair: first
    the arcs inside a process, then those that cross a socket."""
    for process in plan.processes:
        for node_id in process.nodes:
            for upstream in plan.nodes[node_id].inputs:
                if upstream in process.nodes:
                    yield process.name, upstream, process.name, node_id, None
    for edge in plan.edges:
        consumer = plan.process(edge.consumer)
        for target in consumer.nodes:
            if edge.node in plan.nodes[target].inputs:
                yield edge.producer, edge.node, consumer.name, target, edge


def _mermaid_id(*parts: str) -> str:
    return "_".join(parts).replace("-", "_").replace(".", "_").replace("/", "_")


def to_mermaid(plan: Plan) -> str:
    lines = ["flowchart LR"]
    for process in plan.processes:
        lines.append(f'  subgraph {_mermaid_id("p", process.name)}["{_process_label(process)}"]')
        for node_id in process.nodes:
            lines.append(f'    {_mermaid_id(process.name, node_id)}["{_node_label(plan, node_id)}"]')
        lines.append("  end")
    for producer, upstream, consumer, target, edge in _arcs(plan):
        arrow = f'== "{edge.pattern} {edge.delivery}" ==>' if edge else "-->"
        lines.append(f"  {_mermaid_id(producer, upstream)} {arrow} {_mermaid_id(consumer, target)}")
    return "\n".join(lines) + "\n"


def to_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, default=str) + "\n"
