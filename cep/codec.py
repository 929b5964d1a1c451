"""Frames on the wire: msgpack, compact arrays, bounded decoding.

A frame is a ZeroMQ multipart message `[topic, header, payload]`:

- `topic`   routes it (PUB/SUB prefix matching, e.g. `TICK.BTCUSDT`); control frames start with `!`.
- `header`  msgpack array `[version, kind, producer, seq, count]`: the producer id and its sequence
            number (per producer and topic) let a receiver count gaps; `count` is the number of
            events in the payload. Kind is DATA or END (end of stream).
- `payload` msgpack array of groups `[fields, rows]`: the field names once, then each record as an
            array of values in that order (a new group where the layout changes). Records of one stream share their fields, so a batch is
            usually one group; arrays cost less than maps to pack and to send (DESIGN §4).

Decoding never trusts its input: sizes are capped before and during unpacking, and anything that
does not decode raises `CodecError`, which the receiver dead-letters with the raw bytes.
"""
from __future__ import annotations

from typing import Any, Callable

import msgpack

from cep.errors import CodecError
from cep.events import Batch

VERSION = 1
DATA = 0
END = 1

MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Larger payloads are refused before decoding (a frame of 1,000 ticks is about 60 kB)."""

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def encode_header(kind: int, producer: str, seq: int, count: int) -> bytes:
    return _packer.pack([VERSION, kind, producer, seq, count])


def encode_batch(batch: Batch) -> bytes:
    """Pack records as `[[fields, rows], ...]`, one group per run of records sharing a layout.

    The common case, a batch of one layout, takes one compiled comprehension; a batch of mixed
    layouts is grouped in runs, so records keep their order. Within a group, values follow the
    group's first record's field order.
    """
    try:
        if batch:
            fields = tuple(batch[0])
            rows = _compiled(fields, _ROWS)(batch)  # KeyError: another layout in the batch
            width = len(fields)
            if all(len(record) == width for record in batch):
                return _packer.pack([[list(fields), rows]])
        return _packer.pack(_runs(batch))
    except KeyError:
        return _packer.pack(_runs(batch))
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"record cannot be encoded: {exc}") from exc


def _runs(batch: Batch) -> list[list]:
    groups: list[list] = []
    layout: tuple | None = None
    rows: list = []
    for record in batch:
        fields = tuple(record)
        if fields != layout:
            layout, rows = fields, []
            groups.append([list(fields), rows])
        rows.append(list(record.values()))
    return groups


def _unpack(data: bytes) -> Any:
    if len(data) > MAX_FRAME_BYTES:
        raise CodecError(f"frame of {len(data)} bytes exceeds the {MAX_FRAME_BYTES} byte limit")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True,
                               max_str_len=1 << 20, max_bin_len=MAX_FRAME_BYTES,
                               max_array_len=1 << 22, max_map_len=1 << 16, max_ext_len=0)
    except Exception as exc:  # msgpack raises many types for garbage input
        raise CodecError(f"undecodable msgpack: {type(exc).__name__}: {exc}") from exc


def decode_header(data: bytes) -> tuple[int, str, int, int]:
    """`(kind, producer, seq, count)`; raises CodecError for anything else."""
    header = _unpack(data)
    if (not isinstance(header, list) or len(header) != 5 or header[0] != VERSION
            or header[1] not in (DATA, END) or not isinstance(header[2], str)
            or not isinstance(header[3], int) or not isinstance(header[4], int)):
        raise CodecError(f"malformed frame header: {header!r:.200}")
    return header[1], header[2], header[3], header[4]


def decode_batch(data: bytes) -> Batch:
    groups = _unpack(data)
    batch: Batch = []
    try:
        for fields, rows in groups:
            if not all(isinstance(name, str) for name in fields):
                raise CodecError("field names must be strings")
            batch += _compiled(tuple(fields), _RECORDS)(rows)  # a row of another width: ValueError
    except CodecError:
        raise
    except (TypeError, ValueError) as exc:
        raise CodecError(f"malformed frame payload: {exc}") from exc
    return batch


_ROWS, _RECORDS = 0, 1
_compiled_cache: dict[tuple[int, tuple[str, ...]], Callable[[list], list]] = {}
_MAX_COMPILED = 1024


def _compiled(fields: tuple[str, ...], kind: int) -> Callable[[list], list]:
    """Records -> rows (`_ROWS`) or rows -> records (`_RECORDS`) for one layout, compiled once.

    A comprehension with the field names as constants (`[[r['a'], r['b']] for r in records]`,
    `[{'a': v0, 'b': v1} for v0, v1 in rows]`) is several times faster than generic code per
    record, and the codec is the largest per-event cost of a worker. Only field names that are
    Python identifiers are compiled in (so wire data can never be code); other layouts, and any
    beyond the cache bound, take the generic path.
    """
    key = (kind, fields)
    function = _compiled_cache.get(key)
    if function is not None:
        return function
    if not (len(_compiled_cache) < _MAX_COMPILED and 0 < len(fields) <= 64
            and all(name.isidentifier() for name in fields)):
        if kind == _ROWS:
            return lambda records: [[record[name] for name in fields] for record in records]
        return lambda rows: [dict(zip(fields, row, strict=True)) for row in rows]
    if kind == _ROWS:
        source = "lambda records: [[" + ", ".join(f"r[{name!r}]" for name in fields) + "] for r in records]"
    else:
        values = ", ".join(f"v{i}" for i in range(len(fields)))
        display = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(fields))
        source = f"lambda rows: [{{{display}}} for {values}, in rows]"
    function = _compiled_cache[key] = eval(source, {"__builtins__": {}})  # noqa: S307 - identifiers only
    return function
