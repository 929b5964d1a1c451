"""The `jsonl` source: generic records replayed from a JSON Lines file (optionally gzip-compressed)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cep.components.base import BuildContext
from cep.components.sinks.encoding import loads_json
from cep.components.sources.checks import (
    DEFAULT_MAX_STRING, INVALID_HELP, MAX_STRING_HELP, InvalidPolicy, LATE_HELP, LatePolicy, Screen, record_problem,
    suspect_line)
from cep.components.sources.event_time import NS_PER_UNIT, TimeUnit, to_ns
from cep.components.sources.files import UNREADABLE, FileReplay, open_text, resolve_existing, unreadable
from cep.components.sources.pacing import Speed
from cep.events import Record
from cep.plugins.markers import source


class JsonlParams(BaseModel):
    """Replay records from a JSON Lines file: one JSON object per line (`.gz` by suffix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="JSONL file, relative to the pipeline file; .gz by suffix")
    time_field: str = Field("timestamp", min_length=1,
                            description="the field holding each record's event time")
    time_unit: TimeUnit = Field("ns", description="unit of time_field since the epoch")
    speed: Speed = Field("max", description="replay pacing by event time: max | realtime | Nx")
    invalid: InvalidPolicy = Field("deadletter", description=INVALID_HELP)
    on_late: LatePolicy = Field("keep", description=LATE_HELP)
    max_string_length: int = Field(DEFAULT_MAX_STRING, ge=1, description=MAX_STRING_HELP)

    @field_validator("path")
    @classmethod
    def _exists(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_existing(path, info, "JSONL file")


class JsonlSource(FileReplay):
    """Streams the file's objects as records, each with `timestamp` set to its event time in ns.

    The event time is read from `time_field` in `time_unit`; the original field is kept as it was
    when it is not `timestamp` itself. Delivery: finite and replayable, so it backs every delivery
    mode (exactly_once included). A line that is not a strict JSON object (NaN and Infinity are
    not JSON), lacks a numeric event time, or holds a value no frame can carry (`checks`) is
    dead-lettered with its line number; one whose tick fields are invalid is handled per the
    `invalid` policy, one older than a record before it per `on_late`; the replay goes on. A
    truncated or corrupt .gz fails the run (`UnreadableFile`).
    """

    def _records(self) -> Iterator[Record]:
        params = self._params
        screen = Screen(self._ctx, params.invalid, params.on_late)
        stream = self._open()
        number = 0
        try:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                where = f"{self._path.name} line {number}: "
                try:
                    record = self._parse(line)
                except ValueError as exc:  # json.JSONDecodeError is a ValueError
                    screen.refuse(where + str(exc), line.rstrip("\n"))
                    continue
                problem = self._problem(record, line)
                raw = line.rstrip("\n")
                if ((problem is None or screen.judge(problem, raw, where))
                        and screen.in_time(record["timestamp"], raw, where)):
                    yield record
        except UNREADABLE as exc:  # a truncated or corrupt .gz
            raise unreadable(self._path, number - 1, exc) from None

    def _open(self) -> TextIO:
        """The file, its undecodable bytes as lone surrogates, so `_parse` can tell them."""
        self._stream = open_text(self._path, errors="surrogateescape")
        return self._stream

    def _parse(self, line: str) -> Record:
        """The line's record, its event time in ns; ValueError saying why it cannot be one."""
        params = self._params
        if not line.isascii() and not _utf8(line):
            raise ValueError("bytes that are not UTF-8")
        record = loads_json(line)
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        if params.time_field not in record:
            raise ValueError(f"no event time field {params.time_field!r}")
        record["timestamp"] = to_ns(record[params.time_field], NS_PER_UNIT[params.time_unit])
        return record

    def _problem(self, record: Record, line: str) -> str | None:
        """What `checks` finds wrong with a record; its values are walked only when its line
        could hold a problem."""
        max_string = self._params.max_string_length
        return record_problem(record, max_string, walk=suspect_line(line, max_string))


def _utf8(text: str) -> bool:
    """Whether `text` was decoded from UTF-8 whole (surrogateescape left no lone surrogate)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@source("jsonl", params=JsonlParams, replayable=True)
def jsonl_source(params: JsonlParams, ctx: BuildContext) -> JsonlSource:
    """Replay generic records from a JSON Lines file (event-time field and unit configurable).

    Finite and replayable; malformed lines are dead-lettered and the replay goes on.
    """
    return JsonlSource(params, ctx)
