"""Local cep plugin for the latency benchmark (loaded through a pipeline's `plugins:` key).

- source `wall_synthetic`: the `synthetic` source, but its event time starts at the wall clock of
  its first tick. The plain synthetic source takes `start_time` from the YAML, written before the
  worker processes spawn, so event time would trail wall time by the start-up delay; with
  `speed: realtime` each tick's `timestamp` is then the wall time it is due (realtime only).
  Its ticks are generated before the run, as the raw chain's source generates its own: the
  benchmark times the engine moving ticks, not the synthetic generator making them.
- sink `latency`: `time.time_ns() - timestamp` of every record it receives, written as int64 ns
  to `path` when the stream ends.
"""
from __future__ import annotations

import time
from array import array
from operator import itemgetter
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from cep.components.base import BuildContext
from cep.components.sources.pacing import paced_batches
from cep.components.sources.synthetic import SyntheticParams, SyntheticSource
from cep.events import Batch, TickEvent
from cep.plugins import sink, source
from cep.rows import Rows


class WallSynthetic:
    """The synthetic ticks, each stamped with the wall time it is due, paced as cep paces them."""

    def __init__(self, params: SyntheticParams, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx
        generated = SyntheticSource(params.model_copy(update={"speed": "max"}), ctx).batches()
        self._rows = [row for batch in generated for row in batch.rows]

    def batches(self) -> Iterator[Rows]:
        """The ticks are generated when the worker is built, before the run starts (as the raw
        chain's source generates its own), and stamped `wall clock at the first tick + event
        time since it`; the pacing below takes its origin from the clock read right after that
        first tick, so a stamp is the wall time its tick is due (within a microsecond), and
        `now - timestamp` at the sink is the whole delay."""
        rows = iter(self._rows)

        def stamped() -> Iterator[tuple]:
            first = next(rows)
            wall, origin = time.time_ns(), first[0]
            yield (wall, *first[1:])
            for row in rows:
                yield (wall + row[0] - origin, *row[1:])

        for batch in paced_batches(stamped(), self._ctx.batch_size, self._params.speed,
                                   timestamp_of=itemgetter(0)):
            yield Rows(TickEvent.FIELDS, batch)

    def close(self) -> None:
        """Nothing to release."""


@source("wall_synthetic", params=SyntheticParams, fields=TickEvent.FIELDS)
def wall_synthetic(params: SyntheticParams, ctx: BuildContext) -> WallSynthetic:
    """Synthetic quotes whose event time starts at the wall clock of the first tick."""
    return WallSynthetic(params, ctx)


class LatencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str


class LatencySink:
    """Source-to-sink latency of every record, by its `timestamp` (wall ns when it was due)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.samples = array("q")

    def write(self, batch: Batch | Rows) -> None:
        """Rows as they come off the wire (as the raw chain's sink reads its tuples), or records."""
        now = time.time_ns()
        if type(batch) is Rows:
            at = batch.fields.index("timestamp")
            self.samples.extend(now - row[at] for row in batch.rows)
        else:
            self.samples.extend(now - record["timestamp"] for record in batch)

    def close(self) -> None:
        with open(self.path, "wb") as handle:
            self.samples.tofile(handle)


@sink("latency", params=LatencyParams, rows=True)
def latency_sink(params: LatencyParams, ctx: BuildContext) -> LatencySink:
    """Write `now - timestamp` (ns) of every record to `path` at end of stream."""
    return LatencySink(params.path)
