"""`cep graph`: the plan as text, Graphviz DOT, Mermaid or JSON, or a picture Graphviz draws from
the DOT. Renderers read the plan only."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from cep.errors import RuntimeFailure, UserError
from cep.jetstream.client import DEFAULT_URL, redact, servers
from cep.jetstream.edges import stream_name
from cep.plan import Plan

FORMATS = ("text", "dot", "mermaid", "json")
FORMAT_OF_SUFFIX = {".txt": "text", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".json": "json"}
PICTURES = (".svg", ".png", ".pdf")


def render(plan: Plan, fmt: str) -> str:
    return {"text": to_text, "dot": to_dot, "mermaid": to_mermaid, "json": to_json}[fmt](plan)


def write(plan: Plan, output: Path, fmt: str | None) -> None:
    """Write the plan to `output`, in `fmt` or else the format its suffix names (text for an
    unknown suffix); a picture suffix has Graphviz's `dot` draw it. A missing Graphviz is a
    RuntimeFailure (the machine lacks a program), not a mistake in the input."""
    suffix = output.suffix.lower()
    if suffix not in PICTURES:
        output.write_text(render(plan, fmt or FORMAT_OF_SUFFIX.get(suffix, "text")))
        return
    if fmt not in (None, "dot"):
        raise UserError(f"{output}: a picture is drawn from the DOT format: drop --format {fmt}, "
                        f"or write to a {_suffix_of(fmt)} file")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeFailure(f"drawing {output} needs Graphviz's `dot` program, which is not on PATH: "
                             "install Graphviz (apt install graphviz, brew install graphviz), or write "
                             "a .dot or .mmd file and render it elsewhere")
    result = subprocess.run([dot, f"-T{suffix[1:]}", "-o", str(output)], input=to_dot(plan),
                            text=True, capture_output=True)
    if result.returncode != 0:
        raise RuntimeFailure(f"Graphviz's dot failed drawing {output}: {result.stderr.strip()}")


def _suffix_of(fmt: str) -> str:
    return next(suffix for suffix, named in FORMAT_OF_SUFFIX.items() if named == fmt)


def _node_label(plan: Plan, node_id: str) -> str:
    node = plan.nodes[node_id]
    if node.kind == "stream":
        ops = " | ".join(name for name, _ in node.ops) or "merge"
        return f"{node_id} (stream: {ops})"
    return f"{node_id} ({node.kind}: {node.type})"


def to_text(plan: Plan) -> str:
    lines = [f"pipeline {plan.name}: {len(plan.processes)} processes, {len(plan.workers())} workers, "
             f"{len(plan.edges)} socket edges"]
    for host, processes in _host_groups(plan):
        pad = "  " if host is None else "    "
        if host is not None:
            lines.append(f"  host {host} (link {plan.hosts[host]})")
        for process in processes:
            workers = f" x{process.parallelism} by {process.partition_key}" if process.parallelism > 1 else ""
            nice = f" nice {process.nice}" if process.nice else ""
            lines.append(f"{pad}process {process.name} [{process.role}]{workers}{nice}")
            for node_id in process.nodes:
                inputs = f" <- {', '.join(plan.nodes[node_id].inputs)}" if plan.nodes[node_id].inputs else ""
                lines.append(f"{pad}  {_node_label(plan, node_id)}{inputs}")
    lines.append("  edges")
    if plan.nats is not None:
        lines.append(f"    over NATS JetStream at {_servers(plan)}, stream {stream_name(plan.name)}")
    for edge in plan.edges:
        if edge.subject is not None:  # its endpoints are inproc, inside the consuming worker
            lines.append(f"    {edge.node}: {edge.producer} -> {edge.consumer}  nats subject {edge.subject}  "
                         f"{edge.delivery}, backpressure {edge.backpressure}")
            continue
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
    index = 0
    for host, processes in _host_groups(plan):
        if host is not None:
            lines += [f"  subgraph {_quote('cluster_host_' + host)} {{", f"    label={_quote('host ' + host)};",
                      "    style=dashed;"]
        for process in processes:
            lines += [f"  subgraph cluster_{index} {{", f"    label={_quote(_process_label(process))};",
                      "    style=rounded;"]
            for node_id in process.nodes:
                lines.append(f"    {_quote(process.name + '/' + node_id)} [label={_quote(_node_label(plan, node_id))}];")
            lines.append("  }")
            index += 1
        if host is not None:
            lines.append("  }")
    for producer, upstream, consumer, target, edge in _arcs(plan):
        attributes = f' [label="{_carrier(edge)}\\n{edge.delivery}", style=bold]' if edge else ""
        lines.append(f"  {_quote(producer + '/' + upstream)} -> {_quote(consumer + '/' + target)}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _host_groups(plan: Plan) -> list[tuple[str | None, list]]:
    """The processes per host, in `hosts:` order; one group under None without hosts."""
    if not plan.hosts:
        return [(None, list(plan.processes))]
    return [(host, [p for p in plan.processes if p.host == host]) for host in plan.hosts]


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
            if edge.node in plan.nodes[target].inputs or (edge.pattern == "dealer/router"
                                                           and plan.nodes[target].kind == "venue"):
                yield edge.producer, edge.node, consumer.name, target, edge


def _mermaid_id(*parts: str) -> str:
    return "_".join(parts).replace("-", "_").replace(".", "_").replace("/", "_")


def to_mermaid(plan: Plan) -> str:
    lines = ["flowchart LR"]
    for host, processes in _host_groups(plan):
        if host is not None:
            lines.append(f'  subgraph {_mermaid_id("h", host)}["host {host}"]')
        for process in processes:
            lines.append(f'  subgraph {_mermaid_id("p", process.name)}["{_process_label(process)}"]')
            for node_id in process.nodes:
                lines.append(f'    {_mermaid_id(process.name, node_id)}["{_node_label(plan, node_id)}"]')
            lines.append("  end")
        if host is not None:
            lines.append("  end")
    for producer, upstream, consumer, target, edge in _arcs(plan):
        arrow = f'== "{_carrier(edge)} {edge.delivery}" ==>' if edge else "-->"
        lines.append(f"  {_mermaid_id(producer, upstream)} {arrow} {_mermaid_id(consumer, target)}")
    return "\n".join(lines) + "\n"


SECRET_PARAMS = frozenset({"token", "password", "nkey", "creds"})
"""Component parameters and NATS settings whose values `cep graph` never prints (credentials,
written in a pipeline as `${ENV}`); the other renderings print no parameters at all."""


def to_json(plan: Plan) -> str:
    data = plan.to_dict()
    for node in data["nodes"]:
        node["params"] = _without_secrets(node["params"])
    if data.get("nats"):
        data["nats"] = dict(_without_secrets(data["nats"]), url=_servers(plan))
    return json.dumps(data, indent=2, default=str) + "\n"


def _without_secrets(params: dict) -> dict:
    return {key: "***" if key in SECRET_PARAMS and value is not None else value for key, value in params.items()}


def _carrier(edge) -> str:
    """What carries an edge, as a picture labels it: its socket pattern, or NATS."""
    return "nats" if edge.subject is not None else edge.pattern


def _servers(plan: Plan) -> str:
    """The NATS servers of a plan, without credentials."""
    return ", ".join(redact(url) for url in servers(plan.nats.get("url", DEFAULT_URL)))
