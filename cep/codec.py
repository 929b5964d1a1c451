"""Frames on the wire: msgpack, compact arrays, bounded decoding.

A frame is a ZeroMQ multipart message `[topic, header, payload]`:

- `topic`   routes it (PUB/SUB prefix matching, e.g. `TICK.BTCUSDT`); control frames start with `!`.
- `header`  msgpack array `[version, kind, producer, seq, count]`: the producer id and its sequence
            number (per producer and topic) let a receiver count gaps; `count` is the number of
            events in the payload. Kind is DATA or END (end of stream).
- `payload` msgpack array of groups `[fields, rows]`: the field names once, then each record as an
            array of values in that order (a new group where the layout changes). Records of one
            stream share their fields, so a batch is usually one group; arrays cost less than maps
            to pack and to send (DESIGN §4). A one-group payload decodes to `cep.rows.Rows`, as
            it is on the wire: no dict per record.

Decoding never trusts its input: sizes are capped before and during unpacking, and anything that
does not decode raises `CodecError`, which the receiver dead-letters with the raw bytes.
"""
from __future__ import annotations

from typing import Any

import msgpack

from cep.errors import CodecError
from cep.events import Batch
from cep.rows import ROWS, AnyBatch, Rows, compiled, concat

VERSION = 1
DATA = 0
END = 1

MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Larger payloads are refused before decoding (a frame of 1,000 ticks is about 60 kB)."""

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


def encode_header(kind: int, producer: str, seq: int, count: int) -> bytes:
    return _packer.pack([VERSION, kind, producer, seq, count])


def encode_batch(batch: AnyBatch) -> bytes:
    """Pack a batch as `[[fields, rows], ...]`, one group per run of records sharing a layout.

    Rows are packed as they are. Records of one layout (the common case) take one compiled
    comprehension; a batch of mixed layouts is grouped in runs, so records keep their order.
    Within a group, values follow the group's first record's field order.
    """
    try:
        if type(batch) is Rows:
            return _packer.pack([[list(batch.fields), batch.rows]])
        if batch:
            fields = tuple(batch[0])
            rows = compiled(fields, ROWS)(batch)  # KeyError: another layout in the batch
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


_valid_layouts: set[tuple] = set()
_MAX_VALID_LAYOUTS = 1024


def _check_layout(fields: tuple) -> None:
    """Field names are distinct strings; a layout that passed is remembered (a stream has few)."""
    if not all(type(name) is str for name in fields):
        raise CodecError("field names must be strings")
    if len(set(fields)) != len(fields):
        raise CodecError(f"field names repeat in {list(fields)!r:.200}")
    if len(_valid_layouts) < _MAX_VALID_LAYOUTS:
        _valid_layouts.add(fields)


def decode_batch(data: bytes) -> AnyBatch:
    """The frame's payload as `Rows` when it is one layout (no dict is built), else records.

    Every row is checked to be an array as wide as its fields: a malformed frame raises
    CodecError here, never later in an operator.
    """
    groups = _unpack(data)
    try:
        parts: list[Rows] = []
        for fields, rows in groups:
            fields = tuple(fields)
            if fields not in _valid_layouts:
                _check_layout(fields)
            if rows and (set(map(type, rows)) != {list} or set(map(len, rows)) != {len(fields)}):
                raise CodecError(f"malformed frame payload: rows must be arrays of {len(fields)} values")
            parts.append(Rows(fields, rows))
    except CodecError:
        raise
    except (TypeError, ValueError) as exc:
        raise CodecError(f"malformed frame payload: {exc}") from exc
    if not parts:
        return []
    return concat(parts)  # type: ignore[arg-type]
