"""Data files named in a pipeline: resolved against the pipeline's directory, checked at load time.

The config loader validates params with `context={"base_dir": Path}`; a file that is missing must
be reported then (with the pipeline's file:line), not when the run reaches the source.
"""
from __future__ import annotations

import gzip
import io
import zlib
from abc import ABC, abstractmethod
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterator, TextIO

from pydantic import ValidationInfo

from cep.components.base import BuildContext
from cep.components.sources.pacing import Resumable, paced_batches
from cep.errors import UnreadableFile
from cep.events import Record
from cep.rows import AnyBatch, Rows


def resolve_existing(path: str | Path, info: ValidationInfo, what: str = "data file") -> Path:
    """The absolute path of an existing file; ValueError with a hint when it does not exist."""
    context: Any = info.context or {}
    base_dir = Path(context.get("base_dir") or Path.cwd())
    given = Path(path).expanduser()
    resolved = (given if given.is_absolute() else base_dir / given).resolve()
    if not resolved.is_file():
        where = "" if given.is_absolute() else f", {base_dir}"
        raise ValueError(f"no such {what}: {resolved} (relative paths resolve against the "
                         f"pipeline file's directory{where})")
    return resolved


def open_text(path: Path, errors: str = "replace") -> TextIO:
    """Open a text data file for streaming; `.gz` files are decompressed on the fly.

    Undecodable bytes become U+FFFD (or, with `errors="surrogateescape"`, lone surrogates a
    reader can tell from text) instead of raising, so a garbled line is dead-lettered alone
    rather than ending the whole replay. A byte-order mark, which spreadsheet programs put at the
    start of the CSV files they save, is dropped (`utf-8-sig`), or it would be part of the first
    column's name.
    """
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors=errors, newline="")
    return open(path, encoding="utf-8-sig", errors=errors, newline="")


UNREADABLE = (OSError, EOFError, zlib.error)
"""What reading a data file raises when its .gz is cut off (EOFError) or corrupt (a CRC failure,
an OSError; deflate data zlib refuses, zlib.error)."""


def unreadable(path: Path, rows: int, exc: BaseException) -> UnreadableFile:
    """The error that ends a replay whose file cannot be read past `rows` rows: the rest would
    be lost silently, and a restart would only meet the same end."""
    what = "truncated" if isinstance(exc, EOFError) else "corrupt"
    return UnreadableFile(f"{path} is {what} after row {rows} ({exc})")


class FileReplay(Resumable, ABC):
    """What every file-replay source shares: finite, replayable, paced by event time, one open
    stream closed by `close()`. A subclass implements `_records()`, opening `self._path` with
    `self._open()`."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx
        self._path = ctx.resolve(params.path)
        self._stream: TextIO | None = None

    fields: tuple[str, ...] | None = None
    """Set by a subclass whose `_records()` yields rows of these fields instead of record dicts:
    its batches are then `Rows`, which cost no dict per record on the way to the wire."""

    def batches(self) -> Iterator[AnyBatch]:
        batches = paced_batches(self._records(), self._ctx.batch_size, self._params.speed,
                                timestamp_of=itemgetter("timestamp" if self.fields is None
                                                        else self.fields.index("timestamp")),
                                skip=self._skip)
        if self.fields is None:
            return batches
        return (Rows(self.fields, rows) for rows in batches)

    @abstractmethod
    def _records(self) -> Iterator[Record] | Iterator[tuple]:
        """The file's records (or rows of `fields`) in order; bad lines are dead-lettered."""

    def _open(self) -> TextIO:
        self._stream = open_text(self._path)
        return self._stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
