"""bars, swings, levels and pivots: hand-computed worked examples, brute-force references, and
batch-split invariance."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cep.components.operators.pivots import floor_pivots
from test_operators_harness import drive, params

S = 1_000_000_000
M = 60 * S
D = 86_400 * S


def priced(*points, key="A"):
    return [{"timestamp": t, "k": key, "p": p} for t, p in points]


def test_bars_worked_example_ohlc_and_emission_time():
    ticks = priced((0, 10), (20 * S, 12), (40 * S, 9), (61 * S, 11))
    out = drive("bars", {"period": "1m", "price": "p"}, [ticks[:3], ticks[3:]], key="k")
    assert out.batches == [
        [{"k": "A", "timestamp": M - 1, "bar_start": 0, "bar_end": M, "open": 10.0, "high": 12.0,
          "low": 9.0, "close": 9.0, "ticks": 3}],
        [{"k": "A", "timestamp": 2 * M - 1, "bar_start": M, "bar_end": 2 * M, "open": 11.0,
          "high": 11.0, "low": 11.0, "close": 11.0, "ticks": 1}]]  # the second at end of stream


def test_bars_skip_empty_periods_and_a_tick_at_the_end_opens_the_next_bar():
    out = drive("bars", {"period": "1m", "price": "p"}, [priced((5 * S, 1), (M, 2), (3 * M + 1, 3))],
                key="k")
    assert [(b["bar_start"], b["open"]) for b in out.records] == [(0, 1.0), (M, 2.0), (3 * M, 3.0)]


def test_bars_default_price_is_the_mid_and_keys_are_independent():
    ticks = [{"timestamp": 0, "k": "A", "bid_price": 9.0, "ask_price": 11.0},
             {"timestamp": 1, "k": "B", "bid_price": 1.0, "ask_price": 2.0}]
    out = drive("bars", "1s", [ticks], key="k")
    assert [(b["k"], b["close"]) for b in out.records] == [("A", 10.0), ("B", 1.5)]


def test_bars_drop_late_ticks_and_dead_letter_unpriced_ones():
    ticks = priced((M + 1, 5), (1, 7)) + [{"timestamp": M + 2, "k": "A", "p": None}]
    out = drive("bars", {"period": "1m", "price": "p"}, [ticks], key="k")
    assert [(b["open"], b["ticks"]) for b in out.records] == [(5.0, 1)]
    assert out.ctx.counters.dropped == {"late": 1} and len(out.dead) == 1


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from("AB"), st.integers(0, 40 * S), st.integers(1, 20)),
                      min_size=1, max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=4))
def test_bars_match_brute_force_whatever_the_batches(steps, cuts):
    records, now = [], 0
    for key, gap, price in steps:
        now += gap
        records.append({"timestamp": now, "k": key, "p": price})
    bounds = [0, *sorted(cuts), len(records)]
    out = drive("bars", {"period": "1m", "price": "p"}, [records[a:b] for a, b in zip(bounds, bounds[1:])],
                key="k")
    expected = {}
    for r in records:
        expected.setdefault((r["k"], r["timestamp"] // M), []).append(float(r["p"]))
    got = {(b["k"], b["bar_start"] // M): (b["open"], b["high"], b["low"], b["close"], b["ticks"])
           for b in out.records}
    assert got == {k: (p[0], max(p), min(p), p[-1], len(p)) for k, p in expected.items()}
    assert len(out.records) == len(expected)


def bars_of(highs, lows=None, key="A"):
    lows = lows or [h - 1 for h in highs]
    return [{"timestamp": i, "k": key, "bar_start": i, "high": h, "low": lo}
            for i, (h, lo) in enumerate(zip(highs, lows))]


def test_swings_worked_example_n1_confirmed_one_bar_later():
    out = drive("swings", {"n": 1}, [bars_of([10, 12, 11, 13, 9, 10])], key="k")
    assert out.records == [
        {"k": "A", "timestamp": 2, "kind": "high", "price": 12.0, "bar_start": 1},
        {"k": "A", "timestamp": 3, "kind": "low", "price": 10.0, "bar_start": 2},
        {"k": "A", "timestamp": 4, "kind": "high", "price": 13.0, "bar_start": 3},
        {"k": "A", "timestamp": 5, "kind": "low", "price": 8.0, "bar_start": 4}]


def test_swings_equal_highs_are_no_swing_and_an_outside_bar_is_both():
    assert drive("swings", {"n": 1}, [bars_of([10, 12, 12, 10])], key="k").records == []
    outside = bars_of([10, 15, 11], lows=[8, 5, 9])
    assert [(s["kind"], s["price"]) for s in drive("swings", 1, [outside], key="k").records] == [
        ("high", 15.0), ("low", 5.0)]


def test_swings_n2_needs_two_bars_each_side_and_unconfirmed_swings_are_not_flushed():
    out = drive("swings", {"n": 2}, [bars_of([1, 2, 5, 3, 2, 9, 4])], key="k")
    assert [(s["timestamp"], s["price"]) for s in out.records if s["kind"] == "high"] == [(4, 5.0)]


@settings(max_examples=40, deadline=None)
@given(highs=st.lists(st.integers(0, 6), max_size=25), n=st.integers(1, 3),
       cut=st.integers(0, 25))
def test_swing_highs_match_brute_force(highs, n, cut):
    bars = bars_of(highs, lows=[0] * len(highs))
    out = drive("swings", {"n": n}, [bars[:cut], bars[cut:]], key="k")
    expected = [(i + n, float(h)) for i, h in enumerate(highs)
                if n <= i < len(highs) - n
                and all(h > highs[j] for j in range(i - n, i + n + 1) if j != i)]
    assert [(s["timestamp"], s["price"]) for s in out.records if s["kind"] == "high"] == expected


def swings_of(*points, key="A"):
    return [{"timestamp": t, "k": key, "kind": kind, "price": p} for t, kind, p in points]


def test_levels_worked_example_merge_within_bps_and_mean_price():
    out = drive("levels", {"tolerance_bps": 3}, [swings_of((1, "high", 100.0), (2, "low", 99.0),
                                                           (3, "high", 100.02))], key="k")
    assert [(r["change"], r["level"], r["touches"], r["highs"], r["lows"]) for r in out.records] == [
        ("new", 0, 1, 1, 0), ("new", 1, 1, 0, 1), ("touch", 0, 2, 2, 0)]
    assert out.records[-1]["price"] == pytest.approx(100.01)
    assert (out.records[-1]["first_touch"], out.records[-1]["last_touch"]) == (1, 3)


def test_levels_absolute_tolerance_nearest_level_and_eviction():
    swings = swings_of((1, "low", 10.0), (2, "low", 11.0), (3, "high", 10.6), (4, "high", 20.0))
    out = drive("levels", {"tolerance": 0.5, "max_levels": 2}, [swings], key="k")
    # 10.6 is within 0.5 of 11 (0.4 away) only; 20 starts level 2 and evicts level 0 (stalest)
    assert [(r["change"], r["level"]) for r in out.records] == [
        ("new", 0), ("new", 1), ("touch", 1), ("new", 2), ("evicted", 0)]


def test_levels_reject_two_tolerances_and_dead_letter_a_bad_kind():
    with pytest.raises(ValidationError):
        params("levels", {"tolerance": 1, "tolerance_bps": 2})
    out = drive("levels", {}, [swings_of((1, "sideways", 5.0), (2, "high", 5.0))], key="k")
    assert len(out.dead) == 1 and [r["level"] for r in out.records] == [0]


def test_floor_pivots_worked_example():
    assert floor_pivots(110, 100, 108) == {"pp": 106, "r1": 112, "s1": 102, "r2": 116, "s2": 96,
                                           "r3": 122, "s3": 92}


def test_pivots_at_session_roll_from_the_previous_session_and_at_end_of_stream():
    day1 = priced((1, 105), (2, 110), (3, 100), (4, 108))
    out = drive("pivots", {"price": "p"}, [day1, priced((D + 5, 107))], key="k")
    first, last = out.batches
    assert first == [{"k": "A", "timestamp": D, "session_start": D, "session_end": 2 * D,
                      "high": 110.0, "low": 100.0, "close": 108.0,
                      **floor_pivots(110.0, 100.0, 108.0)}]
    assert [(p["session_start"], p["pp"]) for p in last] == [(2 * D, 107.0)]


def test_pivots_skip_sessions_without_ticks_and_take_the_session_param():
    out = drive("pivots", {"price": "p"}, [priced((1, 10), (4 * D, 20))], key="k")  # 3-day gap
    assert [(p["session_start"], p["close"]) for p in out.records] == [(4 * D, 10.0), (5 * D, 20.0)]
    hourly = drive("pivots", {"session": "1h", "price": "p"}, [priced((1, 10), (3_600 * S, 12))],
                   key="k")
    assert [p["session_start"] for p in hourly.records] == [3_600 * S, 7_200 * S]
