"""The WAL of a SQLite log written on a worker's hot path, moved into the database by a thread
of its own (exactly_once checkpoints, the executor's order log, the venue's request log).

Why: SQLite checkpoints a WAL database inside the COMMIT that takes the log past 1,000 pages,
and with `synchronous=NORMAL` that checkpoint syncs the log and the database while the writer
waits. At 1,000 orders/s the executor's order log crossed it every ~200 ms and held the executor
~5 ms each time: signal -> acknowledged p99 9.5-9.9 ms against 2.6-4.1 ms without it
(bench/orders_pipeline.py). Here the writer never checkpoints; a thread with its own connection
runs a PASSIVE checkpoint (it never waits for, nor blocks, the writer) every `EVERY_S`, and
sqlite3 lets go of the GIL while it works. A kill at any moment is safe: a checkpoint cut short
is finished by whoever opens the database next, as SQLite guarantees for any crash.
"""
from __future__ import annotations

import sqlite3
import threading
import weakref
from pathlib import Path

EVERY_S = 0.25
"""How often the log is moved: the WAL stays at what the writer commits in that time."""


class WalCheckpointer:
    """Moves `db`'s WAL (the connection of the database at `path`) into the database until closed."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        db.execute("PRAGMA wal_autocheckpoint=0")
        self._closing = threading.Event()
        self._thread = threading.Thread(target=_move, args=(path, self._closing, weakref.ref(self)),
                                        name=f"wal {path.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self._thread.join()


def _move(path: Path, closing: threading.Event, owner: "weakref.ref[WalCheckpointer]") -> None:
    """The thread: a checkpoint every `EVERY_S` until closed, or until its `WalCheckpointer` is
    gone (a log dropped unclosed, as a crashed process's is in tests: no thread outlives it)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        while not closing.wait(EVERY_S) and owner() is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError:  # busy or locked for a moment: the next round moves it
                pass
    finally:
        db.close()
