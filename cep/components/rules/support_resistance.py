"""The built-in `support_resistance` rule: trade breakouts through, and bounces off, price levels
found from swing highs and lows (bars -> swings -> levels, per key, in event time)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.bars import BarBuilder
from cep.components.operators.keyed import event_time, keyed_flow
from cep.components.operators.common import Duration
from cep.components.operators.levels import Level, LevelTable, ToleranceParams
from cep.components.operators.swings import SwingDetector
from cep.components.state import InvalidState
from cep.durations import parse_duration
from cep.events import Batch, Record, TradingSignal
from cep.plugins.markers import rule

KINDS = {"breakout_up": "BUY", "breakout_down": "SELL", "bounce": "BUY", "rejection": "SELL"}
"""Signal kinds in the order they are emitted within one tick, with their action."""


class SupportResistanceParams(ToleranceParams):
    """Levels from fractal swings over event-time bars; signals on breakouts and bounces."""

    period: Duration = Field("1m", description="bar length")
    n: int = Field(2, ge=1, description="bars each side of a swing bar")
    max_levels: int = Field(50, ge=1, description="levels kept per key; the stalest is evicted")
    min_touches: int = Field(2, ge=1, description="swings a level needs before it can signal")
    confirm_ticks: int = Field(3, ge=1, description="consecutive ticks beyond the band that "
                                                    "confirm a breakout")
    bounce_bps: float = Field(5.0, gt=0, description="move away from a touched level, in basis "
                                                     "points of its price, that makes a bounce")
    cooldown: Duration = Field("5m", description="quiet time per (key, level, kind) after a signal")
    recency_half_life: Duration = Field("1h", description="age of a level's last touch that "
                                                          "halves its recency score")
    quantity: float = Field(1.0, gt=0, description="quantity of every signal")
    strategy_name: str | None = Field(None, description="strategy_name of the signals "
                                                        "(default: the rule's id)")


def confidence(touches: int, age: int, half_life: int, distance: float, threshold: float) -> float:
    """How much to trust a signal, in [0, 1]: `0.5 * touches/(touches + 2)` (more swings at the
    level, more trust) `+ 0.25 * 0.5 ** (age / half_life)` (age of the level's last touch)
    `+ 0.25 * distance / (distance + threshold)` (how far price went past the signal's threshold:
    the band for a breakout, the bounce distance for a bounce; exactly at it scores 0.125).
    Rounded to 6 decimals so it reads the same in every output."""
    score = (0.5 * touches / (touches + 2) + 0.25 * 0.5 ** (max(age, 0) / half_life)
             + 0.25 * distance / (distance + threshold))
    return round(min(1.0, max(0.0, score)), 6)


class LevelWatch:
    """Where price stands against one level, tick by tick.

    `side` is the side of the band price last settled on (above or below; at creation, the side
    of the level the price is on, and for a price exactly at it, below a swing high's level and
    above a swing low's). From below: `confirm` consecutive ticks above the band are a
    breakout up, and the side flips; a tick back at or under the band's top resets the count (a
    failed probe). A tick inside the band is a touch; after a touch, price falling out of the
    band and at least `away` under the level is a rejection. From above, symmetrically: breakout
    down, and a bounce.
    """

    __slots__ = ("side", "run", "touched")
    DATA = tuple[Literal[1, -1], int, bool]
    """A watch as checkpointed: side, run, touched."""

    def __init__(self, above: bool):
        self.side = 1 if above else -1
        self.run = 0
        self.touched = False

    def to_data(self) -> list:
        return [self.side, self.run, self.touched]

    @classmethod
    def from_data(cls, data: tuple[int, int, bool]) -> "LevelWatch":
        watch = cls(above=True)
        watch.side, watch.run, watch.touched = data
        return watch

    def observe(self, mid: float, level: float, width: float, away: float, confirm: int) -> str | None:
        """The signal kind this tick makes at this level, if any."""
        side = self.side
        beyond = (mid - level) * -side  # > 0 on the far side of the level
        if beyond > width:
            self.run += 1
            if self.run < confirm:
                return None
            self.side, self.run, self.touched = -side, 0, False
            return "breakout_up" if side < 0 else "breakout_down"
        self.run = 0
        if beyond >= -width:
            self.touched = True
        elif self.touched and -beyond >= away:
            self.touched = False
            return "rejection" if side < 0 else "bounce"
        return None


class _KeyState:
    """One key's pipeline of pure state: bars -> swings -> levels, and a watch per level."""

    __slots__ = ("bars", "swings", "levels", "watches", "quiet_until")
    DATA = tuple[BarBuilder.DATA, SwingDetector.DATA, LevelTable.DATA, dict[int, LevelWatch.DATA],
                 dict[tuple[int, str], int]]
    """The checkpointed state: bars, swings, levels, the watch of each level, quiet times."""

    def __init__(self, params: SupportResistanceParams):
        self.bars = BarBuilder(parse_duration(params.period))
        self.swings = SwingDetector(params.n)
        self.levels = LevelTable(params.band(), params.max_levels)
        self.watches: dict[int, LevelWatch] = {}
        self.quiet_until: dict[tuple[int, str], int] = {}

    def to_data(self) -> list:
        return [self.bars.to_data(), self.swings.to_data(), self.levels.to_data(),
                {level: watch.to_data() for level, watch in self.watches.items()}, self.quiet_until]

    def load(self, data: tuple) -> None:
        bars, swings, levels, watches, self.quiet_until = data
        self.bars.load(bars)
        self.swings.load(swings)
        self.levels.load(levels)
        self.watches = {level: LevelWatch.from_data(watch) for level, watch in watches.items()}
        if self.watches.keys() != self.levels.levels.keys():
            raise InvalidState(f"watches of levels {sorted(self.watches)} for levels {sorted(self.levels.levels)}")

    def advance(self, timestamp: int, mid: float) -> None:
        """Feed a tick to the bars; a bar it closes may confirm swings, which update the levels."""
        bar = self.bars.add(timestamp, mid)
        if bar is None:
            return
        for swing in self.swings.add(bar["timestamp"], bar["high"], bar["low"], bar["bar_start"]):
            for change in self.levels.add(swing["timestamp"], swing["kind"], swing["price"]):
                level = change["level"]
                if change["change"] == "new":  # price at the level: a swing low is support
                    above = mid > change["price"] or (mid == change["price"] and swing["kind"] == "low")
                    self.watches[level] = LevelWatch(above=above)
                elif change["change"] == "evicted":
                    del self.watches[level]
                    for kind in KINDS:
                        self.quiet_until.pop((level, kind), None)


@rule("support_resistance", params=SupportResistanceParams, state="keyed",
      fields=TradingSignal.FIELDS, checkpoint=True)
def support_resistance(params: SupportResistanceParams, ctx: BuildContext) -> BatchOperator:
    """Support/resistance per key: BUY/SELL on confirmed breakouts and on bounces -> TradingSignal.

    Per key (the stream's partition key, usually the instrument), ticks priced at their `mid`
    field, else (bid_price + ask_price) / 2, make event-time bars of `period`; fractal swings with
    `n` bars each side (see the `swings` operator) are merged within the tolerance
    (`tolerance_bps`, default 5, or `tolerance`) into levels (see `levels`). A level with at least
    `min_touches` swings signals (see `LevelWatch`):
    - `breakout_up` BUY: price above the level's band for `confirm_ticks` consecutive ticks after
      being below it (a probe back into the band resets the count); `breakout_down` SELL likewise.
    - `rejection` SELL: price touched the band from below, then fell out of it by at least
      `bounce_bps` of the level's price; `bounce` BUY: the same from above.
    After a signal, the same (key, level, kind) is quiet for `cooldown`; suppressed signals are
    counted as dropped `cooldown`, and the level's state still moves. When several levels give the
    same kind on one tick, the one with the highest confidence signals and the others are counted
    as dropped `same_tick`. BUY triggers at the ask, SELL at the bid; `signal_id` is
    `node:key:timestamp:kind`; confidence: see `confidence()`. Ticks older than the key's bar in
    progress are dropped (`late`); a tick without prices is dead-lettered.
    """
    confirm, scale = params.confirm_ticks, params.bounce_bps / 1e4
    min_touches = params.min_touches
    cooldown, half_life = parse_duration(params.cooldown), parse_duration(params.recency_half_life)
    quantity, strategy, node = params.quantity, params.strategy_name or ctx.node, ctx.node
    width_of = params.band().width

    def on_tick(key: Any, state: _KeyState, record: Record, out: Batch) -> None:
        timestamp, bid, ask = event_time(record), record["bid_price"], record["ask_price"]
        mid = record.get("mid")
        mid = float((bid + ask) / 2 if mid is None else mid)
        if state.bars.is_late(timestamp):
            ctx.counters.drop("late")
            return
        state.advance(timestamp, mid)
        best: dict[str, tuple[float, int]] = {}
        for level in state.levels.levels.values():
            width = width_of(level.price)
            away = max(width, abs(level.price) * scale)
            kind = state.watches[level.id].observe(mid, level.price, width, away, confirm)
            if kind is None or level.touches < min_touches:
                continue
            if timestamp < state.quiet_until.get((level.id, kind), timestamp):
                ctx.counters.drop("cooldown")
                continue
            score = _score(level, kind, timestamp, mid, width, away, half_life)
            if kind in best:
                ctx.counters.drop("same_tick")
                if (score, -level.id) <= (best[kind][0], -best[kind][1]):
                    continue
            best[kind] = (score, level.id)
        for kind, action in KINDS.items():
            if kind in best:
                score, level_id = best[kind]
                state.quiet_until[(level_id, kind)] = timestamp + cooldown
                out.append({"signal_id": f"{node}:{key}:{timestamp}:{kind}", "timestamp": timestamp,
                            "action": action, "instrument": record.get("instrument", key),
                            "trigger_price": ask if action == "BUY" else bid,
                            "quantity": quantity, "strategy_name": strategy, "confidence": score})

    return keyed_flow(ctx, lambda: _KeyState(params), _KeyState.DATA, on_tick)


def _score(level: Level, kind: str, timestamp: int, mid: float, width: float, away: float,
           half_life: int) -> float:
    threshold = width if kind.startswith("breakout") else away
    return confidence(level.touches, timestamp - level.last_touch, half_life,
                      abs(mid - level.price), threshold)
