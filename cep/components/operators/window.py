"""`window` and `buffer_with_time`: group each key's records by event-time windows."""
from __future__ import annotations

from typing import Any, Callable

from pydantic import Field, model_validator

from cep.components.base import BatchOperator, BuildContext, stateful
from cep.components.operators.common import (Duration, Expr, ExpressionUse, OpParams, compiled,
                                              group_fields, group_record, key_getter)
from cep.components.state import InvalidState, RecordData, restorer
from cep.durations import parse_duration
from cep.events import Batch, Record
from cep.plugins.markers import operator

WINDOW_FIELDS = ("window_start", "window_end")


class _KeyWindows:
    """One key's pending events and the start of its earliest window not yet closed."""

    __slots__ = ("cursor", "events")
    DATA = tuple[int | None, list[RecordData]]
    """The checkpointed state: cursor, pending events."""

    def __init__(self) -> None:
        self.cursor: int | None = None
        self.events: list[Record] = []

    def to_data(self) -> list:
        return [self.cursor, self.events]

    @classmethod
    def from_data(cls, data: tuple[int | None, list[Record]]) -> "_KeyWindows":
        windows = cls()
        windows.cursor, windows.events = data
        if windows.events and (windows.cursor is None or any(type(event.get("timestamp")) is not int
                                                             for event in windows.events)):
            raise InvalidState("pending events need a cursor and integer timestamps")
        return windows


class EventTimeWindows:
    """Windows `[start, start + size)` whose starts are multiples of `slide`, kept per key.

    Tumbling when `slide == size`, sliding (overlapping) when smaller. Only windows holding at
    least one event are emitted. A key's window closes when a record of that key at or past its
    end arrives, or at end of stream: the result for a key depends only on that key's records, not
    on how keys interleave, which keeps results the same whatever the topology. A record older
    than every open window of its key is late: refused, and the caller counts it.
    """

    def __init__(self, size: int, slide: int):
        self.size = size
        self.slide = slide
        self.keys: dict[Any, _KeyWindows] = {}

    def first_start(self, timestamp: int) -> int:
        """The start of the earliest window that contains `timestamp`."""
        return ((timestamp - self.size) // self.slide + 1) * self.slide

    def add(self, key: Any, timestamp: int, record: Record,
            on_close: Callable[[Any, int, list[Record]], None]) -> bool:
        """Add a record, first closing the key's windows that end at or before it; False if late."""
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(f"timestamp must be integer nanoseconds, got {timestamp!r}")
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = _KeyWindows()
        elif state.cursor is not None and timestamp < state.cursor:
            return False
        while state.events and state.cursor + self.size <= timestamp:  # type: ignore[operator]
            self._close_first(key, state, on_close)
        if not state.events:
            start = self.first_start(timestamp)
            state.cursor = start if state.cursor is None else max(state.cursor, start)
        state.events.append(record)
        return True

    def flush(self, on_close: Callable[[Any, int, list[Record]], None]) -> None:
        """Close every pending window (end of stream), key by key in the order keys appeared."""
        for key, state in self.keys.items():
            while state.events:
                self._close_first(key, state, on_close)
        self.keys.clear()

    def _close_first(self, key: Any, state: _KeyWindows,
                     on_close: Callable[[Any, int, list[Record]], None]) -> None:
        start: int = state.cursor  # type: ignore[assignment]
        end = start + self.size
        inside = [event for event in state.events if event["timestamp"] < end]
        if inside:
            on_close(key, start, inside)
        cursor = start + self.slide
        state.events = [event for event in state.events if event["timestamp"] >= cursor]
        if state.events:  # jump over windows that would be empty
            cursor = max(cursor, self.first_start(min(e["timestamp"] for e in state.events)))
        state.cursor = cursor


class WindowParams(OpParams):
    size: Duration = Field(description="window length in event time, e.g. 1s")
    slide: Duration | None = Field(None, description="step between window starts (default: size, tumbling)")
    aggregate: dict[str, Expr] | None = Field(None, description=(
        "name -> expression over the window's events, computed in order instead of emitting the "
        "events: sum(events, 'pv'), avg(events, 'mid'), min/max(events, 'mid'), len(events), "
        "events[0].mid, events[-1].mid; an earlier aggregate is a name for later ones"))

    @model_validator(mode="after")
    def _slide_within_size(self) -> "WindowParams":
        if self.slide is not None and parse_duration(self.slide) > parse_duration(self.size):
            raise ValueError(f"slide ({self.slide}) must not be longer than size ({self.size})")
        return self

    def expressions(self, fields, key=None):
        scope = group_fields(key, *WINDOW_FIELDS)  # the window record, events bound separately
        for name, source in (self.aggregate or {}).items():
            yield ExpressionUse(f"aggregate.{name}", source, ("events",), scope)
            scope = scope | {name}

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        if self.aggregate:
            return group_fields(key, *WINDOW_FIELDS, *self.aggregate) - {"events"}
        return group_fields(key, *WINDOW_FIELDS)


@operator("window", params=WindowParams, state="keyed", shorthand="size", checkpoint=True)
def window(params: WindowParams, ctx: BuildContext) -> BatchOperator:
    """Event-time windows per key, tumbling or sliding, optionally aggregated.

    Each non-empty window becomes one record: `{key, timestamp, window_start, window_end, count,
    events}`, where `timestamp` is the window's last nanosecond (`window_end - 1`, so a downstream
    window of the same size puts it in the same window). With `aggregate`, each named expression
    is computed with `events` bound (`avg(events, 'mid')`, `len(events)`, `events[-1].mid`), in
    order, and the record carries the aggregates instead of `events`. A key's window is emitted
    when that key's next record passes its end, or at end of stream. Late records (older than
    every open window of their key) are dropped and counted; a window whose aggregate fails is
    dead-lettered.

        ops:
          - key_by: instrument
          - window: {size: 1s, slide: 500ms, aggregate: {mid: "avg(events, 'mid')", n: "len(events)"}}

        in:   --a(0.1s)----b(0.7s)----c(1.2s)--------------|
        out:  -------------{a}--------{a,b}-------{b,c}{c}-|
              (windows [-0.5s,0.5s), [0s,1s), [0.5s,1.5s), [1s,2s); the last two at end of stream)
    """
    size = parse_duration(params.size)
    slide = parse_duration(params.slide) if params.slide is not None else size
    return _windowed(ctx, size, slide, params.aggregate or {})


class BufferWithTimeParams(OpParams):
    span: Duration = Field(description="length of each back-to-back span, in event time")

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return group_fields(key, *WINDOW_FIELDS)


@operator("buffer_with_time", params=BufferWithTimeParams, state="keyed", shorthand="span",
          checkpoint=True)
def buffer_with_time(params: BufferWithTimeParams, ctx: BuildContext) -> BatchOperator:
    """Per key, collect records into back-to-back event-time spans; one record per span.

    The same records as `window: {size: SPAN}`: `{key, timestamp, window_start, window_end,
    count, events}`, flushed at end of stream.

        ops:
          - buffer_with_time: 1s

        in:   --a(0.2s)--b(0.9s)--c(1.5s)--|
        out:  -------------------[a,b]-----[c]|
    """
    span = parse_duration(params.span)
    return _windowed(ctx, span, span, {})


def _windowed(ctx: BuildContext, size: int, slide: int, aggregate: dict[str, str]) -> BatchOperator:
    key_of = key_getter(ctx)
    windows = EventTimeWindows(size, slide)

    def restore(saved: dict[Any, tuple]) -> None:
        windows.keys = {key: _KeyWindows.from_data(data) for key, data in saved.items()}

    ctx.keep_state(lambda: {key: state.to_data() for key, state in windows.keys.items()},  # exactly_once
                   restorer(dict[Any, _KeyWindows.DATA], restore))
    aggregates = [(name, compiled(source, "events")) for name, source in aggregate.items()]

    def emitter(out: Batch) -> Callable[[Any, int, list[Record]], None]:
        def on_close(key: Any, start: int, events: list[Record]) -> None:
            end = start + size
            record = group_record(ctx.key, key, end - 1, events, window_start=start, window_end=end)
            if aggregates:
                try:
                    for name, compute in aggregates:
                        record[name] = compute(record, events)
                except Exception as exc:  # one failing window must not end the stream
                    ctx.dead_letter(f"aggregate {name}: {type(exc).__name__}: {exc}", record)
                    return
                del record["events"]
            out.append(record)
        return on_close

    def step(batch: Batch) -> Batch:
        out: Batch = []
        on_close = emitter(out)
        for record in batch:
            try:
                accepted = windows.add(key_of(record), record["timestamp"], record, on_close)
            except Exception as exc:  # a record without key or time is dead-lettered alone
                ctx.dead_letter(f"{type(exc).__name__}: {exc}", record)
                continue
            if not accepted:
                ctx.counters.drop("late")
        return out

    def finish() -> Batch:
        out: Batch = []
        windows.flush(emitter(out))
        return out

    return stateful(step, finish)
