"""How the operator tests drive an operator, and the contract every built-in operator keeps.

`drive(name, args, batches)` builds the registered operator as a pipeline would (params from YAML
form, shorthand included), pushes the batches through a Subject, completes it, and returns what
came out: no sleeps, no real time.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from reactivex.subject import Subject

import cep.components.operators as operators
from cep.components.base import BuildContext
from cep.plugins import Registry
from cep.plugins.markers import MARK

REGISTRY = Registry()
REGISTRY.register_module(operators)


@dataclass
class Outcome:
    batches: list[list[dict]] = field(default_factory=list)
    dead: list[tuple[str, Any]] = field(default_factory=list)
    completed: bool = False
    error: Exception | None = None
    ctx: BuildContext | None = None

    @property
    def records(self) -> list[dict]:
        return [record for batch in self.batches for record in batch]


def params(name: str, args: Any):
    """Validate `args` as the YAML step `- name: args` would be (bare value = shorthand)."""
    component = REGISTRY.get("operator", name)
    assert component is not None, name
    if not isinstance(args, dict) and component.shorthand:
        args = {component.shorthand: args}
    return component.params.model_validate(args)


def drive(name: str, args: Any, batches: list[list[dict]], key: str | None = None) -> Outcome:
    outcome = Outcome()
    outcome.ctx = BuildContext(node=f"test-{name}", key=key,
                               dead_letter_fn=lambda node, reason, raw: outcome.dead.append((reason, raw)))
    component = REGISTRY.get("operator", name)
    subject: Subject = Subject()
    component.factory(params(name, args), outcome.ctx)(subject).subscribe(
        outcome.batches.append, lambda exc: setattr(outcome, "error", exc),
        lambda: setattr(outcome, "completed", True))
    for batch in batches:
        subject.on_next(batch)
    subject.on_completed()
    return outcome


def ticks(count: int, instruments: str = "AB", step_ns: int = 250_000_000) -> list[dict]:
    """Quote records, instruments round robin, evenly spaced in event time."""
    return [{"timestamp": i * step_ns, "instrument": instruments[i % len(instruments)],
             "bid_price": 100.0 + (i * 7) % 5, "ask_price": 101.0 + (i * 7) % 5 + i % 2,
             "bid_volume": 1.0 + i % 3} for i in range(count)]


# One working configuration per built-in operator, for the contract tests below.
SAMPLES: dict[str, Any] = {
    "filter": "ask_price - bid_price > 1",
    "map": {"mid": "(bid_price + ask_price) / 2", "up": "prev is not None and mid > prev.mid"},
    "key_by": "instrument",
    "scan": {"into": "volume", "expr": "acc + bid_volume"},
    "pairwise": {},
    "buffer_with_count": {"count": 3, "skip": 2},
    "buffer_with_time": "1s",
    "window": {"size": "1s", "slide": "500ms", "aggregate": {"n": "len(events)"}},
    "throttle_first": "600ms",
    "distinct_until_changed": ["bid_price"],
    "take": 7,
    "skip": 3,
    "bars": "1s",
    "swings": {"n": 1, "high": "ask_price", "low": "bid_price"},
    "levels": {"tolerance_bps": 50, "price": "bid_price", "kind": "'high'"},
    "pivots": "1s",
}


def test_every_exported_operator_is_registered_with_a_sample():
    assert sorted(REGISTRY.names("operator")) == sorted(SAMPLES)
    assert len(operators.__all__) == len(SAMPLES)
    for name in operators.__all__:
        assert isinstance(getattr(getattr(operators, name), MARK).name, str)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_docstring_gives_summary_yaml_example_and_marble_line(name):
    component = REGISTRY.get("operator", name)
    assert component.summary and len(component.summary) < 100
    assert "ops:" in component.description and f"- {name}:" in component.description
    assert "in:" in component.description and "out:" in component.description


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_params_reject_unknown_keys(name):
    args = SAMPLES[name]
    args = dict(args) if isinstance(args, dict) else {REGISTRY.get("operator", name).shorthand: args}
    if name == "map":  # a bare mapping is the map's own shorthand; only the long form is strict
        args = {"fields": args, "colour": "red"}
    else:
        args["colour"] = "red"
    with pytest.raises(ValidationError):
        params(name, args)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_end_of_stream_propagates_and_no_empty_batch_is_emitted(name):
    outcome = drive(name, SAMPLES[name], [ticks(5), [], ticks(3)], key="instrument")
    assert outcome.completed and outcome.error is None
    assert all(outcome.batches)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_upstream_error_reaches_the_subscriber(name):
    component = REGISTRY.get("operator", name)
    errors: list[Exception] = []
    subject: Subject = Subject()
    component.factory(params(name, SAMPLES[name]), BuildContext(node="n"))(subject).subscribe(
        on_error=errors.append)
    subject.on_error(RuntimeError("socket gone"))
    assert [str(e) for e in errors] == ["socket gone"]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_input_records_are_never_modified(name):
    records = ticks(12)
    pristine = copy.deepcopy(records)
    drive(name, SAMPLES[name], [records], key="instrument")
    assert records == pristine


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_record_without_the_key_field_is_dead_lettered_not_fatal(name):
    component = REGISTRY.get("operator", name)
    stray = {"timestamp": 5, "bid_price": 1.0, "ask_price": 3.0, "bid_volume": 1.0}
    outcome = drive(name, SAMPLES[name], [ticks(4) + [stray] + ticks(4)], key="instrument")
    assert outcome.completed and outcome.error is None
    if component.state == "keyed":
        assert [raw for _, raw in outcome.dead] == [stray]


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(SAMPLES)), cuts=st.lists(st.integers(0, 30), max_size=6))
def test_batch_boundaries_do_not_change_the_output(name, cuts):
    records = ticks(30)
    bounds = [0, *sorted(cuts), 30]
    batches = [records[a:b] for a, b in zip(bounds, bounds[1:])]
    whole = drive(name, SAMPLES[name], [records], key="instrument")
    split = drive(name, SAMPLES[name], batches, key="instrument")
    assert split.records == whole.records
