"""The `jsonl` source: generic records replayed from a JSON Lines file (optionally gzip-compressed)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cep.components.base import BuildContext
from cep.components.sources._event_time import NS_PER_UNIT, TimeUnit, to_ns
from cep.components.sources._files import FileReplay, resolve_existing
from cep.components.sources._pacing import Speed
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

    @field_validator("path")
    @classmethod
    def _exists(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_existing(path, info, "JSONL file")


class JsonlSource(FileReplay):
    """Streams the file's objects as records, each with `timestamp` set to its event time in ns.

    The event time is read from `time_field` in `time_unit`; the original field is kept as it was
    when it is not `timestamp` itself. Delivery: finite and replayable, so it backs every delivery
    mode (exactly_once included). A line that is not a JSON object, or lacks a numeric event
    time, is dead-lettered with its line number; the replay goes on.
    """


    def _records(self) -> Iterator[Record]:
        field = self._params.time_field
        scale = NS_PER_UNIT[self._params.time_unit]
        loads = json.loads
        stream = self._open()
        try:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    record = loads(line)
                    if not isinstance(record, dict):
                        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
                    if field not in record:
                        raise ValueError(f"no event time field {field!r}")
                    record["timestamp"] = to_ns(record[field], scale)
                except ValueError as exc:  # json.JSONDecodeError is a ValueError
                    self._ctx.dead_letter(f"{self._path.name} line {number}: {exc}", line.rstrip("\n"))
                    continue
                yield record
        except (OSError, EOFError) as exc:  # a truncated or corrupt .gz: the rest is lost
            self._ctx.dead_letter(f"{self._path.name}: file unreadable from here on: {exc}", "")


@source("jsonl", params=JsonlParams, replayable=True)
def jsonl_source(params: JsonlParams, ctx: BuildContext) -> JsonlSource:
    """Replay generic records from a JSON Lines file (event-time field and unit configurable).

    Finite and replayable; malformed lines are dead-lettered and the replay goes on.
    """
    return JsonlSource(params, ctx)
