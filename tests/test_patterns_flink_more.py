"""More scenarios of Flink CEP's own integration tests, re-derived and run through the YAML
surface like `test_patterns_flink_itcases`: UntilConditionITCase, GreedyITCase, NotPatternITCase
and the quantifier combinations of `cep.md`.

Events are tokens: "a1" has `name` "a" and `id` "a1"; "a4:5" also has `price` 5 (the scenarios of
`until` stop on a price). A match is written as the ids it bound, in step order.
"""
from __future__ import annotations


import pytest

from cep.errors import ConfigError
from tests.test_patterns_flink_itcases import found, step
from tests.test_patterns_flink_itcases import run as run_rule


def run(workdir, steps: list[dict], tokens: str, times: list[int] | None = None,
        **rule) -> list[str]:
    """The matches (see `found`) of an inline rule with `steps` over the events of `tokens`."""
    return found(run_rule(workdir, steps, tokens, times, name="flink-itcase-more", **rule))


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


# -- notNext / notFollowedBy (NotPatternITCase) --------------------------------------------------
def absent(name: str, kind: str, contiguity: str = "relaxed") -> dict:
    """A negated step: notFollowedBy (relaxed) or notNext (strict) an event of `kind`."""
    return step(name, kind, negated=True, contiguity=contiguity)


def test_not_next_kills_only_the_partial_match_it_follows(workdir):
    steps = [step("start", "a"), absent("no_b", "b", "strict"),
             step("middle", "c", contiguity="any"), step("end", "d")]
    assert sorted(run(workdir, steps, "a1 c1 b1 c2 d1")) == ["a1 c1 d1", "a1 c2 d1"]
    steps[2] = step("middle", "c")
    assert run(workdir, steps, "a1 b1 c1 c2 d1") == []


def test_not_next_at_the_end_waits_for_the_next_event(workdir):
    steps = [step("start", "a"), step("middle", "c", contiguity="any"),
             step("end", "d", contiguity="any"), absent("no_b", "b", "strict")]
    assert run(workdir, steps, "a1 c1 c2 d1 b1") == []


@pytest.mark.parametrize("optional", [False, True])
def test_not_followed_by_in_the_middle(workdir, optional):
    steps = [step("start", "a"), absent("no_b", "b"),
             step("middle", "c", contiguity="any", optional=optional), step("end", "d")]
    assert run(workdir, steps, "a1 c1 b1 c2 d1") == ["a1 c1 d1"]


def test_not_followed_by_before_an_optional_last_step(workdir):
    steps = [step("start", "a"), absent("no_b", "b"),
             step("end", "c", contiguity="any", optional=True)]
    assert sorted(run(workdir, steps, "a1 c1 b1 c2")) == ["a1", "a1 c1"]


def test_not_followed_by_before_optional_times(workdir):
    steps = [step("start", "a"), absent("no_b", "b"),
             step("middle", "c", contiguity="any", times=2, optional=True), step("end", "d")]
    assert run(workdir, steps, "a1 c1 b1 c2 d1") == ["a1 c1 c2 d1"]
    # the optional times skipped altogether; the b after it no longer matters
    assert run(workdir, steps, "a1 d1 e1 b1 c1 c2 d2") == ["a1 d1"]


def test_not_followed_by_after_times(workdir):
    steps = [step("start", "a"), step("middle", "b", contiguity="any", times=2),
             absent("no_c", "c"), step("end", "d")]
    assert run(workdir, steps, "a1 b1 c1 b2 d1") == []
    assert run(workdir, steps, "a1 d1 e1 b1 b2 c1 d2") == []


def test_not_followed_by_with_a_later_start(workdir):
    steps = [step("start", "a"), absent("no_b", "b"), step("middle", "c"), step("end", "d")]
    assert run(workdir, steps, "a1 b1 c1 a2 c2 d1") == ["a2 c2 d1"]


@pytest.mark.parametrize("contiguity, expected", [
    ("relaxed", []),
    ("any", ["a1 b2 d1"]),
])
def test_not_next_after_one_or_more(workdir, contiguity, expected):
    steps = [step("a", "a"), step("bs", "b", one_or_more=True, contiguity=contiguity),
             absent("no_c", "c", "strict"), step("d", "d")]
    assert run(workdir, steps, "a1 b1 c1 b2 d1") == expected


AFTER_LOOP = "a1 b1 b2 b3 c1 b4 b5 b6 d1"
RUNS_FROM_B4 = ["b4 b5 b6", "b4 b5", "b4", "b5 b6", "b5", "b6"]


@pytest.mark.parametrize("loop, contiguity, expected", [
    ({}, "relaxed", []),
    ({"allow_combinations": True}, "relaxed", []),
    ({}, "any", RUNS_FROM_B4),
    ({"allow_combinations": True}, "any", RUNS_FROM_B4 + ["b4 b6"]),
])
def test_not_followed_by_after_one_or_more(workdir, loop, contiguity, expected):
    steps = [step("a", "a"), step("bs", "b", one_or_more=True, contiguity=contiguity, **loop),
             absent("no_c", "c"), step("d", "d")]
    assert sorted(run(workdir, steps, AFTER_LOOP)) == sorted(f"a1 {bs} d1" for bs in expected)


BEFORE_LOOP = "a1 b1 c1 b4 b5 b6 d1"
EAGER_AFTER_B1 = ["b1 b4 b5 b6", "b1 b4 b5", "b1 b4", "b1"]


@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("contiguity", ["relaxed", "any"])
@pytest.mark.parametrize("loop, expected", [
    ({}, EAGER_AFTER_B1),
    ({"allow_combinations": True},
     EAGER_AFTER_B1 + ["b1 b4 b6", "b1 b5 b6", "b1 b5", "b1 b6"]),
])
def test_not_followed_by_before_one_or_more(workdir, optional, contiguity, loop, expected):
    # the c kills every partial match that has not taken a b yet, so b1 is always the first
    steps = [step("a", "a"), absent("no_c", "c"),
             step("bs", "b", one_or_more=True, optional=optional, contiguity=contiguity, **loop),
             step("d", "d")]
    assert sorted(run(workdir, steps, BEFORE_LOOP)) == sorted(f"a1 {bs} d1" for bs in expected)


def test_not_followed_by_at_the_end_matches_once_the_window_closes(workdir):
    steps = [step("a", "a"), absent("no_b", "b")]
    outputs = run(workdir, steps, "a1 b1 a2 c1 b2 a3 b3", times=[1, 2, 4, 5, 10, 11, 13],
                  within="3ns")
    assert outputs == ["a2"]


def test_not_followed_by_before_zero_to_two_times_within(workdir):
    steps = [step("a", "a"), absent("no_b", "b"), step("c", "c", times=[0, 2])]
    outputs = run(workdir, steps, "a1 b1 a2 c1 c2 a3 c3 c4",
                  times=[1, 2, 10, 11, 12, 20, 21, 24], within="3ns")
    assert sorted(outputs) == ["a1", "a2", "a2 c1", "a2 c1 c2", "a3", "a3 c3"]


def test_not_followed_by_at_the_end_after_a_match_with_skip_past_last_event(workdir):
    steps = [step("a", "a", one_or_more=True, allow_combinations=True), step("c", "c"),
             absent("no_b", "b")]
    outputs = run(workdir, steps, "a1 a2 a3 c1 c2", times=[1, 2, 3, 4, 10], within="5ns",
                  skip="skip_past_last_event")
    assert outputs == ["a1 a2 a3 c1"]


def test_times_zero_to_zero_is_rejected(workdir):
    with pytest.raises(ConfigError, match="times must be"):
        run(workdir, [step("a", "a"), step("c", "c", times=[0, 0])], "a1 c1")


# -- quantifier combinations of cep.md -------------------------------------------------------------
RUN_OF_A = "c a1 a2 a3 a4 a5 b"


@pytest.mark.parametrize("quantifier, expected", [
    ({"times": [2, 4]}, ["c a1 a2 b", "c a1 a2 a3 b", "c a1 a2 a3 a4 b"]),
    ({"times": 4}, ["c a1 a2 a3 a4 b"]),
    ({"times": 4, "optional": True}, ["c a1 a2 a3 a4 b", "c b"]),
    ({"one_or_more": True}, ["c a1 b", "c a1 a2 b", "c a1 a2 a3 b", "c a1 a2 a3 a4 b",
                             "c a1 a2 a3 a4 a5 b"]),
    ({"one_or_more": True, "optional": True},
     ["c b", "c a1 b", "c a1 a2 b", "c a1 a2 a3 b", "c a1 a2 a3 a4 b", "c a1 a2 a3 a4 a5 b"]),
    ({"one_or_more": True, "optional": True, "greedy": True}, ["c a1 a2 a3 a4 a5 b"]),
    ({"times": 2, "one_or_more": True}, ["c a1 a2 b", "c a1 a2 a3 b", "c a1 a2 a3 a4 b",
                                         "c a1 a2 a3 a4 a5 b"]),
])
def test_quantifier_between_relaxed_steps(workdir, quantifier, expected):
    steps = [step("start", "c"), step("middle", "a", **quantifier), step("end", "b")]
    assert sorted(run(workdir, steps, RUN_OF_A)) == sorted(expected)


def test_greedy_times_range_takes_the_most_and_refuses_more(workdir):
    steps = [step("start", "c"), step("middle", "a", times=[2, 4], greedy=True),
             step("end", "b")]
    assert run(workdir, steps, "c a1 a2 a3 a4 b") == ["c a1 a2 a3 a4 b"]
    assert run(workdir, steps, "c a1 a2 a3 x1 b") == ["c a1 a2 a3 b"]
    # Flink's greedy also guards the next step's edges with "not an a": once the loop is full,
    # a fifth a can neither be taken nor ignored, and the partial match dies
    assert run(workdir, steps, RUN_OF_A) == []


@pytest.mark.parametrize("greedy", [False, True])
def test_times_range_as_the_whole_pattern_starts_at_every_event(workdir, greedy):
    # a last step decides nothing greedily: every length from each start is a match
    steps = [step("start", "a", times=[2, 4], greedy=greedy)]
    assert sorted(run(workdir, steps, "a1 a2 a3 a4 a5")) == sorted([
        "a1 a2", "a1 a2 a3", "a1 a2 a3 a4", "a2 a3", "a2 a3 a4", "a2 a3 a4 a5",
        "a3 a4", "a3 a4 a5", "a4 a5"])


def test_optional_times_with_too_few_events_matches_without_them(workdir):
    steps = [step("start", "c"), step("middle", "a", times=4, optional=True), step("end", "b")]
    assert run(workdir, steps, "c a1 a2 a3 b") == ["c b"]
