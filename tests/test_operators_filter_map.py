"""filter, map and key_by: the stateless steps (map's `prev` aside)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from cep.expressions import compile_expression
from cep.plugins.markers import MARK
from test_operators_harness import REGISTRY, drive, params, ticks


def test_filter_keeps_records_where_expression_is_true():
    records = [{"bid_price": 1.0, "ask_price": 2.0}, {"bid_price": 2.0, "ask_price": 2.0},
               {"bid_price": 1.0, "ask_price": 3.0}]
    out = drive("filter", "ask_price > bid_price", [records])
    assert out.records == [records[0], records[2]]
    assert out.records[0] is records[0]


def test_filter_expression_error_dead_letters_record_and_stream_goes_on():
    records = [{"x": 1}, {"y": 1}, {"x": 0}, {"x": 2}]
    out = drive("filter", "10 / x > 1", [records])
    assert out.records == [{"x": 1}, {"x": 2}]
    assert [raw for _, raw in out.dead] == [{"y": 1}, {"x": 0}]
    assert out.dead[0][0].startswith("KeyError") and out.dead[1][0].startswith("ZeroDivisionError")
    assert out.ctx.counters.dead_lettered == 2 and out.completed


def test_filter_batch_with_nothing_kept_emits_no_batch():
    out = drive("filter", "False", [ticks(3), ticks(2)])
    assert out.batches == [] and out.completed


def test_filter_syntax_error_is_rejected_when_the_pipeline_loads():
    with pytest.raises(ValidationError, match="invalid syntax"):
        params("filter", "ask_price >")
    with pytest.raises(ValidationError, match="'__class__' is not allowed"):
        params("filter", "ask_price.__class__")


def test_map_adds_fields_in_a_new_record_without_touching_the_input():
    record = {"bid_price": 1.0, "ask_price": 3.0}
    out = drive("map", {"mid": "(bid_price + ask_price) / 2"}, [[record]])
    assert out.records == [{"bid_price": 1.0, "ask_price": 3.0, "mid": 2.0}]
    assert record == {"bid_price": 1.0, "ask_price": 3.0}


def test_map_later_fields_see_earlier_ones():
    out = drive("map", {"mid": "(bid_price + ask_price) / 2", "bps": "(ask_price - bid_price) / mid * 1e4"},
                [[{"bid_price": 99.0, "ask_price": 101.0}]])
    assert out.records[0]["bps"] == pytest.approx(200.0)


def test_map_accepts_the_long_form_with_fields():
    assert params("map", {"fields": {"mid": "1"}}) == params("map", {"mid": "1"})


def test_map_prev_is_the_previous_emitted_record_of_the_same_key():
    records = [{"instrument": "A", "p": 1}, {"instrument": "B", "p": 10}, {"instrument": "A", "p": 3},
               {"instrument": "B", "p": 5}]
    out = drive("map", {"twice": "p * 2", "rise": "None if prev is None else twice - prev.twice"},
                [records[:1], records[1:]], key="instrument")
    assert [r["rise"] for r in out.records] == [None, None, 4, -10]


def test_map_prev_is_stream_wide_without_a_key():
    out = drive("map", {"d": "0 if prev is None else p - prev.p"}, [[{"p": 1}, {"p": 4}, {"p": 6}]])
    assert [r["d"] for r in out.records] == [0, 3, 2]


def test_map_prev_attribute_at_first_record_dead_letters_that_record_only():
    out = drive("map", {"d": "p - prev.p"}, [[{"p": 1}, {"p": 4}, {"p": 6}]])
    assert [r["d"] for r in out.records] == [3, 2]
    assert [raw for _, raw in out.dead] == [{"p": 1}]


def test_map_prev_after_a_failed_record_lacks_only_the_failed_fields():
    out = drive("map", {"q": "p * 2", "r": "10 / p", "s": "prev.q"},
                [[{"p": 1}, {"p": 0}, {"p": 5}]])
    assert [raw for _, raw in out.dead] == [{"p": 1}, {"p": 0}]  # no prev; division by zero
    assert out.records == [{"p": 5, "q": 10, "r": 2.0, "s": 0}]


def test_key_by_passes_records_unchanged_and_declares_that_it_sets_the_key():
    records = ticks(4)
    out = drive("key_by", "instrument", [records])
    assert out.records == records
    component = REGISTRY.get("operator", "key_by")
    assert component.sets_key and component.shorthand == "field"
    assert getattr(component.factory, MARK) is component


def test_params_list_their_expressions_with_what_is_in_scope_for_the_compiler():
    fields = frozenset({"a", "b"})
    assert list(params("filter", "a > b").expressions(fields)) == [("expr", "a > b", (), fields)]
    uses = list(params("map", {"m": "a + 1", "n": "m * 2"}).expressions(fields))
    assert uses == [("fields.m", "a + 1", ("prev",), fields),
                    ("fields.n", "m * 2", ("prev",), fields | {"m"})]
    for use in uses:
        compile_expression(use.source, fields=use.fields, bound=use.bound)
    assert params("map", {"m": "1"}).output_fields(fields) == {"a", "b", "m"}
