"""The paper venue: a deterministic matching core that fills orders against the quotes it is
given, in event time, as the exchange would have at that moment.

Why these rules:

- An order sent at `t` reaches the venue at `t + latency` (plus a seeded jitter in
  `0..jitter_ns`), and it meets the book **in force at that instant**: the latest quote with a
  timestamp <= arrival. Never a later quote (a replay would trade on prices it could not have
  seen yet) and never an earlier one (it would trade on prices that were gone). If the venue has
  already seen quotes past the arrival when a request reaches it (it runs ahead of the executor
  in another process), it looks the quote up in its recent history (`history` quotes per
  instrument) and plays the order through the quotes since, so the outcome does not depend on
  which process was faster; those past quotes are taken at their full displayed size.
- A market order takes the ask (BUY) or the bid (SELL) up to the displayed size; what is left
  takes the following quotes (`remainder="next_quotes"`) or lapses EXPIRED
  (`remainder="expire"`, immediate-or-cancel). A quote without sizes has unlimited size.
- A limit order fills when the market crosses it (ask <= limit for BUY, bid >= limit for SELL),
  at its limit price, up to the displayed size; the rest waits.
- Orders arriving at one quote share its displayed size, first come first served.
- The client order id is the order's identity: a repeated request is answered with the order
  already placed and counted in `duplicates`.
- `forget(before)` drops finished orders sent before event time `before` from the matching state,
  so a long run's state (and checkpoint) does not grow with every order; their client order ids
  stay known, and a request repeating one is answered as a duplicate (REJECTED
  `DUPLICATE_ORDER`, the order's details being gone), never placed again.

Seeded: the same quotes, requests, latency and seed give the same fills, ids and timestamps.
"""
from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field

from cep.events import Action, OrderStatus, TickEvent
from cep.orders.lifecycle import FILL_TOLERANCE, Fill
from cep.orders.venue import OrderRequest, OrderType, OrderUpdate, Report, ReportDue, VenueReply, forgotten

REMAINDERS = ("next_quotes", "expire")


@dataclass(slots=True)
class _Order:
    request: OrderRequest
    order_id: str
    arrival: int
    status: OrderStatus = OrderStatus.ACCEPTED
    filled: float = 0.0
    fills: int = 0
    reason: str | None = None

    @property
    def remaining(self) -> float:
        return self.request.quantity - self.filled

    def reply(self, duplicate: bool = False, reason: str | None = None) -> VenueReply:
        return VenueReply(self.request.client_order_id, self.status, self.order_id, self.filled,
                          reason or self.reason, duplicate)


@dataclass(slots=True)
class _Book:
    """One instrument's quotes: the recent ones (for requests that arrive late), and what is
    left of the current quote's displayed sizes."""

    history: deque[TickEvent]
    times: deque[int]
    left: dict[Action, float] = field(default_factory=dict)


class PaperVenue:
    """The built-in `VenueAdapter`; feed it quotes with `on_quote`, and `advance_to(t)` when no
    quote will come (the end of a replay) so orders arriving by `t` still meet the last book."""

    def __init__(self, *, latency_ns: int = 0, jitter_ns: int = 0, seed: int = 0,
                 remainder: str = "next_quotes", history: int = 10_000, name: str = "paper") -> None:
        if latency_ns < 0 or jitter_ns < 0 or history < 1:
            raise ValueError("latency_ns and jitter_ns must be >= 0 and history >= 1")
        if remainder not in REMAINDERS:
            raise ValueError(f"remainder must be one of {', '.join(REMAINDERS)}, got {remainder!r}")
        self.latency_ns, self.jitter_ns, self.remainder = latency_ns, jitter_ns, remainder
        self.name, self.history = name, history
        self._random = random.Random(seed)
        self._numbers = itertools.count(1)
        self._orders: dict[str, _Order] = {}   # in the order they were placed
        self._forgotten: set[str] = set()       # client order ids of finished orders dropped (`forget`)
        self._books: dict[str, _Book] = {}
        self._pending: list[tuple[int, int, _Order]] = []
        self._resting: dict[str, list[_Order]] = {}
        self._reports: list[Report] = []
        self.duplicates = 0
        self.bad_quotes = 0

    # -- the adapter interface -------------------------------------------------------------

    def place(self, request: OrderRequest) -> VenueReply:
        known = self._orders.get(request.client_order_id)
        if known is not None or request.client_order_id in self._forgotten:
            self.duplicates += 1
            return known.reply(duplicate=True) if known is not None else forgotten(request.client_order_id)
        number = next(self._numbers)
        arrival = request.timestamp + self.latency_ns + (self._random.randint(0, self.jitter_ns)
                                                         if self.jitter_ns else 0)
        order = self._orders[request.client_order_id] = _Order(request, f"{self.name}-{number}", arrival)
        problem = self._problem(request)
        if problem is not None:
            order.status, order.reason = OrderStatus.REJECTED, problem
            return order.reply()
        book = self._books[request.instrument]
        if arrival < book.times[0]:
            order.status, order.reason = OrderStatus.REJECTED, "STALE_REQUEST: arrives before the quotes kept"
            return order.reply()
        if arrival <= book.times[-1]:
            self._catch_up(order, book)
        else:
            heapq.heappush(self._pending, (arrival, number, order))
        return VenueReply(request.client_order_id, OrderStatus.ACCEPTED, order.order_id)

    def cancel(self, client_order_id: str, timestamp: int) -> VenueReply:
        order = self._orders.get(client_order_id)
        if order is None:
            return VenueReply(client_order_id, OrderStatus.REJECTED, reason="UNKNOWN_ORDER")
        if order.status.is_final:
            return order.reply(reason="TOO_LATE")
        order.status, order.reason = OrderStatus.CANCELED, "CANCELED"
        return order.reply()

    def query(self, client_order_id: str) -> VenueReply | None:
        order = self._orders.get(client_order_id)
        if order is None:
            return forgotten(client_order_id) if client_order_id in self._forgotten else None
        return order.reply()

    def forget(self, before: int) -> None:
        """Drop the finished orders sent before event time `before` (their ids stay known)."""
        for coid, order in list(itertools.takewhile(lambda item: item[1].request.timestamp < before,
                                                    self._orders.items())):
            if order.status.is_final:
                del self._orders[coid]
                self._forgotten.add(coid)

    def reports(self) -> list[Report]:
        reports, self._reports = self._reports, []
        return reports

    def report_due(self) -> ReportDue:
        """An order on its way reports when it arrives; a resting one at a quote of its instrument."""
        return ReportDue(self._pending[0][0] if self._pending else None,
                         frozenset(name for name, orders in self._resting.items() if orders))

    # -- market data and time --------------------------------------------------------------

    def on_quote(self, quote: TickEvent) -> None:
        if not (0 < quote.bid_price < math.inf and 0 < quote.ask_price < math.inf):
            self.bad_quotes += 1
            return
        book = self._books.get(quote.instrument)
        if book is None:
            book = self._books[quote.instrument] = _Book(deque(maxlen=self.history), deque(maxlen=self.history))
        elif quote.timestamp < book.times[-1]:
            self.bad_quotes += 1  # out of order: the history must stay sorted
            return
        self.advance_to(quote.timestamp - 1)
        book.history.append(quote)
        book.times.append(quote.timestamp)
        book.left = {Action.BUY: _size(quote.ask_volume), Action.SELL: _size(quote.bid_volume)}
        resting = self._resting.get(quote.instrument)
        if resting:
            for order in resting:
                self._match(order, quote, quote.timestamp, book.left)
            resting[:] = [order for order in resting if not order.status.is_final]
        self.advance_to(quote.timestamp)

    def advance_to(self, timestamp: int) -> None:
        """Let every order that arrives by `timestamp` meet the book in force when it arrives."""
        while self._pending and self._pending[0][0] <= timestamp:
            arrival, _, order = heapq.heappop(self._pending)
            if order.status.is_final:  # canceled while on its way
                continue
            book = self._books[order.request.instrument]
            self._arrive(order, book.history[-1], book.left)

    # -- matching --------------------------------------------------------------------------

    def _problem(self, request: OrderRequest) -> str | None:
        if request.instrument not in self._books:
            return f"UNKNOWN_INSTRUMENT: no quote for {request.instrument!r}"
        if not _positive(request.quantity):
            return f"BAD_QUANTITY: {request.quantity!r}"
        if request.order_type is OrderType.LIMIT and not _positive(request.limit_price):
            return f"BAD_PRICE: a limit order needs a limit price above 0, got {request.limit_price!r}"
        return None

    def _catch_up(self, order: _Order, book: _Book) -> None:
        """A request that arrived before the latest quote: play it through the history."""
        back = 1  # from the newest quote back to the one in force at arrival: a deque's ends are cheap
        while book.times[-back] > order.arrival:
            back += 1
        quotes = [book.history[index] for index in range(-back, 0)]
        sizes = [_sizes(quote) for quote in quotes[:-1]] + [book.left]  # the current quote's are shared
        self._arrive(order, quotes[0], sizes[0])
        for quote, left in zip(quotes[1:], sizes[1:]):
            if order.status.is_final:
                break
            self._match(order, quote, quote.timestamp, left)

    def _arrive(self, order: _Order, quote: TickEvent, left: dict[Action, float]) -> None:
        self._match(order, quote, order.arrival, left)
        if order.status.is_final:
            return
        if order.request.order_type is OrderType.MARKET and self.remainder == "expire":
            order.status, order.reason = OrderStatus.EXPIRED, "NO_LIQUIDITY: the rest of a market order lapses"
            self._update(order, order.arrival)
            return
        self._resting.setdefault(order.request.instrument, []).append(order)

    def _match(self, order: _Order, quote: TickEvent, at: int, left: dict[Action, float]) -> None:
        side, request = order.request.side, order.request
        price = quote.ask_price if side is Action.BUY else quote.bid_price
        if request.order_type is OrderType.LIMIT:
            crossed = price <= request.limit_price if side is Action.BUY else price >= request.limit_price
            if not crossed:
                return
            price = request.limit_price
        quantity = min(order.remaining, left[side])
        if not quantity > 0 or order.status.is_final:
            return
        left[side] -= quantity
        order.filled += quantity
        order.fills += 1
        self._reports.append(Fill(request.client_order_id, f"{order.order_id}-{order.fills}", price,
                                  quantity, at, order.order_id))
        if order.remaining <= request.quantity * FILL_TOLERANCE:  # what floating point leaves is no rest
            order.status = OrderStatus.FILLED
        else:
            order.status = OrderStatus.PARTIALLY_FILLED

    def _update(self, order: _Order, timestamp: int) -> None:
        self._reports.append(OrderUpdate(order.request.client_order_id, order.order_id, order.status,
                                         timestamp, order.reason))


def _size(volume: float | None) -> float:
    return math.inf if volume is None else max(0.0, volume)


def _sizes(quote: TickEvent) -> dict[Action, float]:
    return {Action.BUY: _size(quote.ask_volume), Action.SELL: _size(quote.bid_volume)}


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
