"""The expression language: what it computes and what it refuses (its cost is in bench/)."""
from __future__ import annotations


import pytest
from hypothesis import given
from hypothesis import strategies as st

from cep.errors import ExpressionError, Location
from cep.expressions import MAX_LENGTH, compile_expression

QUOTE = {"timestamp": 1, "instrument": "BTC", "bid_price": 100.0, "ask_price": 102.0,
         "bid_volume": None}
FIELDS = tuple(QUOTE) + ("mid",)


# -- what it computes --------------------------------------------------------------------------
@pytest.mark.parametrize("source, expected", [
    ("(bid_price + ask_price) / 2", 101.0),
    ("ask_price > bid_price and instrument == 'BTC'", True),
    ("bid_volume is None", True),
    ("instrument in ('BTC', 'ETH')", True),
    ("instrument not in ['ETH']", True),
    ("100 <= bid_price < ask_price", True),
    ("'wide' if ask_price - bid_price > 1 else 'tight'", "wide"),
    ("round(ask_price / 3, 2)", 34.0),
    ("max(bid_price, ask_price) - min(bid_price, ask_price)", 2.0),
    ("abs(bid_price - ask_price)", 2.0),
    ("math.sqrt(ask_price - bid_price) ** 2", pytest.approx(2.0)),
    ("math.pi > 3 and math.inf > ask_price", True),
    ("instrument[:2]", "BT"),
    ("int(bid_price) // 3 % 7", 5),
    ("-bid_price + +ask_price", 2.0),
    ("not bid_volume", True),
    ("float('1.5') + len(instrument) + bool(1) + int(str(2))", 7.5),
    ("2 ** 10", 1024),
])
def test_expression_computes_its_value(source, expected):
    assert compile_expression(source, fields=FIELDS)(QUOTE) == expected


def test_bound_record_fields_are_read_as_attributes():
    expr = compile_expression("prev is None or mid > prev.mid", fields=FIELDS, bound=["prev"])
    assert expr({"mid": 2.0}, None) is True
    assert expr({"mid": 2.0}, {"mid": 3.0}) is False


def test_attribute_on_an_indexed_bound_list_of_records():
    expr = compile_expression("up[-1].ask_price - up[0].ask_price", bound=["up"])
    assert expr({}, [{"ask_price": 1.0}, {"ask_price": 4.0}]) == 3.0


def test_attribute_on_a_field_holding_a_record():
    expr = compile_expression("mid > prev.mid", fields=["mid", "prev"])
    assert expr({"mid": 2, "prev": {"mid": 1}}) is True


def test_aggregates_over_a_list_of_records_by_field_name():
    events = [{"mid": 1.0}, {"mid": 2.0}, {"mid": 6.0}]
    expr = compile_expression(
        "(avg(events, 'mid'), sum(events, 'mid'), min(events, 'mid'), max(events, 'mid'), len(events))",
        bound=["events"])
    assert expr({}, events) == (3.0, 9.0, 1.0, 6.0, 3)


def test_aggregates_keep_their_plain_meaning_on_numbers():
    expr = compile_expression("(avg([1, 2]), sum([1, 2]), min(3, 4), max('a', 'b'))")
    assert expr({}) == (1.5, 3, 3, "b")


def test_avg_of_no_events_raises_for_the_caller_to_dead_letter():
    with pytest.raises(ValueError):
        compile_expression("avg(events, 'mid')", bound=["events"])({}, [])


def test_reports_the_fields_it_reads_and_its_source():
    expr = compile_expression("prev.mid < (bid_price + ask_price) / 2", bound=["prev"])
    assert expr.fields == {"bid_price", "ask_price"}
    assert expr.source == "prev.mid < (bid_price + ask_price) / 2"


def test_missing_field_raises_key_error_at_run_time():
    with pytest.raises(KeyError):
        compile_expression("mid > 1")({"bid_price": 1.0})


def test_attribute_of_absent_prev_raises_at_run_time():
    with pytest.raises(TypeError):
        compile_expression("prev.mid", bound=["prev"])({}, None)


def test_huge_integer_power_is_refused_at_run_time_instead_of_hanging():
    with pytest.raises(ValueError, match="exponent"):
        compile_expression("2 ** n")({"n": 10 ** 10})


def test_record_is_never_modified():
    record = dict(QUOTE)
    compile_expression("bid_price * 2")(record)
    assert record == QUOTE


@given(bid=st.floats(-1e9, 1e9), ask=st.floats(-1e9, 1e9))
def test_compiled_expression_agrees_with_python(bid, ask):
    expr = compile_expression("(bid_price + ask_price) / 2 if ask_price >= bid_price else -1")
    assert expr({"bid_price": bid, "ask_price": ask}) == ((bid + ask) / 2 if ask >= bid else -1)


# -- what it refuses ---------------------------------------------------------------------------
@pytest.mark.parametrize("source, says", [
    ("().__class__", "'__class__' is not allowed"),
    ("bid_price.__class__.__mro__", "'__class__' is not allowed"),
    ("__import__('os').system('true')", "'__import__' is not allowed"),
    ("__builtins__", "'__builtins__' is not allowed"),
    ("import os", "imports are not allowed"),
    ("from os import path", "imports are not allowed"),
    ("lambda: 1", "lambda is not allowed"),
    ("[x for x in events]", "list comprehension is not allowed"),
    ("{x: 1 for x in events}", "dict comprehension is not allowed"),
    ("sum(x for x in events)", "generator expression is not allowed"),
    ("(y := 1)", "assignment expression"),
    ("f'{bid_price}'", "f-string is not allowed"),
    ("max(*events)", "starred expression"),
    ("round(**options)", "keyword arguments are not allowed"),
    ("open('/etc/passwd')", "calling 'open' is not allowed"),
    ("eval('1')", "calling 'eval' is not allowed"),
    ("getattr(bid_price, 'real')", "calling 'getattr' is not allowed"),
    ("bid_price()", "calling 'bid_price' is not allowed"),
    ("instrument.upper()", "calling 'instrument.upper' is not allowed"),
    ("(1).real", "can only be read from a record"),
    ("'abc'.join", "can only be read from a record"),
    ("math.__loader__", "'__loader__' is not allowed"),
    ("math.sqrtt(4)", "did you mean math.sqrt"),
    ("math.pi(1)", "math.pi is a constant"),
    ("math", "math can only be used as math.<name>"),
    ("{1: 2}", "dict literal is not allowed"),
    ("bid_price << 2", "the << operator is not allowed"),
    ("bid_price >", "invalid syntax"),
    ("", "empty"),
    ("b'bytes'", "literal b'bytes' is not allowed"),
])
def test_expression_outside_the_whitelist_is_a_clean_error(source, says):
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, bound=["events"])
    assert says in str(caught.value)


def test_unknown_name_suggests_the_closest_field():
    where = Location("pipelines/p.yaml", 12, 17)
    with pytest.raises(ExpressionError) as caught:
        compile_expression("bid_pric > 0", fields=FIELDS, location=where)
    problem = caught.value.problems[0]
    assert "unknown name 'bid_pric'" in problem.message
    assert problem.hint == "did you mean 'bid_price'?"
    assert problem.location == where
    assert str(caught.value).startswith("pipelines/p.yaml:12:17: ")


def test_unknown_names_are_fields_when_no_schema_is_given():
    assert compile_expression("anything + 1").fields == {"anything"}


def test_bound_names_and_functions_are_not_unknown():
    expr = compile_expression("acc + abs(bid_price)", fields=FIELDS, bound=["acc"])
    assert expr(QUOTE, 1.0) == 101.0


def test_ten_kilobytes_of_parentheses_is_a_clean_error():
    with pytest.raises(ExpressionError, match=f"the limit is {MAX_LENGTH}"):
        compile_expression("(" * 5000 + "1" + ")" * 5000)


@pytest.mark.parametrize("source", [
    "-" * 1500 + "1",
    "not " * 400 + "bid_price",
    "1" + "+1" * 900,
    "x" + "[0]" * 500,
    "(" * 250 + "1" + ")" * 250,
])
def test_deep_nesting_within_the_length_cap_is_a_clean_error(source):
    assert len(source) <= MAX_LENGTH
    with pytest.raises(ExpressionError):
        compile_expression(source)


def test_non_string_expression_is_a_clean_error():
    with pytest.raises(ExpressionError, match="expected an expression string"):
        compile_expression(42)  # type: ignore[arg-type]
