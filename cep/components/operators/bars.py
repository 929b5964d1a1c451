"""`bars`: OHLC bars per key from ticks in event time."""
from __future__ import annotations

from pydantic import Field
from typing_extensions import TypedDict

from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.common import Duration, Expr, ExpressionUse, OpParams, compiled
from cep.components.operators.keyed import period_flow
from cep.durations import parse_duration
from cep.events import Record
from cep.plugins.markers import operator

MID = "(bid_price + ask_price) / 2"
BAR_FIELDS = ("timestamp", "bar_start", "bar_end", "open", "high", "low", "close", "ticks")


class Bar(TypedDict):
    """A bar record (its fields in `BAR_FIELDS` order), and the schema of a checkpointed one."""

    timestamp: int
    bar_start: int
    bar_end: int
    open: float
    high: float
    low: float
    close: float
    ticks: int


class BarBuilder:
    """One key's bar in progress: bars are `[start, start + period)` with `start` a multiple of
    `period` (epoch-aligned, UTC). Periods without a tick make no bar.

    A bar record: `{timestamp: bar_end - 1, bar_start, bar_end, open, high, low, close, ticks}`.
    """

    __slots__ = ("period", "bar")
    DATA = Bar | None
    """The checkpointed state: the bar in progress (the period comes from the params)."""

    def __init__(self, period: int):
        self.period = period
        self.bar: Record | None = None

    def to_data(self) -> Record | None:
        return self.bar

    def load(self, bar: Bar | None) -> None:
        self.bar = dict(bar) if bar is not None else None

    def is_late(self, timestamp: int) -> bool:
        """True for a tick older than the bar in progress (it would reopen a closed period)."""
        return self.bar is not None and timestamp < self.bar["bar_start"]

    def add(self, timestamp: int, price: float) -> Record | None:
        """Add a tick (not late); returns the bar it closes, if it starts a new period."""
        bar = self.bar
        if bar is not None and timestamp < bar["bar_end"]:
            if price > bar["high"]:
                bar["high"] = price
            elif price < bar["low"]:
                bar["low"] = price
            bar["close"] = price
            bar["ticks"] += 1
            return None
        start = timestamp - timestamp % self.period
        end = start + self.period
        self.bar = {"timestamp": end - 1, "bar_start": start, "bar_end": end, "open": price,
                    "high": price, "low": price, "close": price, "ticks": 1}
        return bar

    def flush(self) -> Record | None:
        """The bar in progress (end of stream), after which the builder is empty."""
        bar, self.bar = self.bar, None
        return bar


class BarsParams(OpParams):
    period: Duration = Field(description="bar length in event time, e.g. 1m; bars align to multiples of it")
    price: Expr = Field(MID, description="expression whose value the bar tracks (default: the mid)")

    def expressions(self, fields, key=None):
        yield ExpressionUse("price", self.price, (), fields)

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return frozenset({*BAR_FIELDS, *([key] if key else [])})


@operator("bars", params=BarsParams, state="keyed", shorthand="period", checkpoint=True)
def bars(params: BarsParams, ctx: BuildContext) -> BatchOperator:
    """OHLC bars per key from ticks, in event time.

    Bars are `[bar_start, bar_end)` with `bar_start` a multiple of `period` since the epoch (UTC),
    priced by `price` (default the mid). A bar is emitted when a tick of its key at or past its
    end arrives, or at end of stream; a period without ticks makes no bar. Each bar:
    `{key, timestamp: bar_end - 1, bar_start, bar_end, open, high, low, close, ticks}`. A tick
    older than its key's bar in progress is late: dropped and counted; a tick whose price cannot
    be computed is dead-lettered.

        ops:
          - key_by: instrument
          - bars: {period: 1m, price: "bid_price"}

        in:   --10(0s)--12(20s)--9(40s)----11(61s)--|
        out:  -----------------------------{o10 h12 l9 c9}--{o11 h11 l11 c11}|
    """
    period = parse_duration(params.period)
    return period_flow(ctx, lambda: BarBuilder(period), BarBuilder.DATA, compiled(params.price))
