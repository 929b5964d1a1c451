"""Replay pacing shared by every source: how fast event time is turned into wall time.

`speed` is what users write: `max` (as fast as the consumer takes it), `realtime` (one second of
event time per wall second) or `Nx` (N times faster than real time, e.g. `10x`, `0.5x`). Pacing
sleeps until each record is due, which is fine inside a source: it is the only thing the source's
thread has to do. Records already due are grouped into one batch, so a replay that falls behind
catches up in full batches instead of one record at a time.
"""
from __future__ import annotations

import re
import time
from itertools import islice
from operator import itemgetter
from typing import Annotated, Any, Callable, Iterable, Iterator

from pydantic import AfterValidator


_FACTOR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")


def speed_factor(speed: str) -> float | None:
    """Event-time seconds per wall second for `speed`, or None for `max` (no pacing)."""
    text = speed.strip().lower()
    if text == "max":
        return None
    if text == "realtime":
        return 1.0
    match = _FACTOR.match(text)
    if match and float(match.group(1)) > 0:
        return float(match.group(1))
    raise ValueError(f"speed must be max, realtime or a factor such as 10x, got {speed!r}")


def _check_speed(speed: str) -> str:
    speed_factor(speed)
    return speed.strip().lower()


Speed = Annotated[str, AfterValidator(_check_speed)]
"""A params field type for `speed:` (validated at load time, kept as the user wrote it)."""


class Resumable:
    """A replay that a restart resumes (the optional `Source.resume`): it leaves out the records
    it had emitted before pacing, passing `skip=self._skip` to `paced_batches`."""

    _skip = 0

    def resume(self, records: int) -> None:
        """Leave out the first `records` records (emitted before a restart), unpaced."""
        self._skip = records


def paced_batches(records: Iterable[Any], batch_size: int, speed: str,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep,
                  timestamp_of: Callable[[Any], int] = itemgetter("timestamp"),
                  skip: int = 0) -> Iterator[list]:
    """Group `records` (in event-time order, `timestamp` in ns) into batches, paced by `speed`.

    At `max` every batch is full except the last. Paced, a batch is cut before waiting for a record
    that is not due yet, so no record is held back while the source sleeps. Records may be rows:
    `timestamp_of` reads the event time (e.g. `itemgetter(0)`); the batches are lists of them.
    The first `skip` records are left out before pacing starts (a source resumed after a
    restart): the replay goes on from there at once instead of waiting through them again.
    """
    factor = speed_factor(speed)
    iterator = islice(records, skip, None) if skip else iter(records)
    if factor is None:  # whole batches cut in C, not a record at a time
        while batch := list(islice(iterator, batch_size)):
            yield batch
        return
    batch: list = []
    append = batch.append
    origin_event: int | None = None
    origin_wall = 0.0
    seconds_per_ns = 1e-9 / factor
    for record in iterator:
        timestamp = timestamp_of(record)
        if origin_event is None:
            origin_event, origin_wall = timestamp, clock()
        due = origin_wall + (timestamp - origin_event) * seconds_per_ns
        if due > clock():
            if batch:
                yield batch  # the consumer may take a while: the deadline is checked again
                batch = []
                append = batch.append
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        append(record)
        if len(batch) >= batch_size:
            yield batch
            batch = []
            append = batch.append
    if batch:
        yield batch
