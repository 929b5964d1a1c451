"""Per-key state for the stateful operators and rules (bars, swings, levels, pivots, ...).

`keyed_flow` holds one state object per key value; `period_flow` is the common case of a builder
that folds prices into event-time periods (a bar, a trading session) and emits a record when a
period closes.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from cep.components.base import BatchOperator, BuildContext, stateful
from cep.components.operators.common import key_getter
from cep.components.state import restorer
from cep.events import Batch, Record


def event_time(record: Record) -> int:
    """A record's `timestamp`, which must be integer nanoseconds (TypeError otherwise)."""
    timestamp = record["timestamp"]
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise TypeError(f"timestamp must be integer nanoseconds, got {timestamp!r}")
    return timestamp


class KeyState(Protocol):
    """One key's state in a `keyed_flow`, checkpointed for exactly_once as plain data
    (`cep.components.state`): `to_data()` gives it, `load(data)` takes it back into a fresh
    state object, once checked against the schema given to `keyed_flow`."""

    def to_data(self) -> Any: ...

    def load(self, data: Any) -> None: ...


def keyed_flow(ctx: BuildContext, new_state: Callable[[], KeyState], schema: Any,
               on_record: Callable[[Any, Any, Record, Batch], None],
               on_end: Callable[[Any, Any, Batch], None] | None = None) -> BatchOperator:
    """A batch operator holding one state object per key.

    `on_record(key, state, record, out)` appends what the record produces to `out`; it must check
    its input before changing `state`, because a record it raises on is dead-lettered and the
    stream goes on. At end of stream `on_end(key, state, out)` flushes each key, in the order the
    keys first appeared. The states are checkpointed for exactly_once (`BuildContext.keep_state`)
    as `{key: state.to_data()}`; `schema` is the type of one state's data.
    """
    key_of = key_getter(ctx)
    states: dict[Any, Any] = {}

    def restore(saved: dict[Any, Any]) -> None:
        states.clear()
        for key, data in saved.items():
            state = states[key] = new_state()
            state.load(data)

    ctx.keep_state(lambda: {key: state.to_data() for key, state in states.items()},
                   restorer(dict[Any, schema], restore))

    def step(batch: Batch) -> Batch:
        out: Batch = []
        for record in batch:
            try:
                key = key_of(record)
                state = states.get(key)
                if state is None:
                    state = states[key] = new_state()
                on_record(key, state, record, out)
            except Exception as exc:  # one bad record must not end the stream
                ctx.dead_letter(f"{ctx.node}: {type(exc).__name__}: {exc}", record)
        return out

    def finish() -> Batch:
        out: Batch = []
        if on_end is not None:
            for key, state in states.items():
                on_end(key, state, out)
        return out

    return stateful(step, finish)


def keyed(key_field: str | None, key: Any, record: Record) -> Record:
    """`record` with the stream's key field in front (nothing added on an unkeyed stream)."""
    return {key_field: key, **record} if key_field is not None else record


class PeriodBuilder(KeyState, Protocol):
    """Folds (timestamp, price) into periods; `add` returns the record of a period it closed."""

    def is_late(self, timestamp: int) -> bool: ...

    def add(self, timestamp: int, price: float) -> Record | None: ...

    def flush(self) -> Record | None: ...


def period_flow(ctx: BuildContext, new_builder: Callable[[], PeriodBuilder], schema: Any,
                price_of: Callable[[Record], Any]) -> BatchOperator:
    """A keyed batch operator feeding each record's price to its key's builder; late records
    (before the open period) are dropped and counted as `late`; open periods flush at the end."""
    key_field = ctx.key

    def on_tick(key: Any, builder: PeriodBuilder, record: Record, out: Batch) -> None:
        timestamp = event_time(record)
        price = float(price_of(record))
        if builder.is_late(timestamp):
            ctx.counters.drop("late")
            return
        closed = builder.add(timestamp, price)
        if closed is not None:
            out.append(keyed(key_field, key, closed))

    def on_end(key: Any, builder: PeriodBuilder, out: Batch) -> None:
        closed = builder.flush()
        if closed is not None:
            out.append(keyed(key_field, key, closed))

    return keyed_flow(ctx, new_builder, schema, on_tick, on_end)
