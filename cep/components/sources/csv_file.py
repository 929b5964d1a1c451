"""The `csv` source: quote ticks replayed from a CSV file (optionally gzip-compressed)."""
from __future__ import annotations

import csv
import io
from itertools import chain, repeat
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

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
            return header_cells(stream, delimiter)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the header of CSV file {path}: {exc}") from None


def header_cells(stream: TextIO, delimiter: str) -> list[str]:
    """The header row's cells, stripped ([] for an empty file). It is read as one line, so what
    follows is left in the stream for `split_rows`."""
    return [cell.strip() for cell in next(csv.reader([stream.readline()], delimiter=delimiter), [])]


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
        header = header_cells(stream, params.delimiter)
        if not header:  # the file was emptied since the pipeline was loaded
            return
        at = params.layout(header)
        convert = _block_converter(at)
        scale = NS_PER_UNIT[params.timestamp_unit]
        for rows, lines in split_rows(stream, params.delimiter, self._reject, first_line=2):
            try:
                yield from convert(rows, scale, params.instrument)
            except (ValueError, IndexError):  # a bad row in the block: find it, keep the others
                yield from self._row_by_row(rows, lines, at, scale)

    def _row_by_row(self, rows: Iterable[list[str]], lines: Iterable[int], at: dict[str, int],
                    scale: int) -> Iterator[tuple]:
        """A block's rows converted one at a time: each bad one dead-lettered with its line."""
        t, b, a = at["timestamp"], at["bid_price"], at["ask_price"]
        i, bv, av = at.get("instrument"), at.get("bid_volume"), at.get("ask_volume")
        width = max(at.values()) + 1
        for row, line in zip(rows, lines):
            if len(row) < width:
                if row and row != [""]:  # blank lines are not rows
                    self._reject(line, f"{len(row)} cells, expected {width}", row)
                continue
            try:
                bid_volume = row[bv] if bv is not None else ""
                ask_volume = row[av] if av is not None else ""
                yield (to_ns(row[t], scale), row[i] if i is not None else self._params.instrument,
                       float(row[b]), float(row[a]), float(bid_volume) if bid_volume else None,
                       float(ask_volume) if ask_volume else None)
            except ValueError as exc:
                self._reject(line, str(exc), row)

    def _reject(self, line: int, why: str, row: list[str]) -> None:
        self._ctx.dead_letter(f"{self._path.name} line {line}: {why}",
                              self._params.delimiter.join(row))


def _block_converter(at: dict[str, int]) -> Callable[[Iterable[list[str]], int, str | None], list[tuple]]:
    """`convert(rows, scale, instrument)`: a block of rows (lists of cells) as TickEvent rows, for
    the header layout `at` (field -> column). It is one list comprehension with the column
    indices written in, so no cell is looked up or tested for the layout per row. A bad cell
    raises ValueError, a short row IndexError; the caller then converts that block row by row.
    The generated source holds only integers of our own and names the builtins it may call."""
    def cell(field: str) -> str:
        return f"row[{int(at[field])}]"

    def volume(field: str) -> str:
        return f"(float({cell(field)}) if {cell(field)} else None)" if field in at else "None"

    instrument = cell("instrument") if "instrument" in at else "instrument"
    source = (f"lambda rows, scale, instrument: [(int({cell('timestamp')}) * scale, {instrument}, "
              f"float({cell('bid_price')}), float({cell('ask_price')}), {volume('bid_volume')}, "
              f"{volume('ask_volume')}) for row in rows]")
    return eval(source, {"__builtins__": {}, "int": int, "float": float})


_BLOCK_CHARS = 1 << 16
_CSV_BLOCK_ROWS = 1024
_NOT_PLAIN = ('"', "\x00", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
"""Where split() and csv.reader could differ: a quote (a cell may hold the delimiter or span
lines), a NUL (csv.reader rejects the line), and the characters str.splitlines() ends a line
at that csv.reader does not."""

Rejects = Callable[[int, str, list[str]], None]


class _SplitLines:
    """Lines (without line ends) as rows, split at the delimiter each time they are iterated."""

    __slots__ = ("delimiter", "lines")

    def __init__(self, lines: list[str], delimiter: str) -> None:
        self.lines = lines
        self.delimiter = delimiter

    def __iter__(self) -> Iterator[list[str]]:
        return map(str.split, self.lines, repeat(self.delimiter))


def split_rows(stream: TextIO, delimiter: str, reject: Rejects,
               first_line: int = 1) -> Iterator[tuple[Iterable[list[str]], Iterable[int]]]:
    """The rows csv.reader would give for the rest of `stream` (opened with `newline=""`), in
    blocks: `(rows, the line number of each)`. Blank lines are rows of one empty cell.

    While the text is plain (none of `_NOT_PLAIN`), a block is the lines of about 64 kB of text
    (read as text, not line by line), split at the delimiter: all csv.reader would do with them,
    in about a third of its time. From the first block that is not plain (or holds no `\n`: a
    line longer than a block, or `\r` line ends) on, csv.reader reads the rest. A row it cannot
    read, or a file unreadable from some point on (a truncated .gz), goes to `reject` and is not
    in a block.
    """
    line, carry = first_line, ""
    try:
        while block := stream.read(_BLOCK_CHARS):
            complete, newline, carry = (carry + block).rpartition("\n")
            if not newline or any(char in complete for char in _NOT_PLAIN):
                rest = io.StringIO(complete + newline + carry + stream.readline(), newline="")
                yield from _csv_rows(chain(rest, stream), delimiter, reject, line)
                return
            lines = (complete + newline).splitlines()  # a \r\n line end is one line end
            yield _SplitLines(lines, delimiter), range(line, line + len(lines))
            line += len(lines)
        if carry:  # after the last \n: a line without a line end, or lines ending in \r
            yield from _csv_rows(io.StringIO(carry, newline=""), delimiter, reject, line)
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz: the rest is lost
        reject(line, f"file unreadable from here on: {exc}", [])


def _csv_rows(lines: Iterable[str], delimiter: str, reject: Rejects,
              first_line: int) -> Iterator[tuple[list[list[str]], list[int]]]:
    """`split_rows` by csv.reader over `lines`, the first of them line `first_line`. It
    resumes after a row it rejects itself (e.g. one with a NUL byte)."""
    rows = csv.reader(lines, delimiter=delimiter)
    offset = first_line - 1
    block: list[list[str]] = []
    numbers: list[int] = []
    while True:
        try:
            for row in rows:
                block.append(row)
                numbers.append(offset + rows.line_num)
                if len(block) >= _CSV_BLOCK_ROWS:
                    yield block, numbers
                    block, numbers = [], []
            break
        except csv.Error as exc:
            reject(offset + rows.line_num, f"unreadable row: {exc}", [])
    if block:
        yield block, numbers


@source("csv", params=CsvParams, fields=TickEvent.FIELDS, replayable=True)
def csv_source(params: CsvParams, ctx: BuildContext) -> CsvSource:
    """Replay quote ticks from a CSV file (gz, header mapping, timestamp unit, speed max|realtime|Nx).

    Finite and replayable; malformed rows are dead-lettered and the replay goes on.
    """
    return CsvSource(params, ctx)
