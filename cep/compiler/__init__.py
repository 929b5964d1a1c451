"""Pipeline -> plan. One call, `compile_pipeline`, serves `cep validate`, `cep graph` and
`cep run`, so what is printed is what runs. The steps, each a module:

    graph       the logical graph, and the problems of its references, cycles, deploy targets
    checks      every other check (fields, delivery guarantees, sockets), collected
    placement   the processes, and every problem of their parallelism
    hosts       the host of each process (`hosts:`), and the tcp endpoints between hosts
    wiring      the sockets between the processes
    assemble    the plan (`cep.plan`), plain data a worker runs from

Every error of every step is reported at once. The steps are imported when the compiler runs, so
what imports only `cep.compiler.render` (or a worker, which needs only `cep.plan`) does not load
the config layer or networkx.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cep.config.models import Pipeline
    from cep.plan import Plan
    from cep.plugins import Registry

__all__ = ["compile_pipeline"]


def compile_pipeline(pipeline: Pipeline, registry: Registry, run_dir: Path | None = None) -> Plan:
    """The plan for `pipeline`, or a UserError listing every problem (warnings ride on the plan):
    those its deferred load found (`load_pipeline(defer_errors=True)`, a ConfigError then) and
    every step's, in file order."""
    from cep.compiler.assemble import assemble, node_plans
    from cep.compiler.checks import check
    from cep.compiler.graph import build_graph
    from cep.compiler.hosts import endpoints_for, on_hosts, with_links
    from cep.compiler.nats import nats_settings, over_nats
    from cep.compiler.placement import place
    from cep.compiler.trading import request_edges, signals_in_several_workers
    from cep.compiler.wiring import default_run_dir, wire

    checked = build_graph(pipeline)
    acyclic = checked.acyclic()
    nodes = node_plans(pipeline, checked.graph, registry)
    findings = check(pipeline, registry, checked, acyclic)
    processes, parallelism_problems = place(pipeline, acyclic, nodes, registry)
    processes, host_problems = on_hosts(pipeline, processes)
    nats, nats_problems = nats_settings(pipeline)
    findings.errors += parallelism_problems + host_problems + nats_problems
    findings.errors += signals_in_several_workers(pipeline, processes)
    findings.raise_errors()
    run_dir = run_dir or default_run_dir(pipeline)
    endpoints = endpoints_for(pipeline, run_dir, processes)
    edges = wire(pipeline, checked.graph, processes, nodes, endpoints, registry)
    edges += request_edges(pipeline, nodes, processes, endpoints, edges)
    edges, findings.errors = over_nats(pipeline, checked.graph, edges, processes)
    findings.raise_errors()
    return with_links(pipeline, replace(assemble(pipeline, nodes, processes, edges, run_dir, findings.warnings),
                                        nats=nats))
