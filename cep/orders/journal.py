"""The journal: every OrderEvent, appended to a SQLite file, and nothing else ever changes it.

Why event sourcing: the events are the facts (a fill happened at this price); positions, PnL and
an order's history are views of them, rebuilt by folding the events in journal order
(`cep.orders.queries`). So the journal answers questions nobody thought of while trading
(positions as of 10:42, every step of one order), survives the process that wrote it, and can be
read by another process while it is written (WAL: readers never block the writer).

The file:
- table `order_events`, one row per OrderEvent in the order they happened (`position`), with the
  columns a query filters by (client order id, sequence, signal id, instrument, status, event
  time, fill id) and the whole event as JSON (plain data: never pickle, since whoever can write
  the file must not be able to run code in whoever reads it). A fill is journaled as the
  OrderEvent that reports it; the view `fills` shows those rows alone;
- (client order id, sequence) is unique: appending an event again (a replay after a crash) is
  skipped and counted in `Journal.duplicates`, so an event is in the journal once;
- triggers refuse UPDATE and DELETE: append-only is enforced by the file, not by convention;
- the file is 0600 (SQLite gives its -wal and -shm files the same mode): orders and positions
  are nobody else's business.

Beside the facts, one read model: table `marks`, each instrument's latest quote (bid, ask, event
time) that the `positions` sink was given, so that `cep positions` can mark a position where it
could be closed (the bid when long, the ask when short). A quote is not an order event: keeping
every one would make the journal the market's tape, so only the latest is kept, replaced in
place, and never by an older quote (a replay after a restart leaves it as it was).
"""
from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Iterable, Iterator

from cep.errors import RuntimeFailure, UserError
from cep.events import OrderEvent, TickEvent
from cep.runtime.rundir import private_file

FORMAT = "cep-journal 1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    signal_id TEXT NOT NULL,
    instrument TEXT NOT NULL,
    status TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    fill_id TEXT,
    event TEXT NOT NULL,
    UNIQUE (client_order_id, sequence)
);
CREATE INDEX IF NOT EXISTS order_events_by_signal ON order_events (signal_id);
CREATE INDEX IF NOT EXISTS order_events_by_time ON order_events (timestamp);
CREATE VIEW IF NOT EXISTS fills AS SELECT * FROM order_events WHERE fill_id IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS order_events_no_update BEFORE UPDATE ON order_events
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS order_events_no_delete BEFORE DELETE ON order_events
    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TABLE IF NOT EXISTS marks (
    instrument TEXT PRIMARY KEY,
    bid REAL NOT NULL,
    ask REAL NOT NULL,
    timestamp INTEGER NOT NULL
);
"""
MARK = """INSERT INTO marks (instrument, bid, ask, timestamp) VALUES (?, ?, ?, ?)
    ON CONFLICT (instrument) DO UPDATE SET bid = excluded.bid, ask = excluded.ask, timestamp = excluded.timestamp
    WHERE excluded.timestamp >= marks.timestamp"""


class Journal:
    """The write side: `append(events)` in one transaction; usable as a context manager."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            os.close(private_file(self.path))
        except OSError as exc:
            raise RuntimeFailure(f"cannot open the journal {self.path}: {exc.strerror}") from exc
        self.db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO journal_meta VALUES ('format', ?)", (FORMAT,))
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise RuntimeFailure(f"{self.path} is not a cep journal ({exc}); name a new file") from exc
        self.duplicates = 0

    def append(self, events: Iterable[OrderEvent]) -> int:
        """Append `events` atomically; returns how many were new."""
        rows = [_row(event) for event in events]
        with_changes = self.db.total_changes
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO order_events (client_order_id, sequence, signal_id, instrument, status,"
                " timestamp, fill_id, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        added = self.db.total_changes - with_changes
        self.duplicates += len(rows) - added
        return added

    def mark(self, quotes: Iterable[TickEvent]) -> None:
        """Keep each quote as its instrument's latest, unless a later one is kept already."""
        rows = [(q.instrument, q.bid_price, q.ask_price, q.timestamp) for q in quotes]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(MARK, rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _row(event: OrderEvent) -> tuple:
    record = event.to_record()
    return (event.client_order_id, event.sequence, event.signal_id, event.instrument, record["status"],
            event.timestamp, event.fill_id, json.dumps(record, allow_nan=False, separators=(",", ":")))


def read_events(path: Path | str, *, until: int | None = None, signal_id: str | None = None,
                client_order_id: str | None = None) -> Iterator[OrderEvent]:
    """The journal's events in the order they were appended, optionally only those up to event
    time `until`, of one signal or of one client order id. Read-only: safe while a writer runs."""
    where, arguments = [], []
    for column, value, operator in (("timestamp", until, "<="), ("signal_id", signal_id, "="),
                                    ("client_order_id", client_order_id, "=")):
        if value is not None:
            where.append(f"{column} {operator} ?")
            arguments.append(value)
    query = "SELECT event FROM order_events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY position"
    db = open_for_reading(path)
    try:
        for (text,) in db.execute(query, arguments):
            yield OrderEvent.from_record(json.loads(text))
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: not a readable cep journal ({exc})") from exc
    finally:
        db.close()


def read_marks(path: Path | str) -> dict[str, TickEvent]:
    """Each instrument's latest quote the journal keeps (none in a journal written before it kept
    quotes, or whose sink was given none)."""
    db = open_for_reading(path)
    try:
        rows = db.execute("SELECT instrument, bid, ask, timestamp FROM marks").fetchall()
    except sqlite3.OperationalError:  # no such table: an older journal
        return {}
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: not a readable cep journal ({exc})") from exc
    finally:
        db.close()
    return {instrument: TickEvent(timestamp, instrument, bid, ask) for instrument, bid, ask, timestamp in rows}


def open_for_reading(path: Path | str) -> sqlite3.Connection:
    """A read-only connection to the journal at `path`; UserError (with the path) if there is none."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such journal (a file an order executor's journal wrote)")
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        (found,) = db.execute("SELECT value FROM journal_meta WHERE key = 'format'").fetchone() or (None,)
        if found != FORMAT:
            raise UserError(f"{path}: not a cep journal (format {found!r}, expected {FORMAT!r})")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise UserError(f"{path}: not a cep journal ({exc})") from exc
    except UserError:
        db.close()
        raise
    return db
