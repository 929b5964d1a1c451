"""The order executor node: signals and quotes in, OrderEvents out, in event time.

Its input is one stream (`<id>.in`) that the compiler merges in the strategy process from the
quotes and the rules the executor reads, so the executor sees them in the order the strategy
made them: the signals of a batch of quotes, then that batch. It keeps them in event-time order:
a signal waits until the first quote later than it comes (or the end of stream) and is decided
right before that quote; signals of the same instant go by signal id. Each decision therefore
sees the same quotes, positions and working orders in every run, in one process or several.

Before each decision and each quote, while it has working orders and the venue's last answer
says a report may be due by then (`VenueLink.may_report`), it asks the venue for the fill stream
up to that instant (a `sync` request stamped with its clock, `cep.orders.service`), so the fills,
positions and the trading state a decision sees are those of that instant.

Why the executor owns the risk manager (and not the `positions` sink): the trading state must
hold for the very next signal. The executor makes every fill event itself, so its own
`RiskManager`, fed the same events and quotes, crosses a loss limit at the same instant the
positions do; a feedback edge from another process would arrive some time later, by then an
order could have passed, and when it arrives would depend on the processes' speed. The `positions`
sink journals the same events; positions rebuilt from the journal equal the executor's.

What it counts (`cep run`'s summary): each denied signal as dropped by its reason code
(`MAX_POSITION`, `CIRCUIT_OPEN`, ...); signals that are no order at all (unreadable, a repeat)
and those the open breaker stopped are dead-lettered too, with the reason; venue failures and
replies that do not parse, requests that timed out after every retry and the retries as
noted, and what the order ledger refused (`refused fill:
UNKNOWN_ORDER`, ...).
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from typing import Any

from cep.components.base import BuildContext
from cep.events import OrderEvent, TickEvent
from cep.orders.breaker import CircuitBreaker
from cep.orders.executor import UNTRACKED, OrderExecutor
from cep.orders.link import Channel, VenueLink
from cep.orders.positions import RiskManager
from cep.orders.risk import Deny
from cep.orders.settings import ExecutorSettings
from cep.rows import Rows, as_records

QUOTE_FIELDS = ("timestamp", "instrument", "bid_price", "ask_price", "bid_volume", "ask_volume")
SYNC_AT_LEAST_EVERY = 1_000
"""Quotes after which the executor asks its venue for the fill stream even when no report can be
due: the venue keeps every quote past the executor's clock until a request moves the clock, so a
quiet market (no order working for an hour) would otherwise grow it, and its checkpoint, without
end. A request that finds nothing changes no fill and no decision."""
DEAD_LETTERED = UNTRACKED | {Deny.CIRCUIT_OPEN}
"""Denials whose signal is kept in the dead-letter file: no order event records it (unreadable,
a repeat) or it may be sent again once the venue is back (the breaker was open)."""


class ExecutorNode:
    def __init__(self, settings: ExecutorSettings, channel: Channel, ctx: BuildContext, epoch: int = 0) -> None:
        self.ctx = ctx
        self.link = VenueLink(channel, str(epoch), ctx.node)
        risk = settings.risk
        manager = RiskManager(max_drawdown=risk.max_drawdown, daily_loss_limit=risk.daily_loss_limit)
        manager.set_state(settings.trading_state)
        breaker = CircuitBreaker(settings.breaker.failures, settings.breaker.reset_after / 1e9)
        self.executor = OrderExecutor(self.link, risk.limits(), manager=manager, breaker=breaker)
        self.pending: list[dict[str, Any]] = []
        self.clock = 0          # event time of the latest quote taken
        self.quotes = 0         # quotes taken
        self.synced = (-1, -1)  # (clock, quotes) of the last sync
        self.signals = 0
        self._noted: Counter[str] = Counter()

    # -- the stream ------------------------------------------------------------------------------
    def step(self, batch: Any) -> list[dict[str, Any]]:
        out: list[OrderEvent] = []
        if type(batch) is Rows and batch.slot("signal_id") is None:  # quotes, as sources make them
            slots = [batch.slot(name) for name in QUOTE_FIELDS]
            for row in batch.rows:
                self._quote([None if s is None else row[s] for s in slots], out)
        else:
            for record in as_records(batch):
                if "signal_id" in record:
                    bisect.insort(self.pending, record, key=_order)  # after any of the same key: as they came
                else:
                    self._quote([record.get(name) for name in QUOTE_FIELDS], out)
        return self._records(out)

    def finish(self) -> list[dict[str, Any]]:
        """End of stream: decide what waits, then take the fills up to the last instant."""
        out: list[OrderEvent] = []
        self._decide(None, out)
        self._sync(out, always=True)
        return self._records(out)

    # -- quotes and signals in event time --------------------------------------------------------
    def _quote(self, values: list[Any], out: list[OrderEvent]) -> None:
        timestamp, instrument, bid, ask = values[:4]
        if not (isinstance(timestamp, int) and isinstance(instrument, str) and _price(bid) and _price(ask)):
            self.ctx.counters.drop("bad quote")  # the quotes stream should not carry it; counted, not used
            return
        quote = TickEvent(*values)
        if self.pending and quote.timestamp > self.clock and _time(self.pending[0]) < quote.timestamp:
            self._decide(quote.timestamp, out)
        self.clock = max(self.clock, quote.timestamp)
        self.quotes += 1
        self._sync(out, quote.instrument)
        self.executor.on_quote(quote)

    def _decide(self, before: int | None, out: list[OrderEvent]) -> None:
        """Decide the waiting signals older than `before` (all of them if None), oldest first
        (`pending` is kept in that order, so a quote finds what is due without a scan)."""
        cut = len(self.pending) if before is None else bisect.bisect_left(self.pending, before, key=_time)
        if not cut:
            return
        due, self.pending = self.pending[:cut], self.pending[cut:]
        for signal in due:
            self._sync(out)
            self.signals += 1
            now = max(self.clock, _time(signal))
            self.link.at(now, self.quotes)
            decision = self.executor.on_signal(signal, now)
            out.extend(decision.events)
            if decision.denial is not None:
                self.ctx.counters.drop(decision.denial.code.value)
                if decision.denial.code in DEAD_LETTERED:
                    self.ctx.dead_letter(str(decision.denial), signal)
        self._note_venue()

    def _sync(self, out: list[OrderEvent], instrument: str | None = None, always: bool = False) -> None:
        """The fills up to now (at a quote of `instrument`), if an order may have some by now, or
        `SYNC_AT_LEAST_EVERY` quotes after the last time (and the venue is not known down)."""
        now = (self.clock, self.quotes)
        if now == self.synced or not (always or self.quotes - self.synced[1] >= SYNC_AT_LEAST_EVERY
                                      or (any(True for _ in self.executor.ledger.working())
                                          and self.link.may_report(self.clock, instrument))):
            return
        self.synced = now
        self.link.at(*now)
        if not self.executor.breaker.allow():
            return
        try:
            reports = self.link.sync()
        except Exception:  # as a failed place: the breaker's business, retried at the next sync
            self.executor.venue_errors += 1
            self.executor.breaker.record_failure()
            self.synced = (-1, -1)
            return
        self.executor.breaker.record_success()
        out.extend(self.executor.on_reports(reports))

    # -- counts -----------------------------------------------------------------------------------
    def _note_venue(self) -> None:
        """Venue failures, bad replies and the ledger's refusals, as notes of the node."""
        channel = self.link.channel  # a DealerChannel counts its timeouts and retries; one in process has none
        seen = Counter({"venue failure": self.executor.venue_errors, **dict(zip(LINK_NOTES, (
            self.link.bad_replies, getattr(channel, "timeouts", 0), getattr(channel, "resent", 0))))})
        seen.update({f"refused {why.value}": count for why, count in self.executor.ledger.refused.items()})
        for reason, count in seen.items():
            if count > self._noted[reason]:
                self.ctx.counters.note(reason, count - self._noted[reason])
                self._noted[reason] = count

    def _records(self, events: list[OrderEvent]) -> list[dict[str, Any]]:
        self._note_venue()
        return [event.to_record() for event in events]


LINK_NOTES = ("unparseable reply", "venue timeout", "venue retry")
"""The notes counted by the executor's link and its channel, which a restarted executor makes
anew: counted from 0 again, so a restored executor notes them afresh (`restore_executor`)."""


def _price(value: Any) -> bool:
    return isinstance(value, (int, float)) and 0 < value < math.inf


def _order(signal: dict[str, Any]) -> tuple[int, str]:
    """The order signals are decided in: by event time, those of one instant by signal id."""
    return _time(signal), str(signal.get("signal_id"))


def _time(signal: dict[str, Any]) -> int:
    timestamp = signal.get("timestamp")
    return timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else -1
