"""The domain events (DESIGN §2) and the record they travel as.

Inside the engine every event is a *record*: a plain `dict` of field name to value, which is what
operators, rules, sinks and expressions see; a stream may add derived fields (`mid`) to a record
without a new class. On the hot path the runtime carries records of one layout as rows instead
(`cep.rows.Rows`), and turns them into dicts for any component that has not said it takes rows. The classes here give the domain meaning of the known
shapes: construct them, convert with `to_record()` / `from_record()`, and use their methods.

Timestamps are integer nanoseconds since the Unix epoch, UTC. Volumes may be `None` (the source
publishes no sizes, e.g. Oanda FX quotes) or fractional (crypto base-asset sizes).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Mapping

Record = dict[str, Any]
"""One event plus any derived fields, as it flows between operators."""

Batch = list[Record]
"""Records travel in batches; every operator and sink handles a batch at a time."""


class Action(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class OrderStatus(str, Enum):
    """States of an order; `TRANSITIONS` says which moves are legal.

    The executor's path is NEW -> SUBMITTED -> ACCEPTED -> PARTIALLY_FILLED -> FILLED; DENIED is
    its own pre-trade refusal (the order never left), REJECTED the venue's, EXPIRED a remainder the
    venue let lapse. NEW -> ACCEPTED is an order seen from the venue's side, where there is no
    submit hop.
    """

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"

    def can_become(self, other: "OrderStatus") -> bool:
        return other in TRANSITIONS[self]

    @property
    def is_final(self) -> bool:
        return not TRANSITIONS[self]


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.SUBMITTED, OrderStatus.DENIED, OrderStatus.ACCEPTED,
                                OrderStatus.REJECTED, OrderStatus.CANCELED}),
    OrderStatus.SUBMITTED: frozenset({OrderStatus.ACCEPTED, OrderStatus.REJECTED, OrderStatus.CANCELED,
                                      OrderStatus.EXPIRED}),
    OrderStatus.ACCEPTED: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
                                     OrderStatus.CANCELED, OrderStatus.EXPIRED}),
    OrderStatus.PARTIALLY_FILLED: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
                                             OrderStatus.CANCELED, OrderStatus.EXPIRED}),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.DENIED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class _RecordConvertible:
    """Conversion between a dataclass event and its record form (enums as their string value)."""

    def to_record(self) -> Record:
        """The fields as a dict, in order, enums as their values. Events are flat, so no deep copy
        (`dataclasses.asdict`'s was a third of an order executor's time per event)."""
        record = {name: getattr(self, name) for name in self._field_names()}
        for name, value in record.items():
            if isinstance(value, Enum):
                record[name] = value.value
        return record

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        names = cls.__dict__.get("_names")
        if names is None:
            names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
            setattr(cls, "_names", names)
        return names

    @classmethod
    def from_record(cls, record: Mapping[str, Any]):
        """Build the event from a record, ignoring derived fields it does not declare."""
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        return cls(**{name: record[name] for name in names if name in record})


@dataclass(frozen=True, slots=True)
class TickEvent(_RecordConvertible):
    """Top of book for one instrument at one instant."""

    timestamp: int
    instrument: str
    bid_price: float
    ask_price: float
    bid_volume: float | None = None
    ask_volume: float | None = None

    FIELDS = ("timestamp", "instrument", "bid_price", "ask_price", "bid_volume", "ask_volume")

    def spread(self) -> float:
        return self.ask_price - self.bid_price


@dataclass(frozen=True, slots=True)
class TradingSignal(_RecordConvertible):
    """A rule's decision to trade; `signal_id` is deterministic so downstream can dedupe."""

    signal_id: str
    timestamp: int
    action: Action
    instrument: str
    trigger_price: float
    quantity: float
    strategy_name: str
    confidence: float

    FIELDS = ("signal_id", "timestamp", "action", "instrument", "trigger_price", "quantity",
              "strategy_name", "confidence")

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")

    def is_high_confidence(self) -> bool:
        return self.confidence > 0.8


@dataclass(frozen=True, slots=True)
class OrderEvent(_RecordConvertible):
    """What happened to the order placed for a signal: one event per step of its lifecycle.

    `filled_quantity` is the cumulative quantity filled so far; `fill_price`, `fill_quantity` and
    `fill_id` describe the fill this event reports (None / 0 when it reports none);
    `average_price` is the quantity-weighted price of all fills so far. `order_id` is the venue's
    id (empty until the venue accepted the order); `client_order_id` is ours, derived from the
    signal, and what the venue deduplicates by. `sequence` numbers the events of one order from
    1, so a consumer can drop a replayed event and see a missing one. `timestamp` is event time.
    """

    order_id: str
    signal_id: str
    status: OrderStatus
    filled_quantity: float
    fill_price: float | None
    timestamp: int
    client_order_id: str = ""
    instrument: str = ""
    side: Action | None = None
    quantity: float = 0.0
    fill_quantity: float = 0.0
    fill_id: str | None = None
    average_price: float | None = None
    remaining_quantity: float = 0.0
    reason: str | None = None
    sequence: int = 0

    FIELDS = ("order_id", "signal_id", "status", "filled_quantity", "fill_price", "timestamp",
              "client_order_id", "instrument", "side", "quantity", "fill_quantity", "fill_id",
              "average_price", "remaining_quantity", "reason", "sequence")

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", OrderStatus(self.status))
        if self.side is not None:
            object.__setattr__(self, "side", Action(self.side))

    def is_fully_filled(self) -> bool:
        return self.status is OrderStatus.FILLED
