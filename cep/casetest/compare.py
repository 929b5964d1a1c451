"""A node's output against what a case expects of it: the lines that say what differs.

Numbers compare as numbers (`100` equals `100.0`) and floats within a relative 1e-9, so an
expectation need not spell out the last digit of a computed mid or confidence. A record
difference is shown as a diff of JSON lines, `-` expected and `+` actual; under `match` the
actual records are shown with only the fields the expectation names.
"""
from __future__ import annotations

import difflib
import json
import math
from typing import Any

from cep.casetest.spec import NodeExpectation
from cep.events import Record

SHOWN = 20
"""Records listed at most when a count or a list differs."""


def equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual or math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(equal(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(map(equal, expected, actual))
    return expected == actual


def _has(expected: Record, actual: Record) -> bool:
    return all(key in actual and equal(value, actual[key]) for key, value in expected.items())


def _line(record: Any) -> str:
    return json.dumps(record, default=repr)


def _projected(expected: Record, actual: Record) -> Record:
    """`actual` with the fields `expected` names, in its order (a missing one shown as such)."""
    return {key: actual.get(key, "<missing>") for key in expected}


def record_diff(expected: list[Record], actual: list[Record], subset: bool) -> list[str]:
    """Unified-diff lines (no headers) of expected vs actual records, or [] if they agree."""
    same = len(expected) == len(actual) and all(
        (_has if subset else equal)(e, a) for e, a in zip(expected, actual))
    if same:
        return []
    want = [_line(record) for record in expected]
    got = []
    for index, record in enumerate(actual):
        shown = _projected(expected[index], record) if subset and index < len(expected) else record
        agrees = index < len(expected) and (_has if subset else equal)(expected[index], record)
        got.append(want[index] if agrees else _line(shown))
    return [f"{line[0]} {line[1:]}" for line in difflib.unified_diff(want, got, lineterm="", n=2)
            if not line.startswith(("---", "+++", "@@"))]


def problems(spec: NodeExpectation, records: list[Record], drops: dict[str, int],
             dead_lettered: int) -> list[str]:
    """What `records` (and the node's counts) fail of `spec`; [] when everything holds."""
    found: list[str] = []
    for key, subset in (("records", False), ("match", True)):
        expected = getattr(spec, key)
        if expected is None:
            continue
        diff = record_diff(expected, records, subset)
        if diff:
            what = "every field" if not subset else "the fields given"
            found.append(f"expected {_records(len(expected))}, got {_records(len(records))} "
                         f"(compared on {what}; - expected, + actual):")
            found += [f"  {line}" for line in diff]
    if spec.count is not None and len(records) != spec.count:
        found.append(f"expected {_records(spec.count)}, got {_records(len(records))}"
                     + (":" if records else ""))
        found += [f"  + {_line(record)}" for record in records[:SHOWN]]
        if len(records) > SHOWN:
            found.append(f"  ... and {len(records) - SHOWN} more")
    for reason, count in (spec.dropped or {}).items():
        if drops.get(reason, 0) != count:
            found.append(f"expected {count} dropped for {reason!r}, got {drops.get(reason, 0)} "
                         f"(drops: {_reasons(drops)})")
    if spec.dead_lettered is not None and dead_lettered != spec.dead_lettered:
        found.append(f"expected {spec.dead_lettered} dead-lettered, got {dead_lettered}")
    return found


def _records(count: int) -> str:
    return "no records" if count == 0 else "1 record" if count == 1 else f"{count} records"


def _reasons(drops: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(drops.items())) or "none"
