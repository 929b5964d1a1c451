"""buffer_with_count: grouping each key's records by count."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from test_operators_harness import drive, params


def numbered(n: int, key: str = "A") -> list[dict]:
    return [{"timestamp": i, "k": key, "i": i} for i in range(n)]


def reference_buffers(items: list, count: int, skip: int) -> list[list]:
    """RxPY's buffer_with_count: a buffer starts every `skip` items and holds `count` of them."""
    return [items[start:start + count] for start in range(0, len(items), skip)]


@given(n=st.integers(0, 40), count=st.integers(1, 7))
def test_buffer_with_count_equals_chunking(n, count):
    out = drive("buffer_with_count", count, [numbered(n)])
    assert [[e["i"] for e in r["events"]] for r in out.records] == \
        [list(range(n))[i:i + count] for i in range(0, n, count)]


@given(n=st.integers(0, 30), count=st.integers(1, 6), skip=st.integers(1, 8))
def test_buffer_with_count_and_skip_matches_the_reference(n, count, skip):
    out = drive("buffer_with_count", {"count": count, "skip": skip}, [numbered(n)])
    emitted = [[e["i"] for e in r["events"]] for r in out.records]
    expected = reference_buffers(list(range(n)), count, skip)
    assert sorted(emitted) == sorted(expected)  # full buffers first, partial ones at end of stream


def test_buffer_record_carries_key_last_timestamp_count_and_events():
    records = numbered(3, "A") + [{"timestamp": 9, "k": "B", "i": 9}]
    out = drive("buffer_with_count", 2, [records], key="k")
    assert out.records == [
        {"k": "A", "timestamp": 1, "count": 2, "events": records[:2]},
        {"k": "A", "timestamp": 2, "count": 1, "events": records[2:3]},
        {"k": "B", "timestamp": 9, "count": 1, "events": records[3:]},
    ]
    assert params("buffer_with_count", 2).output_fields(frozenset({"k", "i"}), key="k") == \
        {"k", "timestamp", "count", "events"}


def test_buffer_with_count_keys_fill_independently():
    records = [{"timestamp": i, "k": "AB"[i % 2]} for i in range(6)]
    out = drive("buffer_with_count", 3, [records[:4], records[4:]], key="k")
    assert [(r["k"], [e["timestamp"] for e in r["events"]]) for r in out.records] == \
        [("A", [0, 2, 4]), ("B", [1, 3, 5])]


def test_buffer_with_count_partial_buffer_is_flushed_at_end_of_stream():
    out = drive("buffer_with_count", 10, [numbered(4)])
    assert len(out.batches) == 1 and out.records[0]["count"] == 4 and out.completed
