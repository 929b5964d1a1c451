"""The `csv` source: quote ticks replayed from a CSV file (optionally gzip-compressed)."""
from __future__ import annotations

import csv
import io
from itertools import chain, repeat
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cep.components.base import BuildContext
from cep.components.sources.checks import (
    DEFAULT_MAX_STRING, INVALID_HELP, MAX_STRING_HELP, InvalidPolicy, LATE_HELP, LatePolicy, Screen, row_problem,
    rows_look_fine)
from cep.components.sources.event_time import NS_PER_UNIT, TimeUnit, to_ns
from cep.components.sources.files import UNREADABLE, FileReplay, open_text, resolve_existing, unreadable
from cep.components.sources.pacing import Speed
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
    invalid: InvalidPolicy = Field("deadletter", description=INVALID_HELP)
    on_late: LatePolicy = Field("keep", description=LATE_HELP)
    max_string_length: int = Field(DEFAULT_MAX_STRING, ge=1, description=MAX_STRING_HELP)

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(TickEvent.FIELDS))
        swapped = {header: field for field, header in columns.items()
                   if field in unknown and header in TickEvent.FIELDS}
        if swapped:
            raise ValueError(f"columns maps unknown TickEvent fields {unknown}: did you swap field "
                             f"and header? columns maps field -> header, e.g. columns: "
                             + "{" + ", ".join(f"{k}: {v}" for k, v in swapped.items()) + "}")
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
    except (*UNREADABLE, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read the header of CSV file {path}: {exc}") from None


def header_cells(stream: TextIO, delimiter: str) -> list[str]:
    """The header row's cells, stripped ([] for an empty file). It is read as one line, so what
    follows is left in the stream for `split_rows`."""
    return [cell.strip() for cell in next(csv.reader([stream.readline()], delimiter=delimiter), [])]


class CsvSource(FileReplay):
    """Streams the rows as TickEvent records (in row form); the file is never loaded whole.

    Delivery: finite and replayable (the same file gives the same rows again), so it backs every
    delivery mode; under exactly_once a restarted gateway skips the rows it had emitted. Each line
    is one row: a malformed one (a bad number, missing cells, an unterminated quote) is
    dead-lettered with its line number and text, and the replay goes on. Invalid tick fields are
    handled per `invalid`, rows older than an earlier one per `on_late`, and rows with more cells
    than the header are kept and counted ('extra cells'). A truncated or corrupt .gz fails the
    run (`UnreadableFile`), naming the last row read.

    Rows are converted and checked a block at a time (`_block_converter`, `rows_look_fine`); only
    a block with something wrong in it is redone row by row, to find what.
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
        screen = Screen(self._ctx, params.invalid, params.on_late)
        line = 1
        try:
            for rows, lines in split_rows(stream, params.delimiter, self._reject, first_line=2):
                line = lines[-1] if lines else line
                try:
                    ticks = convert(rows, scale, params.instrument)
                except (ValueError, IndexError):  # a bad row in the block: find it, keep the others
                    ticks = None
                if (ticks is not None and _all_as_wide(rows, len(header))
                        and rows_look_fine(ticks, params.max_string_length, screen.latest)):
                    if ticks:
                        screen.latest = ticks[-1][0]
                    yield from ticks
                else:
                    yield from self._row_by_row(rows, lines, at, scale, len(header), screen)
        except UNREADABLE as exc:  # a truncated or corrupt .gz
            raise unreadable(self._path, line - 1, exc) from None

    def _row_by_row(self, rows: Iterable[list[str]], lines: Iterable[int], at: dict[str, int],
                    scale: int, width: int, screen: Screen) -> Iterator[tuple]:
        """A block's rows converted and checked one at a time: each bad one dealt with alone."""
        needed = max(at.values()) + 1
        for row, line in zip(rows, lines):
            if len(row) < needed:
                if row and row != [""]:  # blank lines are not rows
                    self._reject(line, f"{len(row)} cells, expected {width}", row)
                continue
            try:
                tick = self._tick(row, at, scale)
            except ValueError as exc:
                self._reject(line, str(exc), row)
                continue
            where = f"{self._path.name} line {line}: "
            raw = self._params.delimiter.join(row)
            problem = row_problem(tick, self._params.max_string_length)
            if problem is not None and not screen.judge(problem, raw, where):
                continue
            if not screen.in_time(tick[0], raw, where):
                continue
            if len(row) > width:
                self._ctx.counters.note("extra cells")
            yield tick

    def _tick(self, row: list[str], at: dict[str, int], scale: int) -> tuple:
        """One row as a TickEvent row (any timestamp form `to_ns` reads); ValueError if it is not."""
        bv, av = at.get("bid_volume"), at.get("ask_volume")
        bid_volume = row[bv] if bv is not None else ""
        ask_volume = row[av] if av is not None else ""
        return (to_ns(row[at["timestamp"]], scale),
                row[at["instrument"]] if "instrument" in at else self._params.instrument,
                float(row[at["bid_price"]]), float(row[at["ask_price"]]),
                float(bid_volume) if bid_volume else None, float(ask_volume) if ask_volume else None)

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
    """Lines (without line ends) as rows, split at the delimiter each time they are iterated;
    `cells` is how many cells they hold in all."""

    __slots__ = ("delimiter", "lines", "cells")

    def __init__(self, lines: list[str], delimiter: str, cells: int) -> None:
        self.lines = lines
        self.delimiter = delimiter
        self.cells = cells

    def __iter__(self) -> Iterator[list[str]]:
        return map(str.split, self.lines, repeat(self.delimiter))


def _all_as_wide(rows: Iterable[list[str]], width: int) -> bool:
    """Whether every row of a block has `width` cells, as the header does (blank lines do not).
    For plain text this compares the block's count of cells, so a row short of a cell that is
    never read and another with one extra would pass together: then the extra is not counted."""
    if type(rows) is _SplitLines:
        return rows.cells == len(rows.lines) * width  # type: ignore[attr-defined]
    return set(map(len, rows)) == {width}


def split_rows(stream: TextIO, delimiter: str, reject: Rejects,
               first_line: int = 1) -> Iterator[tuple[Iterable[list[str]], Iterable[int]]]:
    """The rows csv.reader gives for each line of the rest of `stream` (opened with `newline=""`),
    in blocks: `(rows, the line number of each)`. Blank lines are rows of one empty cell. A row
    never spans lines: a quoted cell holding a line end is not a tick file's.

    While the text is plain (none of `_NOT_PLAIN`), a block is the lines of about 64 kB of text
    (read as text, not line by line), split at the delimiter: all csv.reader would do with them,
    in about a third of its time. From the first block that is not plain (or holds no `\n`: a
    line longer than a block, or `\r` line ends) on, csv.reader reads the rest, a line at a
    time. A row it cannot read goes to `reject` and is not in a block. A file unreadable from
    some point on (a truncated or corrupt .gz) raises one of `files.UNREADABLE`.
    """
    line, carry = first_line, ""
    while block := stream.read(_BLOCK_CHARS):
        complete, newline, carry = (carry + block).rpartition("\n")
        if not newline or any(char in complete for char in _NOT_PLAIN):
            rest = io.StringIO(complete + newline + carry + stream.readline(), newline="")
            yield from _csv_rows(chain(rest, stream), delimiter, reject, line)
            return
        lines = (complete + newline).splitlines()  # a \r\n line end is one line end
        cells = complete.count(delimiter) + len(lines)  # one pass in C, no row split for it
        yield _SplitLines(lines, delimiter, cells), range(line, line + len(lines))
        line += len(lines)
    if carry:  # after the last \n: a line without a line end, or lines ending in \r
        yield from _csv_rows(io.StringIO(carry, newline=""), delimiter, reject, line)


def _csv_rows(lines: Iterable[str], delimiter: str, reject: Rejects,
              first_line: int) -> Iterator[tuple[list[list[str]], list[int]]]:
    """`split_rows` by csv.reader over `lines`, the first of them line `first_line`, one line at a
    time: a quote left open is an error in its own row (csv.reader would read on into the next
    lines and swallow the rest of the file into one cell), which goes to `reject` with the line."""
    block: list[list[str]] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=first_line):
        try:
            row = next(csv.reader((line,), delimiter=delimiter, strict=True), [])
        except csv.Error as exc:
            reject(number, f"unreadable row: {exc}", [line.rstrip("\r\n")])
            continue
        block.append(row)
        numbers.append(number)
        if len(block) >= _CSV_BLOCK_ROWS:
            yield block, numbers
            block, numbers = [], []
    if block:
        yield block, numbers


@source("csv", params=CsvParams, fields=TickEvent.FIELDS, replayable=True)
def csv_source(params: CsvParams, ctx: BuildContext) -> CsvSource:
    """Replay quote ticks from a CSV file (gz, header mapping, timestamp unit, speed max|realtime|Nx).

    Finite and replayable; malformed rows are dead-lettered and the replay goes on.
    """
    return CsvSource(params, ctx)
