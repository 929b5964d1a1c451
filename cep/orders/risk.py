"""Pre-trade risk: what an order executor checks before a signal becomes an order.

Every check is a small function of the signal, the `Exposure` (what the book looks like now: the
trading state, the instrument's latest quote, the position, the working orders, the day's PnL)
and the limits; they run in a fixed order and the first that fails denies the signal with its
`Deny` code and a detail saying what was wrong. Why that shape: a denial must be explainable
(the code goes into the OrderEvent and the dead-letter file), the checks must be testable one by
one, and their order is part of the contract (a HALTED desk says HALTED, not MAX_NOTIONAL).

The signal is taken as the record it arrives as, not as a `TradingSignal`: input from another
process is not trusted, so a missing field, a NaN, an infinite or negative quantity, a confidence
outside 0..1 is a denial with a reason, never an exception.

State kept here is only what the checks themselves need to remember: the signal ids seen (a
redelivered signal never becomes a second order) and the times of recent orders (the rate
window, in event time so a replay decides as the live run did).
"""
from __future__ import annotations

import hashlib
import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping

from cep.events import Action, TickEvent

SECOND_NS = 1_000_000_000


class TradingState(str, Enum):
    """ACTIVE trades; REDUCING only lets through orders that shrink a position; HALTED nothing.
    The risk manager escalates it when a loss limit is crossed; a person may set it too."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Deny(str, Enum):
    """Why a signal did not become an order."""

    BAD_SIGNAL = "BAD_SIGNAL"
    BAD_QUANTITY = "BAD_QUANTITY"
    BAD_PRICE = "BAD_PRICE"
    BAD_CONFIDENCE = "BAD_CONFIDENCE"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    STALE_SIGNAL = "STALE_SIGNAL"
    HALTED = "HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    DUPLICATE_SIGNAL = "DUPLICATE_SIGNAL"
    QUANTITY_BELOW_MIN = "QUANTITY_BELOW_MIN"
    QUANTITY_ABOVE_MAX = "QUANTITY_ABOVE_MAX"
    LOT_SIZE = "LOT_SIZE"
    STALE_QUOTE = "STALE_QUOTE"
    CROSSED_QUOTE = "CROSSED_QUOTE"
    WIDE_SPREAD = "WIDE_SPREAD"
    PRICE_BAND = "PRICE_BAND"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    MAX_POSITION = "MAX_POSITION"
    MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
    ORDER_RATE = "ORDER_RATE"
    DAILY_LOSS = "DAILY_LOSS"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"


@dataclass(frozen=True, slots=True)
class Denial:
    code: Deny
    detail: str

    def __str__(self) -> str:
        return f"{self.code.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits, each off when None (or infinite). Spread and price band are fractions of the
    mid (0.001 = 0.1%); ages and the rate window are nanoseconds of event time; `max_position`
    bounds the absolute position per instrument; `instruments`, when given, is the only set
    traded."""

    min_quantity: float = 0.0
    max_quantity: float = math.inf
    lot_size: float | None = None
    max_signal_age_ns: int | None = None
    max_quote_age_ns: int | None = None
    max_spread: float | None = None
    price_band: float | None = None
    max_notional: float = math.inf
    max_position: float = math.inf
    max_open_orders: int | None = None
    max_orders: int | None = None
    rate_window_ns: int = SECOND_NS
    daily_loss_limit: float | None = None
    instruments: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in ("max_quantity", "lot_size", "max_signal_age_ns", "max_quote_age_ns", "max_spread",
                     "price_band", "max_notional", "max_position", "max_orders", "rate_window_ns",
                     "daily_loss_limit"):
            value = getattr(self, name)
            if value is not None and not (value > 0):  # NaN fails too
                raise ValueError(f"{name} must be above 0, got {value}")
        if not 0 <= self.min_quantity <= self.max_quantity:
            raise ValueError(f"min_quantity must be within 0..max_quantity, got {self.min_quantity}")
        if self.max_open_orders is not None and self.max_open_orders < 0:
            raise ValueError(f"max_open_orders must be 0 or more, got {self.max_open_orders}")


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the checks need to know about the book for one instrument at decision time."""

    state: TradingState
    quote: TickEvent | None
    position: float
    working_buy: float
    working_sell: float
    open_orders: int
    daily_pnl: float


@dataclass(frozen=True, slots=True)
class Signal:
    """The fields of a signal record the checks use, validated."""

    signal_id: str
    timestamp: int
    side: Action
    instrument: str
    trigger_price: float
    quantity: float

    @property
    def sign(self) -> int:
        return 1 if self.side is Action.BUY else -1


def client_order_id_for(signal_id: str) -> str:
    """The one client order id of the order for `signal_id`: a redelivered or retried signal maps
    to the same id, which the venue deduplicates by. A hash, so it fits venues' limits (32
    characters of [a-z0-9-]) whatever the signal id looks like."""
    return "cep-" + hashlib.blake2b(signal_id.encode("utf-8", "surrogatepass"), digest_size=14).hexdigest()


class PreTradeRisk:
    """`check(record, exposure, now)` -> a `Denial`, or None when the signal may become an
    order; call `record_order(now)` when it does (the rate window counts orders sent)."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._seen: set[str] = set()
        self._recent: deque[int] = deque()

    def check(self, record: Mapping[str, Any], exposure: Exposure | Callable[[str], Exposure],
              now: int) -> Denial | None:
        """Why `record` may not become an order, or None. `exposure` is the book as the checks
        see it, or a function of the instrument giving it (built only for a readable signal)."""
        return self.decide(record, exposure, now)[1]

    def decide(self, record: Mapping[str, Any], exposure: Exposure | Callable[[str], Exposure],
               now: int) -> tuple[Signal | None, Denial | None]:
        """The signal read from `record` (None if unreadable) and the denial, if any."""
        signal = read_signal(record)
        if isinstance(signal, Denial):
            return None, signal
        book = exposure(signal.instrument) if callable(exposure) else exposure
        for check in CHECKS:
            denial = check(self, signal, book, now)
            if denial is not None:
                return signal, denial
        return signal, None

    def record_order(self, now: int) -> None:
        self._recent.append(now)

    def _duplicate(self, signal: Signal) -> bool:
        """True if seen before; remembers it either way (whatever its first verdict was, a
        signal decided once is not decided again)."""
        if signal.signal_id in self._seen:
            return True
        self._seen.add(signal.signal_id)
        return False

    def _orders_in_window(self, now: int) -> int:
        while self._recent and self._recent[0] <= now - self.limits.rate_window_ns:
            self._recent.popleft()
        return len(self._recent)


def read_signal(record: Mapping[str, Any]) -> Signal | Denial:
    """The signal in `record`, or why it cannot be read (BAD_* codes)."""
    signal_id, timestamp, instrument = record.get("signal_id"), record.get("timestamp"), record.get("instrument")
    if not (isinstance(signal_id, str) and signal_id and isinstance(timestamp, int)
            and not isinstance(timestamp, bool) and isinstance(instrument, str)
            and record.get("action") in (Action.BUY.value, Action.SELL.value)):
        return Denial(Deny.BAD_SIGNAL, "needs a signal_id, an integer timestamp, an instrument and "
                                       "an action of BUY or SELL")
    quantity, price, confidence = (record.get(name) for name in ("quantity", "trigger_price", "confidence"))
    if not _positive_number(quantity):
        return Denial(Deny.BAD_QUANTITY, f"quantity must be a finite number above 0, got {quantity!r}")
    if not _positive_number(price):
        return Denial(Deny.BAD_PRICE, f"trigger_price must be a finite number above 0, got {price!r}")
    if not (_number(confidence) and 0.0 <= confidence <= 1.0):
        return Denial(Deny.BAD_CONFIDENCE, f"confidence must be within 0..1, got {confidence!r}")
    return Signal(signal_id, timestamp, Action(record["action"]), instrument, float(price), float(quantity))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_number(value: Any) -> bool:
    return _number(value) and value > 0


Check = Callable[[PreTradeRisk, Signal, Exposure, int], "Denial | None"]


def _instrument(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    instruments = risk.limits.instruments
    if instruments is not None and signal.instrument not in instruments:
        return Denial(Deny.UNKNOWN_INSTRUMENT, f"{signal.instrument!r} is not traded here")
    return None


def _signal_age(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    limit = risk.limits.max_signal_age_ns
    if limit is not None and now - signal.timestamp > limit:
        return Denial(Deny.STALE_SIGNAL, f"signal is {(now - signal.timestamp) / 1e6:.3f} ms old, limit "
                                         f"{limit / 1e6:.3f} ms")
    return None


def _trading_state(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    if book.state is TradingState.HALTED:
        return Denial(Deny.HALTED, "trading is halted")
    if book.state is TradingState.REDUCING:
        working = book.working_buy if signal.side is Action.BUY else book.working_sell
        after = book.position + signal.sign * (working + signal.quantity)
        if book.position * signal.sign >= 0 or after * signal.sign > 0:
            return Denial(Deny.REDUCE_ONLY, f"reducing only: position {book.position:g}, this order "
                                            f"and working ones would make it {after:g}")
    return None


def _duplicate_signal(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    if risk._duplicate(signal):
        return Denial(Deny.DUPLICATE_SIGNAL, f"signal {signal.signal_id} was decided before")
    return None


def _quantity(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    limits, quantity = risk.limits, signal.quantity
    if quantity < limits.min_quantity:
        return Denial(Deny.QUANTITY_BELOW_MIN, f"quantity {quantity:g} < min_quantity {limits.min_quantity:g}")
    if quantity > limits.max_quantity:
        return Denial(Deny.QUANTITY_ABOVE_MAX, f"quantity {quantity:g} > max_quantity {limits.max_quantity:g}")
    if limits.lot_size is not None:
        lots = quantity / limits.lot_size
        if abs(lots - round(lots)) > 1e-9 * max(1.0, lots):
            return Denial(Deny.LOT_SIZE, f"quantity {quantity:g} is not a multiple of lot_size {limits.lot_size:g}")
    return None


def _quote(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    quote, limits = book.quote, risk.limits
    if quote is None:
        return Denial(Deny.UNKNOWN_INSTRUMENT, f"no quote for {signal.instrument} yet")
    if limits.max_quote_age_ns is not None and now - quote.timestamp > limits.max_quote_age_ns:
        return Denial(Deny.STALE_QUOTE, f"latest quote is {(now - quote.timestamp) / 1e6:.3f} ms old, "
                                        f"limit {limits.max_quote_age_ns / 1e6:.3f} ms")
    bid, ask = quote.bid_price, quote.ask_price
    if not (0 < bid < ask < math.inf):
        return Denial(Deny.CROSSED_QUOTE, f"bid {bid} ask {ask}")
    spread = (ask - bid) / ((ask + bid) / 2)
    if limits.max_spread is not None and spread > limits.max_spread:
        return Denial(Deny.WIDE_SPREAD, f"spread {spread:.6%} > max_spread {limits.max_spread:.6%}")
    return None


def _price_band(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    band = risk.limits.price_band
    mid = (book.quote.bid_price + book.quote.ask_price) / 2
    if band is not None and abs(signal.trigger_price - mid) > band * mid:
        return Denial(Deny.PRICE_BAND, f"trigger_price {signal.trigger_price:g} is more than "
                                       f"{band:.4%} from the mid {mid:g}")
    return None


def _notional(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    price = book.quote.ask_price if signal.side is Action.BUY else book.quote.bid_price
    notional = signal.quantity * price
    if notional > risk.limits.max_notional:
        return Denial(Deny.MAX_NOTIONAL, f"notional {notional:g} at {price:g} > max_notional "
                                         f"{risk.limits.max_notional:g}")
    return None


def _position(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    working = book.working_buy if signal.side is Action.BUY else book.working_sell
    worst = book.position + signal.sign * (working + signal.quantity)
    if abs(worst) > risk.limits.max_position:
        return Denial(Deny.MAX_POSITION, f"worst-case position {worst:g} (with working orders) exceeds "
                                         f"max_position {risk.limits.max_position:g}")
    return None


def _open_orders(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    limit = risk.limits.max_open_orders
    if limit is not None and book.open_orders >= limit:
        return Denial(Deny.MAX_OPEN_ORDERS, f"{book.open_orders} orders open, max_open_orders {limit}")
    return None


def _order_rate(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    limit = risk.limits.max_orders
    if limit is not None and risk._orders_in_window(now) >= limit:
        return Denial(Deny.ORDER_RATE, f"{limit} orders in the last {risk.limits.rate_window_ns / 1e9:g} s")
    return None


def _daily_loss(risk: PreTradeRisk, signal: Signal, book: Exposure, now: int) -> Denial | None:
    limit = risk.limits.daily_loss_limit
    if limit is not None and -book.daily_pnl >= limit:
        return Denial(Deny.DAILY_LOSS, f"today's PnL {book.daily_pnl:g} reached daily_loss_limit -{limit:g}")
    return None


CHECKS: tuple[Check, ...] = (_duplicate_signal, _instrument, _signal_age, _trading_state, _quantity, _quote, _price_band, _notional,
                             _position, _open_orders, _order_rate, _daily_loss)
"""The checks of a readable signal, in the order the first failure is reported. The duplicate
check comes first so that every readable signal is remembered, also one a HALTED desk denied."""
