"""The venue adapter interface: what an order executor needs from an exchange, a broker or the
paper venue.

A venue adapter implements `VenueAdapter` (a `typing.Protocol`: no base class to inherit, an
object with these methods is one):

- `place(request) -> VenueReply`: send an order. The request carries our `client_order_id`,
  and the venue must deduplicate by it: placing a request whose client order id it has seen
  returns that order's reply (`duplicate=True`) and places nothing, so an executor may retry a
  request that timed out without risking a second order. A request the venue cannot take is
  answered REJECTED with a reason, never with an exception.
- `cancel(client_order_id, timestamp) -> VenueReply`: CANCELED if the order was still working;
  otherwise its current status with reason TOO_LATE; REJECTED with UNKNOWN_ORDER if the venue
  never saw it.
- `query(client_order_id) -> VenueReply | None`: the order's current status and filled
  quantity, or None if the venue never saw it. After a restart an executor reconciles with this
  before sending anything new.
- `reports() -> list[Fill | OrderUpdate]`: the fill stream, drained: every `Fill` (with a fill
  id unique per order, so a redelivered fill is recognised) and every change the venue made by
  itself (`OrderUpdate`, e.g. the unfilled rest of a market order EXPIRED), in the order they
  happened, each once.
- optionally `report_due() -> ReportDue`: when the next report can come at the earliest if no
  request comes first. Without it, an executor asks for the fill stream at every quote while it
  has an order working; with it, only at the quotes it allows. It must never say later than the
  truth (a fill it hid would reach the executor late), only earlier.
- optionally `forget(before)`: drop the finished orders sent before event time `before`; the
  executor will not ask about them again. Their client order ids must stay known: a request
  repeating one is answered `forgotten(client_order_id)` (REJECTED as a duplicate), never placed.

A minimal adapter for a broker::

    class MyBroker:
        def __init__(self, client):
            self.client = client
        def place(self, request):
            answer = self.client.new_order(symbol=request.instrument, side=request.side.value,
                                           qty=request.quantity, client_id=request.client_order_id)
            return VenueReply(request.client_order_id, OrderStatus.ACCEPTED, order_id=answer["id"])
        def cancel(self, client_order_id, timestamp): ...
        def query(self, client_order_id): ...
        def reports(self): return [Fill(...) for execution in self.client.executions()]

`cep.orders.paper.PaperVenue` is the built-in one: it also takes quotes (`on_quote`) and is
driven in event time.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

from cep.events import Action, OrderStatus
from cep.orders.lifecycle import Fill


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order as sent to a venue; `timestamp` is when it was sent (event time)."""

    client_order_id: str
    instrument: str
    side: Action
    quantity: float
    timestamp: int
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None


@dataclass(frozen=True, slots=True)
class VenueReply:
    """A venue's answer to place, cancel or query: the order's status then, its venue id, what is
    filled, why (for REJECTED and TOO_LATE), and whether the request was a repeat."""

    client_order_id: str
    status: OrderStatus
    order_id: str = ""
    filled_quantity: float = 0.0
    reason: str | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A change of an order's status the venue made by itself (not an answer to a request)."""

    client_order_id: str
    order_id: str
    status: OrderStatus
    timestamp: int
    reason: str | None = None


Report = Fill | OrderUpdate


@dataclass(frozen=True, slots=True)
class ReportDue:
    """When a venue's next report can come if no request comes first: at event time `at` or
    after it (None: no time), or at the next quote of one of `instruments` (orders resting there)."""

    at: int | None = None
    instruments: frozenset[str] = frozenset()

    def allows(self, now: int, instrument: str | None) -> bool:
        """A report may be there at event time `now`, at a quote of `instrument` (None: no quote)."""
        return (self.at is not None and now >= self.at) or instrument in self.instruments


def forgotten(client_order_id: str) -> VenueReply:
    """The answer about an order placed before and no longer held: a repeat places nothing."""
    return VenueReply(client_order_id, OrderStatus.REJECTED,
                      reason="DUPLICATE_ORDER: placed before, finished, and no longer held", duplicate=True)


@runtime_checkable
class VenueAdapter(Protocol):
    def place(self, request: OrderRequest) -> VenueReply: ...

    def cancel(self, client_order_id: str, timestamp: int) -> VenueReply: ...

    def query(self, client_order_id: str) -> VenueReply | None: ...

    def reports(self) -> list[Report]: ...
