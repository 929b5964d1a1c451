"""Row batches stand for exactly the records they hold: every path gives what the record path gives."""
import pytest
import reactivex
from hypothesis import given, strategies as st

from cep.components.base import BuildContext
from cep.expressions import compile_expression
from cep.runtime.fusion import compile_record_steps, compile_row_steps
from cep.plugins import default_registry
from cep.rows import Rows, as_records, concat, record_at, split_by
from tests.support import records_into

FIELDS = ("timestamp", "instrument", "bid_price", "ask_price")
prices = st.floats(1.0, 200.0, allow_nan=False)
rows = st.lists(st.tuples(st.integers(0, 10**12), st.sampled_from(["A", "B", "C", None]), prices, prices),
                max_size=40)


@given(rows)
def test_rows_convert_to_the_records_they_stand_for(values):
    batch = Rows(FIELDS, values)
    assert as_records(batch) == [dict(zip(FIELDS, row)) for row in values]
    assert [record_at(batch, row) for row in values] == as_records(batch)
    assert len(batch) == len(values)


@given(rows, rows)
def test_concat_keeps_rows_of_one_layout_and_order(first, second):
    joined = concat([Rows(FIELDS, first), Rows(FIELDS, second)])
    assert type(joined) is Rows and joined.rows == first + second
    mixed = concat([Rows(FIELDS, first), [{"x": 1}]])
    assert mixed == as_records(Rows(FIELDS, first)) + [{"x": 1}]


@given(rows)
def test_split_by_groups_rows_as_it_groups_records(values):
    batch = Rows(FIELDS, values)
    by_rows = {key: [dict(zip(FIELDS, row)) for row in part] for key, part in split_by(batch, "instrument").items()}
    assert by_rows == split_by(as_records(batch), "instrument")
    assert list(split_by(batch, "missing")) == ([None] if values else [])


STEPS = [
    [("keep", None, "ask_price > bid_price"), ("set", "mid", "(bid_price + ask_price) / 2")],
    [("set", "mid", "(bid_price + ask_price) / 2"), ("keep", None, "mid > 100"),
     ("set", "spread", "ask_price - bid_price")],
    [("set", "bid_price", "bid_price * 2"), ("keep", None, "bid_price > ask_price")],
    [("set", "x", "1"), ("set", "x", "x + 1"), ("set", "timestamp", "timestamp + x")],
    [("keep", None, "instrument is not None")],
]


@pytest.mark.parametrize("steps", STEPS, ids=range(len(STEPS)))
@given(values=rows)
def test_fused_steps_on_rows_give_the_records_the_record_path_gives(steps, values):
    compiled = [(kind, field, compile_expression(source)) for kind, field, source in steps]
    function, fields = compile_row_steps(compiled, FIELDS)
    expected = compile_record_steps(compiled)(as_records(Rows(FIELDS, values)))
    got = as_records(Rows(fields, function(values)))
    assert got == expected
    assert [list(record) for record in got] == [list(record) for record in expected]  # field order too


def test_fused_steps_refuse_a_layout_without_a_field_they_read():
    steps = [("keep", None, compile_expression("mid > 1"))]
    assert compile_row_steps(steps, FIELDS) is None


@pytest.mark.parametrize("with_mid", [False, True])
@given(values=st.lists(st.tuples(st.integers(0, 10**12), st.sampled_from(["A", "B"]), prices, prices), max_size=80),
       count=st.integers(1, 4))
def test_momentum_gives_the_same_signals_for_rows_and_records(with_mid, values, count):
    values = sorted(values)
    fields = FIELDS + ("mid",) if with_mid else FIELDS
    if with_mid:
        values = [row + (round((row[2] + row[3]) / 2, 1),) for row in values]
    rule = default_registry().get("rule", "momentum")
    params = rule.configure({"count": count})

    def signals(batch):
        out = []
        operator = rule.factory(params, BuildContext(node="m", key="instrument"))
        operator(reactivex.of(batch)).subscribe(records_into(out))
        return out

    assert signals(Rows(fields, values)) == signals(as_records(Rows(fields, values)))


def test_a_bad_row_is_dead_lettered_alone_and_the_rest_of_its_batch_goes_on():
    from cep.runtime.fusion import fused_operator
    registry = default_registry()
    parts = [(registry.get("operator", name), registry.get("operator", name).configure(args))
             for name, args in (("filter", "ask_price > bid_price"), ("map", {"mid": "(bid_price + ask_price) / 2"}))]
    letters, out = [], []
    ctx = BuildContext(node="quotes", dead_letter_fn=lambda node, reason, raw: letters.append(raw))
    batch = Rows(FIELDS, [(1, "A", 1.0, 2.0), (2, "A", "oops", 2.0), (3, "A", 1.5, 2.5)])
    reactivex.of(batch).pipe(fused_operator(parts, ctx)).subscribe(out.append)
    assert [record["mid"] for record in as_records(out[0])] == [1.5, 2.0]
    assert letters == [{"timestamp": 2, "instrument": "A", "bid_price": "oops", "ask_price": 2.0}]
