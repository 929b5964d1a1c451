"""The `null` sink: discards records, counting them (benchmarks, and streams kept for metrics)."""
from __future__ import annotations

from cep.components.base import BuildContext
from cep.events import Batch
from cep.plugins.markers import NoParams, sink


class NullSink:
    """Counts what it receives in `count` and keeps nothing. Delivery: any (nothing to lose)."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, batch: Batch) -> None:
        self.count += len(batch)

    def close(self) -> None:
        """Nothing to flush."""


@sink("null", params=NoParams, rows=True, checkpoint=True)
def null_sink(params: NoParams, ctx: BuildContext) -> NullSink:
    """Discard records, only counting them."""
    return NullSink()
