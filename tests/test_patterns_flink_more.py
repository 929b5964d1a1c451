"""More scenarios of Flink CEP's own integration tests, re-derived and run through the YAML
surface like `test_patterns_flink_itcases`: UntilConditionITCase, GreedyITCase, NotPatternITCase
and the quantifier combinations of `cep.md`.

Events are tokens: "a1" has `name` "a" and `id` "a1"; "a4:5" also has `price` 5 (the scenarios of
`until` stop on a price). A match is written as the ids it bound, in step order.
"""
from __future__ import annotations

import json

import pytest
import yaml

import cep
from cep.errors import ConfigError
from tests.test_patterns_flink_itcases import found, step


def event(token: str, timestamp: int) -> dict:
    """The event of one token: "a4:5" is `{name: a, id: a4, price: 5.0}`."""
    ident, _, price = token.partition(":")
    record = {"timestamp": timestamp, "name": ident.rstrip("0123456789"), "id": ident}
    return {**record, "price": float(price)} if price else record


def run(workdir, steps: list[dict], tokens: str, times: list[int] | None = None,
        **rule) -> list[str]:
    """The matches (see `found`) of an inline rule with `steps` over the events of `tokens`."""
    with open(workdir / "events.jsonl", "w") as file:
        for i, token in enumerate(tokens.split()):
            file.write(json.dumps(event(token, times[i] if times else i + 1)) + "\n")
    document = {
        "version": 1, "name": "flink-itcase-more",
        "sources": {"events": {"type": "jsonl", "path": "events.jsonl",
                               "time_field": "timestamp", "time_unit": "ns"}},
        "rules": {"matches": {"from": "events", "pattern": steps, **rule}},
        "sinks": {"out": {"type": "jsonl", "from": ["matches"], "path": "out.jsonl"}},
    }
    path = workdir / "pipeline.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    cep.run(cep.compile(path), inline=True)
    with open(workdir / "out.jsonl") as file:
        return found([json.loads(line) for line in file])


# -- until (UntilConditionITCase) ----------------------------------------------------------------
BREAK = "price == 5"
UNTIL_EVENTS = "c a1:2 a2:3 a4:5 a5:6"
UNTIL_EVENTS_LONGER = "c a1:2 a2:3 a3:4 a4:5 a5:6"


@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("loop, events, expected", [
    ({}, UNTIL_EVENTS, ["c a1 a2 a4", "c a1 a4"]),
    ({"consecutive": True}, UNTIL_EVENTS, ["c a1 a2 a4", "c a1 a4"]),
    ({"allow_combinations": True}, UNTIL_EVENTS_LONGER,
     ["c a1 a2 a3 a4", "c a1 a2 a4", "c a1 a3 a4", "c a1 a4"]),
])
def test_until_stops_the_loop_before_the_step_that_takes_the_breaking_event(
        workdir, optional, loop, events, expected):
    # the loop's first event is taken relaxed from `start` (never skipped past an `a`); the
    # breaking a4 ends the loop and is the `end`; the a5 after it joins nothing. Zero or more
    # also matches "c a4".
    steps = [step("start", "c"),
             step("middle", "a", one_or_more=True, optional=optional, until=BREAK, **loop),
             step("end", where=BREAK)]
    assert sorted(run(workdir, steps, events)) == sorted(expected + (["c a4"] if optional else []))


def test_until_at_the_end_after_followed_by_any(workdir):
    steps = [step("start", "c"), step("middle", "a", one_or_more=True, until=BREAK,
                                      contiguity="any")]
    events = "c a1:2 a2:3 a3:5 a4:6"
    assert sorted(run(workdir, steps, events)) == sorted(["c a1 a2", "c a1", "c a2", "c a4"])
    steps[1]["optional"] = True
    assert sorted(run(workdir, steps, events)) == sorted(["c a1 a2", "c a1", "c a2", "c a4", "c"])


def test_until_on_a_loop_without_condition(workdir):
    steps = [step("start", "c"), step("middle", one_or_more=True, until=BREAK)]
    assert sorted(run(workdir, steps, "c a1:2 a2:3 d1:1 a3:5 a4:6")) == \
        sorted(["c a1 a2 d1", "c a1 a2", "c a1"])


@pytest.mark.parametrize("optional, extra", [(False, []), (True, ["c"])])
def test_until_reading_the_loop_so_far(workdir, optional, extra):
    # the loop stops once the prices it bound add up to 6 (the event tested not included)
    steps = [step("start", "c"),
             step("middle", one_or_more=True, optional=optional,
                  until="sum(middle, 'price') == 6")]
    assert sorted(run(workdir, steps, "c a1:2 a2:3 d1:1 a3:5 a4:6")) == \
        sorted(["c a1 a2 d1", "c a1 a2", "c a1"] + extra)


# -- greedy (GreedyITCase) -----------------------------------------------------------------------
def greedy_a(**options) -> dict:
    return step("middle", "a", one_or_more=True, greedy=True, **options)


@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("events, expected", [
    ("c a1 a2 a3 d", ["c a1 a2 a3 d"]),
    ("c x1 a1 x2 a2 x3 a3 d", ["c a1 a2 a3 d"]),  # relaxed: other events between the a's
    ("c a1 a2 x1 d", ["c a1 a2 d"]),
])
def test_greedy_loop_followed_by_relaxed_step_yields_only_the_longest_run(
        workdir, optional, events, expected):
    steps = [step("start", "c"), greedy_a(optional=optional), step("end", "d")]
    assert run(workdir, steps, events) == expected


@pytest.mark.parametrize("optional, expected", [(False, []), (True, ["c d"])])
def test_greedy_loop_with_no_event_for_it(workdir, optional, expected):
    steps = [step("start", "c"), greedy_a(optional=optional), step("end", "d")]
    assert run(workdir, steps, "c x1 d") == expected


@pytest.mark.parametrize("optional", [False, True])
def test_greedy_loop_with_until_stops_at_the_breaking_event(workdir, optional):
    steps = [step("start", "c"), greedy_a(optional=optional, until="price > 3"),
             step("end", "d")]
    assert run(workdir, steps, "c a1:2 a2:3 a3:3 a4:4 d1:3") == ["c a1 a2 a3 d1"]
    # a breaking event first: the loop never starts (zero or more then goes straight to d)
    assert run(workdir, steps, "c a4:4 a1:2 a2:3 a3:3 d1:3") == (["c d1"] if optional else [])


def test_an_optional_step_after_a_greedy_one_is_rejected(workdir):
    # Flink refuses it ("Optional pattern cannot be preceded by greedy pattern"); GreedyITCase's
    # older scenarios with `c a*{greedy} d? e` went with that rule
    steps = [step("start", "c"), greedy_a(optional=True), step("middle2", "d", optional=True),
             step("end", "e")]
    with pytest.raises(ConfigError, match="optional step cannot follow a greedy one"):
        run(workdir, steps, "c a1 a2 d e")


@pytest.mark.parametrize("consecutive, expected", [
    (False, ["c", "c a1", "c a1 a2", "c a1 a2 a3"]),
    (True, ["c", "c a1", "c a1 a2"]),   # the x1 between a2 and a3 ends a consecutive loop
])
def test_greedy_zero_or_more_at_the_end_emits_each_prefix(workdir, consecutive, expected):
    steps = [step("start", "c"),
             step("end", "a", one_or_more=True, optional=True, greedy=True,
                  consecutive=consecutive)]
    assert sorted(run(workdir, steps, "c a1 a2 x1 a3")) == expected


def test_greedy_times_range(workdir):
    steps = [step("start", "c"), step("middle", "a", times=[2, 5], greedy=True), step("end", "d")]
    assert run(workdir, steps, "c a1 a2 a3 a4 d") == ["c a1 a2 a3 a4 d"]
    steps = [step("start", "c"), step("end", "a", times=[2, 5], greedy=True)]
    assert sorted(run(workdir, steps, "c a1 a2 a3 a4 x1")) == \
        ["c a1 a2", "c a1 a2 a3", "c a1 a2 a3 a4"]
