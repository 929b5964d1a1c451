"""What a restarted order executor remembers when no checkpoint brings its state back
(`at_most_once`, `at_least_once`).

Why: under exactly_once the executor's state comes back with its worker's checkpoint. In the
other modes nothing did, and an executor that forgot its orders traded as if flat while the venue
held its positions; under at_least_once it also met again the signals in flight when it died, and
lost those it held waiting for their quote. Real trading systems keep their own order store and
reconcile it with the exchange on restart; so does the executor:

- `OrderLog` (SQLite, WAL, 0600 in the private run directory): every OrderEvent the executor
  made, and where it stood (the signals waiting for their quote, the instant and number of quotes
  it had taken and its latest quotes, how far it had read the venue's fill stream, the risk
  manager's equity and trading state), written in one transaction at the end of each pass,
  before that pass's events leave the process;
- on restart, `Recovery` folds the events back into the order ledger, the positions and the
  signals decided, puts back the rest, and before it decides anything asks the venue by client
  order id for each order whose reply was lost with the process (`OrderExecutor.reconcile`);
- what comes again is left out: quotes up to the instant it had reached, signals it had decided
  or holds (counted as `taken before the restart`);
- under at_least_once the logged events are sent again, once, so whatever the crash lost on its
  way to the sinks arrives (the journal keeps each event once; a jsonl log may repeat some, as
  at_least_once allows). Under at_most_once they are not: what was in flight is lost, as in
  that mode anything in flight is.

Cost: a SQLite transaction per pass of the executor (not per quote), and on restart one read of
the log plus a query per order whose reply was lost.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgpack
from pydantic import BaseModel, ConfigDict, ValidationError

from cep.errors import RuntimeFailure
from cep.events import OrderEvent, OrderStatus, TickEvent
from cep.orders.breaker import BreakerState
from cep.orders.positions import TradingState
from cep.orders.state import Quote, quote_data
from cep.rows import Rows, as_records
from cep.runtime.rundir import private_database
from cep.runtime.wal import WalCheckpointer


class Standing(BaseModel):
    """Where the executor stood at the end of a pass (what its events do not say)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pending: list[dict[str, Any]]
    clock: int
    quotes: int
    at_clock: int            # quotes taken at exactly `clock`
    signals: int
    after: int               # reports of the venue's fill stream taken
    latest: list[Quote]
    marks: list[Quote]
    risk: tuple[TradingState, float, float, float, int | None]   # state, equity, peak, day start, day


class OrderLog:
    """The executor's events and standing, durable before its events leave. `fresh` starts it
    empty (a new run); a restarted executor opens it as it was."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        self.db = private_database(path, fresh)
        self._wal = WalCheckpointer(self.db, path)
        self.db.execute("CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY, event TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS standing (id INTEGER PRIMARY KEY CHECK (id = 0), state BLOB)")

    def write(self, events: list[OrderEvent], standing: dict[str, Any] | None = None) -> None:
        """Append `events` and, unless None, replace the standing, in one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT INTO events (event) VALUES (?)",
                                [(json.dumps(e.to_record(), allow_nan=False, separators=(",", ":")),) for e in events])
            if standing is not None:
                self.db.execute("INSERT OR REPLACE INTO standing VALUES (0, ?)",
                                (msgpack.packb(standing, use_bin_type=True),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def read(self) -> tuple[list[OrderEvent], Standing | None]:
        """The events in the order they were made and the last standing (None if never written);
        RuntimeFailure naming the file if it does not read back as what `write` wrote."""
        try:
            events = [OrderEvent.from_record(json.loads(text))
                      for (text,) in self.db.execute("SELECT event FROM events ORDER BY position")]
            row = self.db.execute("SELECT state FROM standing").fetchone()
            standing = None if row is None else Standing.model_validate(
                msgpack.unpackb(row[0], raw=False, strict_map_key=False))
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError, ValidationError) as exc:
            raise RuntimeFailure(f"the order log {self.path} is damaged ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0]}); start the run afresh") from None
        return events, standing

    def close(self) -> None:
        self._wal.close()
        self.db.close()


class Recovery:
    """An `ExecutorNode` with its `OrderLog`: `step` and `finish` in its place. A restarted one
    (`restart=True`) is brought back from the log first; `resend` sends the logged events again
    (at_least_once)."""

    def __init__(self, node: Any, log: OrderLog, *, restart: bool, resend: bool) -> None:
        self.node, self.log = node, log
        node.link.kept = (0, 0)
        self.at_clock = 0
        self._replay: list[dict[str, Any]] | None = None   # the first pass's output, after a restart
        self._restarted = False
        self._sent_at: dict[str, int] = {}   # orders SUBMITTED, not answered yet: when they were sent
        self._session = 0   # the venue's, as last seen
        self._made: list[OrderEvent] = []    # this pass's events so far
        node.executor.listeners.append(self._made_one)
        if restart:
            events, standing = log.read()
            if standing is not None or events:
                self._restore(events, standing)
                self._replay = [event.to_record() for event in events] if resend else []
                self._restarted = True

    def step(self, batch: Any) -> list[dict[str, Any]]:
        again, out = self._after_restart()
        if self._restarted:
            batch = self._unseen(batch)
        clock = self.node.clock
        out += self.node.step(batch)
        self._count_at_clock(batch, clock)
        out += self._reconciled_now()
        self._write(self._standing())
        return again + out

    def finish(self) -> list[dict[str, Any]]:
        again, out = self._after_restart()
        out += self.node.finish()
        out += self._reconciled_now()
        self._write(self._standing())
        self.log.close()
        return again + out

    def _reconciled_now(self) -> list[dict[str, Any]]:
        """At the end of a pass: if the venue said it restarted without its state, every working
        order is asked for (it lost what it held); else, while the breaker is closed, the orders
        whose place went unanswered (the venue was down) are asked for, and placed again if the
        venue never got them."""
        executor = self.node.executor
        every = self.node.link.session != self._session
        if not (every or (self._sent_at and executor.breaker.state is BreakerState.CLOSED)):
            return []
        self._session = self.node.link.session
        return [event.to_record() for event in executor.reconcile(self.node.clock, self._sent_at, every=every)]

    def _made_one(self, event: OrderEvent) -> None:
        """Every event as the executor makes it; an order is in the log before it is sent, so a
        restart after the venue took it but before the pass ended finds it and asks for it."""
        self._made.append(event)
        self._note_sent(event)
        if event.status is OrderStatus.SUBMITTED:
            self._write(None)

    def _note_sent(self, event: OrderEvent) -> None:
        if event.status is OrderStatus.SUBMITTED:
            self._sent_at[event.client_order_id] = event.timestamp
        else:
            self._sent_at.pop(event.client_order_id, None)

    def _write(self, standing: dict[str, Any] | None) -> None:
        self.log.write(self._made, standing)
        self._made.clear()
        if standing is not None:  # what a restart resumes from: the venue may forget what is before
            self.node.link.kept = (standing["after"], standing["clock"])

    # -- after a restart -----------------------------------------------------------------------
    def _restore(self, events: list[OrderEvent], standing: Standing | None) -> None:
        node, executor = self.node, self.node.executor
        manager = executor.manager
        for event in events:
            self._note_sent(event)
            executor.ledger.recall(event)
            manager.book.apply_event(event)
            executor.risk._seen.add(event.signal_id)
            if event.status is OrderStatus.SUBMITTED:
                executor.risk._recent.append(event.timestamp)
        if standing is None:
            return
        node.pending, node.clock, node.quotes = list(standing.pending), standing.clock, standing.quotes
        node.signals, node.link.after, self.at_clock = standing.signals, standing.after, standing.at_clock
        node.link.kept = (standing.after, standing.clock)
        executor.quotes = {q[1]: TickEvent(*q) for q in standing.latest}
        for quote in standing.marks:
            manager.book.mark(TickEvent(*quote))
        manager.state, manager.equity, manager.peak_equity, manager._day_start_equity, manager._day = standing.risk

    def _after_restart(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """At the first pass after a restart: the logged events to send again (at_least_once),
        and the events of the venue's answers for the orders whose reply was lost, before
        anything new is decided; ([], []) at every other pass."""
        if self._replay is None:
            return [], []
        again, self._replay = self._replay, None
        self.node.link.at(self.node.clock, self.node.quotes)
        return again, [event.to_record() for event in self.node.executor.reconcile(self.node.clock, self._sent_at)]

    def _unseen(self, batch: Any) -> Any:
        """`batch` without what the executor had taken before the restart: signals it decided or
        holds, and quotes before its instant (or at it, as many as it had taken there). Frames
        published while it restarted may come before those sent again (at_least_once keeps no
        order across a restart), so this holds for the rest of its life: a quote older than its
        instant is never taken, and a signal that comes late is decided late."""
        clock, decided = self.node.clock, self.node.executor.risk._seen
        held = {s.get("signal_id") for s in self.node.pending}
        taken = self.at_clock  # quotes at the instant it had taken: as many are taken again
        rows, slot = _items(batch)
        kept = []
        for item in rows:
            if slot is None and "signal_id" in item:
                old = item.get("signal_id") in decided or item.get("signal_id") in held
            else:
                timestamp = item[slot] if slot is not None else item.get("timestamp")
                old = isinstance(timestamp, int) and (timestamp < clock or (timestamp == clock and taken > 0))
                if old and timestamp == clock:
                    taken -= 1
                elif isinstance(timestamp, int) and timestamp > clock:
                    clock, taken = timestamp, 0
            if not old:
                kept.append(item)
        if len(kept) < len(rows):
            self.node.ctx.counters.note("taken before the restart", len(rows) - len(kept))
        return kept if slot is None else Rows(batch.fields, kept)

    # -- every pass ------------------------------------------------------------------------------
    def _count_at_clock(self, batch: Any, before: int) -> None:
        """How many quotes the executor has taken at exactly its instant: those of this batch at
        the batch's end with that timestamp, plus the earlier ones if the instant did not move."""
        clock = self.node.clock
        count = self.at_clock if clock == before else 0
        rows, slot = _items(batch)
        for item in reversed(rows):
            if slot is None and "signal_id" in item:
                continue
            if (item[slot] if slot is not None else item.get("timestamp")) != clock:
                break
            count += 1
        self.at_clock = count

    def _standing(self) -> dict[str, Any]:
        node, executor = self.node, self.node.executor
        manager = executor.manager
        return {"pending": node.pending, "clock": node.clock, "quotes": node.quotes, "at_clock": self.at_clock,
                "signals": node.signals, "after": node.link.after,
                "latest": [quote_data(q) for q in executor.quotes.values()],
                "marks": [quote_data(q) for q in manager.book._marks.values()],
                "risk": (manager.state.value, manager.equity, manager.peak_equity, manager._day_start_equity,
                         manager._day)}


def _items(batch: Any) -> tuple[list, int | None]:
    """A batch's items and the slot of their timestamp: the rows of quotes as sources make them
    (no dict per quote), else records (signals and quotes) and None."""
    if type(batch) is Rows and batch.slot("signal_id") is None:
        return batch.rows, batch.slot("timestamp")
    return as_records(batch), None
