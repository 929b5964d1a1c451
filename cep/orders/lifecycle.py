"""The order lifecycle as a state machine: one `Order` per client order id, moved only along
`cep.events.TRANSITIONS`, and an `OrderEvent` for every step it takes.

Why a ledger of its own: the executor, the venue's replies and the fill stream all move the same
orders, and they may disagree (a late fill after a cancel, a fill delivered twice after a
reconnect, a venue that reports more than was ordered). The ledger is the one place that decides
what an order's state is; whatever it cannot accept it refuses, counts by `Refusal`, and turns
into no event, so nothing downstream (positions, the journal) ever sees it.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator

from cep.events import Action, OrderEvent, OrderStatus

FILL_TOLERANCE = 1e-9
"""Relative slack on quantities: fills of 0.1 + 0.2 complete an order of 0.3 in floating point."""


class Refusal(str, Enum):
    """Why the ledger turned something away (the key of `OrderLedger.refused`)."""

    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    BAD_ORDER = "BAD_ORDER"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    DUPLICATE_FILL = "DUPLICATE_FILL"
    OVERFILL = "OVERFILL"
    BAD_FILL = "BAD_FILL"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution the venue reports: `fill_id` is unique per order, so a redelivered fill is
    recognised; `order_id` is the venue's id of the order."""

    client_order_id: str
    fill_id: str
    price: float
    quantity: float
    timestamp: int
    order_id: str = ""


@dataclass(slots=True)
class Order:
    """The live state of one order (what its latest `OrderEvent` says, plus the fill ids seen)."""

    signal_id: str
    client_order_id: str
    instrument: str
    side: Action
    quantity: float
    status: OrderStatus = OrderStatus.NEW
    order_id: str = ""
    filled: float = 0.0
    notional: float = 0.0
    sequence: int = 0
    fill_ids: set[str] = field(default_factory=set)

    @property
    def remaining(self) -> float:
        return 0.0 if self.status is OrderStatus.FILLED else self.quantity - self.filled

    @property
    def average_price(self) -> float | None:
        return self.notional / self.filled if self.filled else None

    def event(self, timestamp: int, fill: Fill | None = None, reason: str | None = None) -> OrderEvent:
        self.sequence += 1
        return OrderEvent(
            order_id=self.order_id, signal_id=self.signal_id, status=self.status,
            filled_quantity=self.filled, fill_price=fill.price if fill else None, timestamp=timestamp,
            client_order_id=self.client_order_id, instrument=self.instrument, side=self.side,
            quantity=self.quantity, fill_quantity=fill.quantity if fill else 0.0,
            fill_id=fill.fill_id if fill else None, average_price=self.average_price,
            remaining_quantity=self.remaining, reason=reason, sequence=self.sequence)


class OrderLedger:
    """Every order by client order id; `open`, `move` and `fill` return the resulting event, or
    None after counting the refusal in `refused`."""

    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._working: dict[str, Order] = {}
        self.refused: Counter[Refusal] = Counter()

    def open(self, signal_id: str, client_order_id: str, instrument: str, side: Action | str,
             quantity: float, timestamp: int) -> OrderEvent | None:
        if client_order_id in self._orders:
            return self._refuse(Refusal.DUPLICATE_ORDER)
        if not _positive(quantity) or side not in (Action.BUY, Action.SELL, "BUY", "SELL"):
            return self._refuse(Refusal.BAD_ORDER)
        order = Order(signal_id, client_order_id, instrument, Action(side), quantity)
        self._orders[client_order_id] = self._working[client_order_id] = order
        return order.event(timestamp)

    def move(self, client_order_id: str, status: OrderStatus | str, timestamp: int, *,
             reason: str | None = None, order_id: str | None = None) -> OrderEvent | None:
        """A move that is not a fill (submitted, accepted, denied, rejected, canceled, expired);
        fill states are reached only through `fill`, which knows the quantities."""
        order = self._orders.get(client_order_id)
        if order is None:
            return self._refuse(Refusal.UNKNOWN_ORDER)
        status = OrderStatus(status)
        if status in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED) or not order.status.can_become(status):
            return self._refuse(Refusal.ILLEGAL_TRANSITION)
        self._become(order, status)
        if order_id:
            order.order_id = order_id
        return order.event(timestamp, reason=reason)

    def fill(self, fill: Fill) -> OrderEvent | None:
        order = self._orders.get(fill.client_order_id)
        if order is None:
            return self._refuse(Refusal.UNKNOWN_ORDER)
        if not (_positive(fill.price) and _positive(fill.quantity)):
            return self._refuse(Refusal.BAD_FILL)
        if fill.fill_id in order.fill_ids:
            return self._refuse(Refusal.DUPLICATE_FILL)
        if not order.status.can_become(OrderStatus.FILLED):
            return self._refuse(Refusal.ILLEGAL_TRANSITION)
        filled = order.filled + fill.quantity
        if filled > order.quantity * (1 + FILL_TOLERANCE):
            return self._refuse(Refusal.OVERFILL)
        order.fill_ids.add(fill.fill_id)
        order.filled = filled
        order.notional += fill.price * fill.quantity
        order.order_id = order.order_id or fill.order_id
        complete = order.quantity - filled <= order.quantity * FILL_TOLERANCE
        self._become(order, OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED)
        return order.event(fill.timestamp, fill)

    def recall(self, event: OrderEvent) -> None:
        """Take back an event this ledger made before a restart (`cep.orders.recovery`): its order
        comes back as the event left it, fills and sequence included, so the order's next event
        carries the sequence and quantities it would have carried without the restart."""
        order = self._orders.get(event.client_order_id)
        if order is None:
            order = Order(event.signal_id, event.client_order_id, event.instrument, Action(event.side), event.quantity)
            self._orders[order.client_order_id] = order
        if event.fill_id:
            order.fill_ids.add(event.fill_id)
            order.notional += event.fill_price * event.fill_quantity
            order.filled = event.filled_quantity
        order.order_id = event.order_id or order.order_id
        order.sequence = event.sequence
        order.status = event.status
        if order.status.is_final:
            self._working.pop(order.client_order_id, None)
        else:
            self._working[order.client_order_id] = order

    def order(self, client_order_id: str) -> Order | None:
        return self._orders.get(client_order_id)

    def working(self) -> Iterator[Order]:
        """Orders not in a final state: what may still fill (kept apart, so a pre-trade check
        costs the working orders, not the day's)."""
        return iter(self._working.values())

    def _become(self, order: Order, status: OrderStatus) -> None:
        order.status = status
        if status.is_final:
            self._working.pop(order.client_order_id, None)

    def _refuse(self, why: Refusal) -> None:
        self.refused[why] += 1
        return None


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0
