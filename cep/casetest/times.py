"""Event times as a test writes them, turned into the integer nanoseconds records carry.

A test's clock starts at midnight (UTC) of its `date` and moves with its events:

- `10:00:01`, `10:00:01.250`, `10:00` — a time of day on `date`;
- `+250ms`, `+2s` — that long after the previous event;
- `2024-08-08T10:00:01Z` (or any ISO 8601 time; UTC unless it names an offset) — that instant;
- an integer — nanoseconds since the epoch, as on the wire;
- nothing — `step` after the previous event (the first event: midnight of `date`).

An `advance: 2s` step moves the clock without an event: the next event without a time comes
2 s after the one before the step (instead of one `step` after it).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cep.durations import parse_duration

NS_PER_S = 1_000_000_000
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?")
FORMS = "10:00:01, 10:00:01.250, +250ms, 2024-08-08T10:00:01Z or nanoseconds since the epoch"


def day_start(date: Any) -> int:
    """Nanoseconds at midnight UTC of `date` (a YAML date, or text such as 2024-08-08)."""
    if isinstance(date, dt.datetime):
        date = date.date()
    if isinstance(date, str):
        try:
            date = dt.date.fromisoformat(date)
        except ValueError:
            raise ValueError(f"date {date!r} is not a date such as 2024-08-08") from None
    if not isinstance(date, dt.date):
        raise ValueError(f"date {date!r} is not a date such as 2024-08-08")
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.timezone.utc).timestamp()) * NS_PER_S


def _instant(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def _time_of_day(text: str, midnight: int) -> int | None:
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        raise ValueError(f"{text!r} is not a time of day")
    nanos = int((fraction or "").ljust(9, "0"))
    return midnight + ((int(hours) * 60 + int(minutes)) * 60 + int(seconds or 0)) * NS_PER_S + nanos


def absolute_time(value: Any, midnight: int) -> int:
    """The nanoseconds `value` names on its own (anything but a `+DURATION`); ValueError if none."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{value!r} is not an event time: write {FORMS}")
    if isinstance(value, int):
        return value
    if isinstance(value, dt.datetime):
        return _instant(value)
    if isinstance(value, str):
        found = _time_of_day(value.strip(), midnight)
        if found is not None:
            return found
        try:
            return _instant(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not an event time: write {FORMS}")


@dataclass
class Clock:
    """The time of the last event of a case's input, and how far an untimed event moves it."""

    midnight: int
    step: int
    now: int | None = None
    advanced: bool = False  # an `advance:` moved the clock since the last event

    def at(self, value: Any) -> int:
        """The event time of an event written with time `value` (None: `step` after the last,
        or right where an `advance:` left the clock)."""
        if value is None:
            found = self.midnight if self.now is None else self.now + (0 if self.advanced else self.step)
        elif isinstance(value, str) and value.strip().startswith("+"):
            found = (self.midnight if self.now is None else self.now) + parse_duration(value.strip()[1:])
        else:
            found = absolute_time(value, self.midnight)
        self.now, self.advanced = found, False
        return found

    def advance(self, duration: Any) -> None:
        """Move the clock by `duration` (`2s`, `500ms`) without an event."""
        self.now = (self.midnight if self.now is None else self.now) + parse_duration(duration)
        self.advanced = True
