"""throttle_first and distinct_until_changed: letting through some records of each key."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from test_operators_harness import drive

MS = 1_000_000


def test_throttle_first_emits_then_ignores_the_key_for_the_duration():
    times = [0, 400, 999, 1000, 1500, 2100]
    out = drive("throttle_first", "1s", [[{"timestamp": t * MS} for t in times]])
    assert [r["timestamp"] // MS for r in out.records] == [0, 1000, 2100]


def test_throttle_first_keys_are_throttled_independently():
    records = [{"timestamp": t * MS, "k": k} for t, k in ((0, "A"), (10, "B"), (20, "A"), (30, "B"),
                                                           (600, "A"))]
    out = drive("throttle_first", "500ms", [records[:2], records[2:]], key="k")
    assert [(r["k"], r["timestamp"] // MS) for r in out.records] == [("A", 0), ("B", 10), ("A", 600)]


@given(st.lists(st.integers(0, 50), max_size=30), st.integers(1, 20))
def test_throttle_first_matches_a_reference(gaps, period):
    times, now = [], 0
    for gap in gaps:
        now += gap
        times.append(now)
    expected, last = [], None
    for t in times:
        if last is None or t >= last + period:
            expected.append(t)
            last = t
    out = drive("throttle_first", f"{period}ns", [[{"timestamp": t} for t in times]])
    assert [r["timestamp"] for r in out.records] == expected


def test_throttle_first_record_without_timestamp_is_dead_lettered():
    out = drive("throttle_first", "1s", [[{"x": 1}, {"timestamp": 0}]])
    assert [raw for _, raw in out.dead] == [{"x": 1}] and out.records == [{"timestamp": 0}]


def test_distinct_until_changed_compares_the_listed_fields():
    prices = [(1, 2), (1, 2), (1, 3), (1, 2), (1, 2)]
    records = [{"timestamp": i, "bid_price": b, "ask_price": a} for i, (b, a) in enumerate(prices)]
    out = drive("distinct_until_changed", ["bid_price", "ask_price"], [records[:2], records[2:]])
    assert [r["timestamp"] for r in out.records] == [0, 2, 3]


def test_distinct_until_changed_by_default_ignores_only_the_timestamp():
    records = [{"timestamp": 0, "p": 1}, {"timestamp": 1, "p": 1}, {"timestamp": 2, "p": 1, "q": 0},
               {"timestamp": 3, "p": 2, "q": 0}]
    out = drive("distinct_until_changed", {}, [records])
    assert [r["timestamp"] for r in out.records] == [0, 2, 3]


def test_distinct_until_changed_per_key():
    records = [{"k": "A", "p": 1}, {"k": "B", "p": 1}, {"k": "A", "p": 1}, {"k": "B", "p": 2}]
    out = drive("distinct_until_changed", ["p"], [records], key="k")
    assert out.records == [records[0], records[1], records[3]]


@given(st.lists(st.integers(0, 3), max_size=30))
def test_distinct_until_changed_matches_groupby(values):
    import itertools
    out = drive("distinct_until_changed", ["v"], [[{"v": v} for v in values]])
    assert [r["v"] for r in out.records] == [v for v, _ in itertools.groupby(values)]


def test_distinct_until_changed_missing_field_dead_letters_the_record():
    out = drive("distinct_until_changed", ["p"], [[{"p": 1}, {"q": 1}, {"p": 2}]])
    assert out.records == [{"p": 1}, {"p": 2}] and [raw for _, raw in out.dead] == [{"q": 1}]
