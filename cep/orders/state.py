"""The executor's and the venue's state as plain data, for `exactly_once` checkpoints.

A snapshot is what `BuildContext.keep_state` asks for: msgpack-able data, taken between batches.
What comes back was read from a file, so it is checked against a pydantic schema first
(`cep.components.state.restorer`) and a checkpoint of another shape is refused, never half
applied. The executor's breaker is kept by its state and failure count, not its clock (a
monotonic clock means nothing in another process): an open breaker restored stays open for a
full `reset_after` from the restore.
"""
from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cep.components.state import InvalidState
from cep.events import Action, OrderStatus, TickEvent
from cep.orders import messages
from cep.orders.breaker import BreakerState
from cep.orders.lifecycle import Order, Refusal
from cep.orders.node import LINK_NOTES
from cep.orders.paper import PaperVenue, _Book, _Order
from cep.orders.positions import Position, TradingState
from cep.orders.risk import Deny
from cep.orders.venue import OrderRequest, OrderType

Quote = tuple[int, str, float, float, float | None, float | None]


class _Plain(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- the executor ------------------------------------------------------------------------------
class OrderState(_Plain):
    signal_id: str
    client_order_id: str
    instrument: str
    side: Action
    quantity: float
    status: OrderStatus
    order_id: str
    filled: float
    notional: float
    sequence: int
    fill_ids: list[str]


class ExecutorState(_Plain):
    pending: list[dict[str, Any]]
    clock: int
    quotes: int
    synced: tuple[int, int]
    signals: int
    noted: dict[str, int]
    link: tuple[str, int, int]                   # epoch, request number, reports taken
    orders: list[OrderState]
    refused: dict[Refusal, int]
    seen: list[str]
    recent: list[int]
    latest: list[Quote]
    denials: dict[Deny, int]
    venue_errors: int
    positions: list[tuple[str, float, float, float]]
    marks: list[Quote]
    risk: tuple[TradingState, float, float, float, int | None]   # state, equity, peak, day start, day
    breaker: tuple[BreakerState, int, int, int]  # state, failures, refused, opened


def executor_snapshot(node: Any) -> dict[str, Any]:
    executor, manager = node.executor, node.executor.manager
    book, breaker = manager.book, executor.breaker
    return {
        "pending": node.pending, "clock": node.clock, "quotes": node.quotes, "synced": node.synced,
        "signals": node.signals, "noted": dict(node._noted),
        "link": (node.link.epoch, node.link.number, node.link.after),
        "orders": [{"signal_id": o.signal_id, "client_order_id": o.client_order_id, "instrument": o.instrument,
                    "side": o.side.value, "quantity": o.quantity, "status": o.status.value, "order_id": o.order_id,
                    "filled": o.filled, "notional": o.notional, "sequence": o.sequence,
                    "fill_ids": sorted(o.fill_ids)} for o in executor.ledger._orders.values()],
        "refused": {why.value: count for why, count in executor.ledger.refused.items()},
        "seen": sorted(executor.risk._seen), "recent": list(executor.risk._recent),
        "latest": [quote_data(q) for q in executor.quotes.values()],
        "denials": {code.value: count for code, count in executor.denials.items()},
        "venue_errors": executor.venue_errors,
        "positions": [(p.instrument, p.quantity, p.average_cost, p.realized) for p in book.positions()],
        "marks": [quote_data(q) for q in book._marks.values()],
        "risk": (manager.state.value, manager.equity, manager.peak_equity, manager._day_start_equity, manager._day),
        "breaker": (breaker.state.value, breaker.failures, breaker.refused, breaker.opened),
    }


def restore_executor(node: Any, state: ExecutorState) -> None:
    executor, manager = node.executor, node.executor.manager
    node.pending, node.clock, node.quotes, node.synced = list(state.pending), state.clock, state.quotes, state.synced
    node.signals, node._noted = state.signals, Counter(state.noted)
    for reason in LINK_NOTES:  # its new link and channel count from 0: what they count is news
        node._noted.pop(reason, None)
    epoch, node.link.number, node.link.after = state.link
    node.link.epoch = f"{epoch}.{node.ctx.incarnation}"  # a new id space: no request of the crashed one is reused
    node.link.reconciling = True
    ledger = executor.ledger
    ledger._orders.clear()
    ledger._working.clear()
    for saved in state.orders:
        order = Order(**{**saved.model_dump(), "fill_ids": set(saved.fill_ids)})
        ledger._orders[order.client_order_id] = order
        if not order.status.is_final:
            ledger._working[order.client_order_id] = order
    ledger.refused = Counter(state.refused)
    executor.risk._seen, executor.risk._recent = set(state.seen), deque(state.recent)
    executor.quotes = {q[1]: TickEvent(*q) for q in state.latest}
    executor.denials, executor.venue_errors = Counter(state.denials), state.venue_errors
    book = manager.book
    book._positions = {p[0]: Position(*p) for p in state.positions}
    book._marks = {q[1]: TickEvent(*q) for q in state.marks}
    book._realized = sum(p.realized for p in book._positions.values())
    book._unrealized = {name: p.unrealized(book._marks.get(name)) for name, p in book._positions.items()}
    manager.state, manager.equity, manager.peak_equity, manager._day_start_equity, manager._day = state.risk
    breaker = executor.breaker
    breaker.state, breaker.failures, breaker.refused, breaker.opened = state.breaker
    breaker._opened_at, breaker._probing = breaker.clock(), False


def quote_data(quote: TickEvent) -> Quote:
    """A quote as plain data (the tuple `TickEvent(*data)` takes back)."""
    return (quote.timestamp, quote.instrument, quote.bid_price, quote.ask_price, quote.bid_volume, quote.ask_volume)


# -- the paper venue and its service ------------------------------------------------------------
class PaperOrderState(_Plain):
    request: tuple[str, str, Action, float, int, OrderType, float | None]
    order_id: str
    arrival: int
    status: OrderStatus
    filled: float
    fills: int
    reason: str | None


class PaperState(_Plain):
    number: int
    orders: list[PaperOrderState]
    books: dict[str, tuple[list[Quote], float, float]]   # history, left to BUY, left to SELL
    pending: list[tuple[int, int, str]]
    resting: dict[str, list[str]]
    duplicates: int
    bad_quotes: int
    random: tuple[int, list[int], float | None]
    forgotten: list[str] = []


def paper_snapshot(venue: PaperVenue) -> dict[str, Any]:
    number = next(venue._numbers)
    venue._numbers = itertools.count(number)  # looking at the counter must not move it
    return {
        "number": number,
        "orders": [{"request": (o.request.client_order_id, o.request.instrument, o.request.side.value,
                                o.request.quantity, o.request.timestamp, o.request.order_type.value,
                                o.request.limit_price),
                    "order_id": o.order_id, "arrival": o.arrival, "status": o.status.value, "filled": o.filled,
                    "fills": o.fills, "reason": o.reason} for o in venue._orders.values()],
        "books": {name: ([quote_data(q) for q in book.history], book.left.get(Action.BUY, 0.0),
                         book.left.get(Action.SELL, 0.0)) for name, book in venue._books.items()},
        "pending": [(arrival, number, order.request.client_order_id) for arrival, number, order in venue._pending],
        "resting": {name: [o.request.client_order_id for o in orders] for name, orders in venue._resting.items()},
        "duplicates": venue.duplicates, "bad_quotes": venue.bad_quotes,
        "random": (lambda s: (s[0], list(s[1]), s[2]))(venue._random.getstate()),
        "forgotten": sorted(venue._forgotten),
    }


def restore_paper(venue: PaperVenue, state: PaperState) -> None:
    try:
        _restore_paper(venue, state)
    except KeyError as exc:  # a pending or resting order the orders do not have
        raise InvalidState(f"the paper venue's state names an order it does not hold: {exc}") from None


def _restore_paper(venue: PaperVenue, state: PaperState) -> None:
    venue._numbers = itertools.count(state.number)
    venue._orders = {}
    for saved in state.orders:
        coid, instrument, side, quantity, timestamp, order_type, limit_price = saved.request
        request = OrderRequest(coid, instrument, side, quantity, timestamp, order_type, limit_price)
        venue._orders[coid] = _Order(request, saved.order_id, saved.arrival, saved.status, saved.filled,
                                     saved.fills, saved.reason)
    venue._books = {}
    for name, (history, buy, sell) in state.books.items():
        quotes = [TickEvent(*q) for q in history]
        venue._books[name] = _Book(deque(quotes, maxlen=venue.history), deque((q.timestamp for q in quotes),
                                                                              maxlen=venue.history),
                                   {Action.BUY: buy, Action.SELL: sell})
    venue._pending = [(arrival, number, venue._orders[coid]) for arrival, number, coid in state.pending]
    heapq.heapify(venue._pending)
    venue._resting = {name: [venue._orders[coid] for coid in coids] for name, coids in state.resting.items()}
    venue.duplicates, venue.bad_quotes, venue._forgotten = state.duplicates, state.bad_quotes, set(state.forgotten)
    version, internal, gauss = state.random
    venue._random = random.Random()
    venue._random.setstate((version, tuple(internal), gauss))


class ServiceState(_Plain):
    reports: list[dict[str, list[Any]]]
    quotes: list[Quote]
    latest: float
    received: int
    applied: int
    handled: int
    refused: dict[str, int]
    placed: list[str]
    repeats: int
    adapter: Any = None
    base: int = 0
    kept: dict[str, tuple[int, int]] = {}


def service_snapshot(service: Any) -> dict[str, Any]:
    return {"reports": [messages.report_of(r) for r in service.reports], "quotes": [quote_data(q) for q in service.quotes],
            "latest": service.latest, "received": service.received, "applied": service.applied,
            "handled": service.handled, "refused": dict(service.refused), "placed": sorted(service.placed),
            "repeats": service.repeats, "base": service.base, "kept": service.kept,
            "adapter": paper_snapshot(service.adapter) if isinstance(service.adapter, PaperVenue) else None}


def restore_service(service: Any, state: ServiceState) -> None:
    try:
        service.reports = [messages.report_from(r) for r in state.reports]
    except ValueError as exc:
        raise InvalidState(f"a report of the venue's state is not one: {exc}") from None
    service.quotes = deque(TickEvent(*q) for q in state.quotes)
    service.latest, service.received, service.applied = state.latest, state.received, state.applied
    service.handled, service.refused = state.handled, Counter(state.refused)
    service.placed, service.repeats = set(state.placed), state.repeats
    service.base, service.kept = state.base, dict(state.kept)
    if isinstance(service.adapter, PaperVenue):
        if state.adapter is None:
            raise InvalidState("the checkpoint has no state of the paper venue")
        restore_paper(service.adapter, _checked(PaperState, state.adapter))


def _checked(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidState(str(exc).splitlines()[0]) from None
