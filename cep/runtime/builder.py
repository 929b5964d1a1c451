"""Builds one process's slice of the plan into a live ReactiveX graph.

The same builder serves a worker process (some inputs arrive over sockets, some outputs leave
over them) and the inline runner (the whole plan in one process). Each node's output is a `Hub`
(a counting Subject) so several consumers share one computation; a stream or rule with several `from:`
inputs reads their merge. End of stream is `on_completed`, which flows through the graph: merge
completes when all its inputs have; a sink closes when its input completes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import reactivex
from reactivex import operators as ops

from cep.components.base import BuildContext, Counters, DeadLetterFn, Restore, Sink, Snapshot, Source
from cep.errors import CepError, RuntimeFailure
from cep.plan import NodePlan, Plan, ProcessPlan
from cep.plugins import Component, Registry
from cep.rows import as_records
from cep.runtime.hub import Hub
from cep.runtime.fusion import fusable, fused_operator

if TYPE_CHECKING:
    from cep.orders.service import VenueService

ChannelFor = Callable[[NodePlan], Any]
"""How an executor node reaches its venue: node -> a `cep.orders.link.Channel`."""


@dataclass
class ProcessGraph:
    """The built graph: what drives it (sources, remote inputs) and what it counts."""

    sources: dict[str, tuple[Source, Hub]] = field(default_factory=dict)
    replayable: set[str] = field(default_factory=set)  # sources whose marker says `replayable`
    remote_inputs: dict[str, Hub] = field(default_factory=dict)
    outputs: dict[str, Hub] = field(default_factory=dict)
    sinks: dict[str, Sink] = field(default_factory=dict)
    counters: dict[str, Counters] = field(default_factory=dict)
    states: dict[str, tuple[Snapshot, Restore]] = field(default_factory=dict)  # `BuildContext.keep_state`
    open_sinks: set[str] = field(default_factory=set)
    venues: dict[str, "VenueService"] = field(default_factory=dict)  # venue nodes, served by their requests
    failure: BaseException | None = None

    @property
    def sinks_done(self) -> bool:
        return not self.open_sinks

    def close(self) -> None:
        """The process is done with the graph: what its venues keep open closes."""
        for venue in self.venues.values():
            venue.close()

    def raise_failure(self) -> None:
        if self.failure is not None:
            if isinstance(self.failure, CepError):
                raise self.failure
            raise RuntimeFailure(f"{type(self.failure).__name__}: {self.failure}") from self.failure


def build_process(plan: Plan, process: ProcessPlan, worker_index: int, registry: Registry,
                  dead_letter: DeadLetterFn, incarnation: int = 0, channel_for: ChannelFor | None = None) -> ProcessGraph:
    """The graph of `process`'s nodes. An order executor reaches its venue through
    `channel_for(node)` (default: the venue node built in this same process)."""
    graph = ProcessGraph()
    base_dir = Path(plan.base_dir)
    local = set(process.nodes)

    def keep_state(node: str, snapshot: Snapshot, restore: Restore) -> None:
        """Components' state hooks, named by node and order of declaration (the same on every build)."""
        index = sum(1 for name in graph.states if name.startswith(f"{node}#"))
        graph.states[f"{node}#{index}"] = (snapshot, restore)

    def context(node: NodePlan, key: str | None) -> BuildContext:
        return BuildContext(node=node.id, key=key, base_dir=base_dir,
                            partition=(worker_index, process.parallelism),
                            counters=graph.counters[node.id], dead_letter_fn=dead_letter,
                            batch_size=plan.batch_size, incarnation=incarnation, keep_state_fn=keep_state,
                            run_dir=Path(plan.run_dir))

    def input_of(node: NodePlan) -> reactivex.Observable:
        streams = []
        for upstream in node.inputs:
            if upstream in local:
                hub = graph.outputs[upstream]
            else:
                hub = graph.remote_inputs.setdefault(upstream, Hub())
            hub.feed(graph.counters[node.id])
            streams.append(hub)
        return streams[0] if len(streams) == 1 else reactivex.merge(*streams)

    def fail(error: BaseException) -> None:
        if graph.failure is None:
            graph.failure = error

    for node_id in process.nodes:
        node = plan.nodes[node_id]
        graph.counters[node_id] = Counters()
        if node.kind == "source":
            component = _component(registry, "source", node.type)
            source = component.factory(component.configure(node.params, base_dir),
                                       context(node, None))
            hub = Hub(graph.counters[node_id])
            graph.sources[node_id] = (source, hub)
            if component.replayable:
                graph.replayable.add(node_id)
            graph.outputs[node_id] = hub
            continue
        if node.kind in ("venue", "order"):
            from cep.orders.nodes import build_trading_node  # the order half loads only when used
            output = build_trading_node(plan, node, registry, graph, input_of(node), context(node, None),
                                        channel_for, fail)
            if output is not None:
                graph.outputs[node_id] = output
            continue
        if node.kind == "sink":
            component = _component(registry, "sink", node.type)
            sink = component.factory(component.configure(node.params, base_dir), context(node, None))
            graph.sinks[node_id] = sink
            graph.open_sinks.add(node_id)
            _in_form_for(component, input_of(node)).subscribe(sink.write, fail,
                                                               _closer(graph, node_id, sink, fail))
            continue
        observable = input_of(node)
        if node.kind == "stream":
            key = None  # a declared `key_by:` is the stream's first op (see the compiler)
            run: list = []  # consecutive stateless record steps, fused into one loop

            def close_run() -> None:
                nonlocal observable
                if run:
                    observable = observable.pipe(fused_operator(list(run), context(node, key)))
                run.clear()

            for name, args in node.ops:
                component = _component(registry, "operator", name)
                config = component.configure(args, base_dir)
                if component.sets_key:
                    close_run()
                    key = getattr(config, "field", None) or args
                elif fusable(config):
                    run.append((component, config))
                else:
                    close_run()
                    observable = _in_form_for(component, observable).pipe(
                        component.factory(config, context(node, key)))
            close_run()
        else:
            component = _component(registry, "rule", node.type)
            observable = _in_form_for(component, observable).pipe(
                component.factory(component.configure(node.params, base_dir), context(node, node.key)))
        output = Hub(graph.counters[node_id])
        graph.outputs[node_id] = output
        observable.subscribe(output.on_next, fail, output.on_completed)
    return graph


def _component(registry: Registry, kind: str, name: str) -> Component:
    component = registry.get(kind, name)  # type: ignore[arg-type]
    if component is None:
        raise RuntimeFailure(f"{kind} {name!r} is not registered in this process "
                             "(is the plugin installed where the worker runs?)")
    return component


def _in_form_for(component: Component, observable: reactivex.Observable) -> reactivex.Observable:
    """What `component` reads: batches as they come if it takes `Rows` (registered with
    `rows=True`), else record dicts, which is what the component API promises."""
    if component.rows:
        return observable
    return observable.pipe(ops.map(as_records))


def _closer(graph: ProcessGraph, node_id: str, sink: Sink, fail: Callable[[BaseException], None]):
    def close() -> None:
        try:
            sink.close()
        except Exception as exc:  # reported like any other failure of the process
            fail(exc)
        graph.open_sinks.discard(node_id)
    return close
