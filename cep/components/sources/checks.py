"""What a source lets in: values that always cross the wire, and tick fields that make sense.

A record a source emits is packed into a frame with its neighbours; one value msgpack cannot
pack (an integer beyond 64 bits, a lone surrogate), or a frame the receiver refuses (an ext
type), would cost the whole frame or crash the gateway. So every source checks its records
before they leave it, and a bad one is dead-lettered alone:

- wire checks (`cep.codec.wire_problem`), always: integers within msgpack's range, nesting at
  most `MAX_DEPTH`, strings at most `max_string_length` characters and valid Unicode, only plain
  data (no msgpack ext types or Timestamps). What fails them cannot travel: dead-lettered.
- the event time, always: a timestamp in [0, 2^63) ns; one that is not is dead-lettered.
- tick checks, per the source's `invalid` policy (`Screen`): an instrument that is a non-empty
  string without NUL or U+FFFD (what undecodable bytes became), finite positive prices, finite
  non-negative volumes (or none). Generic records (jsonl, zmq) get them on the fields they
  carry, and a NaN or infinite number anywhere in them is an 'invalid number'.
- order, per `on_late` (`Screen.in_time`): a record older than one before it is 'late'.

Checking costs little where it matters: the csv source checks a whole block of rows with a few
C-level passes (`rows_look_fine`) and looks at single rows only in a block that fails; the jsonl
source walks a record only when its line could hold a problem (`suspect_line`).
"""
from __future__ import annotations

import re
from math import isfinite
from typing import Any, Literal

from cep.codec import MAX_DEPTH, short_int, wire_problem
from cep.components.base import BuildContext

TIME_LIMIT_NS = 1 << 63
"""Event times are in [0, 2^63) ns: 1970 to 2262."""
DEFAULT_MAX_STRING = 1 << 16

InvalidPolicy = Literal["deadletter", "drop", "keep"]
LatePolicy = Literal["keep", "drop", "deadletter"]
LATE_HELP = ("what to do with a record whose timestamp is before an earlier record's: keep | drop | "
             "deadletter, counted as 'late' either way")

INVALID_HELP = ("what to do with a record whose tick fields are invalid (a NaN, infinite, zero or "
                "negative price, a negative volume, an empty instrument, NUL or undecodable bytes "
                "in it): deadletter | drop | keep, counted by reason either way; an event time "
                "outside 1970..2262 is always dead-lettered")
MAX_STRING_HELP = ("longest string (characters) a record may hold; a longer one dead-letters "
                   "its record")


def record_problem(record: dict, max_string: int, walk: bool = True) -> str | None:
    """Why a generic record cannot go on, or None: an invalid event time first, then what cannot
    travel in a frame (only looked for when `walk`), then invalid tick fields, then a NaN or
    infinite number anywhere (no JSON output could hold it: an 'invalid number'). So a record
    that a policy keeps can always be sent."""
    soft: list[str] = []
    return ((timestamp_problem(record["timestamp"]) if "timestamp" in record else None)
            or (wire_problem(record, max_string, soft) if walk else None)
            or tick_problem(record, max_string) or (soft[0] if soft else None))


_PRICES = ("bid_price", "ask_price")
_VOLUMES = ("bid_volume", "ask_volume")
_BAD_TIME = "invalid timestamp"


def timestamp_problem(timestamp: Any) -> str | None:
    """Why `timestamp` is no event time in ns, or None."""
    if type(timestamp) is int and 0 <= timestamp < TIME_LIMIT_NS:
        return None
    shown = short_int(timestamp) if type(timestamp) is int else repr(timestamp)
    return f"{_BAD_TIME}: {shown} ns is outside 1970..2262 (is timestamp_unit right?)"


def instrument_problem(instrument: Any, max_string: int) -> str | None:
    """Why `instrument` is no instrument name, or None."""
    if type(instrument) is not str or not instrument:
        return f"invalid instrument: {instrument!r:.40} is not a non-empty string"
    if "\0" in instrument:
        return "invalid instrument: it holds a NUL byte"
    if "\ufffd" in instrument:
        return f"invalid instrument: {instrument!r:.40} holds bytes that are not UTF-8"
    if len(instrument) > max_string:
        return f"invalid instrument: {len(instrument)} characters, more than max_string_length={max_string}"
    return None


def number_problem(field: str, value: Any, optional: bool) -> str | None:
    """A price (finite, > 0) or, when `optional`, a volume (finite, >= 0, or None)."""
    if value is None and optional:
        return None
    if type(value) not in (int, float) or not isfinite(value) or value < 0 or (value == 0 and not optional):
        must = "a finite number >= 0" if optional else "a finite number > 0"
        return f"invalid {field}: {value!r:.40} is not {must}"
    return None


def tick_problem(record: dict, max_string: int) -> str | None:
    """Why the tick fields `record` carries are invalid, or None (absent fields are not checked)."""
    problem = timestamp_problem(record["timestamp"]) if "timestamp" in record else None
    if problem is None and "instrument" in record:
        problem = instrument_problem(record["instrument"], max_string)
    for field in _PRICES:
        if problem is None and field in record:
            problem = number_problem(field, record[field], optional=False)
    for field in _VOLUMES:
        if problem is None and field in record:
            problem = number_problem(field, record[field], optional=True)
    return problem


def reason_key(problem: str) -> str:
    """The counted reason of a problem: its text up to the first colon ('invalid bid_price')."""
    return problem.split(":", 1)[0]


# -- ticks in row form (the csv source) ----------------------------------------------------------
def rows_look_fine(rows: list[tuple], max_string: int, since: int) -> bool:
    """True if every TickEvent row (timestamp, instrument, bid, ask, bid_volume, ask_volume) of a
    block is valid and none is older than the one before it (the first: than `since`); a few
    passes in C over the block's columns, no Python per row. A sum is NaN or infinite exactly
    when some term is (or the terms are huge: then the rows are checked one by one, which is only
    slower), and a min with no NaN among the terms is the least."""
    if not rows:
        return True
    timestamps, instruments, bids, asks, bid_volumes, ask_volumes = zip(*rows)
    if not (since <= timestamps[0] and timestamps[-1] < TIME_LIMIT_NS
            and list(timestamps) == sorted(timestamps)):
        return False
    if not (isfinite(sum(bids) + sum(asks)) and min(bids) > 0 and min(asks) > 0):
        return False
    for volumes in (bid_volumes, ask_volumes):
        try:
            fine = isfinite(sum(volumes)) and min(volumes) >= 0
        except TypeError:  # some are None (no size): the others must be fine
            present = list(filter(None, volumes))  # None and 0.0 left out; NaN is truthy
            fine = isfinite(sum(present)) and min(present, default=0) >= 0
        if not fine:
            return False
    return all(instrument_problem(name, max_string) is None for name in set(instruments))


def row_problem(row: tuple, max_string: int) -> str | None:
    """Why one TickEvent row is invalid, or None."""
    timestamp, instrument, bid, ask, bid_volume, ask_volume = row
    return (timestamp_problem(timestamp) or instrument_problem(instrument, max_string)
            or number_problem("bid_price", bid, False) or number_problem("ask_price", ask, False)
            or number_problem("bid_volume", bid_volume, True)
            or number_problem("ask_volume", ask_volume, True))


# -- generic records as text (the jsonl source) ---------------------------------------------------
_SUSPECT = re.compile(r"\d{19}|[eE][+-]?\d{3}|\\u[dD][89a-fA-F]")
"""Text that may hold an integer beyond 64 bits, a float that overflows to inf, or a surrogate
escape (`\\ud800` alone is no character, and UTF-8 cannot encode it)."""


def suspect_line(line: str, max_string: int) -> bool:
    """Whether a JSON line could hold a value `record_problem` walks for; False means it cannot, so
    the record need not be walked. (NaN and Infinity are refused by the parser itself.)"""
    return (len(line) > max_string or line.count("[") + line.count("{") > MAX_DEPTH
            or _SUSPECT.search(line) is not None)


class Screen:
    """Applies a source's policies to the records its checks refuse, and counts every one."""

    def __init__(self, ctx: BuildContext, invalid: InvalidPolicy = "deadletter",
                 late: LatePolicy = "keep") -> None:
        self._ctx = ctx
        self._invalid = invalid
        self._late = late
        self.latest = 0
        """The latest event time so far: an earlier one is late."""

    def refuse(self, problem: str, raw: Any) -> None:
        """A record that cannot be read or cannot travel: always dead-lettered."""
        self._ctx.dead_letter(problem, raw)

    def judge(self, problem: str, raw: Any, where: str = "") -> bool:
        """A record with a problem (`record_problem`, `row_problem`): True if it is kept. An
        invalid value goes per the `invalid` policy; an invalid event time (pacing, windows and
        patterns all read it) and what cannot travel are always dead-lettered."""
        if problem.startswith("invalid ") and not problem.startswith(_BAD_TIME):
            return self._apply(self._invalid, problem, raw, where)
        return self._apply("deadletter", problem, raw, where)

    def in_time(self, timestamp: int, raw: Any, where: str = "") -> bool:
        """True if a record of event time `timestamp` goes on: it is not older than the latest
        before it, or the `on_late` policy keeps it."""
        if timestamp >= self.latest:
            self.latest = timestamp
            return True
        return self._apply(self._late, f"late: {timestamp} ns is before {self.latest} ns", raw, where)

    def _apply(self, policy: str, problem: str, raw: Any, where: str) -> bool:
        if policy == "deadletter":
            self._ctx.dead_letter(where + problem, raw)
            return False
        if policy == "drop":
            self._ctx.counters.drop(reason_key(problem))
            return False
        self._ctx.counters.note(reason_key(problem))
        return True
