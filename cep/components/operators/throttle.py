"""`throttle_first` and `distinct_until_changed`: let through only some records of each key."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.common import Duration, OpParams, per_key
from cep.components.state import RecordData
from cep.durations import parse_duration
from cep.events import Record
from cep.plugins.markers import operator


class ThrottleFirstParams(OpParams):
    duration: Duration = Field(description="quiet time per key after an emitted record, in event time")


@operator("throttle_first", params=ThrottleFirstParams, state="keyed", shorthand="duration",
          checkpoint=True)
def throttle_first(params: ThrottleFirstParams, ctx: BuildContext) -> BatchOperator:
    """Per key, emit a record, then ignore that key's records for a duration of event time.

    Time is the records' `timestamp` (ns), so a replay throttles as the live run did. A record
    at or after `emitted timestamp + duration` opens the next period.

        ops:
          - throttle_first: 1s

        in:   --a(0s)--b(0.4s)--c(1.2s)--d(1.9s)--e(2.2s)--|
        out:  --a--------------c------------------e--------|
    """
    period = parse_duration(params.duration)

    def step(record: Record, last: int | None) -> tuple[Record | None, int | None]:
        timestamp = record["timestamp"]
        if last is None or timestamp >= last + period:
            return record, timestamp
        return None, last

    return per_key(ctx, step, int | float)  # the timestamp of the key's last emitted record


class DistinctUntilChangedParams(OpParams):
    fields: list[str] | None = Field(None, min_length=1, description=(
        "fields compared (default: every field but timestamp); per key: use key_by"))

    def input_warnings(self, fields, key=None):
        if key is None and "instrument" in fields:
            return ["compares each record with the previous record of any instrument: the stream "
                    "is keyed by nothing (add key_by: instrument to compare per instrument)"]
        return []


_NOTHING_YET = object()


@operator("distinct_until_changed", params=DistinctUntilChangedParams, state="keyed",
          shorthand="fields", checkpoint=True)
def distinct_until_changed(params: DistinctUntilChangedParams, ctx: BuildContext) -> BatchOperator:
    """Per key, drop a record whose compared fields equal those of the key's previous record.

    `fields` are the fields compared; by default every field but `timestamp`. A record missing a
    listed field is dead-lettered.

        ops:
          - distinct_until_changed: [bid_price, ask_price]

        in:   --a(1,2)--b(1,2)--c(1,3)--d(1,2)--|
        out:  --a--------------c--------d-------|
    """
    fields = params.fields
    if fields is None:
        def project(record: Record) -> Any:
            return record  # compared by `_same_but_time`; no copy is kept

        same, kept = _same_but_time, RecordData
    else:
        def project(record: Record) -> Any:
            return tuple([record[name] for name in fields])

        same, kept = _equal, tuple[Any, ...]

    def step(record: Record, previous: Any) -> tuple[Record | None, Any]:
        current = project(record)
        unchanged = previous is not _NOTHING_YET and same(current, previous)
        return (None if unchanged else record), current

    return per_key(ctx, step, kept, initial=_NOTHING_YET)


def _equal(a: Any, b: Any) -> bool:
    return a == b


def _same_but_time(a: Record, b: Record) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] for k in a if k != "timestamp")
