"""`spread_filter`: drop quotes whose bid/ask spread is too wide for their price."""
from __future__ import annotations

from pydantic import Field

from cep.plugins import BatchOperator, BuildContext, OpParams, operator, per_record

TOO_WIDE = "spread_above_max"
"""The drop reason of a quote whose spread exceeds `max_bps` of its mid."""


class SpreadFilterParams(OpParams):
    max_bps: float = Field(gt=0, description="widest spread let through, in basis points of the mid")


@operator("spread_filter", params=SpreadFilterParams, shorthand="max_bps")
def spread_filter(params: SpreadFilterParams, ctx: BuildContext) -> BatchOperator:
    """Drop quotes whose spread (ask - bid) exceeds `max_bps` basis points of the mid price.

    A dropped quote is counted under `spread_above_max` (the run summary's `dropped`). Only the
    width is bounded: a crossed quote (ask below bid) has a negative spread and passes; drop those
    with `filter: "ask_price > bid_price"`. A quote with a missing or non-numeric price, or a mid
    of zero or less, is dead-lettered.

        ops:
          - spread_filter: 5          # max_bps

        in:   --{bid 100, ask 100.01}--{bid 100, ask 101}--|
        out:  --{bid 100, ask 100.01}----------------------|   (1 bp kept, 100 bp dropped)
    """
    fraction = params.max_bps / 10_000

    def admit(record: dict) -> dict | None:
        bid, ask = float(record["bid_price"]), float(record["ask_price"])
        mid = (bid + ask) / 2
        if not mid > 0:
            raise ValueError(f"the mid price must be above zero, got {mid!r}")
        if ask - bid > fraction * mid:
            ctx.counters.drop(TOO_WIDE)
            return None
        return record

    return per_record(admit, ctx)
