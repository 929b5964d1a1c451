"""`swings`: fractal swing highs and lows per key over a stream of bars."""
from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import Field

from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.keyed import event_time, keyed, keyed_flow
from cep.components.operators.common import Expr, ExpressionUse, OpParams, compiled
from cep.events import Batch, Record
from cep.plugins.markers import operator

SWING_FIELDS = ("timestamp", "kind", "price", "bar_start")


class SwingDetector:
    """One key's last `2n + 1` bars, and the fractal test on the middle one.

    The middle bar is a swing high when its high is strictly greater than the high of each of the
    `n` bars before and the `n` bars after it; a swing low symmetrically with lows. Ties are not
    swings: a top made of two bars with equal highs marks neither. One bar can be both (an outside
    bar); the high is reported first. Bars are taken in arrival order; gaps in time between them
    (periods without ticks) do not matter.
    """

    __slots__ = ("n", "window")
    DATA = list[tuple[float, float, Any]]
    """The checkpointed state: the bars in the window, `(high, low, bar_start)`."""

    def __init__(self, n: int):
        self.n = n
        self.window: deque[tuple[float, float, Any]] = deque(maxlen=2 * n + 1)

    def to_data(self) -> list[list]:
        return [list(bar) for bar in self.window]

    def load(self, bars: list[tuple[float, float, Any]]) -> None:
        self.window.clear()
        self.window.extend(bars)

    def add(self, timestamp: int, high: float, low: float, bar_start: Any = None) -> list[Record]:
        """Add a bar; the swings it confirms: `{timestamp: this bar's, kind: high|low, price,
        bar_start: the swing bar's}`."""
        self.window.append((float(high), float(low), bar_start))
        if len(self.window) < self.window.maxlen:  # type: ignore[operator]
            return []
        top, bottom, start = self.window[self.n]
        others = [bar for i, bar in enumerate(self.window) if i != self.n]
        swings = []
        if all(top > bar[0] for bar in others):
            swings.append({"timestamp": timestamp, "kind": "high", "price": top, "bar_start": start})
        if all(bottom < bar[1] for bar in others):
            swings.append({"timestamp": timestamp, "kind": "low", "price": bottom, "bar_start": start})
        return swings


class SwingsParams(OpParams):
    n: int = Field(2, ge=1, description="bars each side of a swing bar")
    high: Expr = Field("high", description="a bar's high (default: the field of `bars`)")
    low: Expr = Field("low", description="a bar's low (default: the field of `bars`)")

    def expressions(self, fields, key=None):
        yield ExpressionUse("high", self.high, (), fields)
        yield ExpressionUse("low", self.low, (), fields)

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return frozenset({*SWING_FIELDS, *([key] if key else [])})


@operator("swings", params=SwingsParams, state="keyed", shorthand="n", checkpoint=True)
def swings(params: SwingsParams, ctx: BuildContext) -> BatchOperator:
    """Fractal swing highs and lows per key over bars (the output of `bars`).

    A bar's high and low are the expressions `high` and `low` (default: the fields of `bars`; any
    record stream works, e.g. `high: ask_price` over ticks). A bar is a swing high when its high
    is strictly greater than the highs of the `n` bars before and after it (equal highs make no
    swing), a swing low symmetrically. A swing is emitted when confirmed, at the `n`-th bar after
    it: `{key, timestamp: the confirming bar's, kind: high|low, price, bar_start: the swing bar's,
    None if the input has no such field}`. Swings still unconfirmed at end of stream are not
    emitted. A bar without a numeric high/low is dead-lettered.

        ops:
          - bars: 1m
          - swings: {n: 1}

        in:   --high 10--high 12--high 11--|       (n = 1, lows rising)
        out:  ---------------------{high 12}--|
    """
    n = params.n
    high_of, low_of = compiled(params.high), compiled(params.low)
    key_field = ctx.key

    def on_bar(key: Any, detector: SwingDetector, bar: Record, out: Batch) -> None:
        high, low = float(high_of(bar)), float(low_of(bar))
        for swing in detector.add(event_time(bar), high, low, bar.get("bar_start")):
            out.append(keyed(key_field, key, swing))

    return keyed_flow(ctx, lambda: SwingDetector(n), SwingDetector.DATA, on_bar)
