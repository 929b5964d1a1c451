"""The executor's side of its venue: a `VenueAdapter` whose calls are requests to a venue node.

`VenueLink` turns place, cancel, query and the fill stream into the request/reply messages of
`cep.orders.messages`, each stamped with the executor's event time, and keeps the fill stream's
count so that no fill is taken twice or missed. What carries a request is a `Channel`:
`LocalChannel` calls the venue node in the same process (`cep run --inline`);
`cep.runtime.transport.requests.DealerChannel` sends it over a DEALER socket with a timeout and bounded
retries. Either raises `VenueUnavailable` when no answer came, which the executor counts as a
breaker failure; a reply that does not parse raises `BadReply`, counted the same way.
"""
from __future__ import annotations

from typing import Any, Protocol

from cep.events import OrderStatus
from cep.orders import messages
from cep.orders.service import VenueService
from cep.orders.venue import OrderRequest, Report, ReportDue, VenueReply


class VenueUnavailable(ConnectionError):
    """No reply came in time, after every retry."""


class Channel(Protocol):
    def call(self, request: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LocalChannel:
    """The venue node in this process: its answer is immediate, since in one process the venue
    has taken every quote the executor has before the executor asks."""

    def __init__(self, service: VenueService) -> None:
        self.service = service
        self.calls = 0

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        answers: list[dict[str, Any]] = []
        self.service.handle(request, answers.append)
        if not answers:
            raise VenueUnavailable("the venue has not got the quotes the request needs")
        return answers[0]

    def close(self) -> None:
        pass


class VenueLink:
    """A VenueAdapter over a Channel. `at(t, n)` sets the event time (and count of quotes) the
    next requests carry; `sync()` fetches the fill stream up to then. Request ids are
    `<epoch>:<number>`; a retried request keeps its id."""

    def __init__(self, channel: Channel, epoch: str = "0", name: str = "") -> None:
        self.channel = channel
        self.epoch = epoch
        self.name = name  # the executor's id: the venue keeps what each of its executors may ask for
        self.number = 0
        self.t = 0
        self.n = 0
        self.after = 0   # reports of the fill stream taken so far
        self._reports: list[Report] = []
        self.bad_replies = 0
        self.reconciling = False
        """After a restart from a checkpoint: the venue may have orders this executor sent after
        the checkpoint; each order is asked for by its client order id before it is placed, until
        the first the venue does not know (every later one is new)."""
        self.reconciled = 0
        self.kept: tuple[int, int] | None = (0, 0)
        """The report count and event time this executor resumes from after a restart (those of
        its last checkpoint), which the venue may forget what is before; None: where it is now
        (it keeps no checkpoint, so a restart starts afresh)."""
        self.session = 0
        """Which restart without a checkpoint the venue said it is (`VenueService.session`); a
        change means it lost the orders it held."""
        self.due: ReportDue | None = None
        """When the venue's next report can come, as its last answer said (None: it did not say, or
        the call failed: the fill stream may have news at any quote)."""

    def at(self, t: int, n: int) -> None:
        self.t, self.n = t, n

    def place(self, request: OrderRequest) -> VenueReply:
        if self.reconciling:
            known = self.query(request.client_order_id)
            if known is not None:  # placed before the restart: its answer then, not a second order
                self.reconciled += 1
                accepted = known.status is not OrderStatus.REJECTED
                return VenueReply(known.client_order_id, OrderStatus.ACCEPTED if accepted else known.status,
                                  known.order_id, reason=None if accepted else known.reason, duplicate=True)
            self.reconciling = False
        return self._request("place", order=messages.request_of(request))

    def cancel(self, client_order_id: str, timestamp: int) -> VenueReply:
        return self._request("cancel", client_order_id=client_order_id)

    def query(self, client_order_id: str) -> VenueReply | None:
        return self._request("query", client_order_id=client_order_id, optional=True)

    def reports(self) -> list[Report]:
        reports, self._reports = self._reports, []
        return reports

    def sync(self) -> list[Report]:
        """The fill stream up to the current event time."""
        self._request("sync", optional=True)
        return self.reports()

    def may_report(self, now: int, instrument: str | None) -> bool:
        """Whether the fill stream may have news at event time `now`, at a quote of `instrument`."""
        return self.due is None or self.due.allows(now, instrument)

    def _request(self, op: str, optional: bool = False, **fields: Any) -> Any:
        self.number += 1
        request_id = f"{self.epoch}:{self.number}"
        self.due = None  # until an answer says otherwise
        kept = [self.after, self.t] if self.kept is None else list(self.kept)
        answer = self.channel.call({"id": request_id, "op": op, "t": self.t, "n": self.n, "after": self.after,
                                    "kept": kept, "by": self.name, **fields})
        try:
            reply, reports, count, due = messages.read_reply(answer, request_id)
            if reply is None and not optional:
                raise messages.BadReply(f"no reply to {op}")
        except messages.BadReply:
            self.bad_replies += 1
            raise
        self._reports.extend(reports)
        self.after = max(self.after, count)
        session = answer.get("session", 0)
        self.session = session if isinstance(session, int) and not isinstance(session, bool) else self.session
        self.due = due
        return reply
