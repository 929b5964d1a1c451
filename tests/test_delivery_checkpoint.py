"""exactly_once without processes: the checkpoint store, the window's journal, and the state hooks of
the built-ins (a component restored from its snapshot, through the checkpoint format, goes on exactly
as if never stopped)."""
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.subject import Subject

from cep.components.base import BuildContext
from cep.components.patterns.matcher import Matcher
from cep.components.patterns.model import Pattern, Step
from cep.components.rules.momentum import MomentumParams, momentum
from cep.components.rules.support_resistance import SupportResistanceParams, support_resistance
from cep.components.sinks.jsonl_file import JsonlSinkParams, jsonl_sink
from cep.errors import RuntimeFailure
from cep.runtime.checkpoint import Checkpointer, CheckpointStore, decode_state, encode_state
from cep.runtime.delivery import SeqRanges, Window
from cep.runtime.worker import Worker
from tests.support import records_into
from tests.test_operators_harness import REGISTRY, SAMPLES
from tests.test_operators_harness import params as operator_params
from tests.test_operators_harness import ticks as harness_ticks
from tests.test_rule_support_resistance import EXAMPLE, S

FAST = settings(max_examples=60, deadline=None)


def run_operator_batches(operator, batches):
    """What an operator emits for `batches`, without an end of stream (its state stays open)."""
    out, subject = [], Subject()
    operator(subject).subscribe(records_into(out))
    for batch in batches:
        subject.on_next(batch)
    return out


def hooks_of(factory, params, **context):
    """Build a component, returning it with the (snapshot, restore) it declared."""
    declared = []
    ctx = BuildContext(node="n", keep_state_fn=lambda node, snap, rest: declared.append((snap, rest)), **context)
    built = factory(params, ctx)
    (hook,) = declared
    return built, hook


# -- the store --------------------------------------------------------------------------------------
def test_a_commit_is_what_the_next_incarnation_loads_and_a_fresh_start_forgets_it(tmp_path):
    path = tmp_path / "w.sqlite"
    window = Window(["c"], capacity=10)
    state = {"n": 1}
    checkpointer = Checkpointer(CheckpointStore(path, fresh=True),
                                {"s": (lambda: dict(state), state.update)}, {"out": window})
    for seq in (1, 2, 3):
        window.admit(b"t", seq, b"t\0h%d" % seq)
    window.ack("c", {b"t": SeqRanges([(1, 1)])})
    state["n"] = 2
    checkpointer.commit()
    state["n"] = 3                                   # after the checkpoint: lost in a crash
    window.admit(b"t", 4, b"t\0h4")
    checkpointer.close()

    restored_state: dict = {}
    restored = Window(["c"], capacity=10)
    again = Checkpointer(CheckpointStore(path, fresh=False),
                         {"s": (lambda: {}, restored_state.update)}, {"out": restored})
    again.restore()
    assert restored_state == {"n": 2}
    assert [(t, s, f) for t, s, f in restored.unacked("c")] == [(b"t", 2, b"t\0h2"), (b"t", 3, b"t\0h3")]
    assert restored.next_ordinal == 3                # new frames come after the restored ones
    again.close()
    assert CheckpointStore(path, fresh=True).load() == ({}, {})


def test_a_snapshot_that_is_not_plain_data_fails_naming_its_node(tmp_path):
    store = CheckpointStore(tmp_path / "w.sqlite", fresh=True)
    with pytest.raises(RuntimeFailure, match="the state of 'vwap' cannot be checkpointed"):
        Checkpointer(store, {"vwap#0": (lambda: {"f": lambda: 1}, print)}, {}).commit()
    store.close()


# -- the built-ins' hooks -----------------------------------------------------------------------------
def ticks(mids: list[int]) -> list[dict]:
    return [{"timestamp": i, "instrument": "AB"[i % 2], "bid_price": m, "ask_price": m + 1}
            for i, m in enumerate(mids)]


@FAST
@given(st.lists(st.integers(0, 5), max_size=60), st.integers(0, 60))
def test_momentum_restored_from_a_snapshot_continues_as_if_never_stopped(mids, cut):
    records = ticks(mids)
    params = MomentumParams(count=2, direction="both")
    whole, _ = hooks_of(momentum, params, key="instrument")
    expected = run_operator_batches(whole, [records])
    first, (snapshot, _) = hooks_of(momentum, params, key="instrument")
    out = run_operator_batches(first, [records[:cut]])
    saved = decode_state(encode_state(snapshot()))
    second, (_, restore) = hooks_of(momentum, params, key="instrument")
    restore(saved)
    assert out + run_operator_batches(second, [records[cut:]]) == expected


def is_(letter):
    return lambda event, view: event["name"] == letter


PATTERNS = [
    Pattern((Step("a", is_("a")), Step("b", is_("b"), one_or_more=True), Step("c", is_("c")))),
    Pattern((Step("a", is_("a")), Step("b", is_("b"), contiguity="any"), Step("c", is_("c"), negated=True,
                                                                              contiguity="strict"))),
]


@FAST
@given(st.sampled_from(PATTERNS), st.lists(st.sampled_from("abc"), max_size=12), st.integers(0, 12))
def test_a_matcher_restored_from_a_snapshot_finds_the_same_matches(pattern, names, cut):
    events = [{"timestamp": i, "name": name, "i": i} for i, name in enumerate(names)]

    def feed(matcher, part):
        return [dict(m) for e in part for m in matcher.feed(e["i"] % 2, e)]
    whole = Matcher(pattern)
    expected = feed(whole, events) + [dict(m) for m in whole.finish()]
    first = Matcher(pattern)
    found = feed(first, events[:cut])
    second = Matcher(pattern)
    second.restore(decode_state(encode_state(first.snapshot())))
    assert found + feed(second, events[cut:]) + [dict(m) for m in second.finish()] == expected


def test_the_jsonl_sink_cuts_back_to_its_checkpointed_offset(tmp_path):
    params = JsonlSinkParams(path=tmp_path / "out.jsonl")
    sink, (offset, _) = hooks_of(jsonl_sink, params)
    sink.write([{"a": 1}])
    saved = offset()
    sink.write([{"a": 2}])                           # written after the checkpoint, then a crash
    sink.flush()
    restarted, (_, restore) = hooks_of(jsonl_sink, params, incarnation=1)
    restore(saved)
    restarted.write([{"a": 3}])
    restarted.close()
    assert (tmp_path / "out.jsonl").read_text() == '{"a":1}\n{"a":3}\n'
    assert offset() == saved + len('{"a":2}\n')


# -- the contract: every component that says checkpoint=True resumes from its encoded snapshot -----
OPERATORS = sorted(name for name in REGISTRY.names("operator")
                   if REGISTRY.get("operator", name).checkpoint)


def resumed(factory, params, records, cut, key="instrument"):
    """(output of one component over all records, output of one over records[:cut] then of a
    fresh one restored from its encoded snapshot over the rest), both ended."""
    def ended(operator, batches):
        out, subject = [], Subject()
        operator(subject).subscribe(records_into(out))
        for batch in batches:
            subject.on_next(batch)
        subject.on_completed()
        return out
    whole, _ = hooks_of(factory, params, key=key)
    first, (snapshot, _) = hooks_of(factory, params, key=key)
    before = run_operator_batches(first, [records[:cut]])
    second, (_, restore) = hooks_of(factory, params, key=key)
    restore(decode_state(encode_state(snapshot())))
    return ended(whole, [records]), before + ended(second, [records[cut:]])


def test_every_stateful_operator_has_a_hook():
    stateful = sorted(name for name in REGISTRY.names("operator")
                      if REGISTRY.get("operator", name).state != "stateless")
    assert OPERATORS == stateful and len(stateful) == 13


@FAST
@pytest.mark.parametrize("name", OPERATORS)
@given(cut=st.integers(0, 80))
def test_an_operator_restored_from_a_snapshot_goes_on_as_if_never_stopped(name, cut):
    component = REGISTRY.get("operator", name)
    expected, got = resumed(component.factory, operator_params(name, SAMPLES[name]), harness_ticks(80), cut)
    assert got == expected


@FAST
@given(st.lists(st.sampled_from([95, 100, 93, 96, 101, 104, 99]), max_size=60), st.integers(0, 60))
def test_support_resistance_restored_from_a_snapshot_goes_on_as_if_never_stopped(mids, cut):
    records = [{"timestamp": i * S, "instrument": "A", "bid_price": m - 0.01, "ask_price": m + 0.01}
               for i, m in enumerate(mids)]
    expected, got = resumed(support_resistance, SupportResistanceParams(**EXAMPLE), records, cut)
    assert got == expected


class _Replay:
    """A replayable source of the numbers 0..9 in batches of 3, with or without `resume`."""

    def __init__(self) -> None:
        self.skip = 0
        self.resumed: list[int] = []

    def batches(self):
        numbers = list(range(self.skip, 10))
        return iter([numbers[i:i + 3] for i in range(0, len(numbers), 3)])


class _Resumable(_Replay):
    def resume(self, records: int) -> None:
        self.resumed.append(records)
        self.skip = records


@pytest.mark.parametrize("source_type", [_Replay, _Resumable])
def test_a_restored_worker_leaves_out_what_its_source_had_emitted_once_and_counts_on(source_type):
    worker = SimpleNamespace(offsets={"ticks": 4}, reservation=None)  # as restored from the checkpoint
    source = source_type()
    emitted = [n for batch in Worker._counted(worker, "ticks", source) for n in batch]
    assert emitted == [4, 5, 6, 7, 8, 9]
    assert worker.offsets == {"ticks": 10}
    assert source.resumed == ([4] if source_type is _Resumable else [])
