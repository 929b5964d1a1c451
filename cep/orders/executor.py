"""The order executor's core: a signal in, the order's events out.

For each signal record: the pre-trade checks (`PreTradeRisk`, against the `Exposure` this
executor sees: its risk manager's trading state, position and day's PnL, the instrument's latest
quote, its own working orders), then the circuit breaker, then the venue. Every step of the
order goes through the `OrderLedger`, and every event it produces goes to the listeners (the
risk manager first, so the trading state it sets holds for the very next signal; then e.g. a
journal) and back to the caller.

What becomes of a signal:
- unreadable (a missing field, a NaN quantity, a confidence outside 0..1, ...) or a repeat of one
  decided before: no order exists and none is made; the `Decision` carries the denial, for the
  caller to dead-letter and count;
- denied by a check or by the open breaker: an order NEW -> DENIED with the reason, never sent;
- passed: NEW -> SUBMITTED, then the venue's reply (ACCEPTED / REJECTED) and whatever it
  reports (fills, expiry). A venue call that raises counts as a breaker failure and leaves the
  order SUBMITTED, for reconciliation by `query` (the request carried the client order id, so a
  retry can never place it twice).

Why no I/O here: the same core runs in one process (`cep.orders.desk.PaperDesk`) and, wired
later, in an executor process whose venue adapter speaks to a venue process; it is tested
without sockets or clocks.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from cep.events import Action, OrderEvent, OrderStatus, TickEvent
from cep.orders.breaker import CircuitBreaker
from cep.orders.lifecycle import Fill, OrderLedger
from cep.orders.positions import RiskManager
from cep.orders.risk import Denial, Deny, Exposure, PreTradeRisk, RiskLimits, Signal, client_order_id_for
from cep.orders.venue import OrderRequest, OrderUpdate, Report, VenueAdapter

Listener = Callable[[OrderEvent], None]


@dataclass(slots=True)
class Decision:
    """What one signal led to: its events (possibly none) and, if it was denied, why."""

    events: list[OrderEvent] = field(default_factory=list)
    denial: Denial | None = None


class OrderExecutor:
    def __init__(self, venue: VenueAdapter, limits: RiskLimits, *, manager: RiskManager | None = None,
                 breaker: CircuitBreaker | None = None, listeners: Iterable[Listener] = ()) -> None:
        self.venue, self.limits = venue, limits
        self.manager = manager or RiskManager(daily_loss_limit=limits.daily_loss_limit)
        self.breaker = breaker or CircuitBreaker()
        self.listeners: list[Listener] = [self.manager.on_event, *listeners]
        self.ledger = OrderLedger()
        self.risk = PreTradeRisk(limits)
        self.quotes: dict[str, TickEvent] = {}
        self.denials: Counter[Deny] = Counter()
        self.venue_errors = 0

    def on_quote(self, quote: TickEvent) -> None:
        self.quotes[quote.instrument] = quote
        self.manager.on_quote(quote)

    def on_signal(self, record: Mapping[str, Any], now: int) -> Decision:
        decision = Decision()
        signal, denial = self.risk.decide(record, self.exposure, now)
        if denial is None and not self.breaker.allow():
            denial = Denial(Deny.CIRCUIT_OPEN, "the venue failed repeatedly; the breaker is open")
        if denial is not None:
            self.denials[denial.code] += 1
            decision.denial = denial
            if denial.code not in UNTRACKED:
                coid = self._open(decision, signal, now)
                self._emit(decision, self.ledger.move(coid, OrderStatus.DENIED, now, reason=str(denial)))
            return decision
        self.risk.record_order(now)
        coid = self._open(decision, signal, now)
        self._emit(decision, self.ledger.move(coid, OrderStatus.SUBMITTED, now))
        self._send(decision, OrderRequest(coid, signal.instrument, signal.side, signal.quantity, now), now)
        return decision

    def cancel(self, client_order_id: str, now: int) -> list[OrderEvent]:
        """Ask the venue to cancel a working order. What the venue reported before it answered is
        taken first, so a fill that beat the cancel is counted, then CANCELED if it says so."""
        order = self.ledger.order(client_order_id)
        if order is None or order.status.is_final:
            return []
        try:
            reply = self.venue.cancel(client_order_id, now)
        except Exception:  # as in _send: the breaker's business
            self.venue_errors += 1
            self.breaker.record_failure()
            return []
        self.breaker.record_success()
        decision = Decision(events=self.on_reports(self.venue.reports()))
        if reply.status is OrderStatus.CANCELED:
            self._emit(decision, self.ledger.move(client_order_id, OrderStatus.CANCELED, now, reason=reply.reason))
        return decision.events

    def reconcile(self, now: int, sent_at: Mapping[str, int] | None = None, every: bool = False) -> list[OrderEvent]:
        """After a restart that brought the ledger back from the order log (`cep.orders.recovery`),
        or once the venue answers again after a place went unanswered: ask the venue, by client
        order id, for each order still SUBMITTED, whose reply was lost, and take its answer (ACCEPTED, or REJECTED with its reason); an order
        the venue never got is placed now, under the same client order id. Orders the venue had
        answered need no question: their fills come in the fill stream, read on from where the
        log says. A venue that does not answer is a breaker failure, and the order stays
        SUBMITTED, as after a failed place. An answer takes the time the order was sent
        (`sent_at`, by client order id; default `now`), as the reply would have.

        `every`: the venue restarted and lost what it held, so every working order is asked for,
        and one it no longer knows is CANCELED (`VENUE_RESTARTED`): it will never fill."""
        decision = Decision()
        sent_at = sent_at or {}
        for order in [o for o in self.ledger.working() if every or o.status is OrderStatus.SUBMITTED]:
            try:
                known = self.venue.query(order.client_order_id)
            except Exception:  # as in _send: the breaker's business
                self.venue_errors += 1
                self.breaker.record_failure()
                continue
            self.breaker.record_success()
            if known is None and order.status is OrderStatus.SUBMITTED:
                self._send(decision, OrderRequest(order.client_order_id, order.instrument, order.side,
                                                  order.quantity, now), now)
                continue
            if known is None:
                self._emit(decision, self.ledger.move(order.client_order_id, OrderStatus.CANCELED, now,
                                                      reason=LOST_BY_VENUE))
                continue
            if order.status is not OrderStatus.SUBMITTED:
                continue
            rejected = known.status is OrderStatus.REJECTED
            self._emit(decision, self.ledger.move(order.client_order_id, known.status if rejected else
                                                  OrderStatus.ACCEPTED, sent_at.get(order.client_order_id, now),
                                                  reason=known.reason if rejected else None, order_id=known.order_id))
        decision.events.extend(self.on_reports(self.venue.reports()))
        return decision.events

    def on_reports(self, reports: Iterable[Report]) -> list[OrderEvent]:
        """The venue's fill stream: fills and its own status changes, as events."""
        decision = Decision()
        for report in reports:
            if isinstance(report, Fill):
                order = self.ledger.order(report.client_order_id)
                if order is not None and order.status is OrderStatus.SUBMITTED:  # its reply was lost:
                    self._emit(decision, self.ledger.move(  # the venue took it, as its fill says
                        report.client_order_id, OrderStatus.ACCEPTED, report.timestamp, order_id=report.order_id))
                self._emit(decision, self.ledger.fill(report))
            elif isinstance(report, OrderUpdate):
                self._emit(decision, self.ledger.move(report.client_order_id, report.status, report.timestamp,
                                                      reason=report.reason, order_id=report.order_id))
        return decision.events

    def exposure(self, instrument: str) -> Exposure:
        working = [order for order in self.ledger.working()]
        return Exposure(
            state=self.manager.state, quote=self.quotes.get(instrument),
            position=self.manager.book.position(instrument).quantity,
            working_buy=sum(o.remaining for o in working if o.instrument == instrument and o.side is Action.BUY),
            working_sell=sum(o.remaining for o in working if o.instrument == instrument and o.side is Action.SELL),
            open_orders=len(working), daily_pnl=self.manager.daily_pnl)

    def _open(self, decision: Decision, signal: Signal, now: int) -> str:
        coid = client_order_id_for(signal.signal_id)
        self._emit(decision, self.ledger.open(signal.signal_id, coid, signal.instrument, signal.side,
                                              signal.quantity, now))
        return coid

    def _send(self, decision: Decision, request: OrderRequest, now: int) -> None:
        try:
            reply = self.venue.place(request)
        except Exception:  # a broker adapter's failure: the breaker's business, not a crash
            self.venue_errors += 1
            self.breaker.record_failure()
            return
        self.breaker.record_success()
        if reply.status in (OrderStatus.ACCEPTED, OrderStatus.REJECTED) or reply.duplicate:
            # a repeat is answered with the order's state now (FILLED, ...): it was accepted, and
            # its fills come in the fill stream
            status = OrderStatus.REJECTED if reply.status is OrderStatus.REJECTED else OrderStatus.ACCEPTED
            reason = reply.reason if reply.status in (OrderStatus.ACCEPTED, OrderStatus.REJECTED) else None
            self._emit(decision, self.ledger.move(request.client_order_id, status, now, reason=reason,
                                                  order_id=reply.order_id))
        decision.events.extend(self.on_reports(self.venue.reports()))

    def _emit(self, decision: Decision, event: OrderEvent | None) -> None:
        if event is None:
            return
        decision.events.append(event)
        for listener in self.listeners:
            listener(event)


LOST_BY_VENUE = "VENUE_RESTARTED: the venue lost the order when it restarted without its state"

UNTRACKED = frozenset({Deny.BAD_SIGNAL, Deny.BAD_QUANTITY, Deny.BAD_PRICE, Deny.BAD_CONFIDENCE,
                       Deny.DUPLICATE_SIGNAL})
"""Denials that leave no order behind: the signal cannot name one, or its order exists already."""
