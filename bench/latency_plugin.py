"""Local cep plugin for the latency benchmark (loaded through a pipeline's `plugins:` key).

- source `wall_synthetic`: the `synthetic` source, but its event time starts at the wall clock of
  its first tick. The plain synthetic source takes `start_time` from the YAML, written before the
  worker processes spawn, so event time would trail wall time by the start-up delay; with
  `speed: realtime` each tick's `timestamp` is then the wall time it is due.
- sink `latency`: `time.time_ns() - timestamp` of every record it receives, written as int64 ns
  to `path` when the stream ends.
"""
from __future__ import annotations

import time
from array import array
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from cep.components.base import BuildContext
from cep.components.sources.synthetic import SyntheticParams, SyntheticSource
from cep.events import Batch, TickEvent
from cep.plugins import sink, source
from cep.rows import Rows


class WallSynthetic:
    """Delegates to SyntheticSource, with event time shifted to the wall clock of the first tick."""

    live = False
    replayable = False

    def __init__(self, params: SyntheticParams, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx

    def batches(self) -> Iterator[Rows]:
        """The pacing clock starts at the first tick, after the first chunk of ticks has been
        generated; event time is shifted to start at that same wall instant."""
        shift = None
        for batch in SyntheticSource(self._params, self._ctx).batches():
            if shift is None:
                shift = time.time_ns() - batch.rows[0][0]
            yield Rows(batch.fields, [(row[0] + shift, *row[1:]) for row in batch.rows])

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

    def write(self, batch: Batch) -> None:
        now = time.time_ns()
        self.samples.extend(now - record["timestamp"] for record in batch)

    def close(self) -> None:
        with open(self.path, "wb") as handle:
            self.samples.tofile(handle)


@sink("latency", params=LatencyParams)
def latency_sink(params: LatencyParams, ctx: BuildContext) -> LatencySink:
    """Write `now - timestamp` (ns) of every record to `path` at end of stream."""
    return LatencySink(params.path)
