"""How records look outside the engine: one JSON convention, and the ZeroMQ message format.

Every sink that writes JSON (stdout, jsonl, zmq with `format: json`) uses `to_json`, so a record
reads the same wherever it lands: compact, UTF-8 (not ASCII-escaped), enums as their value, other
non-JSON values (Decimal, datetime, Path, bytes) as their natural string or number. NaN and
infinities, which JSON has no numbers for (Python's `NaN`/`Infinity` break strict parsers such
as jq's), are written as `null`: every line a sink writes is JSON.

The ZeroMQ format, shared by the `zmq` sink and the `zmq` source: one record per message, a
two-frame multipart `[topic, payload]` where the payload is a msgpack or JSON map.
"""
from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

import msgpack

from cep.events import Record

WireFormat = Literal["msgpack", "json"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_jsonable,
                            allow_nan=False)


def to_json(record: Record) -> str:
    """One record as one line of JSON (no newline), NaN and infinities as null."""
    try:
        return _encoder.encode(record)
    except ValueError:  # a non-finite float somewhere: rare, so only then is the record walked
        return _encoder.encode(finite(record))


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float in it (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def encode_payload(record: Record, fmt: WireFormat) -> bytes:
    """The payload frame of one record."""
    if fmt == "msgpack":
        return msgpack.packb(record, default=_jsonable, use_bin_type=True)
    return to_json(record).encode("utf-8")


def decode_payload(payload: bytes, fmt: WireFormat, max_bytes: int) -> Record:
    """The record in one payload frame; ValueError saying why when it is not a map of fields.

    `max_bytes` bounds what a publisher can make us allocate: larger payloads are refused before
    decoding, and msgpack's own length limits follow from the payload size. What the map holds
    is not checked here (ext types, NaN from msgpack, depth): the source does that.
    """
    if len(payload) > max_bytes:
        raise ValueError(f"payload of {len(payload)} bytes exceeds max_message_bytes={max_bytes}")
    try:
        if fmt == "msgpack":
            record = msgpack.unpackb(payload, raw=False, strict_map_key=True)
        else:
            record = loads_json(payload)
    except Exception as exc:  # msgpack raises several unrelated types on garbage; all mean "bad frame"
        raise ValueError(f"undecodable {fmt} payload: {type(exc).__name__}: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"payload is a {type(record).__name__}, expected a map of fields")
    return record


def loads_json(text: str | bytes) -> Any:
    """Strict JSON: NaN and Infinity, which Python's json accepts, are refused like any other
    non-JSON (ValueError), and so is nesting too deep for the parser (not a RecursionError)."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("nested too deep to parse") from None


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")
