"""`buffer_with_count`: group each key's records by count."""
from __future__ import annotations

from typing import Any

from pydantic import Field, NonNegativeInt

from cep.components.base import BatchOperator, BuildContext, stateful
from cep.components.operators.common import OpParams, group_fields, group_record, key_getter
from cep.components.state import RecordData, restorer
from cep.events import Batch, Record
from cep.plugins.markers import operator


class BufferWithCountParams(OpParams):
    count: int = Field(ge=1, description="records per buffer")
    skip: int | None = Field(None, ge=1, description="records between the starts of two buffers "
                                                     "(default: count, back to back)")

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return group_fields(key)


class _KeyBuffers:
    """One key's records seen so far (to know when a buffer starts) and its open buffers."""

    __slots__ = ("seen", "open")
    DATA = tuple[NonNegativeInt, list[list[RecordData]]]
    """The checkpointed state: records seen, open buffers."""

    def __init__(self) -> None:
        self.seen = 0
        self.open: list[list[Record]] = []

    def to_data(self) -> list:
        return [self.seen, self.open]

    @classmethod
    def from_data(cls, data: tuple[int, list[list[Record]]]) -> "_KeyBuffers":
        buffers = cls()
        buffers.seen, buffers.open = data
        return buffers


@operator("buffer_with_count", params=BufferWithCountParams, state="keyed", shorthand="count",
          checkpoint=True)
def buffer_with_count(params: BufferWithCountParams, ctx: BuildContext) -> BatchOperator:
    """Per key, collect `count` records into one record; a new buffer starts every `skip` records.

    Emits `{key, timestamp (of the last event), count, events}`. `skip` defaults to `count`
    (back-to-back buffers); smaller overlaps them, larger leaves records out. At end of stream
    the partial buffers are emitted too.

        ops:
          - buffer_with_count: {count: 3, skip: 1}

        in:   --a--b--c--d--|
        out:  --------[abc]--[bcd][cd][d]|
    """
    size, every = params.count, params.skip or params.count
    key_of = key_getter(ctx)
    keys: dict[Any, _KeyBuffers] = {}

    def restore(saved: dict[Any, tuple]) -> None:
        keys.clear()
        keys.update((key, _KeyBuffers.from_data(data)) for key, data in saved.items())

    ctx.keep_state(lambda: {key: state.to_data() for key, state in keys.items()},  # exactly_once checkpoints
                   restorer(dict[Any, _KeyBuffers.DATA], restore))

    def emit(out: Batch, key: Any, events: list[Record]) -> None:
        out.append(group_record(ctx.key, key, events[-1].get("timestamp"), events))

    def step(batch: Batch) -> Batch:
        out: Batch = []
        for record in batch:
            try:
                key = key_of(record)
            except KeyError as exc:
                ctx.dead_letter(f"missing key field {exc}", record)
                continue
            state = keys.get(key)
            if state is None:
                state = keys[key] = _KeyBuffers()
            if state.seen % every == 0:
                state.open.append([])
            state.seen += 1
            for buffer in state.open:
                buffer.append(record)
            if state.open and len(state.open[0]) == size:
                emit(out, key, state.open.pop(0))
        return out

    def finish() -> Batch:
        out: Batch = []
        for key, state in keys.items():
            for buffer in state.open:
                emit(out, key, buffer)
        keys.clear()
        return out

    return stateful(step, finish)
