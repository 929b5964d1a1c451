"""The order lifecycle: legal moves only, fills accumulate exactly once, never past the quantity."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from cep.events import Action, OrderEvent, OrderStatus
from cep.orders.lifecycle import Fill, OrderLedger, Refusal


def opened(quantity=10.0, coid="c1"):
    ledger = OrderLedger()
    ledger.open("s1", coid, "BTCUSDT", Action.BUY, quantity, timestamp=1)
    ledger.move(coid, OrderStatus.SUBMITTED, 2)
    ledger.move(coid, OrderStatus.ACCEPTED, 3, order_id="v1")
    return ledger


def test_the_happy_path_numbers_every_event_and_carries_every_field():
    ledger = OrderLedger()
    events = [ledger.open("s1", "c1", "BTCUSDT", "BUY", 10.0, timestamp=1),
              ledger.move("c1", OrderStatus.SUBMITTED, 2),
              ledger.move("c1", OrderStatus.ACCEPTED, 3, order_id="v1"),
              ledger.fill(Fill("c1", "f1", price=100.0, quantity=4.0, timestamp=4)),
              ledger.fill(Fill("c1", "f2", price=110.0, quantity=6.0, timestamp=5))]
    assert [e.status for e in events] == [OrderStatus.NEW, OrderStatus.SUBMITTED, OrderStatus.ACCEPTED,
                                          OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    last = events[-1]
    assert (last.order_id, last.client_order_id, last.signal_id, last.instrument, last.side) == \
        ("v1", "c1", "s1", "BTCUSDT", Action.BUY)
    assert (last.quantity, last.filled_quantity, last.remaining_quantity) == (10.0, 10.0, 0.0)
    assert (last.fill_price, last.fill_quantity, last.fill_id) == (110.0, 6.0, "f2")
    assert last.average_price == pytest.approx(106.0)
    assert events[3].remaining_quantity == 6.0 and events[3].average_price == 100.0
    assert last.timestamp == 5 and last.is_fully_filled()
    assert OrderEvent.from_record(last.to_record()) == last
    assert ledger.refused == {}


@pytest.mark.parametrize("status", [OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.NEW])
def test_a_fill_status_or_a_step_back_is_refused_and_counted(status):
    ledger = opened()
    assert ledger.move("c1", status, 9) is None
    assert ledger.refused[Refusal.ILLEGAL_TRANSITION] == 1
    assert ledger.order("c1").status is OrderStatus.ACCEPTED


def test_final_states_are_final_and_a_fill_before_acceptance_is_refused():
    ledger = OrderLedger()
    ledger.open("s1", "c1", "X", "SELL", 1.0, 1)
    assert ledger.fill(Fill("c1", "f1", 10.0, 1.0, 2)) is None  # NEW cannot fill
    assert ledger.move("c1", OrderStatus.DENIED, 2, reason="MAX_NOTIONAL").reason == "MAX_NOTIONAL"
    assert ledger.move("c1", OrderStatus.SUBMITTED, 3) is None
    assert ledger.refused[Refusal.ILLEGAL_TRANSITION] == 2
    assert not list(ledger.working())


def test_a_duplicate_fill_is_skipped_and_an_overfill_refused():
    ledger = opened(quantity=10.0)
    assert ledger.fill(Fill("c1", "f1", 100.0, 6.0, 4)).filled_quantity == 6.0
    assert ledger.fill(Fill("c1", "f1", 100.0, 6.0, 4)) is None
    assert ledger.fill(Fill("c1", "f2", 100.0, 5.0, 5)) is None
    assert ledger.refused == {Refusal.DUPLICATE_FILL: 1, Refusal.OVERFILL: 1}
    assert ledger.order("c1").filled == 6.0
    assert ledger.fill(Fill("c1", "f3", 100.0, 4.0, 6)).status is OrderStatus.FILLED


@pytest.mark.parametrize("price, quantity", [(math.nan, 1.0), (math.inf, 1.0), (0.0, 1.0), (10.0, 0.0),
                                             (10.0, -1.0), (10.0, math.nan)])
def test_a_fill_with_an_impossible_price_or_quantity_is_refused(price, quantity):
    ledger = opened()
    assert ledger.fill(Fill("c1", "f1", price, quantity, 4)) is None
    assert ledger.refused == {Refusal.BAD_FILL: 1}


def test_unknown_orders_and_a_second_open_of_one_client_order_id_are_refused():
    ledger = opened()
    assert ledger.fill(Fill("nope", "f1", 1.0, 1.0, 4)) is None
    assert ledger.move("nope", OrderStatus.CANCELED, 4) is None
    assert ledger.open("s1", "c1", "BTCUSDT", "BUY", 10.0, 5) is None
    assert ledger.refused == {Refusal.UNKNOWN_ORDER: 2, Refusal.DUPLICATE_ORDER: 1}


@pytest.mark.parametrize("side, quantity", [("BUY", math.nan), ("BUY", math.inf), ("SELL", 0.0), ("SELL", -2.0),
                                            ("HOLD", 1.0)])
def test_an_order_of_no_sensible_quantity_or_side_is_never_opened(side, quantity):
    ledger = OrderLedger()
    assert ledger.open("s1", "c1", "X", side, quantity, 1) is None
    assert ledger.refused == {Refusal.BAD_ORDER: 1} and ledger.order("c1") is None


def test_a_partly_filled_order_can_be_canceled_and_keeps_its_fills():
    ledger = opened(quantity=10.0)
    ledger.fill(Fill("c1", "f1", 100.0, 3.0, 4))
    event = ledger.move("c1", OrderStatus.CANCELED, 5, reason="by hand")
    assert (event.filled_quantity, event.remaining_quantity, event.fill_quantity) == (3.0, 7.0, 0.0)
    assert event.fill_price is None and event.average_price == 100.0


fills = st.lists(st.tuples(st.sampled_from(["f1", "f2", "f3", "f4", "f5", "f6"]),
                           st.floats(0.01, 1e6, allow_nan=False),
                           st.floats(0.001, 40.0, allow_nan=False)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(quantity=st.floats(0.01, 100.0), fills=fills)
def test_no_sequence_of_fills_overfills_and_cum_quantity_and_average_agree(quantity, fills):
    ledger = opened(quantity=quantity)
    taken = []
    for number, (fill_id, price, size) in enumerate(fills):
        event = ledger.fill(Fill("c1", fill_id, price, size, 10 + number))
        if event is not None:
            taken.append((price, size))
            assert event.filled_quantity <= quantity * (1 + 1e-9)
            assert event.filled_quantity + event.remaining_quantity == pytest.approx(quantity)
            assert event.filled_quantity == pytest.approx(sum(s for _, s in taken))
            assert event.average_price == pytest.approx(sum(p * s for p, s in taken) / event.filled_quantity)
            assert min(p for p, _ in taken) * (1 - 1e-9) <= event.average_price <= max(p for p, _ in taken) * (1 + 1e-9)
    assert len({fill_id for fill_id, _, _ in fills}) >= len(taken)  # each fill id counted at most once
    order = ledger.order("c1")
    assert order.status is (OrderStatus.FILLED if order.remaining == 0 else
                            OrderStatus.PARTIALLY_FILLED if taken else OrderStatus.ACCEPTED)
