"""The executor's link to its venue asks for the fill stream only when the venue says a report can
be due: never later than a report (the same events as asking at every quote), far less often."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from cep.components.base import BuildContext
from cep.events import Action, TickEvent
from cep.orders.link import LocalChannel
from cep.orders.node import ExecutorNode
from cep.orders.paper import PaperVenue
from cep.orders.service import VenueService
from cep.orders.settings import ExecutorSettings
from cep.orders.venue import OrderRequest, OrderType
from tests.test_trading_restore import market

T0 = 1_723_161_600_000_000_000


class Unhinted(PaperVenue):
    """The paper venue as an adapter that does not say when its next report is due."""

    report_due = None


def run(batches, adapter):
    service = VenueService(adapter)
    channel = LocalChannel(service)
    node = ExecutorNode(ExecutorSettings.model_validate({"risk": {"max_position": 5, "max_open_orders": 6}}),
                        channel, BuildContext(node="exec"))
    events = []
    for batch in batches:
        service.on_quotes([r for r in batch if "signal_id" not in r])
        events += node.step(batch)
    service.quotes_ended()
    return events + node.finish(), channel.calls


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), latency=st.sampled_from([0, 300_000, 2_000_000]),
       jitter=st.sampled_from([0, 900_000]), remainder=st.sampled_from(["next_quotes", "expire"]))
def test_asking_only_when_a_report_is_due_gives_the_events_of_asking_at_every_quote(seed, latency, jitter, remainder):
    batches = market(seed)
    venue = dict(latency_ns=latency, jitter_ns=jitter, seed=seed, remainder=remainder)
    hinted, asked = run(batches, PaperVenue(**venue))
    polled, polls = run(batches, Unhinted(**venue))
    assert hinted == polled
    assert asked <= polls


def test_an_order_on_its_way_is_asked_for_once_it_arrives_not_at_every_quote_before():
    quotes = [{"timestamp": T0 + i * 100_000, "instrument": "A", "bid_price": 99.9, "ask_price": 100.0,
               "bid_volume": 10.0, "ask_volume": 10.0} for i in range(60)]  # 6 ms of quotes
    signal = {"signal_id": "s1", "timestamp": T0, "action": "BUY", "instrument": "A", "trigger_price": 100.0,
              "quantity": 1.0, "strategy_name": "t", "confidence": 0.5}
    batches = [[signal, quotes[0]], *([q] for q in quotes[1:])]
    hinted, asked = run(batches, PaperVenue(latency_ns=2_000_000))
    polled, polls = run(batches, Unhinted(latency_ns=2_000_000))
    assert hinted == polled and [e["status"] for e in hinted][-1] == "FILLED"
    assert polls >= 20  # the place, then a sync at each quote until the fill came 2 ms later
    assert asked == 3   # the place, the sync at the first quote past its arrival, the final sync


QUOTES = st.lists(st.tuples(st.integers(1, 3), st.sampled_from("XY"), st.floats(99, 101),
                            st.sampled_from([None, 0.0, 0.5, 2.0])), min_size=1, max_size=40)
ORDERS = st.lists(st.tuples(st.integers(0, 39), st.sampled_from("XY"), st.sampled_from(["BUY", "SELL"]),
                            st.sampled_from([0.5, 1.0, 3.0]), st.none() | st.floats(99, 101)), max_size=10)


@settings(max_examples=200, deadline=None)
@given(quotes=QUOTES, orders=ORDERS, latency=st.integers(0, 5), jitter=st.integers(0, 3),
       remainder=st.sampled_from(["next_quotes", "expire"]))
def test_the_paper_venue_never_reports_before_it_said_a_report_is_due(quotes, orders, latency, jitter, remainder):
    venue = PaperVenue(latency_ns=latency, jitter_ns=jitter, remainder=remainder)
    now = 0
    for index, (step, instrument, mid, size) in enumerate(quotes):
        due = venue.report_due()
        now += step
        venue.on_quote(TickEvent(now, instrument, mid - 0.05, mid + 0.05, size, size))
        venue.advance_to(now)
        reports = venue.reports()
        if reports:  # a report at this quote: the venue must have said it could come
            assert due.allows(now, instrument), (due, now, instrument, reports)
        for at, name, side, quantity, limit in orders:
            if at == index and venue.query(f"c{index}{name}{side}") is None:
                kind = OrderType.MARKET if limit is None else OrderType.LIMIT
                venue.place(OrderRequest(f"c{index}{name}{side}", name, Action(side), quantity, now, kind, limit))
                venue.reports()  # what the place itself made is in its reply


def test_with_no_report_due_the_executor_still_asks_every_so_many_quotes_so_its_venue_holds_no_more():
    from cep.orders.node import SYNC_AT_LEAST_EVERY

    service = VenueService(PaperVenue())
    channel = LocalChannel(service)
    node = ExecutorNode(ExecutorSettings(), channel, BuildContext(node="exec"))
    waiting = 0
    for i in range(5 * SYNC_AT_LEAST_EVERY):  # a quiet market: quotes, no signal, no order
        quote = {"timestamp": T0 + i, "instrument": "A", "bid_price": 99.9, "ask_price": 100.0}
        service.on_quotes([quote])
        node.step([quote])
        waiting = max(waiting, len(service.quotes))
    assert waiting <= SYNC_AT_LEAST_EVERY  # the quotes the venue keeps until the executor's clock passes them
    assert channel.calls == 5
