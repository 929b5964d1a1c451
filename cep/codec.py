"""Frames on the wire: msgpack, compact arrays, bounded decoding.

A frame is ONE ZeroMQ message, `topic NUL body`:

- `topic`   routes it (PUB/SUB prefix matching, e.g. `TICK.BTCUSDT`); control frames start with `!`.
            It never holds a NUL (`topic_bytes` replaces one), so the first NUL ends it.
- `body`    msgpack array `[version, kind, producer, seq, count, groups]`: the producer id and its
            sequence number (per producer and topic) let a receiver count gaps; `count` is the
            number of events in `groups`. Kind is DATA or END (end of stream). `groups` is an
            array of `[fields, rows]`: the field names once, then each record as an array of values
            in that order (a new group where the layout changes). Records of one stream share
            their fields, so a batch is usually one group; arrays cost less than maps to pack and
            to send (DESIGN §4). A one-group batch decodes to `cep.rows.Rows`, as it is on the
            wire: no dict per record.

One part and one msgpack document per frame, because a frame's fixed costs are what a worker pays
at low rates, one or two events per frame: a three-part message and two unpacks cost about 3 µs
more per frame to receive than one part and one unpack (measured in a loop; 2-3x that in a worker
woken per frame).

Decoding never trusts its input: sizes are capped before and during unpacking, and anything that
does not decode raises `CodecError`, which the receiver dead-letters with the raw bytes.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import msgpack

from cep.errors import CodecError
from cep.events import Batch
from cep.rows import ROWS, AnyBatch, Rows, as_records, compiled, concat

VERSION = 1
DATA = 0
END = 1

MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Larger payloads are refused before decoding (a frame of 1,000 ticks is about 60 kB)."""

MAX_MESSAGE_BYTES = MAX_FRAME_BYTES + (1 << 20)
"""What a bound cep data socket takes in (ZeroMQ's MAXMSGSIZE: a larger message never enters
memory, and ZeroMQ drops the connection of the peer that sent it): a frame, with room for its
topic. A socket that connects out has only cep's own producer as its peer and is left unbounded,
as ZeroMQ would not connect it again after such a drop."""

INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1
"""msgpack's integers: what a frame can carry."""
MAX_DEPTH = 32
"""Containers within containers a record value may hold."""

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)


SEPARATOR = b"\0"


def topic_bytes(topic: str) -> bytes:
    """A topic as it goes on the wire: UTF-8, a NUL (which would end it early) replaced."""
    return topic.encode().replace(SEPARATOR, b"?")


def encode_frame(topic: bytes, kind: int, producer: str, seq: int, batch: AnyBatch | None,
                 refuse: Callable[[str, Any], None] | None = None) -> bytes:
    """One frame: `topic NUL [version, kind, producer, seq, count, groups]`.

    A record msgpack cannot pack (an integer beyond 64 bits, a lone surrogate, an object) goes
    to `refuse(reason, record)` and the frame carries the others; without `refuse` CodecError.
    Sources check their records (`wire_problem`), so this is for what plugins and operators make.
    """
    count = 0 if batch is None else len(batch)  # one len: a `Rows` answers it in Python
    try:
        body = _packer.pack([VERSION, kind, producer, seq, count, _groups(batch) if count else []])
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError) as exc:
        if refuse is None or not count:
            raise CodecError(f"record cannot be encoded: {exc}") from exc
        return encode_frame(topic, kind, producer, seq, _packable(batch, refuse))  # type: ignore[arg-type]
    return topic + SEPARATOR + body


def _packable(batch: AnyBatch, refuse: Callable[[str, Any], None]) -> Batch:
    """The records of `batch` msgpack can pack; each other one goes to `refuse` with why."""
    good: Batch = []
    for record in as_records(batch):
        try:
            _packer.pack(record)
        except (TypeError, ValueError, OverflowError, UnicodeEncodeError) as exc:
            refuse(f"record cannot be encoded: {type(exc).__name__}: {exc}", record)
            continue
        good.append(record)
    return good


def _groups(batch: AnyBatch) -> list[list]:
    """A batch as `[[fields, rows], ...]`, one group per run of records sharing a layout.

    Rows are packed as they are. Records of one layout (the common case) take one compiled
    comprehension; a batch of mixed layouts is grouped in runs, so records keep their order.
    Within a group, values follow the group's first record's field order.
    """
    if type(batch) is Rows:
        return [[list(batch.fields), batch.rows]]  # type: ignore[union-attr]
    fields = tuple(batch[0])
    try:
        rows = compiled(fields, ROWS)(batch)
    except KeyError:  # another layout in the batch
        return _runs(batch)  # type: ignore[arg-type]
    width = len(fields)
    if all(len(record) == width for record in batch):
        return [[list(fields), rows]]
    return _runs(batch)  # type: ignore[arg-type]


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


def wire_problem(value: Any, max_string: int = MAX_FRAME_BYTES, soft: list[str] | None = None,
                 depth: int = 0) -> str | None:
    """Why `value` cannot travel in a frame as plain data, or None: an integer beyond msgpack's
    range, nesting deeper than `MAX_DEPTH`, a string or bytes longer than `max_string`, a string
    with a lone surrogate, a map key
    that is not a string, anything but None, bool, int, float, str, bytes, list and dict (an ext
    type, a msgpack Timestamp). A NaN or infinite float can travel; the first one is described in
    `soft`, if given, for callers that refuse them (no JSON output could hold one)."""
    kind = type(value)
    if kind is str or kind is bytes:
        if len(value) > max_string:
            return f"a string of {len(value)} characters is longer than max_string_length={max_string}"
        return None if kind is bytes or value.isascii() else _unicode_problem(value)
    if kind is int:
        return None if INT_MIN <= value <= INT_MAX else (
            f"integer {short_int(value)} is out of range (msgpack holds -2^63 .. 2^64-1)")
    if kind is float:
        if soft is not None and not soft and not math.isfinite(value):
            soft.append(f"invalid number: {value} is not finite")
        return None
    if value is None or kind is bool:
        return None
    if kind is dict or kind is list:
        return _container_problem(value, max_string, soft, depth)
    return f"a {kind.__name__} value is not plain data"


def _container_problem(value: list | dict, max_string: int, soft: list[str] | None,
                       depth: int) -> str | None:
    """`wire_problem` of a list or dict: its depth, its items, a dict's keys."""
    if depth >= MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    for item in (value.values() if type(value) is dict else value):
        problem = wire_problem(item, max_string, soft, depth + 1)
        if problem is not None:
            return problem
    if type(value) is dict and not all(type(key) is str for key in value):
        return "a map key that is not a string"
    return None


def _unicode_problem(text: str) -> str | None:
    """A string UTF-8 cannot encode (a lone surrogate, as JSON's `\\ud800` gives) cannot be sent."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        return f"a string that is not valid Unicode ({exc.reason} at {exc.start})"
    return None


def short_int(number: int) -> str:
    """An integer as text, its digits elided past 24."""
    text = str(number)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def split_frame(frame: bytes) -> tuple[bytes, memoryview]:
    """`(topic, body)` of a frame, the body not yet decoded (a frame not meant for this reader
    is dropped unread); CodecError if there is no NUL to end the topic."""
    end = frame.find(SEPARATOR)
    if end < 0:
        raise CodecError("frame without a topic: no NUL after it")
    return frame[:end], memoryview(frame)[end + 1:]


def decode_header(body: bytes | memoryview) -> tuple[int, str, int, int]:
    """`(kind, producer, seq, count)` of a frame, its events left undecoded: for a frame the
    reader drops unread (another partition's) whose sequence number still counts."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_FRAME_BYTES, max_str_len=1 << 20,
                                max_bin_len=0, max_array_len=1 << 22, max_map_len=0, max_ext_len=0)
    try:
        unpacker.feed(body)
        if unpacker.read_array_header() != 6:
            raise ValueError("not an array of 6")
        header = [unpacker.unpack() for _ in range(5)]
    except Exception as exc:  # msgpack raises many types for garbage input
        raise CodecError(f"malformed frame header: {type(exc).__name__}: {exc}") from exc
    return _checked_header(header)


def decode_body(body: bytes | memoryview) -> tuple[int, str, int, AnyBatch]:
    """`(kind, producer, seq, batch)`; raises CodecError for anything else, including a header
    whose count disagrees with the events the frame holds.

    Every frame a worker reads comes through here, at low rates one or two events each, so the
    common case (one group) takes as few Python calls as the checks allow: reading and decoding
    frames is about 40% of a strategy's CPU per pass at 50,000 ticks/s paced, where each wake-up
    runs with cold caches (measured per call with thread CPU time; bench/README.md).
    """
    if len(body) > MAX_FRAME_BYTES:
        raise CodecError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME_BYTES} byte limit")
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=True,
                                  max_str_len=MAX_FRAME_BYTES, max_bin_len=MAX_FRAME_BYTES,
                                  max_array_len=1 << 22, max_map_len=1 << 16, max_ext_len=0)
    except Exception as exc:  # msgpack raises many types for garbage input
        raise CodecError(f"undecodable msgpack: {type(exc).__name__}: {exc}") from exc
    if type(message) is not list or len(message) != 6:
        raise CodecError(f"malformed frame: {message!r:.200}")
    kind, producer, seq, count = _checked_header(message)
    groups = message[5]
    try:
        if type(groups) is list and len(groups) == 1:
            batch: AnyBatch = _group_rows(*groups[0])
            size = len(batch.rows)  # type: ignore[union-attr]
        else:
            batch = _decode_groups(groups)
            size = len(batch)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"malformed frame payload: {exc}") from exc
    if size != count:
        raise CodecError(f"frame header says {count} events, the payload holds {size}")
    return kind, producer, seq, batch


def salvage_body(body: bytes | memoryview) -> tuple[int, str, int, AnyBatch, list[tuple[str, Any]]]:
    """A frame `decode_body` refused, read again leniently so that only the records that spoilt
    it are lost: `(kind, producer, seq, batch of the good records, [(reason, bad record)])`.

    A record is bad when it holds what `decode_body` refuses (an ext type or msgpack Timestamp,
    a map key that is not a string, too deep) or is not a row of its group. CodecError (with the
    reason `decode_body` would give) when the frame itself is broken: not msgpack, not
    `[version, kind, producer, seq, count, groups]`, groups that are not `[fields, rows]`, or a
    count that disagrees with the records it holds.
    """
    if len(body) > MAX_FRAME_BYTES:
        raise CodecError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME_BYTES} byte limit")
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=False, timestamp=0,
                                  max_str_len=MAX_FRAME_BYTES, max_bin_len=MAX_FRAME_BYTES,
                                  max_array_len=1 << 22, max_map_len=1 << 22,
                                  max_ext_len=MAX_FRAME_BYTES)
    except Exception as exc:  # msgpack raises many types for garbage input
        raise CodecError(f"undecodable msgpack: {type(exc).__name__}: {exc}") from exc
    if type(message) is not list or len(message) != 6:
        raise CodecError(f"malformed frame: {message!r:.200}")
    kind, producer, seq, count = _checked_header(message)
    groups = message[5]
    if type(groups) is not list or not all(type(g) is list and len(g) == 2 and type(g[1]) is list
                                           for g in groups):
        raise CodecError("malformed frame payload: groups must be [fields, rows] arrays")
    refused: list[tuple[str, Any]] = []
    parts = [_salvaged_group(fields, rows, f"record refused in a frame from {producer!r}: ", refused)
             for fields, rows in groups]
    size = sum(len(part) for part in parts) + len(refused)
    if size != count:
        raise CodecError(f"frame header says {count} events, the payload holds {size}")
    return kind, producer, seq, concat(parts) if parts else [], refused


def _salvaged_group(fields: Any, rows: list, why: str, refused: list[tuple[str, Any]]) -> Rows:
    """One `[fields, rows]` group's good rows; each bad one is added to `refused` with why."""
    if type(fields) is not list:
        raise CodecError("malformed frame payload: fields must be an array")
    fields = tuple(fields)
    _check_layout(fields)
    good = []
    for row in rows:
        problem = (f"not a row of {len(fields)} values" if type(row) is not list or len(row) != len(fields)
                   else wire_problem(row, MAX_FRAME_BYTES))
        if problem is None:
            good.append(row)
        else:
            refused.append((why + problem, dict(zip(fields, row)) if type(row) is list else row))
    return Rows(fields, good)


def _checked_header(values: list) -> tuple[int, str, int, int]:
    """`[version, kind, producer, seq, count, ...]` as `(kind, producer, seq, count)`, checked."""
    if (values[0] != VERSION or values[1] not in (DATA, END) or type(values[2]) is not str
            or type(values[3]) is not int or type(values[4]) is not int):
        raise CodecError(f"malformed frame header: {values[:5]!r:.200}")
    return values[1], values[2], values[3], values[4]


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


def _decode_groups(groups: list) -> AnyBatch:
    """Groups of several layouts (or none) as one batch: Rows if they share one, else records."""
    parts = [_group_rows(*group) for group in groups]
    if not parts:
        return []
    return concat(parts)  # type: ignore[arg-type]


_LIST_ONLY = {list}


def _group_rows(fields: Any, rows: Any) -> Rows:
    """One `[fields, rows]` group as Rows, checked: every row an array as wide as the fields, so
    a malformed frame raises here (CodecError, or TypeError if a part is not even a sequence),
    never later in an operator."""
    fields = tuple(fields)
    if fields not in _valid_layouts:
        _check_layout(fields)
    if rows and (set(map(type, rows)) != _LIST_ONLY or set(map(len, rows)) != {len(fields)}):
        raise CodecError(f"malformed frame payload: rows must be arrays of {len(fields)} values")
    if type(rows) is not list:
        raise CodecError("malformed frame payload: rows must be an array")
    return Rows(fields, rows)
