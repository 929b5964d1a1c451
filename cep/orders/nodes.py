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
from cep.orders.recovery import OrderLog, Recovery
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
        graph.venues[node.id] = _venue(plan, node, registry, observable, ctx, params, fail, channel_for is not None)
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
    delivery = _request_edge(plan, node).delivery
    _keep_executor_state(executor, ctx, checkpointed=channel_for is not None and delivery.checkpoints)
    ctx.keep_gauges(lambda: executor_gauges(executor))
    node_run: ExecutorNode | Recovery = executor
    if channel_for is not None and ctx.run_dir is not None and not delivery.checkpoints:
        log = OrderLog(ctx.run_dir / f"{node.id}.orders.sqlite", fresh=ctx.incarnation == 0)
        node_run = Recovery(executor, log, restart=ctx.incarnation > 0, resend=delivery.reliable)
    output = Hub(ctx.counters)

    def finish() -> list[dict[str, Any]]:
        tail = node_run.finish()
        channel.close()
        return tail

    observable.pipe(stateful(node_run.step, finish)).subscribe(output.on_next, fail, output.on_completed)
    return output


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
           params: dict[str, Any], fail: Callable[[BaseException], None], in_worker: bool) -> VenueService:
    """The venue node; in a worker, with a log of the requests it serves (`RequestLog`): every
    request under exactly_once (a restart serves those after its checkpoint again), the places
    in the other modes (a restart answers a repeat of one, never places it again)."""
    component = registry.get("venue", node.type)
    if component is None:
        raise RuntimeFailure(f"venue {node.type!r} is not registered in this process "
                             "(is the plugin installed where the worker runs?)")
    adapter = component.factory(component.configure(params, ctx.base_dir), ctx)
    checkpointed = _request_edge(plan, node).delivery.checkpoints
    log = None
    if ctx.run_dir is not None and (in_worker or checkpointed):
        log = RequestLog(ctx.run_dir / f"{node.id}.requests.sqlite", fresh=ctx.incarnation == 0,
                         places_only=not checkpointed)
    service = VenueService(adapter, log)
    if log is not None and ctx.incarnation > 0 and not checkpointed:  # no checkpoint brings its orders back
        service.restarted_without_state(log, ctx.incarnation)

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


def _request_edge(plan: Plan, node: NodePlan):
    """The request/reply edge of an executor, or of the executor a venue serves."""
    return next(edge for edge in plan.edges if edge.pattern == "dealer/router"
                and (edge.node == node.id or plan.nodes[edge.node].params.get("venue") == node.id))
