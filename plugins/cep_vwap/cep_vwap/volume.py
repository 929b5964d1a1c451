"""`vwap`: the volume-weighted average of quoted prices over each key's last ticks."""
from __future__ import annotations

from collections import deque
from typing import Any, Literal

from pydantic import Field

from cep.plugins import BatchOperator, BuildContext, OpParams, operator, per_record

NO_VOLUME = "no_volume"
"""The drop reason of a tick that has no volume to weigh its prices with."""


class VwapParams(OpParams):
    window: int = Field(20, ge=1, le=100_000,
                        description="how many weighed ticks of a key the average covers")
    missing_volume: Literal["drop", "unit"] = Field(
        "drop", description="a side without volume weighs 0 (drop) or 1 (unit)")
    into: str = Field("vwap", description="the field the average is written to")

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return fields | {self.into}


@operator("vwap", params=VwapParams, state="keyed")
def vwap(params: VwapParams, ctx: BuildContext) -> BatchOperator:
    """Volume-weighted average price over the last `window` ticks per key.

    Each tick weighs its bid price by `bid_volume` and its ask price by `ask_volume`; the average
    over a key's last `window` weighed ticks is written to `into` on a copy of the tick. Keys come
    from the stream's `key_by:` (one average per instrument); an unkeyed stream has one average.

    Missing volumes (None or absent, as in Oanda data): with `missing_volume: drop` a side without
    volume weighs 0, and a tick whose volumes sum to 0 is dropped, counted under `no_volume`, and
    not part of the window. With `missing_volume: unit` a side without volume weighs 1, so on data
    with no volumes at all the result is the plain average of the window's bid and ask prices.
    A tick with a negative or non-numeric volume or price is dead-lettered.

        ops:
          - vwap: {window: 2}

        in:   --{bid 10 x1, ask 12 x1}--{bid 11 x3, ask 13 x1}--{bid 12 x0, ask 14 x0}--|
        out:  --{.., vwap 11.0}---------{.., vwap 11.33}-------------(dropped: no_volume)--|
                  (10*1 + 12*1) / 2      (22 + 11*3 + 13*1) / (2 + 4)
    """
    weight_of_missing = 1.0 if params.missing_volume == "unit" else 0.0
    windows: dict[Any, deque[tuple[float, float]]] = {}
    key = ctx.key

    def volume(record: dict, side: str) -> float:
        value = record.get(side)
        if value is None:
            return weight_of_missing
        value = float(value)
        if not value >= 0:  # also rejects NaN
            raise ValueError(f"{side} must be a volume of zero or more, got {value!r}")
        return value

    def weigh(record: dict) -> dict | None:
        bid_volume, ask_volume = volume(record, "bid_volume"), volume(record, "ask_volume")
        weight = bid_volume + ask_volume
        if weight == 0:
            ctx.counters.drop(NO_VOLUME)
            return None
        notional = float(record["bid_price"]) * bid_volume + float(record["ask_price"]) * ask_volume
        window = windows.get(record[key] if key else None)
        if window is None:
            window = windows[record[key] if key else None] = deque(maxlen=params.window)
        window.append((notional, weight))
        return {**record, params.into: sum(n for n, _ in window) / sum(w for _, w in window)}

    return per_record(weigh, ctx)
