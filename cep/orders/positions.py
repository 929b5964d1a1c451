"""Positions and the risk manager: what the fills add up to, and when to stop trading.

A `Position` nets one instrument's fills with average cost: a fill on the side of the position
adds to it at a new average cost; a fill against it realizes `(price - average cost) * closed`
and leaves the average cost as it was; a fill larger than the position closes it and opens the
other side at the fill's price. Unrealized PnL is marked where the position could be closed: at
the bid when long, at the ask when short (marking to the mid would show a profit the spread
takes away).

The `RiskManager` watches equity (realized plus unrealized) after every fill and quote: its peak,
the drawdown from that peak, and the PnL since the start of the UTC day (in event time, so a
replay decides as the live run did). Crossing `max_drawdown` or `daily_loss_limit` escalates the
trading state (by default to REDUCING and to HALTED). It never de-escalates by itself: a desk
that hit its loss limit stays stopped until a person says otherwise (`set_state`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cep.events import Action, OrderEvent, TickEvent
from cep.orders.risk import TradingState

DAY_NS = 86_400 * 1_000_000_000
FLAT_TOLERANCE = 1e-9
SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(slots=True)
class Position:
    """One instrument's net quantity (negative: short), its average cost and realized PnL."""

    instrument: str
    quantity: float = 0.0
    average_cost: float = 0.0
    realized: float = 0.0

    def apply(self, side: Action | str, quantity: float, price: float) -> None:
        if not (0 < quantity < math.inf and 0 < price < math.inf):
            raise ValueError(f"a fill needs a quantity and a price above 0, got {quantity!r} at {price!r}")
        signed = quantity if Action(side) is Action.BUY else -quantity
        if self.quantity * signed >= 0:  # flat, or adding to the position
            held = abs(self.quantity)
            self.average_cost = (held * self.average_cost + quantity * price) / (held + quantity)
            self.quantity += signed
            return
        closed = min(quantity, abs(self.quantity))
        direction = 1 if self.quantity > 0 else -1
        self.realized += closed * (price - self.average_cost) * direction
        left = self.quantity + signed
        if abs(left) <= FLAT_TOLERANCE * max(quantity, abs(self.quantity)):
            self.quantity, self.average_cost = 0.0, 0.0
        elif left * direction < 0:  # went through flat: the rest opens the other side
            self.quantity, self.average_cost = left, price
        else:
            self.quantity = left

    def mark_price(self, quote: TickEvent) -> float:
        return quote.bid_price if self.quantity > 0 else quote.ask_price

    def unrealized(self, quote: TickEvent | None) -> float:
        if not self.quantity or quote is None:
            return 0.0
        return (self.mark_price(quote) - self.average_cost) * self.quantity

    def exposure(self, quote: TickEvent | None) -> float:
        price = self.average_cost if quote is None else self.mark_price(quote)
        return abs(self.quantity) * price


class PositionBook:
    """Every instrument's position and its latest quote (the mark). The realized total and each
    position's unrealized PnL are kept up to date as fills and quotes come, so a quote costs its
    own instrument's revaluation, not every position's."""

    def __init__(self) -> None:
        self._positions: dict[str, Position] = {}
        self._marks: dict[str, TickEvent] = {}
        self._unrealized: dict[str, float] = {}
        self._realized = 0.0

    def apply_fill(self, instrument: str, side: Action | str, quantity: float, price: float) -> None:
        position = self._positions.get(instrument)
        if position is None:
            position = self._positions[instrument] = Position(instrument)
        position.apply(side, quantity, price)
        self._realized = sum(p.realized for p in self._positions.values())
        self._unrealized[instrument] = position.unrealized(self._marks.get(instrument))

    def apply_event(self, event: OrderEvent) -> bool:
        """Take the fill an OrderEvent reports; False when it reports none."""
        if not event.fill_quantity:
            return False
        self.apply_fill(event.instrument, event.side, event.fill_quantity, event.fill_price)
        return True

    def mark(self, quote: TickEvent) -> None:
        self._marks[quote.instrument] = quote
        position = self._positions.get(quote.instrument)
        if position is not None:
            self._unrealized[quote.instrument] = position.unrealized(quote)

    def position(self, instrument: str) -> Position:
        return self._positions.get(instrument) or Position(instrument)

    def positions(self) -> list[Position]:
        return [self._positions[name] for name in sorted(self._positions)]

    def realized(self) -> float:
        return self._realized

    def unrealized(self) -> float:
        return sum(self._unrealized.values())

    def snapshot(self) -> list[dict[str, Any]]:
        """Each position as plain data, marked at its instrument's latest quote: `mark` is the
        price it is marked at (the bid when long, the ask when short; None when flat or before a
        quote), `marked_at` that quote's event time."""
        rows = []
        for p in self.positions():
            quote = self._marks.get(p.instrument)
            rows.append({"instrument": p.instrument, "quantity": p.quantity, "average_cost": p.average_cost,
                         "realized": p.realized, "unrealized": p.unrealized(quote), "exposure": p.exposure(quote),
                         "mark": p.mark_price(quote) if quote is not None and p.quantity else None,
                         "marked_at": None if quote is None else quote.timestamp})
        return rows


class RiskManager:
    """Positions plus equity watch: `on_event` for OrderEvents, `on_quote` for quotes; `state` is
    what the executor obeys."""

    def __init__(self, *, max_drawdown: float | None = None, daily_loss_limit: float | None = None,
                 drawdown_state: TradingState = TradingState.REDUCING,
                 daily_loss_state: TradingState = TradingState.HALTED, starting_equity: float = 0.0) -> None:
        self.book = PositionBook()
        self.max_drawdown, self.daily_loss_limit = max_drawdown, daily_loss_limit
        self.drawdown_state, self.daily_loss_state = drawdown_state, daily_loss_state
        self.starting_equity = starting_equity
        self.state = TradingState.ACTIVE
        self.equity = self.peak_equity = self._day_start_equity = starting_equity
        self._day: int | None = None

    @property
    def drawdown(self) -> float:
        return self.peak_equity - self.equity

    @property
    def daily_pnl(self) -> float:
        return self.equity - self._day_start_equity

    def on_event(self, event: OrderEvent) -> None:
        if self.book.apply_event(event):
            self._evaluate(event.timestamp)

    def on_quote(self, quote: TickEvent) -> None:
        self.book.mark(quote)
        if self.book.position(quote.instrument).quantity:
            self._evaluate(quote.timestamp)

    def set_state(self, state: TradingState) -> None:
        """By hand: the only way back to ACTIVE after a limit was crossed."""
        self.state = TradingState(state)

    def _evaluate(self, timestamp: int) -> None:
        day = timestamp // DAY_NS
        if day != self._day:
            self._day, self._day_start_equity = day, self.equity
        self.equity = self.starting_equity + self.book.realized() + self.book.unrealized()
        self.peak_equity = max(self.peak_equity, self.equity)
        if self.max_drawdown is not None and self.drawdown > self.max_drawdown:
            self._escalate(self.drawdown_state)
        if self.daily_loss_limit is not None and -self.daily_pnl >= self.daily_loss_limit:
            self._escalate(self.daily_loss_state)

    def _escalate(self, state: TradingState) -> None:
        if SEVERITY[state] > SEVERITY[self.state]:
            self.state = state
