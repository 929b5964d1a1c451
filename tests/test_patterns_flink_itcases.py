"""Scenarios of Flink CEP's own integration tests (NFAITCase, AfterMatchSkipITCase), re-derived
and run through the YAML surface: a jsonl source of hand-written events, an inline `pattern` rule
without `emit`, and the PatternMatch records compared with the matches Flink's tests expect.

Events are tokens: "a1" has `name` "a" and `id` "a1"; step conditions test `name`. A match is
written as the ids it bound, in step order, e.g. "c a1 a2 b".
"""
from __future__ import annotations

import json

import pytest
import yaml

import cep


def event(token: str, timestamp: int) -> dict:
    """The event of one token: "a4" is `{name: a, id: a4}`, "a4:5" also has `price` 5.0."""
    ident, _, price = token.partition(":")
    record = {"timestamp": timestamp, "name": ident.rstrip("0123456789"), "id": ident}
    return {**record, "price": float(price)} if price else record


def run(workdir, steps: list[dict], tokens: str, times: list[int] | None = None,
        name: str = "flink-itcase", **rule) -> list[dict]:
    """PatternMatch records of an inline rule with `steps` over the events of `tokens`."""
    events = [event(token, times[i] if times else i + 1) for i, token in enumerate(tokens.split())]
    with open(workdir / "events.jsonl", "w") as file:
        file.writelines(json.dumps(event) + "\n" for event in events)
    document = {
        "version": 1, "name": name,
        "sources": {"events": {"type": "jsonl", "path": "events.jsonl",
                               "time_field": "timestamp", "time_unit": "ns"}},
        "rules": {"matches": {"from": "events", "pattern": steps, **rule}},
        "sinks": {"out": {"type": "jsonl", "from": ["matches"], "path": "out.jsonl"}},
    }
    path = workdir / "pipeline.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    cep.run(cep.compile(path), inline=True)
    with open(workdir / "out.jsonl") as file:
        return [json.loads(line) for line in file]


def found(outputs: list[dict]) -> list[str]:
    """Each match as its bound ids in step order, in output order."""
    return [" ".join(e["id"] for events in out["match"].values() for e in events)
            for out in outputs]


def step(name: str, kind: str | None = None, **options) -> dict:
    """A step whose condition is `name == kind` (no condition when kind is None)."""
    return {"name": name, **({"where": f"name == '{kind}'"} if kind else {}), **options}


# -- contiguity (NFAITCase) ------------------------------------------------------------------
def test_followed_by_without_conditions_pairs_each_event_with_the_next(workdir):
    outputs = run(workdir, [step("start"), step("end")], "a b c d e")
    assert found(outputs) == ["a b", "b c", "c d", "d e"]


def test_followed_by_any_without_conditions_pairs_every_later_event(workdir):
    outputs = run(workdir, [step("start"), step("end", contiguity="any")], "a b c d e")
    assert sorted(found(outputs)) == ["a b", "a c", "a d", "a e", "b c", "b d", "b e",
                                      "c d", "c e", "d e"]


def test_next_fails_when_another_event_comes_between(workdir):
    steps = [step("middle", "a"), step("end", "b", contiguity="strict")]
    assert found(run(workdir, steps, "a c b")) == []
    assert found(run(workdir, steps, "a b")) == ["a b"]


def test_branching_with_followed_by_any_at_every_step(workdir):
    steps = [step("start", "s"), step("first", "m", contiguity="any"),
             step("second", "n", contiguity="any"), step("end", "e", contiguity="any")]
    outputs = run(workdir, steps, "s m1 m2 m3 n1 n2 e")
    assert sorted(found(outputs)) == sorted(f"s m{i} n{j} e" for i in (1, 2, 3) for j in (1, 2))


# -- oneOrMore / optional / times (NFAITCase) ------------------------------------------------
def test_zero_or_more_with_combinations(workdir):
    steps = [step("start", "c"),
             step("middle", "a", one_or_more=True, allow_combinations=True, optional=True,
                  contiguity="any"),
             step("end", "b")]
    assert sorted(found(run(workdir, steps, "c a1 a2 b"))) == \
        sorted(["c a1 a2 b", "c a1 b", "c a2 b", "c b"])


def test_zero_or_more_relaxed_skips_other_events_inside_the_loop(workdir):
    steps = [step("start", "c"), step("middle", "a", one_or_more=True, optional=True),
             step("end", "b")]
    assert sorted(found(run(workdir, steps, "c a1 a2 d a3 b"))) == \
        sorted(["c a1 a2 a3 b", "c a1 a2 b", "c a1 b", "c b"])


def test_pattern_beginning_with_zero_or_more(workdir):
    steps = [step("middle", "a", one_or_more=True, optional=True), step("end", "b")]
    assert sorted(found(run(workdir, steps, "a1 a2 a3 b"))) == sorted(
        ["a1 a2 a3 b", "a1 a2 b", "a2 a3 b", "a1 b", "a2 b", "a3 b", "b"])


def test_strict_step_after_zero_or_more_with_combinations(workdir):
    steps = [step("start", "d"),
             step("middle", "a", one_or_more=True, optional=True, allow_combinations=True,
                  contiguity="any"),
             step("end", "b", contiguity="strict")]
    assert sorted(found(run(workdir, steps, "d a1 a2 b"))) == sorted(["d a1 a2 b", "d a2 b"])
    assert found(run(workdir, steps, "d a1 a2 c b")) == []


def test_next_into_consecutive_zero_or_more(workdir):
    steps = [step("start", "start"),
             step("middle", "middle", one_or_more=True, optional=True, consecutive=True,
                  contiguity="strict"),
             step("end", "end")]
    outputs = run(workdir, steps, "start event middle1 middle2 middle3 end")
    assert found(outputs) == ["start end"]


def test_one_or_more_after_followed_by_any(workdir):
    steps = [step("start", "c"), step("middle", "a", one_or_more=True, contiguity="any"),
             step("end", "b", contiguity="any")]
    assert sorted(found(run(workdir, steps, "c a1 a2 a3 b"))) == sorted(
        ["c a1 a2 a3 b", "c a1 a2 b", "c a2 a3 b", "c a3 b", "c a2 b", "c a1 b"])


def test_pattern_ending_in_one_or_more_emits_every_prefix(workdir):
    steps = [step("start", "c"), step("middle", "a", one_or_more=True)]
    assert sorted(found(run(workdir, steps, "c a1 a2 a3"))) == \
        sorted(["c a1 a2 a3", "c a1 a2", "c a1"])


def test_pattern_ending_in_zero_or_more_also_matches_without_it(workdir):
    steps = [step("start", "c"), step("middle", "a", one_or_more=True, optional=True)]
    assert sorted(found(run(workdir, steps, "c a1 a2 a3"))) == \
        sorted(["c a1 a2 a3", "c a1 a2", "c a1", "c"])


def test_optional_step_and_optional_start(workdir):
    steps = [step("start", "c"), step("middle", "a", optional=True), step("end", "b")]
    assert sorted(found(run(workdir, steps, "c a b"))) == ["c a b", "c b"]
    steps = [step("start", "c", optional=True), step("end", "b")]
    assert sorted(found(run(workdir, steps, "c b"))) == ["b", "c b"]


def test_times_with_combinations_after_next(workdir):
    steps = [step("start", "c"),
             step("middle", "a", times=2, allow_combinations=True, contiguity="strict"),
             step("end", "b")]
    assert sorted(found(run(workdir, steps, "c a1 a2 a3 b"))) == ["c a1 a2 b", "c a1 a3 b"]


def test_times_relaxed_after_followed_by_takes_the_first_ones(workdir):
    steps = [step("start", "c"), step("middle", "a", times=2), step("end", "b")]
    assert found(run(workdir, steps, "c a1 a2 a3 b")) == ["c a1 a2 b"]


def test_consecutive_times_broken_by_another_event(workdir):
    steps = [step("start", "c"),
             step("middle", "a", times=2, consecutive=True, contiguity="strict"),
             step("end", "b")]
    assert found(run(workdir, steps, "c a1 f a2 a3 b")) == []


def test_optional_times_with_combinations(workdir):
    steps = [step("start", "c"),
             step("middle", "a", times=2, allow_combinations=True, optional=True,
                  contiguity="any"),
             step("end", "b")]
    assert sorted(found(run(workdir, steps, "c f a1 f a2 a3 b"))) == \
        sorted(["c a1 a2 b", "c a1 a3 b", "c a2 a3 b", "c b"])
    assert found(run(workdir, [step("start", "c"), step("middle", "a", times=3, optional=True),
                               step("end", "b")], "c f b")) == ["c b"]


# -- within (NFAITCase) ------------------------------------------------------------------------
def test_within_discards_partial_matches_as_old_as_the_window(workdir):
    steps = [step("start", "start"), step("middle", "middle"), step("end", "end")]
    outputs = run(workdir, steps, "start1 start2 middle foobar end1 end2",
                  times=[1, 2, 3, 4, 11, 13], within="10ns")
    assert found(outputs) == ["start2 middle end1"]


# -- after-match skip strategies (AfterMatchSkipITCase) ------------------------------------------
def test_no_skip_and_skip_past_last_event_on_times_three(workdir):
    steps = [step("start", "a", times=3)]
    assert found(run(workdir, steps, "a1 a2 a3 a4 a5 a6")) == \
        ["a1 a2 a3", "a2 a3 a4", "a3 a4 a5", "a4 a5 a6"]
    assert found(run(workdir, steps, "a1 a2 a3 a4 a5 a6", skip="skip_past_last_event")) == \
        ["a1 a2 a3", "a4 a5 a6"]


@pytest.mark.parametrize("skip, expected", [
    ("no_skip", ["a1 b1", "a1 b2", "a2 b2"]),
    ("skip_to_next", ["a1 b1", "a2 b2"]),
])
def test_skips_with_followed_by_any(workdir, skip, expected):
    steps = [step("start", "a"), step("end", "b", contiguity="any")]
    assert found(run(workdir, steps, "a1 b1 a2 b2", skip=skip)) == expected


@pytest.mark.parametrize("skip, expected", [
    ("no_skip", ["a1 b1", "a1 b1 b2", "a1 b1 b2 b3"]),
    ("skip_to_next", ["a1 b1"]),
])
def test_skips_with_a_loop_at_the_end(workdir, skip, expected):
    steps = [step("start", "a"), step("end", "b", one_or_more=True, contiguity="strict")]
    assert found(run(workdir, steps, "a1 b1 b2 b3", skip=skip)) == expected


@pytest.mark.parametrize("skip, expected", [
    ("skip_to_first:end", ["ab1 ab2 ab3 ab4", "ab3 ab4 ab5 ab6"]),
    ("skip_to_last:end", ["ab1 ab2 ab3 ab4", "ab4 ab5 ab6 ab7"]),
])
def test_skip_to_first_and_last(workdir, skip, expected):
    steps = [{"name": "start", "where": "'a' in name", "times": 2},
             {"name": "end", "where": "'b' in name", "times": 2, "contiguity": "strict"}]
    assert found(run(workdir, steps, "ab1 ab2 ab3 ab4 ab5 ab6 ab7", skip=skip)) == expected


def test_skip_past_last_event_with_branching_steps(workdir):
    steps = [step("a", "a"), step("b", "b", contiguity="any"), step("c", "c", contiguity="any"),
             step("d", "d")]
    outputs = run(workdir, steps, "a1 a2 b1 b2 c1 c2 d1 d2", skip="skip_past_last_event")
    assert found(outputs) == ["a1 b1 c1 d1"]


# -- the PatternMatch record ---------------------------------------------------------------------
def test_a_skipped_optional_step_is_absent_and_lists_keep_match_order(workdir):
    steps = [step("start", "c"), step("middle", "a", optional=True),
             step("loop", "b", one_or_more=True, consecutive=True), step("end", "e")]
    outputs = run(workdir, steps, "c b1 b2 e")
    assert [list(out["match"]) for out in outputs] == [["start", "loop", "end"],
                                                       ["start", "loop", "end"]]
    assert sorted(found(outputs)) == ["c b1 b2 e", "c b1 e"]  # relaxed loop: b1 is taken first
    assert outputs[0]["match"]["start"] == [{"timestamp": 1, "name": "c", "id": "c"}]
    assert all(out["timestamp"] == 4 and out["rule"] == "matches" for out in outputs)


def test_matches_completed_by_one_event_come_out_by_their_first_event(workdir):
    steps = [step("start", "a"), step("end", "b", contiguity="any")]
    assert found(run(workdir, steps, "a1 a2 a3 b")) == ["a1 b", "a2 b", "a3 b"]
