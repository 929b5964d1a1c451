"""`pivots`: classic floor-trader pivot points per key from the previous session's high/low/close."""
from __future__ import annotations

from pydantic import Field


from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.bars import MID
from cep.components.operators.keyed import period_flow
from cep.components.operators.common import Duration, Expr, ExpressionUse, OpParams, compiled
from cep.durations import parse_duration
from cep.events import Record
from cep.plugins.markers import operator

PIVOT_FIELDS = ("timestamp", "session_start", "session_end", "high", "low", "close",
                "pp", "r1", "r2", "r3", "s1", "s2", "s3")


def floor_pivots(high: float, low: float, close: float) -> dict[str, float]:
    """PP = (H + L + C) / 3; R1 = 2PP - L, S1 = 2PP - H; R2 = PP + (H - L), S2 = PP - (H - L);
    R3 = H + 2(PP - L), S3 = L - 2(H - PP)."""
    pp = (high + low + close) / 3
    return {"pp": pp, "r1": 2 * pp - low, "r2": pp + (high - low), "r3": high + 2 * (pp - low),
            "s1": 2 * pp - high, "s2": pp - (high - low), "s3": low - 2 * (high - pp)}


class SessionHLC:
    """One key's session in progress: its start and the high, low and last price seen in it."""

    __slots__ = ("length", "start", "high", "low", "close")
    DATA = tuple[int | None, float, float, float]
    """The checkpointed state: start, high, low, close (the length comes from the params)."""

    def __init__(self, length: int):
        self.length = length
        self.start: int | None = None
        self.high = self.low = self.close = 0.0

    def to_data(self) -> list:
        return [self.start, self.high, self.low, self.close]

    def load(self, data: tuple[int | None, float, float, float]) -> None:
        self.start, self.high, self.low, self.close = data

    def add(self, timestamp: int, price: float) -> Record | None:
        """Add a tick (not older than the session in progress); when it opens a new session, the
        pivots of that new session, computed from the one it ends."""
        if self.start is not None and timestamp < self.start + self.length:
            self.high, self.low, self.close = max(self.high, price), min(self.low, price), price
            return None
        pivots = self._roll(timestamp - timestamp % self.length)
        self.high = self.low = self.close = price
        return pivots

    def is_late(self, timestamp: int) -> bool:
        return self.start is not None and timestamp < self.start

    def flush(self) -> Record | None:
        """The pivots of the session after the last one (end of stream)."""
        if self.start is None:
            return None
        return self._roll(self.start + self.length)

    def _roll(self, next_start: int) -> Record | None:
        ended, self.start = self.start, next_start
        if ended is None:
            return None
        return {"timestamp": next_start, "session_start": next_start,
                "session_end": next_start + self.length, "high": self.high, "low": self.low,
                "close": self.close, **floor_pivots(self.high, self.low, self.close)}


class PivotsParams(OpParams):
    session: Duration = Field("1d", description="session length in event time; pivots come from "
                                                "the previous session")
    price: Expr = Field(MID, description="expression whose high, low and close make the pivots "
                                         "(default: the mid)")

    def expressions(self, fields, key=None):
        yield ExpressionUse("price", self.price, (), fields)

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return frozenset({*PIVOT_FIELDS, *([key] if key else [])})


@operator("pivots", params=PivotsParams, state="keyed", shorthand="session", checkpoint=True)
def pivots(params: PivotsParams, ctx: BuildContext) -> BatchOperator:
    """Floor-trader pivot points per key, one record per session, from the previous session.

    Sessions are `[start, start + session)` with `start` a multiple of `session` since the epoch
    (default 1d: UTC days). The previous trading session is the last one that had ticks of the
    key, so a weekend without ticks is skipped. When a key's first tick of a new session arrives,
    the operator emits that session's pivots: `{key, timestamp: session_start, session_start,
    session_end, high, low, close (of the previous session), pp, r1, r2, r3, s1, s2, s3}` (see
    `floor_pivots`); at end of stream, the pivots of the session after the last. The first session
    of a key has no pivots; the latest record of a key holds the pivots in force.
    Late ticks are dropped and counted; a tick without a price is dead-lettered.

        ops:
          - key_by: instrument
          - pivots: {session: 1d, price: "bid_price"}

        in:   --105--110--100--108(day 1)--107(day 2)--|
        out:  ---------------------------{H 110 L 100 C 108: pp 106, r1 112, s1 102, r2 116,
                                          s2 96, r3 122, s3 92}--{day 3 from day 2}|
    """
    length = parse_duration(params.session)
    return period_flow(ctx, lambda: SessionHLC(length), SessionHLC.DATA, compiled(params.price))
