"""Run directories: the pipeline's ipc sockets, lock and checkpoints, private to the user.

A worker trusts what its run directory holds (a restarted worker resumes from its checkpoint
there) and the pipeline's processes talk through the sockets in it, so nobody else may read it,
write into it, or swap it. The default, `/tmp/cep-<uid>/<name>`, is predictable: another local
user could create it first. So:

- what cep creates on the way to a run directory, and the run directory itself, is mode 0700
  whatever the umask; files in it are 0600 (`owner_only_files` around socket binds; the
  checkpoint store opens its files 0600);
- a run directory is refused (RuntimeFailure naming it, its owner and what to do) if it is a
  symlink, not the user's, or writable by group or others; one of the user's that others may only
  read is made 0700;
- so is a directory above it that another user could swap it in: one owned by another user than
  the user or root, or writable by others without the sticky bit (`/tmp` has it). A directory
  above that only its group may write (a user-private group's umask 002) is accepted.

Checks go through `lstat` and a directory opened with `O_NOFOLLOW`, whose descriptor is then
checked and tightened, so a symlink swapped in between cannot redirect them.
"""
from __future__ import annotations

import os
import pwd
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cep.errors import RuntimeFailure

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
ELSEWHERE = "or run elsewhere: --run-dir, $CEP_RUN_DIR or the pipeline's transport.dir"


def private_run_dir(path: Path) -> Path:
    """`path` as a run directory of the user's alone: created (with what is missing above it)
    0700, or checked; RuntimeFailure if another user could have planted it or can write into it."""
    path = Path(os.path.abspath(path))
    for ancestor in reversed(path.parents):
        if os.path.lexists(ancestor):
            _check_ancestor(ancestor)
        else:
            private_dir(ancestor, "directory")
    return private_dir(path)


def private_dir(path: Path, what: str = "run directory") -> Path:
    """Create `path` 0700 if missing; check it is a real directory of the user's that nobody else
    may write into, and make it 0700 (a run directory's subdirectories, e.g. its checkpoints)."""
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if os.path.islink(path):
            raise _refused(path, what, os.lstat(path), "is a symlink") from None
        raise RuntimeFailure(f"{what} {path} cannot be used: {exc.strerror}") from exc
    try:
        found = os.fstat(fd)
        if found.st_uid != os.geteuid():
            raise _refused(path, what, found, f"is owned by {_user(found.st_uid)}, not by you, "
                                              f"{_user(os.geteuid())}")
        if found.st_mode & 0o022:
            raise _refused(path, what, found, f"has mode {stat.S_IMODE(found.st_mode):o}, writable by "
                                              f"{_writers(found.st_mode)}")
        if stat.S_IMODE(found.st_mode) != PRIVATE_DIR:
            os.fchmod(fd, PRIVATE_DIR)
    finally:
        os.close(fd)
    return path


def private_file(path: Path) -> int:
    """Open (creating it if missing) a file only the user may read and write: a descriptor, the
    file made 0600 whatever the umask or its mode before; never through a symlink."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd


def private_database(path: Path, fresh: bool) -> sqlite3.Connection:
    """A SQLite file of a run (a log a restarted process reads back) only the user may read:
    0600, WAL, autocommit, `synchronous=NORMAL` (a killed process loses nothing committed);
    `fresh` removes what an earlier run left first."""
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.close(private_file(path))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


@contextmanager
def owner_only_files() -> Iterator[None]:
    """Files created inside (ipc sockets, which a bind creates) are 0600 whatever the umask."""
    saved = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(saved)


def _check_ancestor(path: Path) -> None:
    """A directory above a run directory: nobody but the user or root can swap what is in it."""
    found = os.lstat(path)
    trusted = (0, os.geteuid())
    if stat.S_ISLNK(found.st_mode):
        if found.st_uid not in trusted:
            raise _refused(path, "directory", found, f"is a symlink owned by {_user(found.st_uid)}")
        found = os.stat(path)
    if found.st_uid not in trusted:
        raise _refused(path, "directory", found, f"is owned by {_user(found.st_uid)}, not by you, "
                                                 f"{_user(os.geteuid())}, or root, who could swap the run "
                                                 "directory inside it")
    if found.st_mode & stat.S_IWOTH and not found.st_mode & stat.S_ISVTX:
        raise _refused(path, "directory", found, f"has mode {stat.S_IMODE(found.st_mode):o}, writable by "
                                                 "others without the sticky bit, who could swap the run "
                                                 "directory inside it")


def _refused(path: Path, what: str, found: os.stat_result, why: str) -> RuntimeFailure:
    """Why a path cannot hold a run directory, and what to do about it."""
    return RuntimeFailure(f"{what} {path} {why}: another user may have made it to get at this "
                          f"pipeline's sockets and checkpoints. Remove it (or ask its owner, "
                          f"{_user(found.st_uid)}, to), {ELSEWHERE}")


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _writers(mode: int) -> str:
    return " and ".join(who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if mode & bit)
