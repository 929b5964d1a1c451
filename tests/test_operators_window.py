"""window and buffer_with_time: each key's records grouped by event-time windows."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cep.errors import ExpressionError
from cep.expressions import compile_expression
from test_operators_harness import drive, params

S = 1_000_000_000


def reference_windows(records: list[dict], size: int, slide: int) -> dict[str, list[tuple]]:
    """Brute force: every window start that is a multiple of `slide`, and what falls inside."""
    by_key: dict[str, list[tuple]] = {}
    for key in dict.fromkeys(r["k"] for r in records):
        times = [r["timestamp"] for r in records if r["k"] == key]
        first = (min(times) - size) // slide * slide
        windows = []
        for start in range(first, max(times) + 1, slide):
            inside = [t for t in times if start <= t < start + size]
            if inside:
                windows.append((start, start + size, inside))
        by_key[key] = windows
    return by_key


ordered_ticks = st.lists(st.tuples(st.sampled_from("AB"), st.integers(0, 3 * S // 10)),
                         min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(steps=ordered_ticks, size_ds=st.integers(1, 12), slide_ds=st.integers(1, 12),
       cut=st.integers(0, 30))
def test_window_over_event_time_matches_brute_force(steps, size_ds, slide_ds, cut):
    size, slide = size_ds * S // 10, min(slide_ds, size_ds) * S // 10
    records, now = [], 0
    for key, gap in steps:  # per key (and overall) in event-time order
        now += gap
        records.append({"timestamp": now, "k": key})
    out = drive("window", {"size": size_ds / 10, "slide": min(slide_ds, size_ds) / 10},
                [records[:cut], records[cut:]], key="k")
    got: dict[str, list[tuple]] = {}
    for w in out.records:
        got.setdefault(w["k"], []).append(
            (w["window_start"], w["window_end"], [e["timestamp"] for e in w["events"]]))
        assert w["timestamp"] == w["window_end"] - 1 and w["count"] == len(w["events"])
    assert got == reference_windows(records, size, slide)
    assert not out.dead and not out.ctx.counters.dropped


def test_window_is_emitted_when_its_key_passes_its_end():
    records = [{"timestamp": t, "k": "A"} for t in (0, S // 2, S, 2 * S + 1)]
    out = drive("window", "1s", [records[:2], records[2:3], records[3:]], key="k")
    assert [[e["timestamp"] for e in w["events"]] for w in out.batches[0]] == [[0, S // 2]]
    assert [[w["window_start"] for w in b] for b in out.batches] == [[0], [S], [2 * S]]


def test_quiet_key_window_waits_for_its_own_next_record_or_end_of_stream():
    records = [{"timestamp": 0, "k": "A"}, {"timestamp": 5 * S, "k": "B"}]
    out = drive("window", "1s", [records], key="k")
    assert len(out.batches) == 1  # both only at end of stream: B's time does not close A's window
    assert [w["k"] for w in out.records] == ["A", "B"]


def test_window_aggregate_replaces_events_with_named_values():
    records = [{"timestamp": t * S // 10, "k": "A", "mid": m} for t, m in ((1, 1.0), (2, 3.0), (12, 5.0))]
    out = drive("window", {"size": "1s", "aggregate": {"mid": "avg(events, 'mid')", "n": "len(events)",
                                                       "last": "events[-1].mid", "per": "mid / count"}},
                [records], key="k")
    assert out.records == [
        {"k": "A", "timestamp": S - 1, "window_start": 0, "window_end": S, "count": 2, "mid": 2.0,
         "n": 2, "last": 3.0, "per": 1.0},
        {"k": "A", "timestamp": 2 * S - 1, "window_start": S, "window_end": 2 * S, "count": 1,
         "mid": 5.0, "n": 1, "last": 5.0, "per": 5.0},
    ]
    assert params("window", {"size": 1, "aggregate": {"mid": "1"}}).output_fields(frozenset(), "k") == \
        {"k", "timestamp", "window_start", "window_end", "count", "mid"}


def test_window_aggregate_error_dead_letters_that_window_only():
    records = [{"timestamp": 0, "v": 1}, {"timestamp": S, "w": 1}, {"timestamp": 2 * S, "v": 2}]
    out = drive("window", {"size": "1s", "aggregate": {"total": "sum(events, 'v')"}}, [records])
    assert [w["total"] for w in out.records] == [1, 2]
    assert len(out.dead) == 1 and out.dead[0][0].startswith("aggregate total: KeyError")


def test_late_record_is_dropped_and_counted():
    records = [{"timestamp": 0}, {"timestamp": 3 * S}, {"timestamp": S}, {"timestamp": 3 * S + 1}]
    out = drive("window", "1s", [records])
    assert [w["count"] for w in out.records] == [1, 2]
    assert out.ctx.counters.dropped == {"late": 1}


def test_slightly_out_of_order_record_still_lands_in_its_open_window():
    records = [{"timestamp": 5}, {"timestamp": 3}, {"timestamp": 2 * S}]
    out = drive("window", "1s", [records])
    assert [e["timestamp"] for e in out.records[0]["events"]] == [5, 3]


def test_record_without_timestamp_is_dead_lettered():
    out = drive("window", "1s", [[{"timestamp": 1}, {"x": 1}, {"timestamp": "soon"}]])
    assert [raw for _, raw in out.dead] == [{"x": 1}, {"timestamp": "soon"}]
    assert out.records[0]["count"] == 1


def test_window_slide_longer_than_size_is_rejected():
    with pytest.raises(ValidationError, match="slide"):
        params("window", {"size": "1s", "slide": "2s"})
    with pytest.raises(ValidationError, match="duration"):
        params("window", {"size": "soon"})
    with pytest.raises(ValidationError, match="longer than zero"):
        params("window", {"size": 0})


def test_buffer_with_time_is_a_tumbling_window():
    records = [{"timestamp": t * S // 10, "k": "AB"[t % 2]} for t in range(0, 40, 3)]
    assert drive("buffer_with_time", "1s", [records], key="k").records == \
        drive("window", {"size": "1s"}, [records], key="k").records


def test_buffer_with_time_flushes_the_last_span_at_end_of_stream():
    out = drive("buffer_with_time", "500ms", [[{"timestamp": 1}, {"timestamp": 2}]])
    assert out.records == [{"timestamp": S // 2 - 1, "window_start": 0, "window_end": S // 2,
                            "count": 2, "events": [{"timestamp": 1}, {"timestamp": 2}]}]


def test_window_aggregates_see_the_window_record_and_earlier_aggregates():
    step = params("window", {"size": "1s", "aggregate": {"n": "len(events)", "per": "n / count"}})
    for use in step.expressions(frozenset({"mid", "k"}), key="k"):
        compile_expression(use.source, fields=use.fields, bound=use.bound)
    with pytest.raises(ExpressionError, match="unknown name 'mid'"):
        bad = params("window", {"size": "1s", "aggregate": {"x": "mid"}})
        for use in bad.expressions(frozenset({"mid"})):
            compile_expression(use.source, fields=use.fields, bound=use.bound)
