"""`levels`: swing prices per key merged within a tolerance into price levels with touch counts."""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.keyed import event_time, keyed, keyed_flow
from cep.components.operators.common import Expr, ExpressionUse, OpParams, compiled
from cep.components.state import InvalidState
from cep.events import Batch, Record
from cep.plugins.markers import operator

DEFAULT_TOLERANCE_BPS = 5.0
LEVEL_FIELDS = ("timestamp", "change", "level", "price", "touches", "highs", "lows",
                "first_touch", "last_touch")


class Tolerance:
    """How close two prices must be to count as one level: basis points of the level's price, or
    an absolute price distance."""

    __slots__ = ("bps", "absolute")

    def __init__(self, bps: float | None = None, absolute: float | None = None):
        self.bps = bps
        self.absolute = absolute

    def width(self, price: float) -> float:
        """The half-width of the band around a level at `price`."""
        if self.absolute is not None:
            return self.absolute
        return abs(price) * self.bps / 1e4  # type: ignore[operator]


class ToleranceParams(OpParams):
    """`tolerance_bps` (of the level's price) or `tolerance` (absolute price), not both; neither
    means `tolerance_bps: 5`."""

    tolerance_bps: float | None = Field(None, gt=0, description="band half-width in basis points")
    tolerance: float | None = Field(None, gt=0, description="band half-width as a price distance")

    @model_validator(mode="after")
    def _one_tolerance(self) -> "ToleranceParams":
        if self.tolerance_bps is not None and self.tolerance is not None:
            raise ValueError("give tolerance_bps or tolerance, not both")
        return self

    def band(self) -> Tolerance:
        if self.tolerance is not None:
            return Tolerance(absolute=self.tolerance)
        return Tolerance(bps=self.tolerance_bps if self.tolerance_bps is not None else DEFAULT_TOLERANCE_BPS)


class Level:
    """A price where swings clustered: its price is the mean of the swing prices merged into it."""

    __slots__ = ("id", "price", "touches", "highs", "lows", "first_touch", "last_touch")

    def __init__(self, level_id: int, price: float, timestamp: int):
        self.id = level_id
        self.price = price
        self.touches = 0
        self.highs = 0
        self.lows = 0
        self.first_touch = timestamp
        self.last_touch = timestamp

    DATA = tuple[int, float, int, int, int, int, int]
    """A level as checkpointed: its fields in `__slots__` order."""

    def to_data(self) -> list:
        return [self.id, self.price, self.touches, self.highs, self.lows, self.first_touch, self.last_touch]

    @classmethod
    def from_data(cls, data: tuple[int, float, int, int, int, int, int]) -> "Level":
        level = cls(data[0], data[1], data[5])
        level.touches, level.highs, level.lows, level.last_touch = data[2], data[3], data[4], data[6]
        return level

    def touch(self, price: float, kind: str, timestamp: int) -> None:
        self.price = (self.price * self.touches + price) / (self.touches + 1)
        self.touches += 1
        self.highs += kind == "high"
        self.lows += kind == "low"
        self.last_touch = timestamp

    def record(self, timestamp: int, change: str) -> Record:
        return {"timestamp": timestamp, "change": change, "level": self.id, "price": self.price,
                "touches": self.touches, "highs": self.highs, "lows": self.lows,
                "first_touch": self.first_touch, "last_touch": self.last_touch}


class LevelTable:
    """One key's levels, by id (ids count up from 0 per key, in order of creation).

    A swing joins the nearest level whose band (`tolerance.width(level price)`) holds its price
    (ties: the older level), moving that level's price to the mean of its swings; otherwise it
    starts a new level. Levels are never merged with each other, so after their means drift two
    levels may sit closer than the tolerance; swings then go to the nearer one. Beyond
    `max_levels`, the level touched least recently (then the older) is evicted.
    """

    __slots__ = ("tolerance", "max_levels", "levels", "next_id")
    DATA = tuple[int, list[Level.DATA]]
    """The checkpointed state: the next id and the levels, in order of creation (the tolerance
    and `max_levels` come from the params)."""

    def __init__(self, tolerance: Tolerance, max_levels: int):
        self.tolerance = tolerance
        self.max_levels = max_levels
        self.levels: dict[int, Level] = {}
        self.next_id = 0

    def to_data(self) -> list:
        return [self.next_id, [level.to_data() for level in self.levels.values()]]

    def load(self, data: tuple[int, list[tuple]]) -> None:
        self.next_id, levels = data
        self.levels = {row[0]: Level.from_data(row) for row in levels}
        if any(level_id >= self.next_id for level_id in self.levels) or len(self.levels) != len(levels):
            raise InvalidState(f"level ids {sorted(self.levels)} are not distinct ids below {self.next_id}")

    def add(self, timestamp: int, kind: str, price: float) -> list[Record]:
        """Merge a swing of `kind` high|low at `price`; the level changes it causes, as
        `Level.record`s with `change` new | touch | evicted."""
        if kind not in ("high", "low"):
            raise ValueError(f"a swing's kind is high or low, got {kind!r}")
        near = [(abs(level.price - price), level.id) for level in self.levels.values()
                if abs(level.price - price) <= self.tolerance.width(level.price)]
        if near:
            level = self.levels[min(near)[1]]
            change = "touch"
        else:
            level = self.levels[self.next_id] = Level(self.next_id, price, timestamp)
            self.next_id += 1
            change = "new"
        level.touch(price, kind, timestamp)
        changes = [level.record(timestamp, change)]
        if len(self.levels) > self.max_levels:
            stale = min(self.levels.values(), key=lambda lv: (lv.last_touch, lv.id))
            del self.levels[stale.id]
            changes.append(stale.record(timestamp, "evicted"))
        return changes


class LevelsParams(ToleranceParams):
    max_levels: int = Field(50, ge=1, description="levels kept per key; the stalest is evicted")
    price: Expr = Field("price", description="the swing's price (default: the field of `swings`)")
    kind: Expr = Field("kind", description="'high' or 'low' (default: the field of `swings`)")

    def expressions(self, fields, key=None):
        yield ExpressionUse("price", self.price, (), fields)
        yield ExpressionUse("kind", self.kind, (), fields)

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return frozenset({*LEVEL_FIELDS, *([key] if key else [])})


@operator("levels", params=LevelsParams, state="keyed", checkpoint=True)
def levels(params: LevelsParams, ctx: BuildContext) -> BatchOperator:
    """Support/resistance levels per key from swings (the output of `swings`).

    A swing's price and kind are the expressions `price` and `kind` (default: the fields of
    `swings`). A swing whose price is within the tolerance of a level joins it (the nearest, if several);
    otherwise it starts a new level. Tolerance: `tolerance_bps` of the level's price, or an
    absolute `tolerance` (default 5 bps). Each swing emits the changes it makes to the level
    table, one record per changed level:
    `{key, timestamp: the swing's, change: new|touch|evicted, level: id (per key, from 0),
    price: mean of its swings, touches, highs, lows, first_touch, last_touch}`; `evicted` when the
    table exceeds `max_levels` and the least recently touched level leaves it. A swing without a
    numeric price or a kind high|low is dead-lettered.

        ops:
          - swings: 2
          - levels: {tolerance_bps: 3}

        in:   --{high 100.00}--{low 99.00}--{high 100.02}--|
        out:  --{new 0 @100}---{new 1 @99}--{touch 0 @100.01, touches 2}--|
    """
    band = params.band()
    max_levels = params.max_levels
    price_of, kind_of = compiled(params.price), compiled(params.kind)
    key_field = ctx.key

    def on_swing(key: Any, table: LevelTable, swing: Record, out: Batch) -> None:
        price = float(price_of(swing))
        for change in table.add(event_time(swing), kind_of(swing), price):
            out.append(keyed(key_field, key, change))

    return keyed_flow(ctx, lambda: LevelTable(band, max_levels), LevelTable.DATA, on_swing)
