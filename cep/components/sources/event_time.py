"""Event time as files carry it (ns, us, ms, s since the epoch) turned into integer nanoseconds."""
from __future__ import annotations

from typing import Any, Literal

TimeUnit = Literal["ns", "us", "ms", "s"]
NS_PER_UNIT: dict[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def to_ns(value: Any, ns_per_unit: int) -> int:
    """Integer nanoseconds from an int, float or numeric string in the given unit.

    Integers stay exact (no float round trip, which would lose nanoseconds); fractional values
    such as `1723161254.024` seconds are rounded to the nearest nanosecond. Raises ValueError.
    """
    if isinstance(value, bool):
        raise ValueError(f"event time must be a number, got {value!r}")
    if isinstance(value, int):
        return value * ns_per_unit
    if isinstance(value, str):
        try:
            return int(value) * ns_per_unit
        except ValueError:
            pass
    try:
        return int(round(float(value) * ns_per_unit))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"event time must be a number, got {value!r}") from None
