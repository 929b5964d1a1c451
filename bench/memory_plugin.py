"""Local cep plugin for the in-process benchmark (loaded through a pipeline's `plugins:` key).

- source `memory_ticks`: the real Binance ticks (repeated to `count`, as `ticks.load_ticks`
  gives them), loaded when the source is built, before the run's clock starts, and emitted as
  rows of 256: what Bytewax's `TestingSource` does for the peer run, so the two engines are timed
  on the same ticks already in memory.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from cep.components.base import BuildContext
from cep.events import TickEvent
from cep.plugins import source
from cep.rows import Rows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ticks import load_ticks  # noqa: E402


class MemoryParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int


class MemoryTicks:
    def __init__(self, count: int, batch_size: int) -> None:
        self._ticks = load_ticks(count)
        self._batch_size = batch_size

    def batches(self) -> Iterator[Rows]:
        ticks, size = self._ticks, self._batch_size
        for first in range(0, len(ticks), size):
            yield Rows(TickEvent.FIELDS, ticks[first:first + size])

    def close(self) -> None:
        """Nothing to release."""


@source("memory_ticks", params=MemoryParams, fields=TickEvent.FIELDS, replayable=True)
def memory_ticks(params: MemoryParams, ctx: BuildContext) -> MemoryTicks:
    """The real ticks repeated to `count`, already in memory when the run starts."""
    return MemoryTicks(params.count, ctx.batch_size)
