"""Records in JetStream messages: one message is one frame body (`cep.codec`: rows, msgpack),
the subject standing in for the frame's topic.

A recorded message's header fields say who wrote it and where: `producer` names one writer
(a sink in one run) and `seq` is the position, among that writer's records, of the message's
first record. A writer that sends some records twice (a restarted `exactly_once` sink publishes
again what it had sent after its last checkpoint, possibly cut into other messages) gives them
the same positions, so a reader that remembers how far each producer got (`Positions`) reads
each record once.
"""
from __future__ import annotations

from typing import Any, Callable

from cep import codec
from cep.errors import CodecError
from cep.rows import AnyBatch, Rows, items, like


def message_body(producer: str, position: int, batch: AnyBatch,
                 refuse: Callable[[str, Any], None] | None = None) -> bytes:
    """The payload of one message holding `batch`, its first record at `position`."""
    return codec.encode_frame(b"", codec.DATA, producer, position, batch, refuse)[1:]


def read_message(data: bytes) -> tuple[str, int, int, AnyBatch, list[tuple[str, Any]]]:
    """`(producer, position, count, batch, [(reason, refused record)])` of a message cep wrote:
    the records a frame holds, checked as an edge's frames are (`codec.decode_body`); a frame
    that only some records spoil loses those (`codec.salvage_body`). CodecError when the message
    is no frame at all."""
    try:
        kind, producer, position, batch = codec.decode_body(data)
        refused: list[tuple[str, Any]] = []
    except CodecError:
        kind, producer, position, batch, refused = codec.salvage_body(data)
    if kind != codec.DATA:
        raise CodecError("an end-of-stream frame, not records")
    return producer, position, len(batch) + len(refused), batch, refused


class Positions:
    """Which positions of each producer's records have been read: what comes again is left out,
    whatever messages it comes in and in whatever order (a message published again after a
    failover may be stored after later ones)."""

    def __init__(self) -> None:
        self._read: dict[str, list[list[int]]] = {}  # per producer: sorted, disjoint [low, high)

    def fresh(self, producer: str, position: int, count: int, batch: AnyBatch) -> tuple[AnyBatch, int]:
        """`(the records of batch not read before, how many were)`; `count` records of the
        producer's start at `position` (`batch` holds them, less any a spoilt frame lost)."""
        ranges = self._read.setdefault(producer, [])
        end = position + count
        if not ranges or position >= ranges[-1][1]:  # the usual case: the next records
            if ranges and position == ranges[-1][1]:
                ranges[-1][1] = end
            else:
                ranges.append([position, end])
            return batch, 0
        covered = [(max(low, position), min(high, end)) for low, high in ranges if low < end and high > position]
        _merge(ranges, position, end)
        if not covered:
            return batch, 0
        if len(batch) != count:  # a spoilt frame: which record is which is not known
            return (like(batch, []), len(batch)) if covered == [(position, end)] else (batch, 0)
        read = set()
        for low, high in covered:
            read.update(range(low - position, high - position))
        kept = [item for index, item in enumerate(items(batch)) if index not in read]
        return like(batch, kept), len(read)


def _merge(ranges: list[list[int]], low: int, high: int) -> None:
    """Add [low, high) to sorted disjoint `ranges`, joining what it touches."""
    merged = []
    for current in sorted(ranges + [[low, high]]):
        if merged and current[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], current[1])
        else:
            merged.append(list(current))
    ranges[:] = merged


def event_time_range(batch: AnyBatch) -> tuple[int | None, int | None]:
    """The `timestamp` of a batch's first and last records, where they have an integer one."""
    if not len(batch):
        return None, None
    if type(batch) is Rows:
        if "timestamp" not in batch.fields:
            return None, None
        at = batch.fields.index("timestamp")
        first, last = batch.rows[0][at], batch.rows[-1][at]
    else:
        first, last = batch[0].get("timestamp"), batch[-1].get("timestamp")  # type: ignore[union-attr]
    return (first if type(first) is int else None), (last if type(last) is int else None)
