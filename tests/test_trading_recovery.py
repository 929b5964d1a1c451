"""An executor restarted without a checkpoint (at_most_once, at_least_once), without processes:
it comes back from its order log, asks the venue for the orders whose reply it lost, leaves out
what comes again, and gives the events an uninterrupted run gives; nothing is placed twice."""
from __future__ import annotations

import sqlite3

import pytest

from cep.errors import RuntimeFailure
from cep.orders.link import LocalChannel, VenueUnavailable
from cep.orders.recovery import OrderLog, Recovery
from tests.test_trading_restore import executor, fault_free, market, venue


class Crash(BaseException):
    """The process dies (a BaseException: the executor's own `except Exception` must not catch it)."""


class Channel(LocalChannel):
    """The venue in this process; the process dies when the venue has answered the `die_after`-th
    place (the reply is lost with it), or before the `die_before`-th place reaches the venue."""

    def __init__(self, service, die_after=None, die_before=None):
        super().__init__(service)
        self.places, self.die_after, self.die_before = 0, die_after, die_before

    def call(self, request):
        if request["op"] == "place":
            self.places += 1
            if self.places == self.die_before:
                raise Crash
        answer = super().call(request)
        if request["op"] == "place" and self.places == self.die_after:
            raise Crash
        return answer


def quotes(batch):
    return [r for r in batch if "signal_id" not in r]


class Run:
    """One venue, and executors one after another on one order log; the venue gets each quote
    once, however often the executor is fed it again."""

    def __init__(self, tmp_path, batches, resend=True):
        self.service, self.batches, self.resend = venue(), batches, resend
        self.path = tmp_path / "exec.orders.sqlite"
        self.fed = 0
        self.starts = [sum(len(quotes(b)) for b in batches[:i]) for i in range(len(batches) + 1)]
        self.out: list[dict] = []

    def start(self, incarnation, **dies):
        node = executor(self.service, incarnation)
        node.link.channel = Channel(self.service, **dies)
        return Recovery(node, OrderLog(self.path, fresh=incarnation == 0), restart=incarnation > 0,
                        resend=self.resend)

    def feed(self, recovery, first, last=None):
        """Batches first..last; (the index of the batch it died in, or None)."""
        for index in range(first, len(self.batches) if last is None else last):
            end = self.starts[index + 1]
            self.service.on_quotes(quotes(self.batches[index])[max(0, self.fed - self.starts[index]):])
            self.fed = max(self.fed, end)
            try:
                self.out += recovery.step(self.batches[index])
            except Crash:
                recovery.log.close()
                return index
        return None

    def finish(self, recovery):
        self.service.quotes_ended()
        self.out += recovery.finish()


def once_each(events):
    """What the journal keeps: each (client order id, sequence) once, in order."""
    kept = {}
    for event in events:
        kept.setdefault((event["client_order_id"], event["sequence"]), event)
    return sorted(kept.values(), key=lambda e: (e["client_order_id"], e["sequence"]))


@pytest.mark.parametrize("cut, again", [(5, 2), (12, 0), (20, 3)])
def test_an_executor_restarted_from_its_order_log_gives_the_events_of_an_uninterrupted_run(tmp_path, cut, again):
    """It dies after batch `cut`; the batches from `cut - again` on come again (at_least_once
    sends again what it had not acknowledged), while the venue went on."""
    batches = market()
    expected = fault_free(batches)
    run = Run(tmp_path, batches)
    run.feed(run.start(0), 0, cut)
    restarted = run.start(1)
    run.feed(restarted, cut - again)
    run.finish(restarted)
    assert once_each(run.out) == once_each(expected)
    assert run.service.repeats == 0  # no place came again: each signal it had decided was left out


@pytest.mark.parametrize("place", [1, 4, 9])
def test_an_executor_that_dies_before_the_venue_s_reply_asks_for_the_order_and_takes_its_fills(tmp_path, place):
    """The venue took the order and its reply died with the process (the pass never ended): the
    order is in the log before it is sent, so the restarted executor asks for it by client order
    id, takes ACCEPTED at the time it was sent, and then its fills; it never places it again."""
    batches = market()
    expected = fault_free(batches)
    run = Run(tmp_path, batches)
    died = run.feed(run.start(0, die_after=place), 0)
    assert died is not None
    restarted = run.start(1)
    run.feed(restarted, died)
    run.finish(restarted)
    assert once_each(run.out) == once_each(expected)
    assert run.service.repeats == 0 and restarted.node.executor.ledger.refused.get("ILLEGAL_TRANSITION", 0) == 0


def test_an_order_logged_but_never_sent_is_placed_after_the_restart_once(tmp_path):
    batches = market()
    run = Run(tmp_path, batches)
    died = run.feed(run.start(0, die_before=3), 0)
    restarted = run.start(1)
    run.feed(restarted, died)
    run.finish(restarted)
    expected = once_each(fault_free(batches))
    assert {e["client_order_id"] for e in once_each(run.out) if e["status"] == "SUBMITTED"} == \
        {e["client_order_id"] for e in expected if e["status"] == "SUBMITTED"}
    assert run.service.repeats == 0
    assert {e["client_order_id"]: e["status"] for e in _last_of_each(run.out)} == \
        {e["client_order_id"]: e["status"] for e in _last_of_each(expected)}  # it was sent late, and filled


def test_under_at_most_once_the_logged_events_are_not_sent_again_but_the_orders_and_positions_come_back(tmp_path):
    batches = market()
    run = Run(tmp_path, batches, resend=False)
    run.feed(run.start(0), 0, 10)
    before = run.start(0 + 1)
    assert before._replay == []
    node = before.node
    sent = once_each(run.out)
    fills = [e for e in sent if e["fill_id"]]
    assert fills and node.executor.manager.book.positions()
    assert {o.client_order_id for o in node.executor.ledger._orders.values()} == {e["client_order_id"] for e in sent}
    run.feed(before, 10)
    run.finish(before)
    assert once_each(run.out) == once_each(fault_free(batches))
    assert len(run.out) == len(once_each(run.out))  # nothing sent twice


def test_a_signal_held_for_its_quote_and_sent_again_is_decided_once(tmp_path):
    batches = market()
    run = Run(tmp_path, batches)
    cut = next(i for i in range(1, len(batches)) if any("signal_id" in r for r in batches[i - 1]))
    run.feed(run.start(0), 0, cut)
    restarted = run.start(1)
    run.feed(restarted, cut - 1)
    run.finish(restarted)
    assert "DUPLICATE_SIGNAL" not in restarted.node.ctx.counters.dropped
    assert restarted.node.ctx.counters.noted.get("taken before the restart")


def test_a_damaged_order_log_stops_the_restart_naming_the_file(tmp_path):
    run = Run(tmp_path, market())
    run.feed(run.start(0), 0, 5)
    db = sqlite3.connect(run.path)
    db.execute("INSERT INTO events (event) VALUES ('{not json')")
    db.commit()
    db.close()
    with pytest.raises(RuntimeFailure, match="exec.orders.sqlite is damaged"):
        run.start(1)


def _last_of_each(events):
    last = {}
    for event in events:
        last[event["client_order_id"]] = event
    return list(last.values())


def test_a_venue_restarted_without_its_state_answers_a_repeat_of_an_order_it_took_and_places_nothing(tmp_path):
    from cep.orders import messages
    from cep.orders.service import RequestLog, VenueService
    from cep.orders.paper import PaperVenue

    service = VenueService(PaperVenue(), RequestLog(tmp_path / "paper.requests.sqlite", fresh=True, places_only=True))
    service.on_quotes(quotes(market()[0]))
    order = {"client_order_id": "cep-1", "instrument": "A", "side": "BUY", "quantity": 1.0,
             "timestamp": market()[0][0]["timestamp"], "order_type": "MARKET", "limit_price": None}
    place = {"id": "0:1", "op": "place", "t": order["timestamp"], "n": 1, "after": 0, "order": order}
    answers = []
    service.handle(dict(place), answers.append)
    service.handle({"id": "0:2", "op": "sync", "t": order["timestamp"], "n": 1, "after": 0}, answers.append)
    service.log.close()
    log = RequestLog(tmp_path / "paper.requests.sqlite", fresh=False, places_only=True)
    assert [r["op"] for r in log.since(0)] == ["place"]  # the sync is not kept: only a place must not be served twice
    restarted = VenueService(PaperVenue(), log)
    restarted.restarted_without_state(log, 1)
    restarted.quotes_ended()
    restarted.handle(dict(place, id="0:1"), answers.append)
    reply = messages.read_reply(answers[-1], "0:1")[0]
    assert reply.status.value == "REJECTED" and reply.reason.startswith("VENUE_RESTARTED") and reply.duplicate
    assert restarted.adapter.query("cep-1") is None and restarted.repeats == 1


def test_a_venue_restarted_without_its_state_cancels_what_it_lost_and_skips_no_new_fill(tmp_path):
    """The venue dies with its book while an order works there; one without its state takes over
    (its request log says what was placed). The executor sees the venue's session change and asks for its
    working orders: those the venue lost are CANCELED; the new venue numbers its fill stream on
    from the executor's count, so the fills of orders sent after the restart all arrive."""
    batches = market()
    run = Run(tmp_path, batches)
    run.service = venue(tmp_path)  # with its request log
    recovery = run.start(0)
    cut = 0
    while not (any(recovery.node.executor.ledger.working()) and recovery.node.link.after > 20):
        run.feed(recovery, cut, cut + 1)  # until an order works there and many fills were taken
        cut += 1
    working = {o.client_order_id for o in recovery.node.executor.ledger.working()}
    run.service.log.close()
    fresh = venue(tmp_path, fresh=False)
    fresh.restarted_without_state(fresh.log, 1)
    run.service, run.fed = fresh, run.starts[cut]
    recovery.node.link.channel = Channel(fresh)
    run.feed(recovery, cut)
    run.finish(recovery)
    last = {e["client_order_id"]: e for e in run.out}
    assert {c: last[c]["status"] for c in working} == {c: "CANCELED" for c in working}
    assert all(last[c]["reason"].startswith("VENUE_RESTARTED") for c in working)
    sent_after = {c for c in fresh.placed if c not in fresh.lost}
    assert sent_after and all(last[c]["status"] in ("FILLED", "EXPIRED") for c in sent_after if c != _final_open(batches))
    assert fresh.adapter.query(next(iter(working))) is None  # nothing of before was placed again


def _final_open(batches):
    """The order of the last signal, which no later quote fills (in an uninterrupted run too)."""
    last = [e for e in fault_free(batches) if e["status"] == "ACCEPTED"]
    finals = {e["client_order_id"] for e in fault_free(batches) if e["status"] in ("FILLED", "EXPIRED")}
    return next((e["client_order_id"] for e in reversed(last) if e["client_order_id"] not in finals), None)


class LosesReply(LocalChannel):
    """The venue in this process; the reply to the `lose`-th place never comes (the venue took it)."""

    def __init__(self, service, lose):
        super().__init__(service)
        self.places, self.lose = 0, lose

    def call(self, request):
        answer = super().call(request)
        if request["op"] == "place":
            self.places += 1
            if self.places == self.lose:
                raise VenueUnavailable("no reply in time")
        return answer


@pytest.mark.parametrize("lose", [2, 7])
def test_a_place_whose_reply_never_came_is_asked_for_and_gets_its_fills(tmp_path, lose):
    """The venue took the order but its reply was lost (no restart): the order is not left
    SUBMITTED with its fills refused; it is accepted and filled as in an uninterrupted run."""
    batches = market()
    run = Run(tmp_path, batches)
    recovery = run.start(0)
    recovery.node.link.channel = LosesReply(run.service, lose)
    run.feed(recovery, 0)
    run.finish(recovery)
    expected = {e["client_order_id"]: e["status"] for e in _last_of_each(fault_free(batches))}
    assert {e["client_order_id"]: e["status"] for e in _last_of_each(run.out)} == expected
    assert recovery.node.executor.ledger.refused.get("ILLEGAL_TRANSITION", 0) == 0
    assert run.service.repeats == 0 and recovery.node.executor.venue_errors == 1
