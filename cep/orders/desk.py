"""A paper trading desk in one process: the order executor, the paper venue and (optionally) a
journal, driven in event time by quotes and signals.

Why: it is the whole order half without processes or sockets, for research (what would these
signals have traded?), for tests that compare a journal with live positions, and as the
reference a multi-process run must agree with. Feed it quotes and signals in time order; call
`finish()` at the end so orders still on their way meet the last book.
"""
from __future__ import annotations

from typing import Any, Mapping

from cep.events import OrderEvent, TickEvent
from cep.orders.breaker import CircuitBreaker
from cep.orders.executor import Decision, OrderExecutor
from cep.orders.journal import Journal
from cep.orders.paper import PaperVenue
from cep.orders.positions import RiskManager
from cep.orders.risk import RiskLimits


class PaperDesk:
    def __init__(self, limits: RiskLimits, *, venue: PaperVenue | None = None, manager: RiskManager | None = None,
                 breaker: CircuitBreaker | None = None, journal: Journal | None = None) -> None:
        self.venue = venue or PaperVenue()
        self.journal = journal
        self._unjournaled: list[OrderEvent] = []
        listeners = [self._unjournaled.append] if journal is not None else []
        self.executor = OrderExecutor(self.venue, limits, manager=manager, breaker=breaker, listeners=listeners)
        self.now = 0
        self.signals = 0  # signals taken, as an executor node counts them (`executor_gauges`)

    @property
    def manager(self) -> RiskManager:
        return self.executor.manager

    def on_quote(self, quote: TickEvent) -> list[OrderEvent]:
        """The venue matches first (fills at this quote), then the executor marks to it."""
        self.now = max(self.now, quote.timestamp)
        self.venue.on_quote(quote)
        events = self.executor.on_reports(self.venue.reports())
        self.executor.on_quote(quote)
        self._journal()
        return events

    def on_signal(self, record: Mapping[str, Any]) -> Decision:
        timestamp = record.get("timestamp")
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            self.now = max(self.now, timestamp)
        self.signals += 1
        decision = self.executor.on_signal(record, self.now)
        self._journal()
        return decision

    def finish(self, until: int | None = None) -> list[OrderEvent]:
        """No more quotes: orders that arrive by `until` (default: now) meet the last book."""
        self.venue.advance_to(self.now if until is None else until)
        events = self.executor.on_reports(self.venue.reports())
        self._journal()
        return events

    def _journal(self) -> None:
        if self._unjournaled:
            self.journal.append(self._unjournaled)
            self._unjournaled.clear()
