"""The `csv` source: quote ticks replayed from a CSV file (optionally gzip-compressed)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cep.components.base import BuildContext
from cep.components.sources._event_time import NS_PER_UNIT, TimeUnit, to_ns
from cep.components.sources._files import FileReplay, open_text, resolve_existing
from cep.components.sources._pacing import Speed
from cep.events import TickEvent
from cep.plugins.markers import source

_REQUIRED = ("timestamp", "instrument", "bid_price", "ask_price")
_OPTIONAL = ("bid_volume", "ask_volume")


class CsvParams(BaseModel):
    """Replay quote ticks from a CSV file with a header row (`.gz` is decompressed on the fly)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="CSV file, relative to the pipeline file; .gz by suffix")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="TickEvent field -> CSV header name, for headers that differ (default: same name)")
    instrument: str | None = Field(
        None, description="instrument of every row, for files without an instrument column")
    timestamp_unit: TimeUnit = Field("ns", description="unit of the timestamp column since the epoch")
    speed: Speed = Field("max", description="replay pacing by event time: max | realtime | Nx")
    delimiter: str = Field(",", min_length=1, max_length=1, description="cell separator")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(TickEvent.FIELDS))
        if unknown:
            raise ValueError(f"columns maps unknown TickEvent fields {unknown} "
                             f"(the fields are {', '.join(TickEvent.FIELDS)})")
        return columns

    @field_validator("path")
    @classmethod
    def _exists(cls, path: Path, info: ValidationInfo) -> Path:
        return resolve_existing(path, info, "CSV file")

    @model_validator(mode="after")
    def _header_has_mapped_columns(self) -> "CsvParams":
        self.layout(read_header(self.path, self.delimiter))
        return self

    def layout(self, header: list[str]) -> dict[str, int]:
        """Column index per TickEvent field the file provides; ValueError if a needed one is absent."""
        index = {name: i for i, name in enumerate(header)}
        positions: dict[str, int] = {}
        missing: list[str] = []
        for name in _REQUIRED + _OPTIONAL:
            if name == "instrument" and self.instrument is not None:
                continue
            column = self.columns.get(name, name)
            if column in index:
                positions[name] = index[column]
            elif name in _REQUIRED or name in self.columns:
                missing.append(f"{name} (column {column!r})")
        if missing:
            hint = ("map fields to headers with columns: {field: header}"
                    + ("" if self.instrument or "instrument" in positions
                       else ", or give instrument: NAME for a single-instrument file"))
            raise ValueError(f"the header of {self.path} lacks {', '.join(missing)}: it is "
                             f"{header} ({hint})")
        return positions


def read_header(path: Path, delimiter: str) -> list[str]:
    """The first row of the file (only that row is read)."""
    try:
        with open_text(path) as stream:
            return [cell.strip() for cell in next(csv.reader(stream, delimiter=delimiter), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the header of CSV file {path}: {exc}") from None


class CsvSource(FileReplay):
    """Streams the rows as TickEvent records (in row form); the file is never loaded whole.

    Delivery: finite and replayable (the same file gives the same rows again), so it backs every
    delivery mode; under exactly_once a restarted gateway skips the rows it had emitted. A
    malformed row (a bad number, missing cells) is dead-lettered with its line number and text;
    the replay goes on.
    """


    fields = TickEvent.FIELDS

    def _records(self) -> Iterator[tuple]:
        params = self._params
        stream = self._open()
        rows = csv.reader(stream, delimiter=params.delimiter)
        header = next(rows, None)
        if header is None:
            return
        at = params.layout([cell.strip() for cell in header])
        t, b, a = at["timestamp"], at["bid_price"], at["ask_price"]
        i = at.get("instrument")
        bv, av = at.get("bid_volume"), at.get("ask_volume")
        constant = params.instrument
        scale = NS_PER_UNIT[params.timestamp_unit]
        width = max(at.values()) + 1
        while True:  # resumes after a row the csv reader itself rejects (e.g. a NUL byte)
            try:
                for row in rows:
                    if len(row) < width:
                        if row:  # blank lines are not rows
                            self._reject(rows.line_num, f"{len(row)} cells, expected {width}", row)
                        continue
                    try:
                        cell = row[t]
                        timestamp = int(cell) * scale if cell.isdigit() else to_ns(cell, scale)
                        bid_volume = row[bv] if bv is not None else ""
                        ask_volume = row[av] if av is not None else ""
                        yield (timestamp, row[i] if i is not None else constant, float(row[b]),
                               float(row[a]), float(bid_volume) if bid_volume else None,
                               float(ask_volume) if ask_volume else None)
                    except ValueError as exc:
                        self._reject(rows.line_num, str(exc), row)
                return
            except csv.Error as exc:
                self._reject(rows.line_num, f"unreadable row: {exc}", [])
            except (OSError, EOFError) as exc:  # a truncated or corrupt .gz: the rest is lost
                self._reject(rows.line_num, f"file unreadable from here on: {exc}", [])
                return

    def _reject(self, line: int, why: str, row: list[str]) -> None:
        self._ctx.dead_letter(f"{self._path.name} line {line}: {why}",
                              self._params.delimiter.join(row))


@source("csv", params=CsvParams, fields=TickEvent.FIELDS, replayable=True)
def csv_source(params: CsvParams, ctx: BuildContext) -> CsvSource:
    """Replay quote ticks from a CSV file (gz, header mapping, timestamp unit, speed max|realtime|Nx).

    Finite and replayable; malformed rows are dead-lettered and the replay goes on.
    """
    return CsvSource(params, ctx)
