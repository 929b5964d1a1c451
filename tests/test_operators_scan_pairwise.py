"""scan and pairwise: state carried from one record of a key to the next."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from test_operators_harness import drive, params


def test_scan_running_total_per_key():
    records = [{"k": "A", "v": 1}, {"k": "B", "v": 10}, {"k": "A", "v": 2}, {"k": "A", "v": 3}]
    out = drive("scan", {"into": "total", "expr": "acc + v"}, [records], key="k")
    assert [r["total"] for r in out.records] == [1, 10, 3, 6]
    assert "total" not in records[0]


def test_scan_starts_from_initial():
    out = drive("scan", {"into": "m", "expr": "max(acc, v)", "initial": 5}, [[{"v": 1}, {"v": 7}]])
    assert [r["m"] for r in out.records] == [5, 7]


def test_scan_expression_error_dead_letters_record_and_keeps_accumulator():
    out = drive("scan", {"into": "t", "expr": "acc + v"}, [[{"v": 1}, {"w": 1}, {"v": 2}]])
    assert [r["t"] for r in out.records] == [1, 3]
    assert [raw for _, raw in out.dead] == [{"w": 1}]


@given(st.lists(st.tuples(st.sampled_from("AB"), st.integers(-100, 100)), max_size=40))
def test_scan_sum_equals_prefix_sums_per_key(pairs):
    records = [{"k": k, "v": v} for k, v in pairs]
    out = drive("scan", {"into": "s", "expr": "acc + v"}, [records], key="k")
    totals: dict[str, int] = {}
    expected = []
    for k, v in pairs:
        totals[k] = totals.get(k, 0) + v
        expected.append(totals[k])
    assert [r["s"] for r in out.records] == expected


def test_pairwise_first_record_of_each_key_emits_nothing():
    records = [{"k": "A", "v": 1}, {"k": "B", "v": 2}, {"k": "A", "v": 3}, {"k": "B", "v": 4}]
    out = drive("pairwise", {}, [records[:2], records[2:]], key="k")
    assert out.records == [{"k": "A", "v": 3, "prev": {"k": "A", "v": 1}},
                           {"k": "B", "v": 4, "prev": {"k": "B", "v": 2}}]


def test_pairwise_previous_is_readable_as_prev_dot_field_downstream():
    from cep.expressions import compile_expression
    out = drive("pairwise", {}, [[{"mid": 1}, {"mid": 2}, {"mid": 1}]])
    rising = compile_expression("mid > prev.mid")
    assert [rising(r) for r in out.records] == [True, False]


def test_pairwise_field_name_is_configurable():
    out = drive("pairwise", {"into": "before"}, [[{"v": 1}, {"v": 2}]])
    assert out.records == [{"v": 2, "before": {"v": 1}}]
    assert params("pairwise", {"into": "before"}).output_fields(frozenset({"v"})) == {"v", "before"}
