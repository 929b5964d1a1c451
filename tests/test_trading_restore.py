"""exactly_once without processes: an executor or a venue restored from a checkpoint (encoded as
checkpoints are) and fed again what came after it gives the events an uninterrupted run gives;
an executor restarted while its venue is ahead reconciles instead of placing again."""
from __future__ import annotations

import random

import pytest

from cep.components.base import BuildContext
from cep.components.state import InvalidState, restorer
from cep.orders.link import LocalChannel
from cep.orders.node import ExecutorNode
from cep.orders.paper import PaperVenue
from cep.orders.service import RequestLog, VenueService
from cep.orders.settings import ExecutorSettings
from cep.orders.state import ExecutorState, ServiceState, executor_snapshot, restore_executor, restore_service, \
    service_snapshot
from cep.runtime.checkpoint import decode_state, encode_state

T0 = 1_723_161_600_000_000_000
SETTINGS = {"risk": {"max_position": 3, "max_open_orders": 4}}


def market(seed=7, count=600):
    """Batches of quotes (two instruments, sizes that leave partial fills) with signals among them."""
    rng = random.Random(seed)
    mids, batches, batch = {"A": 100.0, "B": 50.0}, [], []
    for i in range(count):
        name = "AB"[i % 2]
        mids[name] *= 1 + rng.gauss(0, 0.0005)
        t = T0 + i * 400_000
        batch.append({"timestamp": t, "instrument": name, "bid_price": round(mids[name] - 0.01, 4),
                      "ask_price": round(mids[name] + 0.01, 4), "bid_volume": rng.choice([0.3, 1.0, 2.5]),
                      "ask_volume": rng.choice([0.3, 1.0, 2.5])})
        if rng.random() < 0.08:
            batch.insert(0, {"signal_id": f"s{i}", "timestamp": t, "action": rng.choice(["BUY", "SELL"]),
                             "instrument": name, "trigger_price": mids[name], "quantity": 1.0,
                             "strategy_name": "t", "confidence": 0.5})
        if rng.random() < 0.1:
            batches.append(batch)
            batch = []
    return batches + [batch]


def venue(tmp_path=None, fresh=True):
    log = RequestLog(tmp_path / "requests.sqlite", fresh) if tmp_path else None
    return VenueService(PaperVenue(latency_ns=1_000_000, seed=3), log)


def executor(service, incarnation=0):
    node = ExecutorNode(ExecutorSettings.model_validate(SETTINGS), LocalChannel(service),
                        BuildContext(node="exec", incarnation=incarnation))
    return node


def feed(node, service, batches):
    events = []
    for batch in batches:
        service.on_quotes([r for r in batch if "signal_id" not in r])
        events += node.step(batch)
    return events


def finish(node, service):
    service.quotes_ended()
    return node.finish()


def fault_free(batches):
    service = venue()
    node = executor(service)
    return feed(node, service, batches) + finish(node, service)


def through_a_checkpoint(snapshot):
    return decode_state(encode_state(snapshot))


@pytest.mark.parametrize("cut, lost", [(5, 3), (12, 6), (20, 1)])
def test_an_executor_restored_while_its_venue_went_on_reconciles_and_gives_the_same_events(cut, lost):
    batches = market()
    expected = fault_free(batches)
    service = venue()
    node = executor(service)
    events = feed(node, service, batches[:cut])
    saved = through_a_checkpoint(executor_snapshot(node))
    feed(node, service, batches[cut:cut + lost])  # then it crashes: these events never left
    placed = service.adapter.duplicates
    ahead = _QuotesAhead(service, sum(1 for batch in batches[:cut] for r in batch if "signal_id" not in r))
    restarted = executor(ahead, incarnation=1)
    restorer(ExecutorState, lambda state: restore_executor(restarted, state))(saved)
    events += feed(restarted, ahead, batches[cut:]) + finish(restarted, service)
    assert events == expected
    assert service.adapter.duplicates == placed  # nothing placed twice: it asked first
    assert restarted.link.reconciled >= 0 and not restarted.link.reconciling or not any(
        e["status"] == "SUBMITTED" for e in expected[len(events):])


class _QuotesAhead:
    """The venue as a restarted executor finds it: ahead, with the quotes fed again already
    (only those past what it has are new to it); requests go through."""

    def __init__(self, service, seen):
        self.service, self.seen = service, seen

    def on_quotes(self, records):
        new = records[max(0, self.service.received - self.seen):]
        self.seen += len(records)
        self.service.on_quotes(new)

    def handle(self, request, respond):
        self.service.handle(request, respond)


@pytest.mark.parametrize("cut, lost", [(5, 3), (12, 6)])
def test_a_venue_restored_from_its_checkpoint_and_its_request_log_gives_the_same_fills(tmp_path, cut, lost):
    batches = market(seed=11)
    expected = fault_free(batches)
    service = venue(tmp_path)
    node = executor(service)
    events = feed(node, service, batches[:cut])
    saved = through_a_checkpoint(service_snapshot(service))
    events += feed(node, service, batches[cut:cut + lost])  # served and logged, then the venue dies
    service.log.close()
    restarted = venue(tmp_path, fresh=False)

    def restore(state):
        restore_service(restarted, state)
        restarted.replay(restarted.log.since(state.handled))

    restorer(ServiceState, restore)(saved)
    restarted.on_quotes([r for batch in batches[cut:cut + lost] for r in batch if "signal_id" not in r])
    node.link.channel = LocalChannel(restarted)
    events += feed(node, restarted, batches[cut + lost:]) + finish(node, restarted)
    assert events == expected


@pytest.mark.parametrize("broken", [
    lambda s: s.update(orders=[{"nonsense": 1}]),
    lambda s: s.update(breaker=("SHUT", 0, 0, 0)),
    lambda s: s["link"].__setitem__(1, "x") if isinstance(s["link"], list) else s.update(link=["0", "x", 0]),
])
def test_a_checkpoint_of_the_wrong_shape_is_refused(broken):
    service = venue()
    node = executor(service)
    feed(node, service, market()[:5])
    saved = through_a_checkpoint(executor_snapshot(node))
    broken(saved)
    with pytest.raises(InvalidState):
        restorer(ExecutorState, lambda state: restore_executor(executor(venue()), state))(saved)


class _CountingChannel(LocalChannel):
    """A LocalChannel that counts timeouts and retries as a DealerChannel does (set by the test)."""

    timeouts = 0
    resent = 0


def test_venue_timeouts_and_retries_after_a_restore_are_counted_from_the_new_channel():
    """Counts add up after restarts: the restored executor's channel is a new one, counting from
    0; the counts its predecessor noted come back with the checkpoint, so the new channel's
    first timeouts are noted, not hidden below the predecessor's total."""
    service = venue()
    channel = _CountingChannel(service)
    node = ExecutorNode(ExecutorSettings.model_validate(SETTINGS), channel, BuildContext(node="exec"))
    channel.timeouts, channel.resent = 3, 5
    feed(node, service, market(count=20))
    assert node.ctx.counters.noted["venue timeout"] == 3 and node.ctx.counters.noted["venue retry"] == 5
    saved = through_a_checkpoint(executor_snapshot(node))
    fresh = _CountingChannel(service)
    restarted = ExecutorNode(ExecutorSettings.model_validate(SETTINGS), fresh, BuildContext(node="exec", incarnation=1))
    restorer(ExecutorState, lambda state: restore_executor(restarted, state))(saved)
    fresh.timeouts, fresh.resent = 2, 1
    feed(restarted, service, market(seed=8, count=20))
    noted = restarted.ctx.counters.noted
    assert (noted.get("venue timeout"), noted.get("venue retry")) == (2, 1)
