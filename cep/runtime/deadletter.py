"""The dead-letter queue: what could not be decoded or processed, with why and where.

One JSON line per dead letter: time, node, reason and the raw input (text, or base64 for bytes;
a record holding NaN or infinities as its repr, so the line stays JSON). Raw input beyond
`MAX_RAW_CHARS` is cut, saying how long it was: a 20 MB field costs no 20 MB line. Every process
appends to the same file with one `write` per line in append mode, so lines from different
processes never interleave. The count lives in the node's counters.

The file is bounded (`Rotation`): past `max_bytes` it becomes `FILE.1` (the older ones move to
`.2` ... up to `keep`), and the oldest one, when dropped, is counted letter by letter into
`FILE.dropped` (JSON), so what rotation drops is never lost silently. Rotation takes a lock on
that file, so several processes rotate once between them; a process whose file was moved away
opens the new one at its next letter. The limit comes from `CEP_DEAD_LETTERS_MAX_SIZE` (default
64MB, `0` for none) and `CEP_DEAD_LETTERS_KEEP` (rotated files kept, default 1), which workers
take from the supervisor's environment.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from cep.errors import ConfigError, Problem

MAX_RAW_CHARS = 4096


def _cut(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else f"{text[:MAX_RAW_CHARS]}... ({len(text)} characters)"


def _bounded(raw: Any) -> Any:
    """Raw input as a dead letter keeps it: bytes as base64, text and long records cut."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
        kept = {"base64": base64.b64encode(data[:MAX_RAW_CHARS]).decode()}
        return kept if len(data) <= MAX_RAW_CHARS else {**kept, "bytes": len(data)}
    if isinstance(raw, str):
        return _cut(raw)
    if isinstance(raw, (dict, list, tuple)) and len(text := repr(raw)) > MAX_RAW_CHARS:
        return _cut(text)
    return raw


ENV_MAX_SIZE = "CEP_DEAD_LETTERS_MAX_SIZE"
ENV_KEEP = "CEP_DEAD_LETTERS_KEEP"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|KiB|MiB|GiB)?")
_UNITS = {None: 1, "B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
          "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_size(text: str) -> int | None:
    """Bytes for `64MB`, `512kB`, `1GiB` or a plain number; None for `0` (no limit)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size such as 64MB, 512kB or 1GiB")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    return size or None


def _human(size: int) -> str:
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class Rotation:
    """How big the dead-letter file may grow, and how many rotated files are kept beside it."""

    max_bytes: int | None = 64_000_000
    keep: int = 1

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Rotation":
        """The rotation `CEP_DEAD_LETTERS_MAX_SIZE` and `CEP_DEAD_LETTERS_KEEP` ask for; a
        ConfigError naming the variable for a value that is not a size or count."""
        default = cls()
        size, keep = environ.get(ENV_MAX_SIZE), environ.get(ENV_KEEP)
        try:
            max_bytes = default.max_bytes if size is None else parse_size(size)
        except ValueError as exc:
            raise ConfigError(Problem(f"{ENV_MAX_SIZE}={size}: {exc}", hint="write e.g. 64MB, or 0 for no limit")) from None
        if keep is not None and not (keep.strip().isdigit() and int(keep) >= 1):
            raise ConfigError(Problem(f"{ENV_KEEP}={keep}: not a count of rotated files",
                                      hint="write 1 or more"))
        return cls(max_bytes, default.keep if keep is None else int(keep))


def rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def dropped_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.dropped")


class DeadLetters:
    """The writer one process appends its dead letters with (the runtime's `dead_letter_fn`)."""

    def __init__(self, path: str | Path, worker: str, rotation: Rotation | None = None) -> None:
        self.path = Path(path)
        self.worker = worker
        self.rotation = rotation if rotation is not None else Rotation.from_environment()
        self._fd: int | None = None
        self._inode = 0

    def __call__(self, node: str, reason: str, raw: Any) -> None:
        letter = {"time": time.time(), "worker": self.worker, "node": node, "reason": _cut(reason),
                  "raw": _bounded(raw)}
        try:
            line = json.dumps(letter, default=repr, allow_nan=False)
        except ValueError:  # NaN or an infinity in a record: not JSON, so the record as text
            letter["raw"] = _cut(repr(raw))
            line = json.dumps(letter, default=repr)
        self._write((line + "\n").encode("utf-8", "backslashreplace"))

    def _write(self, data: bytes) -> None:
        """Append `data` to the file now at `path`: one stat per letter tells whether another
        process rotated it away (and how big it is). With rotation on, the stat and the write
        hold the rotation lock shared, so no rotation drops the file in between (one did, on a
        loaded host, and its letter was lost uncounted)."""
        limit = self.rotation.max_bytes
        with _shared(dropped_path(self.path)) if limit is not None else nullcontext():
            try:
                found = os.stat(self.path)
            except FileNotFoundError:
                found = None
            if self._fd is not None and (found is None or found.st_ino != self._inode):
                self.close()
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._inode = os.fstat(self._fd).st_ino
            os.write(self._fd, data)
        if limit is not None and (found.st_size if found is not None else 0) + len(data) > limit:
            self._rotate(limit)

    def _moved(self) -> bool:
        """Whether another process rotated the file this one has open."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    def _rotate(self, limit: int) -> None:
        with _locked(dropped_path(self.path)) as counts:
            if not self._moved() and os.fstat(self._fd).st_size > limit:  # nobody rotated it first
                oldest = rotated(self.path, self.rotation.keep)
                if oldest.exists():
                    counts["letters"] += _lines(oldest)
                    counts["bytes"] += oldest.stat().st_size
                    oldest.unlink()
                for index in range(self.rotation.keep - 1, 0, -1):
                    if rotated(self.path, index).exists():
                        os.rename(rotated(self.path, index), rotated(self.path, index + 1))
                os.rename(self.path, rotated(self.path, 1))
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def _shared(path: Path) -> Iterator[None]:
    """The rotation lock (`_locked`) held shared: writers together, no rotation meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def _locked(path: Path) -> Iterator[dict[str, int]]:
    """The counts of what rotation dropped, read and written back under an exclusive lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        counts = _counts(os.pread(fd, 4096, 0))
        yield counts
        data = json.dumps(counts).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)  # releases the lock


def _counts(raw: bytes) -> dict[str, int]:
    try:
        found = json.loads(raw) if raw else {}
        return {key: int(found.get(key, 0)) for key in ("letters", "bytes")}
    except (ValueError, TypeError, AttributeError):  # damaged: start again rather than stop writing
        return {"letters": 0, "bytes": 0}


def _lines(path: Path) -> int:
    count = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
    return count


@dataclass(frozen=True)
class DeadLetterFiles:
    """What the dead letters of one file take on disk now, and what rotation dropped from it."""

    path: Path
    rotation: Rotation
    dropped_letters: int = 0
    dropped_bytes: int = 0

    @property
    def dropped_path(self) -> Path:
        return dropped_path(self.path)

    def paths(self) -> list[Path]:
        """The files that exist, oldest first (`FILE.keep` ... `FILE.1`, `FILE`)."""
        candidates = [rotated(self.path, i) for i in range(self.rotation.keep, 0, -1)] + [self.path]
        return [path for path in candidates if path.exists()]

    def sizes(self) -> dict[Path, int]:
        found = {}
        for path in self.paths():
            try:
                found[path] = path.stat().st_size
            except FileNotFoundError:  # rotated away meanwhile
                continue
        return found

    def describe(self) -> str:
        """`(12.0 kB; it rotates at 64.0 MB into 1 older file: 63.9 MB; 1,234 dropped by rotation)`."""
        sizes = self.sizes()
        current = sizes.pop(self.path, None)
        limit = self.rotation.max_bytes
        parts = [_human(current) if current is not None else "none yet"]
        parts.append(f"it rotates at {_human(limit)}" + (f" into {len(sizes)} older file{'s' * (len(sizes) != 1)}: "
                                                           f"{_human(sum(sizes.values()))}" if sizes else "")
                     if limit is not None else "no size limit")
        if self.dropped_letters:
            parts.append(f"{self.dropped_letters:,} dropped by rotation ({_human(self.dropped_bytes)})")
        return f"({'; '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        sizes = self.sizes()
        return {"bytes": sizes.pop(self.path, 0), "rotated_bytes": sum(sizes.values()),
                "max_bytes": self.rotation.max_bytes, "dropped_by_rotation": self.dropped_letters}


def dead_letter_files(path: str | Path, rotation: Rotation | None = None) -> DeadLetterFiles:
    """The dead-letter files at `path` as they are now (read-only)."""
    path = Path(path)
    try:
        counts = _counts(dropped_path(path).read_bytes())
    except OSError:
        counts = {"letters": 0, "bytes": 0}
    return DeadLetterFiles(path, rotation if rotation is not None else Rotation.from_environment(),
                           counts["letters"], counts["bytes"])


@dataclass(frozen=True)
class Letter:
    """One dead letter as read back: its number counts from the oldest kept, over every file."""

    number: int
    file: Path
    line: int
    time: float | None
    worker: str
    node: str
    reason: str
    raw: Any


@dataclass
class Reading:
    """What reading the files met besides letters: lines that are not a dead letter (a line cut
    by a crash, or a file edited by hand), counted, never fatal."""

    unreadable: int = 0


def read_letters(files: DeadLetterFiles, reading: Reading | None = None) -> Iterator[Letter]:
    """Every dead letter kept in `files`, oldest first, one at a time (files may be 64 MB)."""
    reading = reading if reading is not None else Reading()
    number = 0
    for path in files.paths():
        try:
            lines = open(path, "rb")
        except FileNotFoundError:  # rotated away since it was listed
            continue
        with lines:
            for line_number, line in enumerate(lines, start=1):
                letter = _letter(line)
                if letter is None:
                    reading.unreadable += 1
                    continue
                number += 1
                yield Letter(number, path, line_number, **letter)


def _letter(line: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(line)
    except ValueError:
        return None
    if not isinstance(found, dict) or not {"node", "reason", "raw"} <= found.keys():
        return None
    when = found.get("time")
    return {"time": float(when) if isinstance(when, (int, float)) else None, "worker": str(found.get("worker", "?")),
            "node": str(found["node"]), "reason": str(found["reason"]), "raw": found["raw"]}
