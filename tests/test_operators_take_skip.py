"""take and skip: the head or the rest of the whole stream."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from test_operators_harness import drive

batches_of_ints = st.lists(st.lists(st.integers(), max_size=6), max_size=8)


def as_records(batches: list[list[int]]) -> list[list[dict]]:
    return [[{"v": v} for v in batch] for batch in batches]


@given(batches=batches_of_ints, n=st.integers(0, 30))
def test_take_equals_list_slicing(batches, n):
    flat = [v for batch in batches for v in batch]
    out = drive("take", n, as_records(batches))
    assert [r["v"] for r in out.records] == flat[:n]


@given(batches=batches_of_ints, n=st.integers(0, 30))
def test_skip_equals_list_slicing(batches, n):
    flat = [v for batch in batches for v in batch]
    out = drive("skip", n, as_records(batches))
    assert [r["v"] for r in out.records] == flat[n:]


def test_take_counts_across_keys_and_still_completes_with_upstream():
    records = [{"k": "AB"[i % 2], "v": i} for i in range(6)]
    out = drive("take", 3, [records[:2], records[2:]], key="k")
    assert [r["v"] for r in out.records] == [0, 1, 2]
    assert out.completed and len(out.batches) == 2


def test_take_zero_emits_nothing():
    out = drive("take", 0, [[{"v": 1}]])
    assert out.batches == [] and out.completed
