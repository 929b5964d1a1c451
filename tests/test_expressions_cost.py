"""Expressions are bounded in cost, not only in syntax.

A formula whose cost grows with a value (factorial, comb, perm, integer powers, sequence
repetition, printf widths, rounding to huge negative digits) is refused when the pipeline is
validated if its operands are constants, and otherwise refused at run time before any work is
done: the record is dead-lettered with the reason, within a fraction of a second, and the run goes
on. Every run-time case is evaluated in a forked child with a deadline, so a regression fails the
test instead of hanging the suite.
"""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import time

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from cep.errors import ExpressionError
from cep.expressions import CostLimitError, compile_expression
from cep.testing import run_inline  # imported before the forks, which then start at once

DEADLINE = 10.0  # seconds for a forked child that must finish in well under one
CONSTANT = [
    "math.factorial(100000000)",
    "math.factorial(10**7)",
    "math.comb(10**7, 5*10**6)",
    "math.perm(10**7, 5*10**6)",
    "'a' * 10**9",
    "'a' * 10**10",
    "[0] * 10**9",
    "2 ** 10 ** 10",
    "((7**1024)**1024)**1024",
    "round(5, -10**9)",
    "'%0999999999d' % 1",
    "math.prod([10**9, 'a'])",
    "sum([[0] * 1000] * 1000, [])",
]
FIELD = [  # each reads the field bid_price (a float) or n (an int) of the record
    "math.factorial(int(bid_price) * 1000000)",
    "math.factorial(n)",
    "math.comb(n, n // 2)",
    "math.perm(n, n // 2)",
    "'a' * n",
    "str(bid_price) * 1000000000",
    "((int(bid_price)**1024)**1024)**1024",
    "n ** n",
    "round(n, -n)",
    "'%0*d' % (n, 1)",
    "label * n",
    "math.prod([n, label])",
    "int(digits) * int(digits) * int(digits) * int(digits) * int(digits) * int(digits)",
    "sum([[n]] * 1000, [])",
]
RECORD = {"timestamp": 1, "instrument": "X", "bid_price": 101.5, "n": 10**8, "label": "ab",
          "digits": "1" * 4000}


@pytest.mark.parametrize("source", CONSTANT)
def test_a_costly_constant_is_refused_when_compiled(source):
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    assert time.perf_counter() - started < 2.0
    problem = caught.value.problems[0]
    assert "limit" in problem.message
    assert problem.hint and "cost" in problem.hint


def _child(work, args, results) -> None:
    try:
        results.put(("done", work(*args)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which judges it
        results.put((type(exc).__name__, str(exc)))


def _with_deadline(work, *args) -> tuple[str, object, float]:
    """`work(*args)` in a forked child: (outcome, value or message, seconds); the test fails
    if the child is still working after DEADLINE."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child, args=(work, args, results))
    started = time.perf_counter()
    child.start()
    child.join(DEADLINE)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"{work.__name__}{args[:1]} was still running after {DEADLINE} s")
    outcome, detail = results.get(timeout=DEADLINE)
    return outcome, detail, time.perf_counter() - started


def _evaluate(source: str, record: dict) -> object:
    return compile_expression(source)(record)


@pytest.mark.parametrize("source", FIELD)
def test_a_costly_formula_over_fields_is_refused_before_it_runs(source):
    kind, detail, took = _with_deadline(_evaluate, source, RECORD)
    assert kind == CostLimitError.__name__, (kind, detail)
    assert "limit" in detail
    assert took < 5.0  # a fork and a refusal (tens of ms alone), not minutes of computing


def test_the_refusal_is_the_value_error_the_runtime_dead_letters():
    assert issubclass(CostLimitError, ValueError)


@pytest.mark.parametrize("source, record, expected", [
    ("math.factorial(n)", {"n": 20}, 2432902008176640000),
    ("math.comb(n, 3)", {"n": 10}, 120),
    ("math.perm(n)", {"n": 5}, 120),
    ("'ab' * n", {"n": 3}, "ababab"),
    ("label * 2", {"label": "x"}, "xx"),
    ("[0] * n", {"n": 4}, [0, 0, 0, 0]),
    ("n ** 1000 % 7", {"n": 3}, pow(3, 1000, 7)),
    ("round(n, -2)", {"n": 1234}, 1200),
    ("'%05.1f' % bid", {"bid": 3.14159}, "003.1"),
    ("math.prod([n, 2, 3])", {"n": 2}, 12),
    ("bid * qty", {"bid": 1.5, "qty": 4}, 6.0),
    ("int(digits) % 1000", {"digits": "123456789"}, 789),
    ("int(digits, base=2)", {"digits": "101"}, 5),
    ("sum([n, 2]) + sum(events, 'x')", {"n": 1, "events": [{"x": 2}, {"x": 3}]}, 8),
])
def test_ordinary_uses_of_the_guarded_operations_still_work(source, record, expected):
    assert compile_expression(source)(record) == expected


@settings(max_examples=200, deadline=None)
@given(a=st.one_of(st.integers(-10**5, 10**5), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=5), st.booleans()),
       b=st.one_of(st.integers(-50, 50), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=5)))
def test_a_guarded_product_equals_pythons_when_it_is_cheap(a, b):
    product = compile_expression("a * b")
    try:
        expected = a * b
    except TypeError:
        with pytest.raises(TypeError):
            product({"a": a, "b": b})
    else:
        assert product({"a": a, "b": b}) == expected


def _run_map(source: str, records: list) -> tuple[list, list]:
    pipeline = yaml.safe_dump({
        "name": "costly", "sources": {"quotes": {"type": "list"}},
        "streams": {"costly": {"from": "quotes",
                               "ops": [{"map": {"x": f"({source}) if costly else 0"}}]}},
        "sinks": {"out": {"type": "collect", "from": ["costly"]}}})
    out = run_inline(pipeline, inputs={"quotes": records})
    return [r["timestamp"] for r in out["out"]], [d.reason for d in out.dead_letters]


@pytest.mark.parametrize("source", FIELD)
def test_a_map_over_a_field_dead_letters_the_costly_record_and_keeps_the_others(source):
    """The reason reaches the dead-letter file; the records before and after (which do not
    evaluate the costly part) go through."""
    records = [{**RECORD, "timestamp": t, "costly": t == 2} for t in (1, 2, 3)]
    outcome, detail, took = _with_deadline(_run_map, source, records)
    assert outcome == "done", detail
    kept, reasons = detail
    assert kept == [1, 3]
    [reason] = reasons
    assert "limit" in reason
    assert took < 5.0  # a fork and a refusal (tens of ms alone), not minutes of computing


def _run_pattern(records: list) -> tuple[list, list]:
    pipeline = yaml.safe_dump({
        "name": "costly", "sources": {"quotes": {"type": "list"}},
        "rules": {"big": {"from": "quotes", "partition_by": "instrument",
                          "pattern": [{"name": "a", "where": "math.factorial(n) > 0"}],
                          "emit": {"type": "Record", "n": "a.n"}}},
        "sinks": {"out": {"type": "collect", "from": ["big"]}}})
    out = run_inline(pipeline, inputs={"quotes": records})
    return [r["n"] for r in out["out"]], [d.reason for d in out.dead_letters]


def test_a_pattern_condition_dead_letters_the_costly_event_and_matches_the_others():
    records = [{"timestamp": t, "instrument": "X", "n": n} for t, n in ((1, 3), (2, 10**8), (3, 4))]
    outcome, detail, took = _with_deadline(_run_pattern, records)
    assert outcome == "done", detail
    matched, reasons = detail
    assert matched == [3, 4]
    [reason] = reasons
    assert "math.factorial" in reason and "limit" in reason
    assert took < 5.0  # a fork and a refusal (tens of ms alone), not minutes of computing


def test_validate_names_the_file_line_and_key_of_a_costly_constant(tmp_path):
    pipeline = tmp_path / "costly.yaml"
    pipeline.write_text(textwrap.dedent("""\
        name: costly
        sources:
          ticks: {type: synthetic, count: 10}
        streams:
          big:
            from: ticks
            ops:
              - map: {huge: "math.factorial(10**7)"}
        sinks:
          out: {type: "null", from: big}
        """))
    done = subprocess.run([sys.executable, "-m", "cep.cli", "validate", str(pipeline)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{pipeline}:8:" in done.stderr
    assert "factorial" in done.stderr and "limit" in done.stderr and "cost" in done.stderr


# -- the static kinds that let `*` and `%` go unguarded must be sound ------------------------------
_LEAVES = st.sampled_from(["a", "b", "2", "3", "0.5", "'x'", "True", "len(b)", "float(a)",
                           "math.sqrt(4)", "math.floor(a)", "abs(a)", "[1]"])
_EXPRESSIONS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"(-{e})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} or {t[1]})")),
    max_leaves=6)
_VALUES = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False), st.text(max_size=3),
                    st.lists(st.integers(0, 3), max_size=3))


@settings(max_examples=300, deadline=None)
@given(source=_EXPRESSIONS, a=_VALUES, b=_VALUES)
def test_what_the_compiler_knows_is_a_float_or_a_number_always_is(source, a, b):
    """A `*` or `%` is left unguarded only because of these kinds: a wrong FLOAT would let a
    string repetition through unchecked."""
    import ast
    import math
    from cep.expression_costs import FLOAT, NUMBER, kind_of
    expression = compile_expression(source)
    kind = kind_of(expression.body, "_cep_math_")
    try:
        value = eval(source, {"__builtins__": {"len": len, "float": float, "abs": abs},  # noqa: S307
                              "math": math, "a": a, "b": b})
    except Exception:  # noqa: BLE001 - an error is no value of the wrong kind
        return
    if kind == FLOAT:
        assert isinstance(value, float), (source, a, b, value)
    elif kind == NUMBER:
        assert isinstance(value, (int, float, complex)), (source, a, b, value)


@settings(max_examples=300, deadline=None)
@given(source=_EXPRESSIONS, a=_VALUES, b=_VALUES)
def test_the_guards_change_no_value_that_is_within_the_limits(source, a, b):
    import math
    expression = compile_expression(source)
    try:
        expected = eval(source, {"__builtins__": {"len": len, "float": float, "abs": abs},  # noqa: S307
                                 "math": math, "a": a, "b": b})
    except Exception as exc:  # noqa: BLE001
        with pytest.raises(Exception) as caught:
            expression({"a": a, "b": b})
        assert isinstance(caught.value, (type(exc), CostLimitError)), (source, a, b, exc)
        return
    try:
        got = expression({"a": a, "b": b})
    except CostLimitError:
        return  # past a limit (a small base to a big power, a long repetition): refused
    assert got == expected or (got != got and expected != expected), (source, a, b)
