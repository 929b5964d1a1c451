"""The `synthetic` source: a seeded random walk of quotes, so a pipeline runs with no data file."""
from __future__ import annotations

import random
from operator import itemgetter
from itertools import chain
from datetime import datetime, timezone
from typing import Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cep.components.base import BuildContext
from cep.components.sources.pacing import Resumable, Speed, paced_batches, speed_factor
from cep.durations import parse_duration
from cep.events import TickEvent
from cep.plugins.markers import source
from cep.rows import Rows

_TABLE_BITS = 12  # random steps and sizes are drawn from precomputed tables of 4096 entries
_TABLE_MASK = (1 << _TABLE_BITS) - 1
_DEFAULT_COUNT = 10_000
_DEFAULT_START = datetime(2024, 1, 1, tzinfo=timezone.utc)


class SyntheticParams(BaseModel):
    """Quote ticks from a seeded random walk: the same ticks for the same params, everywhere.

    It ends after `count` ticks or `duration` of event time, whichever comes first; with
    neither given it stops after 10,000 ticks, and with `count: null` and no duration it never ends.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruments: int | list[str] = Field(
        1, description="how many instruments (named SYN000, SYN001, ...) or their names")
    seed: int = Field(0, description="random seed; the same seed gives the same ticks")
    count: int | None = Field(_DEFAULT_COUNT, ge=0, description="total ticks over all instruments")
    duration: str | None = Field(None, description="event-time span to cover, e.g. 10s or 5m")
    rate: float = Field(1000.0, gt=0, description="ticks per second of event time (and of wall "
                                                  "time when speed is realtime)")
    speed: Speed = Field("max", description="pacing by event time: max | realtime | Nx")
    start_price: float = Field(100.0, gt=0, description="first mid price of every instrument")
    volatility: float = Field(1.0, ge=0, description="standard deviation of one tick's mid move, "
                                                     "in basis points of the price")
    spread: float = Field(2.0, ge=0, description="bid/ask spread in basis points of the mid")
    start_time: int | datetime = Field(_DEFAULT_START, description="event time of the first tick: "
                                       "ISO 8601 or integer ns since the epoch")

    @field_validator("instruments")
    @classmethod
    def _some_instruments(cls, value: int | list[str]) -> int | list[str]:
        if isinstance(value, int) and not 1 <= value <= 100_000:
            raise ValueError("instruments must be between 1 and 100000")
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("instruments must be a non-empty list of distinct names")
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _duration_alone_lifts_default_count(self) -> "SyntheticParams":
        if self.duration is not None and "count" not in self.model_fields_set:
            object.__setattr__(self, "count", None)
        return self

    def names(self) -> list[str]:
        if isinstance(self.instruments, int):
            return [f"SYN{i:03d}" for i in range(self.instruments)]
        return list(self.instruments)

    def start_ns(self) -> int:
        if isinstance(self.start_time, int):
            return self.start_time
        start = self.start_time if self.start_time.tzinfo else self.start_time.replace(tzinfo=timezone.utc)
        delta = start - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _ticks_within(span: int, period: float) -> int:
    """How many ticks have an event-time offset `int(index * period)` below `span` ns."""
    count = int(span / period)
    while count > 0 and int((count - 1) * period) >= span:
        count -= 1
    while int(count * period) < span:
        count += 1
    return count


def _event_times(start: int, period: float, first: int, stop: int) -> Iterable[int]:
    """Event times of ticks `first..stop-1`: `start + int(index * period)` ns, which for a whole
    period (rates dividing 1e9) is a `range`: no float product and int() per tick, the largest
    cost of generating a tick, and exact beyond the 2**53 ns where the product would round."""
    if period.is_integer():
        step = int(period)
        return range(start + first * step, start + stop * step, step)
    return (start + int(index * period) for index in range(first, stop))


class SyntheticSource(Resumable):
    """Generates TickEvent records: each tick moves one randomly chosen instrument's mid by a
    Gaussian step; ticks are evenly spaced at `rate` in event time.

    Delivery: finite (given count or duration) and replayable, as a seeded generator is
    deterministic, so it backs every delivery mode (exactly_once included).
    """

    def __init__(self, params: SyntheticParams, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx

    def batches(self) -> Iterator[Rows]:
        chunks = self._chunks(self._ctx.batch_size)  # skipped ticks too: the walk goes through them
        if self._skip or speed_factor(self._params.speed) is not None:
            chunks = paced_batches(chain.from_iterable(chunks), self._ctx.batch_size, self._params.speed,
                                   timestamp_of=itemgetter(0), skip=self._skip)
        return (Rows(TickEvent.FIELDS, rows) for rows in chunks)

    def _chunks(self, size: int) -> Iterator[list[tuple]]:
        """The ticks as rows in lists of `size`, built a list at a time (no generator hop per
        tick, no dict per tick)."""
        p = self._params
        rng = random.Random(p.seed)
        steps = [1.0 + rng.gauss(0.0, p.volatility * 1e-4) for _ in range(1 << _TABLE_BITS)]
        sizes = [round(rng.lognormvariate(0.0, 1.0), 4) for _ in range(1 << _TABLE_BITS)]
        names = p.names()
        mids = [p.start_price] * len(names)
        n = len(names)
        half = p.spread * 1e-4 / 2
        bid_factor, ask_factor = 1.0 - half, 1.0 + half
        period = 1e9 / p.rate
        start = p.start_ns()
        limit = p.count
        if p.duration is not None:
            within = _ticks_within(parse_duration(p.duration), period)
            limit = within if limit is None else min(limit, within)
        bits = rng.getrandbits
        first = 0
        while limit is None or first < limit:
            stop = first + size if limit is None else min(first + size, limit)
            chunk: list[tuple] = []
            append = chunk.append
            for timestamp in _event_times(start, period, first, stop):  # rows in TickEvent.FIELDS order
                r = bits(48)
                k = (r >> 36) % n
                mid = mids[k] * steps[r & _TABLE_MASK]
                mids[k] = mid
                append((timestamp, names[k], mid * bid_factor, mid * ask_factor,
                        sizes[(r >> 12) & _TABLE_MASK], sizes[(r >> 24) & _TABLE_MASK]))
            yield chunk
            first = stop

    def close(self) -> None:
        """Nothing to release."""


@source("synthetic", params=SyntheticParams, fields=TickEvent.FIELDS, replayable=True)
def synthetic_source(params: SyntheticParams, ctx: BuildContext) -> SyntheticSource:
    """Seeded random-walk quotes for N instruments (rate, count or duration): needs no file.

    Deterministic per seed, so finite runs are replayable.
    """
    return SyntheticSource(params, ctx)
