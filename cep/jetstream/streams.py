"""The JetStream streams cep records into: created when missing, checked when present.

A stream cep creates carries `metadata: {"cep": "1"}`, which is how `cep streams` tells cep's
streams from others on the same server. An existing stream is used only if it takes the subject
cep publishes to and agrees with every limit the pipeline states; cep never edits a stream.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cep import codec
from cep.durations import parse_duration
from cep.errors import CodecError, RuntimeFailure
from cep.jetstream.frames import event_time_range, read_message
from cep.jetstream.subjects import subject_matches

MARK = {"cep": "1"}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: str | int) -> int:
    """Bytes for `500MB`, `1GiB` or a bare number; ValueError with the accepted forms."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a size such as 500MB or 1GiB, got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


class StreamLimits(BaseModel):
    """How a stream cep creates keeps its messages (JetStream's stream settings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention: Literal["limits", "interest", "workqueue"] = Field(
        "limits", description="limits: keep messages until max_age/max_bytes; interest: while a "
                              "consumer still needs them; workqueue: until one consumer acks")
    max_age: str | None = Field(None, description="drop messages older than this (e.g. 7d); "
                                                  "default: kept until max_bytes")
    max_bytes: str | int | None = Field(None, description="drop the oldest messages past this "
                                                          "size (e.g. 10GB); default: no limit")
    storage: Literal["file", "memory"] = Field("file", description="where the server keeps them")
    replicas: int = Field(1, ge=1, le=5, description="copies in a cluster (R3 survives a server)")
    duplicate_window: str = Field("2m", description="how long a message id is remembered "
                                                    "to drop a republished message")

    @field_validator("max_age", "duplicate_window")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError("must be a positive duration such as 2m or 7d")
        return value

    @field_validator("max_bytes")
    @classmethod
    def _size(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_size(value)
        return value

    def settings(self) -> dict[str, Any]:
        """These limits as JetStream `StreamConfig` fields, seconds and bytes."""
        return {"retention": self.retention, "storage": self.storage, "num_replicas": self.replicas,
                "max_age": parse_duration(self.max_age) / 1e9 if self.max_age else None,
                "max_bytes": parse_size(self.max_bytes) if self.max_bytes is not None else None,
                "duplicate_window": parse_duration(self.duplicate_window) / 1e9}


class StreamMismatch(RuntimeFailure):
    """An existing stream does not take cep's subject or disagrees with the pipeline's limits."""

    restartable = False


async def ensure_stream(js: Any, name: str, subject: str, limits: StreamLimits,
                        stated: set[str] | frozenset[str] = frozenset(), description: str = "") -> None:
    """Make sure stream `name` exists and takes `subject`: create it with `limits` (and cep's
    mark), or check the one there. `stated` are the limits the pipeline wrote: an existing stream
    must agree with those (the others are its owner's business)."""
    from nats.js import api
    from nats.js.errors import NotFoundError
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        settings = {k: v for k, v in limits.settings().items() if v is not None}
        settings["retention"] = api.RetentionPolicy(settings["retention"])
        settings["storage"] = api.StorageType(settings["storage"])
        await js.add_stream(api.StreamConfig(name=name, subjects=[subject], metadata=dict(MARK),
                                             description=description or None, **settings))
        return
    _check(info.config, name, subject, limits, stated)


def _check(config: Any, name: str, subject: str, limits: StreamLimits, stated: set[str] | frozenset[str]) -> None:
    subjects = list(config.subjects or [])
    if not any(subject_matches(pattern, subject) for pattern in subjects):
        raise StreamMismatch(f"stream {name} exists but does not take subject {subject} (its "
                             f"subjects: {', '.join(subjects) or 'none'}): add the subject to it "
                             f"(nats stream edit {name} --subjects ...) or name another stream")
    wanted = limits.settings()
    found = {"retention": _value(config.retention), "storage": _value(config.storage),
             "num_replicas": config.num_replicas or 1, "max_age": config.max_age or None,
             "max_bytes": config.max_bytes if config.max_bytes and config.max_bytes > 0 else None,
             "duplicate_window": config.duplicate_window}
    keys = {"retention": "retention", "storage": "storage", "replicas": "num_replicas",
            "max_age": "max_age", "max_bytes": "max_bytes", "duplicate_window": "duplicate_window"}
    for key in sorted(stated & keys.keys()):
        if found[keys[key]] != wanted[keys[key]]:
            raise StreamMismatch(f"stream {name} exists with {key} {found[keys[key]]}, the pipeline "
                                 f"asks for {wanted[keys[key]]}: change the pipeline's {key}, or "
                                 f"the stream (nats stream edit {name})")


def _value(enum_or_str: Any) -> Any:
    return getattr(enum_or_str, "value", enum_or_str)


@dataclass(frozen=True)
class StreamSummary:
    """One stream as `cep streams` shows it; times are event times (ns) of its first and last
    records, or None when its messages are not cep frames."""

    name: str
    subjects: tuple[str, ...]
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    first_time: int | None
    last_time: int | None
    cep: bool


def is_cep_stream(config: Any) -> bool:
    """A stream cep created (its mark), or one that takes cep's subjects."""
    return (config.metadata or {}).get("cep") == MARK["cep"] or any(
        subject.startswith("cep.") for subject in config.subjects or [])


async def list_streams(js: Any, everything: bool = False) -> list[StreamSummary]:
    """cep's streams on the server (every stream with `everything`), by name, each with the
    event times of its first and last records (read from the messages at its ends)."""
    summaries = []
    for info in await js.streams_info():
        if not (everything or is_cep_stream(info.config)):
            continue
        state = info.state
        first = last = (None, None)
        if state.messages:
            first = await _event_times(js, info.config.name, range(state.first_seq, state.last_seq + 1))
            last = await _event_times(js, info.config.name, range(state.last_seq, state.first_seq - 1, -1))
        summaries.append(StreamSummary(
            name=info.config.name, subjects=tuple(info.config.subjects or ()), messages=state.messages,
            bytes=state.bytes, first_seq=state.first_seq, last_seq=state.last_seq,
            first_time=first[0], last_time=last[1], cep=is_cep_stream(info.config)))
    return sorted(summaries, key=lambda summary: summary.name)


ENDS_READ = 64
"""How many messages at each end of a stream `cep streams` reads for one holding records: the
stream of a pipeline's edges ends with an END frame per edge and producer."""


async def _event_times(js: Any, stream: str, seqs: range) -> tuple[int | None, int | None]:
    """The first and last event times of the first message in `seqs` (of the first
    `ENDS_READ`) that holds records; (None, None) if none does."""
    from nats.js.errors import NotFoundError
    for seq in seqs[:ENDS_READ]:
        try:
            message = await js.get_msg(stream, seq=seq)
        except NotFoundError:  # deleted
            continue
        times = _records_times(message.data)
        if times is not None:
            return times
    return None, None


def _records_times(data: bytes) -> tuple[int | None, int | None] | None:
    """The event times of a message's records: a body a `nats` sink recorded, or a frame with
    its topic as an edge over NATS carries it; None for anything without records (an END)."""
    try:
        return event_time_range(read_message(data)[3])
    except CodecError:
        pass
    try:
        return event_time_range(read_message(codec.split_frame(data)[1])[3])
    except CodecError:
        return None
