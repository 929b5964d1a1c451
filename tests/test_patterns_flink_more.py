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
