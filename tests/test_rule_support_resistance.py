"""The support_resistance rule: hand-computed breakouts, probes, bounces and cooldowns; batch-split
invariance; and the real datasets.

The worked examples use one tick a second and 1s bars, so each tick is a bar (high = low = mid)
closed by the next tick; n = 1, so a swing is confirmed when the tick after its neighbour arrives.
Bands are +-0.5 (absolute tolerance), a bounce needs 2.0 (200 bps of 100), 3 ticks confirm.
The prefix 95, 100, 95, 100, 93 makes a resistance at 100: swing highs of bars 1 and 3,
confirmed at t3 and t5, so from t5 the level has 2 touches.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st

from cep.components.base import BuildContext
from cep.components.rules.support_resistance import (SupportResistanceParams, confidence,
                                                     support_resistance)
from cep.events import TradingSignal
from tests.support import split

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import count_signals  # noqa: E402

S = 1_000_000_000
EXAMPLE = {"period": "1s", "n": 1, "tolerance": 0.5, "bounce_bps": 200, "confirm_ticks": 3,
           "min_touches": 2}
PREFIX = [95, 100, 95, 100, 93]


def run(records, batches=None, **params):
    ctx = BuildContext(node="sr", key="instrument",
                       dead_letter_fn=lambda node, reason, raw: dead.append(raw))
    dead: list = []
    out: list[dict] = []
    support_resistance(SupportResistanceParams(**{**EXAMPLE, **params}), ctx)(
        reactivex.from_iterable(split(records, batches))).subscribe(out.extend)
    return out, ctx, dead


def quotes(mids, instrument="A"):
    return [{"timestamp": i * S, "instrument": instrument, "bid_price": m - 0.5, "ask_price": m + 0.5}
            for i, m in enumerate(mids)]


def kinds(signals):
    return [(s["timestamp"] // S, s["signal_id"].rsplit(":", 1)[1], s["action"]) for s in signals]


def mirrored(mids):
    return [200 - m for m in mids]


def test_breakout_confirmed_after_three_ticks_above_the_band():
    out, ctx, dead = run(quotes(PREFIX + [99, 101, 101, 101]))
    assert kinds(out) == [(8, "breakout_up", "BUY")]
    # level 100 with 2 touches, last at the swing's confirmation (bar 4's last ns, 5s - 1)
    assert out[0] == {"signal_id": f"sr:A:{8 * S}:breakout_up", "timestamp": 8 * S, "action": "BUY",
                      "instrument": "A", "trigger_price": 101.5, "quantity": 1.0,
                      "strategy_name": "sr", "confidence": confidence(2, 3 * S + 1, 3600 * S, 1.0, 0.5)}
    assert TradingSignal.from_record(out[0]).to_record() == out[0]
    assert not dead


def test_two_ticks_are_not_a_breakout():
    out, _, _ = run(quotes(PREFIX + [99, 101, 101, 100]))
    assert out == []


def test_a_failed_probe_back_into_the_band_resets_the_count():
    out, _, _ = run(quotes(PREFIX + [99, 101, 100.2, 101, 101, 101]))
    assert kinds(out) == [(10, "breakout_up", "BUY")]


def test_mirrored_prices_break_down_through_support():
    out, _, _ = run(quotes(mirrored(PREFIX + [99, 101, 101, 101])))
    assert kinds(out) == [(8, "breakout_down", "SELL")]
    assert out[0]["trigger_price"] == 99 - 0.5


def test_rejection_at_resistance_and_bounce_off_support():
    rejected, _, _ = run(quotes(PREFIX + [99.8, 97.5]))  # touch the band at t5, fall 2.5 at t6
    assert kinds(rejected) == [(6, "rejection", "SELL")] and rejected[0]["trigger_price"] == 97.0
    bounced, _, _ = run(quotes(mirrored(PREFIX + [99.8, 97.5])))
    assert kinds(bounced) == [(6, "bounce", "BUY")] and bounced[0]["trigger_price"] == 103.0


def test_a_move_smaller_than_bounce_bps_is_no_bounce():
    out, _, _ = run(quotes(PREFIX + [99.8, 98.2]))
    assert out == []


def test_cooldown_suppresses_the_same_kind_at_the_same_level():
    mids = PREFIX + [99.8, 97.5, 99.8, 97.5]  # a second rejection at t8, 2s after the first
    quiet, ctx, _ = run(quotes(mids), cooldown="10s")
    assert kinds(quiet) == [(6, "rejection", "SELL")] and ctx.counters.dropped == {"cooldown": 1}
    loud, _, _ = run(quotes(mids), cooldown="1s")
    assert kinds(loud) == [(6, "rejection", "SELL"), (8, "rejection", "SELL")]


def test_a_level_needs_min_touches_to_signal():
    out, _, _ = run(quotes(PREFIX + [99, 101, 101, 101]), min_touches=3)
    assert out == []


def test_instruments_are_independent_and_a_tick_without_prices_is_dead_lettered():
    a, b = quotes(PREFIX + [99, 101, 101, 101], "A"), quotes(PREFIX + [99.8, 97.5], "B")
    merged = sorted(a + b, key=lambda r: r["timestamp"]) + [{"timestamp": 20 * S, "instrument": "A"}]
    out, _, dead = run(merged)
    assert sorted((s["instrument"], *kinds([s])[0]) for s in out) == [
        ("A", 8, "breakout_up", "BUY"), ("B", 6, "rejection", "SELL")]
    assert dead == [merged[-1]]


@pytest.mark.parametrize("bad", [{"tolerance": 1, "tolerance_bps": 1}, {"confirm_ticks": 0},
                                 {"cooldown": "0s"}, {"colour": "red"}])
def test_params_reject_mistakes(bad):
    with pytest.raises(ValueError):
        SupportResistanceParams(**{**EXAMPLE, **bad})


@settings(max_examples=40, deadline=None)
@given(moves=st.lists(st.tuples(st.sampled_from("AB"), st.integers(-3, 3)), min_size=1, max_size=80),
       cuts=st.lists(st.integers(0, 80), max_size=5))
def test_batch_boundaries_do_not_change_the_signals(moves, cuts):
    mids, records = {"A": 100.0, "B": 100.0}, []
    for i, (instrument, step) in enumerate(moves):
        mids[instrument] += step * 0.5
        m = mids[instrument]
        records.append({"timestamp": i * S // 2, "instrument": instrument,
                        "bid_price": m - 0.5, "ask_price": m + 0.5})
    bounds = [0, *sorted(c for c in cuts if c <= len(records)), len(records)]
    whole, _, _ = run(records)
    split, _, _ = run(records, batches=[b - a for a, b in zip(bounds, bounds[1:])])
    assert split == whole
    assert all(0 <= s["confidence"] <= 1 for s in whole)


@settings(max_examples=100, deadline=None)
@given(touches=st.integers(1, 10 ** 6), age=st.integers(-S, 10 ** 15),
       distance=st.floats(0, 1e9), threshold=st.floats(1e-9, 1e9))
def test_confidence_is_bounded(touches, age, distance, threshold):
    assert 0 <= confidence(touches, age, 3600 * S, distance, threshold) <= 1


@pytest.mark.parametrize("dataset, limit", [("binance", None), ("oanda", 120_000)])
def test_real_datasets_fire_valid_signals(shared_data, dataset, limit):
    path = shared_data / "ticks" / count_signals.DATASETS[dataset]
    if not path.exists():
        pytest.skip(f"needs {path}")
    records = count_signals.quotes(path, limit)
    out, ctx, = count_signals.signals("support_resistance", dataset, records)
    ids = [s["signal_id"] for s in out]
    print(f"{dataset}: {len(records)} ticks -> {len(out)} support_resistance signals")
    assert out and len(set(ids)) == len(ids) and ctx.counters.dead_lettered == 0
    assert all(TradingSignal.from_record(s).to_record() == s for s in out)
    if dataset == "binance":  # as `cep run pipelines/support_resistance.yaml` reports
        assert len(out) == 18
