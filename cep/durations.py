"""Durations as users write them in YAML (`500ms`, `2s`, `1m`) turned into integer nanoseconds.

Event time is integer nanoseconds everywhere, so durations are too: no float drift in windows.
"""
from __future__ import annotations

import re

_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h|d)\s*$")


def parse_duration(value: str | int | float) -> int:
    """Return nanoseconds for `value`; bare numbers are seconds. Raises ValueError with the fix."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 500ms, 2s or 1m, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return int(round(value * 1_000_000_000))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration such as 500ms, 2s or 1m, got {value!r}")
    number, unit = match.groups()
    return int(round(float(number) * _UNITS_NS[unit]))
