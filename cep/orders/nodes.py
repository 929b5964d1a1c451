"""Building the trading nodes of a process graph (`cep.runtime.builder` calls this).

- a venue node: the `venue` plugin's adapter behind a `VenueService`, fed its quotes; it emits
  nothing into the graph (its answers go back over the request edge, `cep.runtime.transport.requests`);
- an executor node: an `ExecutorNode` over its merged input, emitting OrderEvent records. Its
  channel to the venue is what the runtime gives (a DEALER in a worker); by default the venue
  node of the same process (`cep run --inline`). It reports how it stands (`cep.orders.gauges`).
"""
from __future__ import annotations

from typing import Any, Callable

import reactivex

from cep.components.base import BuildContext, stateful
from cep.errors import RuntimeFailure
from cep.orders.gauges import executor_gauges
from cep.orders.link import Channel, LocalChannel
from cep.orders.node import ExecutorNode
from cep.components.state import restorer
from cep.orders.service import RequestLog, VenueService
from cep.orders.settings import ExecutorSettings
from cep.orders.state import ExecutorState, ServiceState, executor_snapshot, restore_executor, restore_service, \
    service_snapshot
from cep.plan import NodePlan, Plan
from cep.plugins import Registry
from cep.rows import as_records
from cep.runtime.hub import Hub

ENVELOPE = ("venue", "quotes")
"""Keys of an executor's or a venue's params that the compiler added (not the component's)."""


def build_trading_node(plan: Plan, node: NodePlan, registry: Registry, graph: Any,
                       observable: reactivex.Observable, ctx: BuildContext, channel_for: Callable[[NodePlan], Channel] | None,
                       fail: Callable[[BaseException], None]) -> Hub | None:
    params = {key: value for key, value in node.params.items() if key not in ENVELOPE}
    if node.kind == "venue":
        graph.venues[node.id] = _venue(plan, node, registry, observable, ctx, params, fail)
        return None
    settings = ExecutorSettings.model_validate(params)
    if channel_for is None:
        venue = graph.venues.get(node.params["venue"])
        if venue is None:
            raise RuntimeFailure(f'order executor "{node.id}": its venue "{node.params["venue"]}" is not '
                                 "in this process")
        channel: Channel = LocalChannel(venue)
    else:
        channel = channel_for(node)
    executor = ExecutorNode(settings, channel, ctx, epoch=ctx.incarnation)
    _keep_executor_state(executor, ctx, checkpointed=channel_for is not None and _checkpointed(plan, node.id))
    ctx.keep_gauges(lambda: executor_gauges(executor))
    output = Hub(ctx.counters)

    def finish() -> list[dict[str, Any]]:
        tail = executor.finish()
        channel.close()
        return tail

    observable.pipe(stateful(executor.step, finish)).subscribe(output.on_next, fail, output.on_completed)
    return output


def _checkpointed(plan: Plan, executor: str) -> bool:
    """The request edge of `executor` is exactly_once: the executor and its venue checkpoint."""
    return any(edge.pattern == "dealer/router" and edge.node == executor and edge.delivery.checkpoints
               for edge in plan.edges)


def _keep_executor_state(executor: ExecutorNode, ctx: BuildContext, checkpointed: bool) -> None:
    """The executor's checkpoints; what its venue may forget follows them: a restart resumes from
    the last one. Without checkpoints a restart starts afresh, so the venue may forget what the
    executor has taken so far."""
    link = executor.link
    if not checkpointed:
        link.kept = None

    def snapshot() -> dict[str, Any]:
        state = executor_snapshot(executor)
        link.kept = (link.after, executor.clock)
        return state

    def restore(state: ExecutorState) -> None:
        restore_executor(executor, state)
        link.kept = (link.after, executor.clock)

    ctx.keep_state(snapshot, restorer(ExecutorState, restore))


def _venue(plan: Plan, node: NodePlan, registry: Registry, observable: reactivex.Observable, ctx: BuildContext,
           params: dict[str, Any], fail: Callable[[BaseException], None]) -> VenueService:
    """The venue node; under exactly_once with a log of the requests it serves (`RequestLog`)."""
    component = registry.get("venue", node.type)
    if component is None:
        raise RuntimeFailure(f"venue {node.type!r} is not registered in this process "
                             "(is the plugin installed where the worker runs?)")
    adapter = component.factory(component.configure(params, ctx.base_dir), ctx)
    durable = ctx.run_dir is not None and any(
        edge.pattern == "dealer/router" and edge.delivery.checkpoints
        and plan.nodes[edge.node].params.get("venue") == node.id for edge in plan.edges)
    log = RequestLog(ctx.run_dir / f"{node.id}.requests.sqlite", fresh=ctx.incarnation == 0) if durable else None
    service = VenueService(adapter, log)

    def snapshot() -> dict[str, Any]:
        if log is not None:
            log.checkpoint(service.handled)
        return service_snapshot(service)

    def restore(state: ServiceState) -> None:
        restore_service(service, state)
        if log is not None:
            service.replay(log.since(state.handled))
            log.checkpoint(state.handled)

    ctx.keep_state(snapshot, restorer(ServiceState, restore))
    observable.subscribe(lambda batch: service.on_quotes(as_records(batch)), fail, service.quotes_ended)
    return service
