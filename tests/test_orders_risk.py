"""Pre-trade risk: each check denies with its reason code, the first failure wins, bad input is
denied (never raises), and a signal maps to one client order id."""
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from cep.events import TickEvent
from cep.orders.risk import Deny, Exposure, PreTradeRisk, RiskLimits, TradingState, client_order_id_for

SECOND = 1_000_000_000
NOW = 1_000 * SECOND
QUOTE = TickEvent(NOW - SECOND, "BTCUSDT", 99.9, 100.1, 5.0, 5.0)
LIMITS = RiskLimits(min_quantity=1, max_quantity=100, lot_size=1, max_signal_age_ns=5 * SECOND,
                    max_quote_age_ns=2 * SECOND, max_spread=0.01, price_band=0.05, max_notional=5_000,
                    max_position=60, max_open_orders=3, max_orders=2, rate_window_ns=SECOND,
                    daily_loss_limit=1_000, instruments=frozenset({"BTCUSDT"}))
FLAT = Exposure(state=TradingState.ACTIVE, quote=QUOTE, position=0.0, working_buy=0.0, working_sell=0.0,
                open_orders=0, daily_pnl=0.0)


def signal(**changes):
    record = {"signal_id": "m:BTCUSDT:1:BUY", "timestamp": NOW - SECOND, "action": "BUY",
              "instrument": "BTCUSDT", "trigger_price": 100.1, "quantity": 10.0, "strategy_name": "m",
              "confidence": 0.9}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def verdict(record, exposure=FLAT, limits=LIMITS):
    denial = PreTradeRisk(limits).check(record, exposure, NOW)
    return None if denial is None else denial.code


def test_a_sound_signal_passes():
    assert verdict(signal()) is None


@pytest.mark.parametrize("changes, code", [
    ({"quantity": 0}, Deny.BAD_QUANTITY), ({"quantity": -1}, Deny.BAD_QUANTITY),
    ({"quantity": math.nan}, Deny.BAD_QUANTITY), ({"quantity": math.inf}, Deny.BAD_QUANTITY),
    ({"quantity": "10"}, Deny.BAD_QUANTITY), ({"quantity": True}, Deny.BAD_QUANTITY),
    ({"trigger_price": math.nan}, Deny.BAD_PRICE), ({"trigger_price": -math.inf}, Deny.BAD_PRICE),
    ({"trigger_price": 0}, Deny.BAD_PRICE),
    ({"confidence": 1.2}, Deny.BAD_CONFIDENCE), ({"confidence": -0.1}, Deny.BAD_CONFIDENCE),
    ({"confidence": math.nan}, Deny.BAD_CONFIDENCE),
    ({"action": "HOLD"}, Deny.BAD_SIGNAL), ({"signal_id": ...}, Deny.BAD_SIGNAL),
    ({"signal_id": ""}, Deny.BAD_SIGNAL), ({"timestamp": "yesterday"}, Deny.BAD_SIGNAL),
    ({"instrument": "DOGEUSDT"}, Deny.UNKNOWN_INSTRUMENT),
    ({"timestamp": NOW - 6 * SECOND}, Deny.STALE_SIGNAL),
    ({"quantity": 0.5, "trigger_price": 100.1}, Deny.QUANTITY_BELOW_MIN),
    ({"quantity": 101.0}, Deny.QUANTITY_ABOVE_MAX),
    ({"quantity": 10.5}, Deny.LOT_SIZE),
    ({"trigger_price": 106.0}, Deny.PRICE_BAND), ({"trigger_price": 94.0}, Deny.PRICE_BAND),
    ({"quantity": 50.0}, Deny.MAX_NOTIONAL),
])
def test_each_bad_field_or_limit_has_its_reason(changes, code):
    assert verdict(signal(**changes)) is code


@pytest.mark.parametrize("exposure, code", [
    (replace(FLAT, state=TradingState.HALTED), Deny.HALTED),
    (replace(FLAT, state=TradingState.REDUCING), Deny.REDUCE_ONLY),
    (replace(FLAT, state=TradingState.REDUCING, position=-5.0), Deny.REDUCE_ONLY),  # would flip long
    (replace(FLAT, quote=None), Deny.UNKNOWN_INSTRUMENT),
    (replace(FLAT, quote=replace(QUOTE, timestamp=NOW - 3 * SECOND)), Deny.STALE_QUOTE),
    (replace(FLAT, quote=replace(QUOTE, bid_price=100.2)), Deny.CROSSED_QUOTE),
    (replace(FLAT, quote=replace(QUOTE, bid_price=math.nan)), Deny.CROSSED_QUOTE),
    (replace(FLAT, quote=replace(QUOTE, bid_price=98.0, ask_price=100.1)), Deny.WIDE_SPREAD),
    (replace(FLAT, position=55.0), Deny.MAX_POSITION),
    (replace(FLAT, position=30.0, working_buy=25.0), Deny.MAX_POSITION),   # working orders count
    (replace(FLAT, open_orders=3), Deny.MAX_OPEN_ORDERS),
    (replace(FLAT, daily_pnl=-1_000.0), Deny.DAILY_LOSS),
])
def test_each_state_of_the_book_has_its_reason(exposure, code):
    assert verdict(signal(), exposure) is code


def test_reducing_lets_through_what_reduces_the_position_and_no_more():
    short = replace(FLAT, state=TradingState.REDUCING, position=-20.0)
    assert verdict(signal(quantity=20.0), short) is None
    assert verdict(signal(action="SELL", trigger_price=99.9, quantity=1.0), short) is Deny.REDUCE_ONLY
    assert verdict(signal(quantity=15.0), replace(short, working_buy=10.0)) is Deny.REDUCE_ONLY


def test_a_sell_is_priced_at_the_bid_and_its_worst_case_counts_working_sells():
    sell = signal(action="SELL", trigger_price=99.9, quantity=50.0)
    limits = replace(LIMITS, max_notional=4_995.0)  # 50 * 99.9 exactly: at the bid it passes
    assert verdict(sell, limits=limits) is None
    assert verdict(sell, replace(FLAT, working_sell=11.0), limits) is Deny.MAX_POSITION


def test_the_first_failure_wins():
    halted = replace(FLAT, state=TradingState.HALTED, open_orders=99)
    assert verdict(signal(quantity=500.0), halted) is Deny.HALTED
    assert verdict(signal(quantity=-1, confidence=7)) is Deny.BAD_QUANTITY


def test_a_signal_seen_before_is_denied_whatever_its_first_verdict():
    risk = PreTradeRisk(LIMITS)
    assert risk.check(signal(quantity=500.0), FLAT, NOW).code is Deny.QUANTITY_ABOVE_MAX
    assert risk.check(signal(), FLAT, NOW).code is Deny.DUPLICATE_SIGNAL


def test_a_signal_denied_while_halted_is_not_traded_when_redelivered_later():
    risk = PreTradeRisk(LIMITS)
    assert risk.check(signal(), replace(FLAT, state=TradingState.HALTED), NOW).code is Deny.HALTED
    assert risk.check(signal(), FLAT, NOW).code is Deny.DUPLICATE_SIGNAL


def test_the_order_rate_is_a_sliding_window_in_event_time():
    risk = PreTradeRisk(LIMITS)  # at most 2 orders per second
    for number, at in enumerate([NOW, NOW + SECOND // 2, NOW + SECOND - 1, NOW + SECOND, NOW + SECOND + 1]):
        fresh = replace(FLAT, quote=replace(QUOTE, timestamp=at))
        denial = risk.check(signal(signal_id=f"s{number}", timestamp=at), fresh, at)
        if denial is None:
            risk.record_order(at)
        assert (denial and denial.code) is [None, None, Deny.ORDER_RATE, None, Deny.ORDER_RATE][number]


def test_a_denial_says_what_was_wrong():
    denial = PreTradeRisk(LIMITS).check(signal(quantity=50.0), FLAT, NOW)
    assert "5005" in denial.detail and "5000" in denial.detail


def test_the_client_order_id_is_a_function_of_the_signal_id_short_enough_for_venues():
    assert client_order_id_for("m:BTCUSDT:1:BUY") == client_order_id_for("m:BTCUSDT:1:BUY")
    assert client_order_id_for("m:BTCUSDT:1:BUY") != client_order_id_for("m:BTCUSDT:2:BUY")
    assert len(client_order_id_for("x" * 1000)) <= 36 and client_order_id_for("a").isascii()


@pytest.mark.parametrize("changes", [{"max_quantity": 0}, {"lot_size": -1}, {"max_spread": math.nan},
                                     {"min_quantity": 5, "max_quantity": 4}, {"max_orders": 0}])
def test_nonsense_limits_are_refused(changes):
    with pytest.raises(ValueError):
        replace(LIMITS, **changes)


anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                     st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["signal_id", "timestamp", "action", "instrument", "trigger_price",
                                        "quantity", "confidence", "strategy_name"]), anything))
def test_any_record_gets_a_verdict_never_an_exception(changes):
    record = signal(**changes)
    code = verdict(record)
    assert code is None or isinstance(code, Deny)
