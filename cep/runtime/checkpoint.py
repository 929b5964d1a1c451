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

The file and its `-wal` and `-shm` are 0600 in a 0700 directory (`rundir`): only the user
can read a worker's state and outbox, or change what a restarted worker resumes from.

WAL with `synchronous=NORMAL` survives the crash of a process (the case the supervisor repairs),
not the loss of the machine's power.
"""
from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path
from typing import Any, Callable

from cep.errors import RuntimeFailure
from cep.runtime.delivery import Window
from cep.runtime.rundir import private_dir, private_file

Part = tuple[Callable[[], Any], Callable[[Any], None]]
"""`(snapshot, restore)` of one piece of a worker's state."""


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
        self.db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS outbox (outlet TEXT, worker TEXT, topic BLOB, seq INTEGER, "
                        "ordinal INTEGER, frame BLOB, PRIMARY KEY (outlet, worker, topic, seq))")

    def load(self) -> tuple[dict[str, Any], dict[str, list[tuple]]]:
        """(state per key, outbox entries `(worker, topic, seq, ordinal, frame)` per outlet)."""
        states = {key: pickle.loads(value) for key, value in self.db.execute("SELECT key, value FROM state")}
        outbox: dict[str, list[tuple]] = {}
        for outlet, worker, topic, seq, ordinal, frame in self.db.execute("SELECT * FROM outbox"):
            outbox.setdefault(outlet, []).append((worker, bytes(topic), seq, ordinal, bytes(frame)))
        return states, outbox

    def commit(self, states: dict[str, Any], journals: dict[str, list[tuple]]) -> None:
        """Write states and the outbox changes in one transaction; RuntimeFailure if it cannot."""
        rows = [(key, _pickled(key, value)) for key, value in states.items()]
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
        self.db.close()


def _pickled(key: str, value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # a component's snapshot that is not plain data
        node = key.split("#")[0]
        raise RuntimeFailure(f"the state of {node!r} cannot be checkpointed (keep_state's snapshot must "
                             f"return plain data): {type(exc).__name__}: {exc}") from exc


class Checkpointer:
    """What one worker checkpoints: named state parts and the windows of its outlets.

    `restore()` puts the last checkpoint back (state parts, then windows; the caller retransmits
    the outboxes); `commit()` takes a checkpoint of everything that changed since the last one.
    """

    def __init__(self, store: CheckpointStore, parts: dict[str, Part], windows: dict[str, Window]) -> None:
        self.store = store
        self.parts = parts
        self.windows = windows
        for window in windows.values():
            window.journal = []

    def restore(self) -> None:
        states, outbox = self.store.load()
        for key, (_, restore) in self.parts.items():
            if key in states:
                restore(states[key])
        for name, window in self.windows.items():
            window.restore(outbox.get(name, ()))

    def commit(self) -> None:
        journals = {name: window.journal for name, window in self.windows.items() if window.journal}
        self.store.commit({key: snapshot() for key, (snapshot, _) in self.parts.items()}, journals)
        for window in self.windows.values():
            window.journal = []

    def close(self) -> None:
        self.store.close()
