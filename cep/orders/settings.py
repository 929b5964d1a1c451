"""What an `orders:` entry of a pipeline says, validated: the executor's risk limits, its circuit
breaker and how it talks to its venue.

```yaml
orders:
  exec:
    from: [up5, breakout]        # the signals it executes
    venue: paper                 # a `venues:` entry
    quotes: quotes               # what its checks price against (default: the venue's quotes)
    risk: {max_quantity: 1, max_notional: 250000, max_position: 2, max_open_orders: 10,
           price_band: 0.5%, max_spread: 0.1%, orders_per_second: 20, daily_loss_limit: 5000}
    breaker: {failures: 5, reset_after: 10s}
    request: {timeout: 250ms, retries: 3}
```

Percentages read `0.5%` or a fraction (`0.005`); durations `500ms`, `2s`. Every limit is off
unless written. The model turns into the core's types (`RiskLimits`, `CircuitBreaker`) with
`limits()`; the loader reports a mistake at its key with the line, as for any component.
"""
from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveFloat, PositiveInt, WithJsonSchema

from cep.durations import parse_duration
from cep.orders.risk import SECOND_NS, RiskLimits, TradingState


def _fraction(value: object) -> object:
    """`0.5%` -> 0.005; a number is taken as a fraction already."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a percentage such as 0.5% or a fraction such as 0.005, "
                             f"got {value!r}") from None
    return value


def _duration_ns(value: object) -> object:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return parse_duration(value)
    return value


Fraction = Annotated[PositiveFloat, BeforeValidator(_fraction), WithJsonSchema(
    {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.]+\s*%\s*$"}],
     "description": "a percentage (0.5%) or a fraction (0.005)"})]
DurationNs = Annotated[PositiveInt, BeforeValidator(_duration_ns), WithJsonSchema(
    {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}],
     "description": "a duration: 500ms, 2s, 1m, or seconds"})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskSettings(_Strict):
    """Pre-trade limits (`cep.orders.risk`) and the loss limits that stop trading."""

    min_quantity: float = Field(0.0, ge=0, description="smallest order quantity")
    max_quantity: PositiveFloat | None = Field(None, description="largest order quantity")
    lot_size: PositiveFloat | None = Field(None, description="quantities must be multiples of it")
    max_notional: PositiveFloat | None = Field(None, description="quantity x price (ask for BUY, bid for SELL)")
    max_position: PositiveFloat | None = Field(None, description="absolute position per instrument, "
                                                                 "counting working orders")
    max_open_orders: int | None = Field(None, ge=0, description="working orders at once")
    price_band: Fraction | None = Field(None, description="trigger price at most this far from the mid")
    max_spread: Fraction | None = Field(None, description="quotes with a wider spread are not traded")
    orders_per_second: PositiveInt | None = Field(None, description="orders sent in any 1 s of event time")
    max_signal_age: DurationNs | None = Field(None, description="signals older than this are denied")
    max_quote_age: DurationNs | None = Field(None, description="quotes older than this are not traded on")
    daily_loss_limit: PositiveFloat | None = Field(None, description="a day's loss that HALTs trading")
    max_drawdown: PositiveFloat | None = Field(None, description="a drawdown from peak equity that "
                                                                 "switches to REDUCING")
    instruments: tuple[str, ...] | None = Field(None, description="the only instruments traded")

    def limits(self) -> RiskLimits:
        return RiskLimits(
            min_quantity=self.min_quantity, max_quantity=self.max_quantity or math.inf,
            lot_size=self.lot_size, max_signal_age_ns=self.max_signal_age,
            max_quote_age_ns=self.max_quote_age, max_spread=self.max_spread, price_band=self.price_band,
            max_notional=self.max_notional or math.inf, max_position=self.max_position or math.inf,
            max_open_orders=self.max_open_orders, max_orders=self.orders_per_second,
            rate_window_ns=SECOND_NS, daily_loss_limit=self.daily_loss_limit,
            instruments=frozenset(self.instruments) if self.instruments is not None else None)


class BreakerSettings(_Strict):
    """The circuit breaker in front of the venue (`cep.orders.breaker`)."""

    failures: PositiveInt = Field(5, description="venue failures in a row that open it")
    reset_after: DurationNs = Field(10 * SECOND_NS, description="how long it stays open before a probe")


class RequestSettings(_Strict):
    """Each request to the venue: how long to wait for the reply, how often to send it again
    (with the same client order id, so the venue never takes it twice)."""

    timeout: DurationNs = Field(250_000_000, description="wait this long for each reply")
    retries: int = Field(3, ge=0, le=100, description="send a request again this often before failing")


class ExecutorSettings(_Strict):
    """An `orders:` entry without its envelope (`from`, `venue`, `quotes`)."""

    risk: RiskSettings = RiskSettings()
    breaker: BreakerSettings = BreakerSettings()
    request: RequestSettings = RequestSettings()
    trading_state: TradingState = Field(TradingState.ACTIVE, description="the state it starts in")
