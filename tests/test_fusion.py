"""Fused filter/map chains give exactly what the operators give one by one."""
from hypothesis import given, strategies as st
from reactivex.subject import Subject

from cep.components.base import BuildContext
from cep.expressions import compile_expression
from cep.plugins import default_registry
from cep.runtime.fusion import compile_record_steps, fusable, fused_operator

OPS = [("filter", "ask_price > bid_price"), ("map", {"mid": "(bid_price + ask_price) / 2", "w": "mid * 2"}),
       ("filter", "100 / (w - 4) > 0")]   # a record with w == 4 divides by zero


def parts():
    registry = default_registry()
    return [(registry.get("operator", name), registry.get("operator", name).configure(args)) for name, args in OPS]


def drive(operator, batches):
    subject, out = Subject(), []
    subject.pipe(operator).subscribe(out.extend)
    for batch in batches:
        subject.on_next(batch)
    return out


def one_by_one(ctx, batches):
    subject, out = Subject(), []
    chain = subject
    for component, config in parts():
        chain = chain.pipe(component.factory(config, ctx))
    chain.subscribe(out.extend)
    for batch in batches:
        subject.on_next(batch)
    return out


prices = st.integers(0, 6).map(float)
ticks = st.lists(st.builds(lambda b, a: {"bid_price": b, "ask_price": a}, prices, prices), max_size=40)


@given(st.lists(ticks, max_size=5))
def test_fused_chain_equals_the_operators_one_by_one_and_dead_letters_the_same_records(batches):
    fused_ctx, plain_ctx = BuildContext(node="s"), BuildContext(node="s")
    fused_ctx.dead_letter_fn = plain_ctx.dead_letter_fn = lambda node, reason, raw: None
    originals = [[dict(r) for r in batch] for batch in batches]
    assert drive(fused_operator(parts(), fused_ctx), batches) == one_by_one(plain_ctx, batches)
    assert fused_ctx.counters.dead_lettered == plain_ctx.counters.dead_lettered
    assert batches == originals  # inputs never changed


def test_only_stateless_steps_fuse():
    registry = default_registry()
    assert fusable(registry.get("operator", "filter").configure("x > 1"))
    assert fusable(registry.get("operator", "map").configure({"y": "x + 1"}))
    assert not fusable(registry.get("operator", "map").configure({"y": "x - prev.x"}))
    assert not fusable(registry.get("operator", "take").configure(3))


def test_fused_function_reads_fields_set_by_earlier_steps_and_copies_once():
    fused = compile_record_steps([("set", "a", compile_expression("x + 1")), ("set", "b", compile_expression("a * 2")),
                                  ("keep", None, compile_expression("b > 4"))])
    record = {"x": 2}
    assert fused([record, {"x": 0}]) == [{"x": 2, "a": 3, "b": 6}]
    assert record == {"x": 2}
