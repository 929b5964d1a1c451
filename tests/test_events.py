"""The domain events: their methods, the record form and the order state machine."""
import pytest

from cep.events import Action, OrderEvent, OrderStatus, TickEvent, TradingSignal


def test_tick_spread_and_record_round_trip_with_missing_volumes():
    tick = TickEvent(1723161254024619568, "EURUSD", 1.08001, 1.08012)
    assert tick.spread() == pytest.approx(0.00011)
    assert tick.to_record()["bid_volume"] is None
    assert TickEvent.from_record({**tick.to_record(), "mid": 1.0}) == tick  # derived fields ignored


def test_signal_confidence_is_bounded_and_high_above_0_8():
    signal = TradingSignal("s:1", 1, "BUY", "BTCUSDT", 61837.64, 0.5, "momentum", 0.81)
    assert signal.action is Action.BUY and signal.is_high_confidence()
    assert signal.to_record()["action"] == "BUY"
    assert not TradingSignal("s:2", 1, "SELL", "X", 1.0, 1, "m", 0.8).is_high_confidence()
    with pytest.raises(ValueError):
        TradingSignal("s:3", 1, "BUY", "X", 1.0, 1, "m", 1.2)
    with pytest.raises(ValueError):
        TradingSignal("s:4", 1, "HOLD", "X", 1.0, 1, "m", 0.5)


def test_order_states_move_only_forward_and_final_states_are_final():
    assert OrderStatus.NEW.can_become(OrderStatus.ACCEPTED)
    assert OrderStatus.ACCEPTED.can_become(OrderStatus.PARTIALLY_FILLED)
    assert OrderStatus.PARTIALLY_FILLED.can_become(OrderStatus.FILLED)
    assert not OrderStatus.FILLED.can_become(OrderStatus.CANCELED)
    assert not OrderStatus.NEW.can_become(OrderStatus.FILLED)
    assert all(status.is_final for status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED))
    order = OrderEvent("o1", "s:1", "FILLED", 0.5, 61837.64, 2)
    assert order.is_fully_filled() and order.status is OrderStatus.FILLED
    assert not OrderEvent("o2", "s:1", "PARTIALLY_FILLED", 0.2, 61837.64, 2).is_fully_filled()


def test_to_record_is_the_dataclass_as_a_dict_with_enums_as_their_values():
    import dataclasses
    from enum import Enum

    from cep.events import Action, OrderEvent, OrderStatus, TickEvent, TradingSignal

    for event in (TickEvent(1, "X", 1.0, 2.0, 3.0, None),
                  TradingSignal("s", 1, Action.SELL, "X", 2.0, 1.0, "r", 0.5),
                  OrderEvent("o", "s", OrderStatus.FILLED, 1.0, 2.0, 3, "c", "X", Action.BUY, 1.0, 1.0, "f",
                             2.0, 0.0, None, 4)):
        expected = {k: v.value if isinstance(v, Enum) else v for k, v in dataclasses.asdict(event).items()}
        assert event.to_record() == expected and list(event.to_record()) == list(expected)
        assert type(event).from_record(event.to_record()) == event
