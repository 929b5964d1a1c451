"""The executor's core: signal -> checks -> breaker -> venue -> events, each signal one order at
most, denials with their reason, a failing venue behind an open breaker never called."""
import math
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from cep.events import OrderStatus, TickEvent
from cep.orders.breaker import BreakerState, CircuitBreaker
from cep.orders.executor import OrderExecutor
from cep.orders.paper import PaperVenue
from cep.orders.positions import RiskManager
from cep.orders.risk import Deny, RiskLimits, TradingState, client_order_id_for
from cep.orders.venue import VenueReply

QUOTE = TickEvent(100, "BTCUSDT", 99.0, 100.0, 10.0, 10.0)


def signal(number=1, action="BUY", quantity=1.0, **changes):
    return {"signal_id": f"m:{number}", "timestamp": 100, "action": action, "instrument": "BTCUSDT",
            "trigger_price": 100.0, "quantity": quantity, "strategy_name": "m", "confidence": 0.9, **changes}


class CountingVenue(PaperVenue):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.placed = 0

    def place(self, request):
        self.placed += 1
        return super().place(request)


class BrokenVenue(CountingVenue):
    def place(self, request):
        self.placed += 1
        raise ConnectionError("venue down")


def executor_on(venue, limits=RiskLimits(), **kwargs):
    executor = OrderExecutor(venue, limits, **kwargs)
    venue.on_quote(QUOTE)
    executor.on_quote(QUOTE)
    return executor


def statuses(decision):
    return [event.status for event in decision.events]


def test_a_sound_signal_becomes_one_filled_order_and_a_position():
    venue = CountingVenue()
    executor = executor_on(venue)
    decision = executor.on_signal(signal(quantity=2.0), now=100)
    assert decision.denial is None
    assert statuses(decision) == [OrderStatus.NEW, OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.FILLED]
    assert {event.client_order_id for event in decision.events} == {client_order_id_for("m:1")}
    assert decision.events[-1].average_price == 100.0
    assert executor.manager.book.position("BTCUSDT").quantity == 2.0


def test_a_redelivered_signal_places_no_second_order():
    venue = CountingVenue()
    executor = executor_on(venue)
    executor.on_signal(signal(), now=100)
    again = executor.on_signal(signal(), now=101)
    assert again.events == [] and again.denial.code is Deny.DUPLICATE_SIGNAL
    assert venue.placed == 1 and executor.denials == {Deny.DUPLICATE_SIGNAL: 1}


def test_a_denied_signal_is_an_order_denied_with_its_reason_and_never_sent():
    venue = CountingVenue()
    executor = executor_on(venue, RiskLimits(max_notional=150.0))
    decision = executor.on_signal(signal(quantity=2.0), now=100)
    assert statuses(decision) == [OrderStatus.NEW, OrderStatus.DENIED]
    assert decision.events[-1].reason.startswith("MAX_NOTIONAL")
    assert venue.placed == 0


def test_an_unreadable_signal_leaves_no_order_and_is_counted():
    venue = CountingVenue()
    executor = executor_on(venue)
    for bad in (signal(quantity=math.nan), signal(2, quantity=0), signal(3, confidence=2.0), {"junk": 1}):
        decision = executor.on_signal(bad, now=100)
        assert decision.events == [] and decision.denial is not None
    assert sum(executor.denials.values()) == 4 and venue.placed == 0


def test_a_venue_rejection_is_a_rejected_order():
    class Refusing(CountingVenue):
        def place(self, request):
            return VenueReply(request.client_order_id, OrderStatus.REJECTED, reason="INSUFFICIENT_BALANCE")
    decision = executor_on(Refusing()).on_signal(signal(), now=100)
    assert statuses(decision)[-1] is OrderStatus.REJECTED and decision.events[-1].reason == "INSUFFICIENT_BALANCE"


def test_while_the_breaker_is_open_the_venue_is_not_called_and_a_probe_closes_it():
    clock = [0.0]
    venue = BrokenVenue()
    breaker = CircuitBreaker(failures=3, reset_after=10.0, clock=lambda: clock[0])
    executor = executor_on(venue, breaker=breaker)
    for number in range(3):
        assert statuses(executor.on_signal(signal(number), now=100)) == [OrderStatus.NEW, OrderStatus.SUBMITTED]
    assert breaker.state is BreakerState.OPEN and executor.venue_errors == 3
    for number in range(3, 8):
        decision = executor.on_signal(signal(number), now=100)
        assert decision.denial.code is Deny.CIRCUIT_OPEN and statuses(decision)[-1] is OrderStatus.DENIED
    assert venue.placed == 3
    clock[0] = 10.0
    venue.place = lambda request: PaperVenue.place(venue, request)  # the venue is back
    assert statuses(executor.on_signal(signal(9), now=100))[-1] is OrderStatus.FILLED
    assert breaker.state is BreakerState.CLOSED


def test_the_trading_state_the_risk_manager_sets_holds_for_the_very_next_signal():
    venue = CountingVenue()
    executor = executor_on(venue, manager=RiskManager(daily_loss_limit=15.0))
    executor.on_signal(signal(quantity=10.0), now=100)       # long 10 at 100
    fall = TickEvent(200, "BTCUSDT", 98.0, 99.0, 10.0, 10.0)  # -20 marked at the bid
    venue.on_quote(fall)
    executor.on_quote(fall)
    assert executor.manager.state is TradingState.HALTED
    assert executor.on_signal(signal(2), now=200).denial.code is Deny.HALTED


def test_orders_still_on_their_way_count_as_working():
    venue = CountingVenue(latency_ns=1_000)
    executor = executor_on(venue, RiskLimits(max_open_orders=1, max_position=1.5))
    assert statuses(executor.on_signal(signal(1), now=100))[-1] is OrderStatus.ACCEPTED
    assert executor.on_signal(signal(2), now=101).denial.code is Deny.MAX_POSITION
    executor = executor_on(CountingVenue(latency_ns=1_000), RiskLimits(max_open_orders=1))
    executor.on_signal(signal(1), now=100)
    assert executor.on_signal(signal(2), now=101).denial.code is Deny.MAX_OPEN_ORDERS


class PlacingVenue(PaperVenue):
    """Counts each client order id the venue is asked to place."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.asked = Counter()

    def place(self, request):
        self.asked[request.client_order_id] += 1
        return super().place(request)


steps = st.lists(st.one_of(
    st.tuples(st.just("quote"), st.floats(90.0, 110.0), st.sampled_from([None, 0.5, 3.0])),
    st.tuples(st.just("signal"), st.integers(0, 8), st.sampled_from(["BUY", "SELL"]))), max_size=60)


@settings(max_examples=150, deadline=None)
@given(steps=steps, latency=st.integers(0, 3))
def test_whatever_arrives_no_signal_reaches_the_venue_twice_and_positions_are_the_fills(steps, latency):
    """Signals redelivered in any order, quotes of any size: each client order id is placed at
    most once, the ledger never has to refuse what the venue reports, and the position is the
    sum of the fills the events report."""
    venue = PlacingVenue(latency_ns=latency)
    executor = executor_on(venue, RiskLimits(max_position=5.0, max_open_orders=3))
    events, now = [], 100
    for kind, value, extra in steps:
        now += 1
        if kind == "quote":
            tick = TickEvent(now, "BTCUSDT", value, value + 0.1, extra, extra)
            venue.on_quote(tick)
            events += executor.on_reports(venue.reports())
            executor.on_quote(tick)
        else:
            events += executor.on_signal(signal(value, action=extra, timestamp=now), now=now).events
    assert all(count == 1 for count in venue.asked.values())
    assert executor.ledger.refused == {}
    bought = sum(e.fill_quantity * (1 if e.side.value == "BUY" else -1) for e in events if e.fill_id)
    assert executor.manager.book.position("BTCUSDT").quantity == pytest.approx(bought)
    assert abs(bought) <= 5.0 + 1e-9


def test_a_working_order_canceled_never_fills_and_a_fill_that_beat_the_cancel_counts():
    venue = CountingVenue(latency_ns=1_000)
    executor = executor_on(venue)
    executor.on_signal(signal(1, quantity=2.0), now=100)
    coid = client_order_id_for("m:1")
    assert [e.status for e in executor.cancel(coid, now=200)] == [OrderStatus.CANCELED]
    venue.on_quote(TickEvent(2_000, "BTCUSDT", 99.0, 100.0, 10.0, 10.0))
    assert executor.on_reports(venue.reports()) == [] and executor.manager.book.position("BTCUSDT").quantity == 0
    assert executor.cancel(coid, now=300) == [] and executor.cancel("unknown", now=300) == []

    executor.on_signal(signal(2, quantity=2.0), now=2_000)   # arrives at 3,000 with 1 of 2 shown
    venue.on_quote(TickEvent(3_000, "BTCUSDT", 99.0, 100.0, 1.0, 1.0))  # fills 1, not yet taken
    events = executor.cancel(client_order_id_for("m:2"), now=3_001)
    assert [e.status for e in events] == [OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELED]
    assert executor.manager.book.position("BTCUSDT").quantity == 1.0 and executor.ledger.refused == {}
