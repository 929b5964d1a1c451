"""The momentum rule: hand-computed streaks, batch-split invariance, and the real Binance file."""
import gzip
import csv
from pathlib import Path

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cep.components.base import BuildContext
from cep.components.rules.momentum import MomentumParams, confidence, momentum
from cep.events import TradingSignal
from tests.support import records_into, split

BINANCE = Path(__file__).resolve().parents[1] / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"


def run(records, batches=None, key="instrument", letters=None, **params) -> list[dict]:
    """Feed `records` through the rule, split into `batches` (sizes) or one batch."""
    ctx = BuildContext(node="mom", key=key,
                       dead_letter_fn=lambda node, reason, raw: (letters if letters is not None
                                                                 else []).append((reason, raw)))
    out: list[dict] = []
    momentum(MomentumParams(**params), ctx)(reactivex.from_iterable(split(records, batches))).subscribe(records_into(out))
    return out


def quotes(mids, instrument="A", start=0, primed=True):
    """Quotes with these mids at start, start+1, ...; `primed` puts a tick before them (at
    start-1) that moves the other way, so a streak from the first mid has a seen start."""
    if primed:
        first, second = mids[0], mids[1] if len(mids) > 1 else mids[0]
        mids = [first - 1 if second < first else first + 1, *mids]
        start -= 1
    return [{"timestamp": start + i, "instrument": instrument, "bid_price": m - 0.5,
             "ask_price": m + 0.5} for i, m in enumerate(mids)]


def actions(signals):
    return [(s["timestamp"], s["action"]) for s in signals]


def test_three_rising_moves_fire_one_buy_at_the_ask():
    signals = run(quotes([10, 11, 12, 13]), count=3, quantity=100)
    assert actions(signals) == [(3, "BUY")]
    assert signals[0] == {"signal_id": "mom:A:3:BUY", "timestamp": 3, "action": "BUY",
                          "instrument": "A", "trigger_price": 13.5, "quantity": 100.0,
                          "strategy_name": "mom", "confidence": confidence(10, 13, 1.0)}
    assert TradingSignal.from_record(signals[0]).to_record() == signals[0]


def test_falling_moves_fire_a_sell_at_the_bid():
    signals = run(quotes([10, 9, 8]), count=2, strategy_name="dips")
    assert actions(signals) == [(2, "SELL")]
    assert signals[0]["trigger_price"] == 7.5 and signals[0]["strategy_name"] == "dips"


def test_moves_from_a_keys_first_tick_are_no_streak_its_start_was_never_seen():
    assert run(quotes([10, 11, 12, 13], primed=False), count=3) == []
    assert run(quotes([10, 9, 8, 7], primed=False), count=3) == []
    # once the first streak breaks, the next one counts
    assert actions(run(quotes([10, 11, 12, 11, 10], primed=False), count=2)) == [(4, "SELL")]


def test_count_is_moves_not_ticks():
    assert run(quotes([10, 11, 12]), count=3) == []
    assert actions(run(quotes([10, 11]), count=1)) == [(1, "BUY")]


def test_equal_mids_neither_extend_nor_break_a_streak():
    assert actions(run(quotes([10, 11, 11, 11, 12, 12, 13]), count=3)) == [(6, "BUY")]
    assert run(quotes([10, 10, 10, 10], primed=False), count=1) == []


def test_a_streak_fires_once_and_again_only_after_it_breaks():
    mids = [1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9]
    # rising to 3 moves at t=3; keeps rising (no repeat); breaks at t=7; new rise from 6: 7,8,9
    assert actions(run(quotes(mids), count=3)) == [(3, "BUY"), (10, "BUY")]


def test_a_reversal_starts_a_new_streak_of_the_other_direction():
    mids = [5, 6, 7, 6, 5, 4]
    assert actions(run(quotes(mids), count=2)) == [(2, "BUY"), (4, "SELL")]


@pytest.mark.parametrize("direction, expected", [("up", [(2, "BUY")]), ("down", [(4, "SELL")]),
                                                 ("both", [(2, "BUY"), (4, "SELL")])])
def test_direction_selects_which_streaks_fire(direction, expected):
    assert actions(run(quotes([5, 6, 7, 6, 5]), count=2, direction=direction)) == expected


def test_keys_keep_separate_streaks():
    a = quotes([1, 2, 3], "A")
    b = quotes([9, 8, 7], "B")
    interleaved = [record for pair in zip(a, b) for record in pair]
    signals = run(interleaved, count=2)
    assert [(s["instrument"], s["action"]) for s in signals] == [("A", "BUY"), ("B", "SELL")]
    # the same records as one global key: 2 8 1 9 2 8 3 7 alternates, no streak of 2
    assert run(interleaved, key=None, count=2) == []


def test_a_mid_field_takes_precedence_over_bid_and_ask():
    records = [{"timestamp": i, "instrument": "A", "bid_price": 1.0, "ask_price": 2.0, "mid": m}
               for i, m in enumerate([2, 1, 2, 3])]
    assert actions(run(records, count=2)) == [(3, "BUY")]


def test_a_record_without_prices_is_dead_lettered_and_the_streak_goes_on():
    records = quotes([1, 2])
    records.append({"timestamp": 99, "instrument": "A"})
    records += quotes([3], start=3, primed=False)
    letters: list = []
    assert actions(run(records, letters=letters, count=2)) == [(3, "BUY")]
    assert len(letters) == 1 and "KeyError" in letters[0][0]


def test_confidence_is_half_at_the_scale_and_bounded():
    assert confidence(100.0, 100.0, 1.0) == 0.0
    assert confidence(100.0, 100.01, 1.0) == 0.5  # a 1 bp move at a 1 bp scale
    assert confidence(100.0, 99.99, 1.0) == 0.5
    assert 0.99 < confidence(100.0, 200.0, 1.0) <= 1.0
    assert confidence(100.0, 100.02, 2.0) == 0.5


@pytest.mark.parametrize("bad", [{"count": 0}, {"direction": "sideways"}, {"quantity": 0},
                                 {"window": 3}])
def test_bad_params_are_rejected(bad):
    with pytest.raises(ValidationError):
        MomentumParams(**bad)


@st.composite
def split_stream(draw):
    mids = draw(st.lists(st.integers(0, 4), min_size=1, max_size=120))
    names = draw(st.lists(st.sampled_from("XYZ"), min_size=len(mids), max_size=len(mids)))
    records = [{"timestamp": i, "instrument": n, "bid_price": float(m), "ask_price": m + 1.0}
               for i, (m, n) in enumerate(zip(mids, names))]
    sizes, left = [], len(records)
    while left:
        size = draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    return records, sizes


@settings(max_examples=150, deadline=None)
@given(split_stream(), st.integers(1, 4), st.sampled_from(["up", "down", "both"]))
def test_output_does_not_depend_on_how_records_are_batched(stream, count, direction):
    records, sizes = stream
    assert run(records, sizes, count=count, direction=direction) == \
        run(records, count=count, direction=direction)


def reference_signals(rows, count):
    """A deliberately plain re-statement of the rule, to check the fast one on real data."""
    mids: dict[str, list[float]] = {}
    fired = []
    for row in rows:
        history = mids.setdefault(row["instrument"], [])
        mid = (row["bid_price"] + row["ask_price"]) / 2
        if history and mid == history[-1]:
            continue
        history.append(mid)
        del history[:-(count + 2)]
        moves = [b - a for a, b in zip(history, history[1:])]
        for sign, action in ((1, "BUY"), (-1, "SELL")):
            last = moves[-count:]
            if len(moves) > count and all(m * sign > 0 for m in last) and moves[-count - 1] * sign < 0:
                fired.append((row["timestamp"], row["instrument"], action))
    return fired


def test_the_shipped_binance_file_gives_629_signals_and_the_reference_agrees():
    with gzip.open(BINANCE, "rt") as f:
        rows = [{"timestamp": int(r["timestamp"]), "instrument": r["instrument"],
                 "bid_price": float(r["bid_price"]), "ask_price": float(r["ask_price"])}
                for r in csv.DictReader(f)]
    signals = run(rows, [256] * (len(rows) // 256 + 1), count=5, direction="both")
    assert len(signals) == 629
    assert [(s["timestamp"], s["instrument"], s["action"]) for s in signals] == \
        reference_signals(rows, 5)
    assert len({s["signal_id"] for s in signals}) == 629
    assert all(0 < s["confidence"] < 1 for s in signals)
