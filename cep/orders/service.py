"""The venue node: a venue adapter serving an executor's requests, in the executor's event time.

Why a horizon: the venue process reads its quotes from the gateway while the executor's requests
come over another socket, and the two race. If the venue matched every quote as it came, an
order could meet a different book depending on which process ran faster. So quotes wait here
until a request says the executor's clock reached them: a request stamped `t` and `n` (the
executor had taken `n` quotes, the last at `t`) is served once this venue has `n` quotes, or one
later than `t`, or the quotes ended; it then matches the quotes up to that point (those before
`t`, and those at `t` up to the `n`-th) and advances to `t`, so an order arriving by then meets
its book. The fills are then a function of the executor's requests and the quotes alone: the
same in one process, in several, and on a rerun. (Both read the same stream of quotes, so they
count them alike; if a live feed drops some on one side, the time still bounds the wait.)

The fill stream is kept as a numbered log (`reports`); each reply carries the reports after the
count the request says it has, up to the request's time, so a reply that is lost and asked for
again loses no fill, a fill is never handed out twice under one count, and an executor restarted
from a checkpoint (asking again from an earlier count and time) gets the fills of each instant at
that instant, as the first time. Each reply also says when the next report can come at the
earliest (`due`, from the adapter's `report_due`): the executor asks for the fill stream only at
a quote that reaches it, not at every quote while an order works. Since a report is never due
before the time it says, asking less often changes no fill and no decision, only the requests.

What an executor has taken for good bounds what the venue keeps: each request says, as `kept`,
the count of reports and the event time its executor would resume from after a restart (under
exactly_once those of its last checkpoint, otherwise where it is). The venue forgets the reports
before that count and, if the adapter has `forget(before)`, the orders that finished before that
time; the client order ids it placed stay known, so a repeat is still answered, never placed.
A long run's state therefore holds what is working and recent, plus one id per order.

Under exactly_once the venue's own crash changes nothing either: its state is checkpointed with
its worker's (`cep.orders.state`), and every request it serves is first appended to a request log
(`RequestLog`, SQLite in the run directory), since the reply leaves before the next checkpoint.
A restarted venue restores its checkpoint and serves the logged requests after it again, in
order, as its quotes come again: the same state, the same fills.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from cep.events import OrderStatus, TickEvent
from cep.orders import messages
from cep.orders.venue import Report, ReportDue, VenueAdapter, VenueReply, forgotten
from cep.runtime.rundir import private_database
from cep.runtime.wal import WalCheckpointer

Respond = Callable[[dict[str, Any]], None]
Waiting = tuple[dict[str, Any], "Respond | None"]


class VenueService:
    """`on_quotes(records)`, `quotes_ended()` and `handle(request, respond)`; `respond` is called
    once per request, perhaps later (when the quotes it waits for come)."""

    def __init__(self, adapter: VenueAdapter, log: "RequestLog | None" = None) -> None:
        self.adapter = adapter
        self.log = log
        self.reports: list[Report] = []   # the fill stream from report number `base` on
        self.base = 0                     # reports forgotten: every executor has taken them for good
        self.kept: dict[str, tuple[int, int]] = {}  # per executor: (reports, event time) it keeps
        self.quotes: deque[TickEvent] = deque()
        self.latest = -math.inf      # the newest quote's time so far
        self.received = 0            # quotes so far
        self.applied = 0             # quotes matched so far
        self.ended = False
        self.waiting: deque[Waiting] = deque()
        self.refused: Counter[str] = Counter()
        self.handled = 0
        self.placed: set[str] = set()   # client order ids placed: a repeat is answered, never placed
        self.lost: set[str] = set()     # placed before a restart without a checkpoint: the adapter lost them
        self.session = 0
        """0, or which restart without a checkpoint this venue is: its answers say so, and an executor
        that sees it change asks for its working orders (the adapter lost what it held)."""
        self._renumber = False
        self.repeats = 0

    def close(self) -> None:
        """The process is done with the venue: its request log closes."""
        if self.log is not None:
            self.log.close()

    def restarted_without_state(self, log: "RequestLog", session: int) -> None:
        """This venue took over from one that died with its state (no checkpoint): it answers a
        repeat of an order its log says was placed and never places it again, numbers the
        requests it serves on from the log's and its fill stream on from the count its first
        request says was taken (so no new report is skipped as taken), serves each request with the
        quotes it has, and says `session` in every answer."""
        self.lost = log.placed()
        self.placed |= self.lost
        self.handled = log.served()
        self.session, self._renumber = session, True

    def on_quotes(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            try:
                quote = TickEvent(record["timestamp"], record["instrument"], record["bid_price"],
                                  record["ask_price"], record.get("bid_volume"), record.get("ask_volume"))
            except (KeyError, TypeError):
                self.refused["not a quote"] += 1
                continue
            self.quotes.append(quote)
            self.received += 1
            self.latest = max(self.latest, quote.timestamp)
        self.pump()

    def quotes_ended(self) -> None:
        self.ended = True
        self.pump()

    def handle(self, request: Any, respond: Respond) -> None:
        if not messages.is_request(request):
            self.refused["malformed request"] += 1
            respond({"id": request.get("id") if isinstance(request, dict) else None,
                     "error": "a request needs an id, an op of " + "/".join(messages.OPS) + ", t, n and after "
                              "(and kept, if any, as [reports, time])"})
            return
        self.waiting.append((request, respond))
        self.pump()

    def pump(self) -> None:
        """Serve the requests whose time the quotes have passed, in the order they came."""
        while self.waiting and self._reached(self.waiting[0][0]):
            request, respond = self.waiting.popleft()
            answer = self._serve(request)
            if respond is not None:  # None: a logged request served again after a restart
                if self.log is not None and "error" not in answer:
                    self.log.append(request, self.handled)
                respond(answer)

    def replay(self, requests: list[dict[str, Any]]) -> None:
        """Serve again, before anything new, the requests served after the restored checkpoint."""
        self.waiting.extendleft((request, None) for request in reversed(requests))

    def _reached(self, request: dict[str, Any]) -> bool:
        """The quotes up to the request's time are here (a venue restarted without its state
        serves at once: its predecessor had quotes it will never get, so it cannot count them)."""
        return self.ended or self.session > 0 or self.received >= request["n"] or self.latest > request["t"]

    def _serve(self, request: dict[str, Any]) -> dict[str, Any]:
        t, n = request["t"], request["n"]
        on_quote = getattr(self.adapter, "on_quote", None)
        while self.quotes and (self.quotes[0].timestamp < t or (self.quotes[0].timestamp == t and self.applied < n)):
            quote = self.quotes.popleft()
            self.applied += 1
            if on_quote is not None:
                on_quote(quote)
        advance = getattr(self.adapter, "advance_to", None)
        if advance is not None:
            advance(t)
        self._collect()
        reply = None
        try:
            reply = self._call(request)
        except (TypeError, ValueError) as exc:  # a request the venue cannot read: said, not raised
            self.refused["malformed request"] += 1
            return {"id": request["id"], "error": f"{type(exc).__name__}: {exc}"}
        self._collect()
        self.handled += 1
        if self._renumber:
            self.base, self._renumber = max(self.base, request["after"]), False
        end = self.base + len(self.reports)
        after = count = min(max(request["after"], self.base), end)
        while count < end and self.reports[count - self.base].timestamp <= t:
            count += 1
        answer = {"id": request["id"], "reply": messages.reply_of(reply),
                  "reports": [messages.report_of(r) for r in self.reports[after - self.base:count - self.base]],
                  "count": count}
        due = self._due(count)
        if due is not None:
            answer["due"] = messages.due_of(due)
        if self.session:
            answer["session"] = self.session
        if "kept" in request:
            self._forget(request.get("by", ""), request["kept"])
        return answer

    def _forget(self, executor: str, kept: list[int]) -> None:
        """What no executor will ask for again: the reports before the count every executor keeps,
        the orders finished before the time every executor keeps (their ids stay known)."""
        count, time = kept
        before = self.kept.get(executor, (0, 0))
        self.kept[executor] = (max(before[0], count), max(before[1], time))
        count = min(c for c, _ in self.kept.values())
        if count > self.base:
            del self.reports[:count - self.base]
            self.base = count
        forget = getattr(self.adapter, "forget", None)
        if forget is not None:
            forget(min(t for _, t in self.kept.values()))

    def _due(self, count: int) -> ReportDue | None:
        """When the executor should ask again for the fill stream (None: at every quote): what
        the adapter says, or sooner if reports later than this request wait to be handed out."""
        report_due = getattr(self.adapter, "report_due", None)
        if report_due is None:
            return None
        due = report_due()
        if count < self.base + len(self.reports):
            waiting = self.reports[count - self.base].timestamp
            due = ReportDue(waiting if due.at is None else min(due.at, waiting), due.instruments)
        return due

    def _call(self, request: dict[str, Any]):
        op = request["op"]
        if op == "place":
            order = messages.order_of(request.get("order"))
            if order.client_order_id in self.placed:  # a retry whose reply was lost: not a second order
                self.repeats += 1
                request["repeat"] = True
                known = self.adapter.query(order.client_order_id)
                if known is None and order.client_order_id in self.lost:
                    return VenueReply(order.client_order_id, OrderStatus.REJECTED, duplicate=True,
                                      reason="VENUE_RESTARTED: the venue took this order before it restarted and lost it")
                return replace(known or forgotten(order.client_order_id), duplicate=True)
            self.placed.add(order.client_order_id)
            return self.adapter.place(order)
        if op in ("cancel", "query"):
            coid = request.get("client_order_id")
            if not isinstance(coid, str):
                raise ValueError(f"{op} needs a client_order_id")
            return self.adapter.cancel(coid, request["t"]) if op == "cancel" else self.adapter.query(coid)
        return None  # sync: only the reports

    def _collect(self) -> None:
        self.reports.extend(self.adapter.reports())


class RequestLog:
    """The requests a venue served, in order, durable before each reply leaves (SQLite, WAL;
    0600 in the private run directory). `fresh` starts it empty (a new run); `places_only` keeps
    the place requests alone (no checkpoint to serve the others again after). Other requests are
    dropped once no restart can need them (`checkpoint`); the places stay, one row per order
    placed: the record of what reached the venue."""

    def __init__(self, path: Path, fresh: bool, places_only: bool = False) -> None:
        self.places_only = places_only
        self.db = private_database(path, fresh)
        self._wal = WalCheckpointer(self.db, path)
        self.db.execute("CREATE TABLE IF NOT EXISTS served (position INTEGER PRIMARY KEY, request BLOB NOT NULL, "
                        "op TEXT NOT NULL)")
        self._covered = 0  # requests the last checkpoint covers

    def append(self, request: dict[str, Any], position: int) -> None:
        """Keep `request`, the venue's `position`-th served (its count, which its checkpoints
        hold: numbering from the rows kept would go wrong once checkpoints dropped them all)."""
        if self.places_only and request["op"] != "place":
            return
        self.db.execute("INSERT INTO served VALUES (?, ?, ?)", (position, messages.encode(request), request["op"]))

    def checkpoint(self, handled: int) -> None:
        """A checkpoint of the venue after its first `handled` requests is being taken (or was
        restored). A restart resumes from the one before it at the earliest, which is safe by now
        (a worker takes a checkpoint only once the one before it is written): the requests that
        one covers are dropped (but places), so the log holds about two checkpoints' worth."""
        self.db.execute("DELETE FROM served WHERE position <= ? AND op != 'place'", (self._covered,))
        self._covered = handled

    def since(self, handled: int) -> list[dict[str, Any]]:
        """The requests served after the first `handled` (checked as any request is, when served)."""
        rows = self.db.execute("SELECT request FROM served WHERE position > ? ORDER BY position", (handled,))
        return [messages.decode(data) for (data,) in rows]

    def served(self) -> int:
        """The venue's count of requests served at the last one kept."""
        return self.db.execute("SELECT coalesce(max(position), 0) FROM served").fetchone()[0]

    def placed(self) -> set[str]:
        """The client order ids of the orders placed (a repeat of one is answered, never placed)."""
        requests = [messages.decode(data) for (data,) in self.db.execute("SELECT request FROM served WHERE op = 'place'")]
        return {request["order"]["client_order_id"] for request in requests
                if isinstance(request.get("order"), dict) and isinstance(request["order"].get("client_order_id"), str)}

    def close(self) -> None:
        self._wal.close()
        self.db.close()
