"""`RUN_DIR/status.json`: the latest snapshot of a running pipeline, for `cep top`.

The supervisor replaces it atomically (write a temporary file, rename) with each snapshot, about
twice a second, and removes it when the run ends. It is JSON, 0600, in the private run directory
(`rundir.py`); a reader trusts it only if it is a regular file of the user's that nobody else may
write, in a directory nobody else may write, and takes nothing from it but plain data.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from cep.errors import RuntimeFailure
from cep.runtime.rundir import private_file

STATUS = "status.json"


def status_path(run_dir: Path) -> Path:
    return Path(run_dir) / STATUS


class StatusFile:
    """The writer, in the supervisor (which holds the run directory's lock)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = status_path(run_dir)
        self._temporary = self.path.with_name(STATUS + ".tmp")

    def write(self, snapshot: dict[str, Any]) -> bool:
        """Replace the status file with `snapshot`; False if it could not be written (the run
        directory removed under the run, a full disk): the run goes on, the next write tries again."""
        try:
            fd = private_file(self._temporary)
            try:
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(snapshot, separators=(",", ":")).encode())
            finally:
                os.close(fd)
            os.replace(self._temporary, self.path)
        except OSError:
            return False
        return True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self._temporary.unlink(missing_ok=True)


class Untrusted(RuntimeFailure):
    """A status file or run directory another user could have written."""


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The snapshot in `run_dir`, None if there is none; Untrusted if the directory or the file
    could have been written by another user, RuntimeFailure if it is not a snapshot."""
    _check_private(Path(run_dir), stat.S_ISDIR, "run directory")
    path = status_path(run_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Untrusted(f"cannot read {path}: {exc.strerror}") from None
    try:
        _check_owned(os.fstat(fd), path, stat.S_ISREG, "status file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            raw = file.read()
    finally:
        os.close(fd)
    try:
        snapshot = json.loads(raw)
    except ValueError as exc:
        raise RuntimeFailure(f"{path} is not a status snapshot: {exc}") from None
    if not isinstance(snapshot, dict) or snapshot.get("format") != 1:
        raise RuntimeFailure(f"{path} is not a status snapshot this cep can read (format "
                             f"{snapshot.get('format') if isinstance(snapshot, dict) else None!r})")
    return snapshot


def _check_private(path: Path, kind, what: str) -> None:
    """FileNotFoundError if `path` does not exist; Untrusted if another user could write it."""
    _check_owned(os.lstat(path), path, kind, what)


def _check_owned(found: os.stat_result, path: Path, kind, what: str) -> None:
    if not kind(found.st_mode):
        raise Untrusted(f"{what} {path} is not a {'directory' if kind is stat.S_ISDIR else 'regular file'}: "
                        "not reading it")
    if found.st_uid != os.geteuid():
        raise Untrusted(f"{what} {path} belongs to uid {found.st_uid}, not to you: not reading it")
    if found.st_mode & 0o022:
        raise Untrusted(f"{what} {path} has mode {stat.S_IMODE(found.st_mode):o}, writable by others: "
                        "not reading it")
