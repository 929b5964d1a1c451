"""Checkpoints for `exactly_once` (DESIGN §5): one SQLite file per worker, in WAL mode, under the
run directory.

A checkpoint is taken after each pass of the worker loop that changed something, before the
pass's output frames leave the process, and holds atomically (one transaction):
- the state of every component that declared it (`BuildContext.keep_state`), the sources'
  offsets (records emitted) and the sequence numbers each input stream has delivered;
- the outbox: every output frame not yet acknowledged, per consumer worker.
Acknowledgements upstream go out only after the checkpoint, so whatever a crash interrupts comes
again from upstream, and the sequence numbers already delivered are dropped as duplicates; output
frames a crash left unsent are in the outbox and are sent again with their original sequence
numbers, which downstream dedupes. Nothing is lost and nothing is processed twice.

State is data, never code: each part is msgpack of plain data (`encode_state`; what that is, and
how a component converts the rest, is in `cep.components.state`), and a part read back is checked
by its component's schema before it is used. A file changed behind cep's back can at worst be
refused: the worker does not start, with `checkpoint of NODE is not valid: ...`, and the run fails
(exit 1) rather than go on from a state nobody wrote. The file and its `-wal` and `-shm` are 0600 in a 0700 directory (`rundir`): only the user
can read a worker's state and outbox, or change what a restarted worker resumes from.

WAL with `synchronous=NORMAL` survives the crash of a process (the case the supervisor repairs),
not the loss of the machine's power.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import msgpack
from pydantic import NonNegativeInt

from cep.components.state import InvalidState, restorer
from cep.errors import RuntimeFailure
from cep.runtime.delivery import Receipts, Window
from cep.runtime.rundir import private_dir, private_file
from cep.runtime.wal import WalCheckpointer

Part = tuple[Callable[[], Any], Callable[[Any], None]]
"""`(snapshot, restore)` of one piece of a worker's state."""

SeenData = list[tuple[str, str, bytes, list[tuple[NonNegativeInt, NonNegativeInt]]]]
"""What each input stream delivered, as checkpointed: `[edge, producer worker, topic, ranges]`."""


def seen_part(receipts: Receipts) -> Part:
    """The sequence numbers each input stream delivered, as a state part: lists, not the tuples
    `Receipts.seen()` keys by (a tuple costs more to encode)."""
    def snapshot() -> list:
        return [[edge, producer, topic, [list(pair) for pair in pairs]]
                for ((edge, producer), topic), pairs in receipts.seen().items()]

    def apply(data: SeenData) -> None:
        receipts.restore_seen({((edge, producer), topic): pairs for edge, producer, topic, pairs in data})
    return snapshot, restorer(SeenData, apply)


def offsets_part(offsets: dict[str, int]) -> Part:
    """The records each source emitted, as a state part."""
    return (lambda: offsets), restorer(dict[str, NonNegativeInt], offsets.update)


def store_path(run_dir: str | Path, worker: str) -> Path:
    """The SQLite file of a worker's checkpoints."""
    return Path(run_dir) / "checkpoints" / f"{worker}.sqlite"


class CheckpointStore:
    """The SQLite file of one worker. `fresh` (a first start in this run) forgets an older run's."""

    def __init__(self, path: Path, fresh: bool) -> None:
        private_dir(path.parent, "checkpoint directory")
        files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        if fresh:
            for leftover in files:
                leftover.unlink(missing_ok=True)
        for existing in [path] + [f for f in files[1:] if f.exists()]:
            os.close(private_file(existing))  # SQLite gives -wal and -shm the database's mode
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._wal = WalCheckpointer(self.db, path)
        self.db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS outbox (outlet TEXT, worker TEXT, topic BLOB, seq INTEGER, "
                        "ordinal INTEGER, frame BLOB, PRIMARY KEY (outlet, worker, topic, seq))")

    def load(self) -> tuple[dict[str, bytes], dict[str, list[tuple]]]:
        """(encoded state per key, outbox entries `(worker, topic, seq, ordinal, frame)` per
        outlet); RuntimeFailure if an outbox row is not of those types."""
        states = dict(self.db.execute("SELECT key, value FROM state"))
        outbox: dict[str, list[tuple]] = {}
        for row in self.db.execute("SELECT * FROM outbox"):
            if list(map(type, row)) != _OUTBOX_ROW:
                raise RuntimeFailure(f"checkpoint of the outbox of {row[0]!r} is not valid: a row of types "
                                     f"{[type(v).__name__ for v in row]}; {_remedy(self.path)}")
            outlet, worker, topic, seq, ordinal, frame = row
            outbox.setdefault(outlet, []).append((worker, topic, seq, ordinal, frame))
        return states, outbox

    def commit(self, states: dict[str, Any], journals: dict[str, list[tuple]]) -> None:
        """Write states and the outbox changes in one transaction; RuntimeFailure if it cannot."""
        rows = [(key, _encoded(key, value)) for key, value in states.items()]
        db = self.db
        try:
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise RuntimeFailure(f"checkpoint store {self.path}: {exc}") from exc
        try:
            db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", rows)
            for outlet, journal in journals.items():
                admitted = [(outlet, e[0], e[1], e[2], e[3], bytes(e[4]))
                            for e in journal if len(e) == 5]
                released = [(outlet, e[0], e[1], e[2]) for e in journal if len(e) == 3]
                db.executemany("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?)", admitted)
                db.executemany("DELETE FROM outbox WHERE outlet = ? AND worker = ? AND topic = ? AND seq = ?",
                               released)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise RuntimeFailure(f"checkpoint store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._wal.close()
        self.db.close()


_OUTBOX_ROW = [str, str, bytes, int, int, bytes]
"""The types of an outbox row (outlet, worker, topic, seq, ordinal, frame) as SQLite gives them."""
_BIG_INT = 1
_TUPLE = 2
"""msgpack extension types of the state format: an int beyond 64 bits (two's complement, big
endian) and a tuple (its items as a msgpack array)."""


def encode_state(value: Any) -> bytes:
    """Plain data as msgpack: None, bool, int, float, str, bytes, list, tuple, dict (subclasses of
    those as their base type); TypeError for anything else.

    A tuple costs a nested packer (about 1 us): large states hold lists (a component's schema
    turns them back into tuples). Packers start with a small buffer: msgpack's default 256 KiB is
    a fresh mmap when packers nest, about 10 us each."""
    return msgpack.Packer(use_bin_type=True, strict_types=True, default=_extended, buf_size=1024).pack(value)


def decode_state(data: bytes) -> Any:
    """What `encode_state` encoded; ValueError (or another exception of msgpack's) for anything
    else. Only data comes out: the two extension types are decoded here, no others."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_extension)


_BASES = (int, float, str, bytes, list, dict)


def _extended(value: Any) -> Any:
    if type(value) is tuple:
        return msgpack.ExtType(_TUPLE, encode_state(list(value)))
    if isinstance(value, int) and not isinstance(value, bool):
        value = int(value)
        if -2 ** 63 <= value < 2 ** 64:
            return value  # an int subclass (IntEnum)
        return msgpack.ExtType(_BIG_INT, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))
    for base in _BASES:
        if isinstance(value, base):
            return base(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


def _extension(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        items = decode_state(data)
        if type(items) is not list:
            raise ValueError("a tuple that does not hold an array")
        return tuple(items)
    if code == _BIG_INT:
        return int.from_bytes(data, "big", signed=True)
    raise ValueError(f"unknown msgpack extension type {code}")


def _encoded(key: str, value: Any) -> bytes:
    try:
        return encode_state(value)
    except Exception as exc:  # a component's snapshot that is not plain data
        raise RuntimeFailure(f"the state of {_node(key)!r} cannot be checkpointed (keep_state's snapshot must "
                             f"return plain data, see cep.components.state): {type(exc).__name__}: {exc}") from exc


def _remedy(path: Path) -> str:
    return (f"it was changed outside cep, or written by another version ({path}; remove the run "
            f"directory's checkpoints to start afresh, without exactly_once for the output written so far)")


def _described(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _node(key: str) -> str:
    """The node a state part belongs to (parts are named `node#index`)."""
    return key.split("#")[0]


class Checkpointer:
    """What one worker checkpoints: named state parts and the windows of its outlets.

    `restore()` puts the last checkpoint back (state parts, then windows; the caller retransmits
    the outboxes); `commit()` takes a checkpoint of everything that changed since the last one.
    """

    def __init__(self, store: CheckpointStore, parts: dict[str, Part], windows: dict[str, Window]) -> None:
        self.store = store
        self.parts = parts
        self.windows = windows
        self.taken = 0        # checkpoints committed, and the seconds they took (metrics)
        self.seconds = 0.0
        for window in windows.values():
            window.journal = []

    def restore(self) -> None:
        """RuntimeFailure `checkpoint of NODE is not valid` for a part that does not decode or
        that its component refuses."""
        states, outbox = self.store.load()
        for key, (_, restore) in self.parts.items():
            if key not in states:
                continue
            try:
                data = decode_state(states[key])
            except Exception as exc:  # msgpack raises many types for what is not msgpack
                raise self._invalid(key, f"it is not msgpack of plain data ({_described(exc)})") from exc
            try:
                restore(data)
            except InvalidState as exc:
                raise self._invalid(key, str(exc)) from exc
            except Exception as exc:  # a plugin's restore that checks nothing first
                raise self._invalid(key, _described(exc)) from exc
        for name, window in self.windows.items():
            window.restore(outbox.get(name, ()))

    def _invalid(self, key: str, why: str) -> RuntimeFailure:
        return RuntimeFailure(f"checkpoint of {_node(key)!r} is not valid: {why}; {_remedy(self.store.path)}")

    def commit(self) -> None:
        began = time.perf_counter()
        journals = {name: window.journal for name, window in self.windows.items() if window.journal}
        self.store.commit({key: snapshot() for key, (snapshot, _) in self.parts.items()}, journals)
        for window in self.windows.values():
            window.journal = []
        self.taken += 1
        self.seconds += time.perf_counter() - began

    def stats(self) -> dict[str, float]:
        """Checkpoints taken, their seconds, and the store's size on disk (with its write-ahead log)."""
        size = 0
        for path in (self.store.path, self.store.path.with_name(self.store.path.name + "-wal")):
            try:
                size += path.stat().st_size
            except OSError:
                pass
        return {"count": self.taken, "seconds": self.seconds, "bytes": size}

    def close(self) -> None:
        self.store.close()
