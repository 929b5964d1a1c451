"""Every worked example of Flink CEP's documentation (docs/libs/cep.md), reproduced.

Events are named like the doc's ("b1" is a `b`); a step's condition tests the first letter(s).
Results are written as the doc writes them: the events of a match, space-separated.
"""
from __future__ import annotations

import pytest

from cep.components.patterns.matcher import Matcher
from cep.components.patterns.model import Pattern, Step


def named(prefix: str):
    return lambda event, view: event["name"].startswith(prefix)


def events(names: str, times: list[int] | None = None) -> list[dict]:
    return [{"timestamp": times[i] if times else i, "name": name}
            for i, name in enumerate(names.split())]


def run(steps, sequence: str, times=None, advance_to=None, **pattern) -> list[str]:
    matcher = Matcher(Pattern(tuple(steps), **pattern))
    found = []
    for event in events(sequence, times):
        found += matcher.feed("key", event)
    if advance_to is not None:
        found += matcher.advance_time(advance_to)
    found += matcher.finish()
    return [" ".join(e["name"] for step_events in m.values() for e in step_events)
            for m in found]


A, B, C, D = named("a"), named("b"), named("c"), named("d")


# -- contiguity between steps: pattern "a b" over "a", "c", "b1", "b2" -----------------------
def test_contiguity_strict_next_discards_a_after_c():
    assert run([Step("a", A), Step("b", B, contiguity="strict")], "a c b1 b2") == []


def test_contiguity_relaxed_followed_by_takes_first_b():
    assert run([Step("a", A), Step("b", B, contiguity="relaxed")], "a c b1 b2") == ["a b1"]


def test_contiguity_any_followed_by_any_takes_every_b():
    assert run([Step("a", A), Step("b", B, contiguity="any")], "a c b1 b2") == ["a b1", "a b2"]


# -- contiguity inside a loop: "a b+ c" over a b1 d1 b2 d2 b3 c, a -> b followedByAny ---------
LOOP_INPUT = "a b1 d1 b2 d2 b3 c"


def loop_steps(c_contiguity="relaxed", **inner):
    return [Step("a", A), Step("b", B, one_or_more=True, contiguity="any", **inner),
            Step("c", C, contiguity=c_contiguity)]


def test_loop_strict_consecutive():
    # The doc's `{a b3 c}` holds when c follows strictly (next): "the d1 after b1 causes b1 to be
    # discarded". With c followedBy, Flink's automaton also keeps {a b1 c} and {a b2 c}, since
    # the relaxed c step skips the d's.
    assert run(loop_steps("strict", consecutive=True), LOOP_INPUT) == ["a b3 c"]
    assert sorted(run(loop_steps(consecutive=True), LOOP_INPUT)) == \
        ["a b1 c", "a b2 c", "a b3 c"]


def test_loop_relaxed_default():
    assert sorted(run(loop_steps(), LOOP_INPUT)) == sorted(
        ["a b1 c", "a b1 b2 c", "a b1 b2 b3 c", "a b2 c", "a b2 b3 c", "a b3 c"])


def test_loop_any_allow_combinations():
    assert sorted(run(loop_steps(allow_combinations=True), LOOP_INPUT)) == sorted(
        ["a b1 c", "a b1 b2 c", "a b1 b3 c", "a b1 b2 b3 c", "a b2 c", "a b2 b3 c", "a b3 c"])


# -- consecutive() and allowCombinations(): "C D A1 A2 A3 D A4 B" ------------------------------
CDA_INPUT = "C D A1 A2 A3 D A4 B"


def cda_steps(**inner):
    return [Step("start", named("C")), Step("middle", named("A"), one_or_more=True, **inner),
            Step("end1", named("B"))]


def test_consecutive_example():
    assert sorted(run(cda_steps(consecutive=True), CDA_INPUT)) == \
        ["C A1 A2 A3 B", "C A1 A2 B", "C A1 B"]


def test_without_consecutive_example():
    assert sorted(run(cda_steps(), CDA_INPUT)) == \
        ["C A1 A2 A3 A4 B", "C A1 A2 A3 B", "C A1 A2 B", "C A1 B"]


def test_allow_combinations_example():
    expected = ["C A1 B", "C A1 A2 B", "C A1 A3 B", "C A1 A4 B", "C A1 A2 A3 B", "C A1 A2 A4 B",
                "C A1 A3 A4 B", "C A1 A2 A3 A4 B", "C A2 B", "C A2 A3 B", "C A2 A4 B",
                "C A2 A3 A4 B", "C A3 B", "C A3 A4 B", "C A4 B"]
    # The doc's list includes C A2.., C A3.., C A4..: those need the step after C to be
    # followedByAny; with the doc's followedBy, Flink's automaton takes A1 first, which leaves
    # exactly the eight A1-started combinations.
    assert sorted(run(cda_steps(allow_combinations=True, contiguity="any"), CDA_INPUT)) == \
        sorted(expected)
    assert sorted(run(cda_steps(allow_combinations=True), CDA_INPUT)) == \
        sorted(m for m in expected if m.startswith("C A1"))


# -- until: "(a+ until b)" over a1 c a2 b a3 -------------------------------------------------
def test_until_stops_the_loop():
    found = run([Step("a", A, one_or_more=True, until=B)], "a1 c a2 b a3")
    assert sorted(found) == sorted(["a1 a2", "a1", "a2", "a3"])


# -- after-match skip strategies: "b+ c" over b1 b2 b3 c --------------------------------------
SKIP_TABLE = {
    "no_skip": ["b1 b2 b3 c", "b2 b3 c", "b3 c"],
    "skip_to_next": ["b1 b2 b3 c", "b2 b3 c", "b3 c"],
    "skip_past_last_event": ["b1 b2 b3 c"],
    ("skip_to_first", "b"): ["b1 b2 b3 c", "b2 b3 c", "b3 c"],
    ("skip_to_last", "b"): ["b1 b2 b3 c", "b3 c"],
}


@pytest.mark.parametrize("skip", list(SKIP_TABLE), ids=str)
def test_skip_strategy_table_b_plus_c(skip):
    # the table's results are those of a greedy b+ (as "b1 b2 b3 c" is the only match from b1)
    steps = [Step("b", B, one_or_more=True, greedy=True), Step("c", C)]
    assert run(steps, "b1 b2 b3 c", skip=skip) == SKIP_TABLE[skip]


def test_skip_strategy_table_holds_with_strict_c_too():
    steps = [Step("b", B, one_or_more=True), Step("c", C, contiguity="strict")]
    for skip, expected in SKIP_TABLE.items():
        assert run(steps, "b1 b2 b3 c", skip=skip) == expected, skip


def test_skip_to_first_versus_no_skip_greedy_example():
    abc = lambda event, view: event["name"][0] in "abc"  # noqa: E731
    bc = lambda event, view: event["name"][0] in "bc"  # noqa: E731
    steps = [Step("a", abc), Step("b", bc), Step("c", C, one_or_more=True, greedy=True),
             Step("d", D)]
    assert run(steps, "a b c1 c2 c3 d") == ["a b c1 c2 c3 d", "b c1 c2 c3 d", "c1 c2 c3 d"]
    assert run(steps, "a b c1 c2 c3 d", skip=("skip_to_first", "c")) == \
        ["a b c1 c2 c3 d", "c1 c2 c3 d"]


def test_skip_to_next_versus_no_skip_a_b_plus():
    steps = [Step("a", A), Step("b", B, one_or_more=True)]
    assert run(steps, "a b1 b2 b3") == ["a b1", "a b1 b2", "a b1 b2 b3"]
    assert run(steps, "a b1 b2 b3", skip="skip_to_next") == ["a b1"]


def test_skip_to_first_string_form_is_read_like_the_tuple():
    steps = [Step("b", B, one_or_more=True, greedy=True), Step("c", C)]
    assert run(steps, "b1 b2 b3 c", skip="skip_to_last:b") == ["b1 b2 b3 c", "b3 c"]


# -- quantifiers ------------------------------------------------------------------------------
def test_times_exact_relaxed_inside():
    assert run([Step("a", A, times=2), Step("c", C)], "a1 x a2 a3 c") == \
        ["a1 a2 c", "a2 a3 c"]


def test_times_range():
    assert sorted(run([Step("a", A, times=(2, 3)), Step("c", C)], "a1 a2 a3 a4 c")) == \
        sorted(["a1 a2 a3 c", "a1 a2 c", "a2 a3 a4 c", "a2 a3 c", "a3 a4 c"])


def test_times_range_greedy_repeats_as_many_as_possible():
    found = run([Step("a", A, times=(2, 3), greedy=True), Step("c", C)], "a1 a2 a3 c")
    assert found == ["a1 a2 a3 c", "a2 a3 c"]


def test_optional_step_may_bind_nothing():
    steps = [Step("s", named("s")), Step("a", A, optional=True), Step("c", C)]
    assert run(steps, "s a1 c") == ["s a1 c", "s c"]


def test_times_optional_is_zero_or_n():
    steps = [Step("s", named("s")), Step("a", A, times=2, optional=True), Step("c", C)]
    assert run(steps, "s a1 a2 c") == ["s a1 a2 c", "s c"]
    assert run(steps, "s a1 c") == ["s c"]


def test_one_or_more_optional_greedy_takes_all_before_the_next_step():
    steps = [Step("s", named("s")), Step("a", A, one_or_more=True, optional=True, greedy=True),
             Step("c", C)]
    assert run(steps, "s a1 a2 c") == ["s a1 a2 c"]


def test_times_or_more():
    steps = [Step("a", A, times=2, one_or_more=True, consecutive=True), Step("c", C)]
    assert sorted(run(steps, "a1 a2 a3 c")) == sorted(["a1 a2 a3 c", "a1 a2 c", "a2 a3 c"])


# -- negation ---------------------------------------------------------------------------------
def test_not_next_forbids_the_directly_following_event():
    steps = [Step("a", A), Step("b", B, negated=True, contiguity="strict"), Step("c", C)]
    assert run(steps, "a b c") == []
    assert run(steps, "a x c") == ["a c"]
    assert run(steps, "a x b c") == ["a c"]  # b is not directly after a


def test_not_followed_by_forbids_the_event_anywhere_before_the_next_step():
    steps = [Step("a", A), Step("b", B, negated=True), Step("c", C)]
    assert run(steps, "a x b c") == []
    assert run(steps, "a x c b") == ["a c"]


def test_trailing_not_next_emits_when_the_next_event_is_not_forbidden():
    steps = [Step("a", A), Step("b", B, negated=True, contiguity="strict")]
    assert run(steps, "a1 b a2 x a3") == ["a2"]


def test_trailing_not_followed_by_emits_when_the_window_closes():
    steps = [Step("start", A), Step("end", B, negated=True)]
    # a1 is killed by b inside its window; a3's window closes at 30 with no b
    assert run(steps, "a1 x b a3 y", times=[0, 1, 6, 20, 25], advance_to=30, within_ns=10) == \
        ["a3"]
    assert run(steps, "a1 x", times=[0, 1], advance_to=5, within_ns=10) == ["a1"]  # at finish


def test_trailing_not_followed_by_released_by_a_later_event_of_the_key():
    matcher = Matcher(Pattern((Step("a", A), Step("b", B, negated=True)), within_ns=10))
    assert matcher.feed("k", {"timestamp": 0, "name": "a1"}) == []
    assert matcher.feed("k", {"timestamp": 9, "name": "x"}) == []
    released = matcher.feed("k", {"timestamp": 10, "name": "x"})
    assert [[e["name"] for e in m["a"]] for m in released] == [["a1"]]


def test_not_followed_by_between_optional_nots_is_cleared_by_taking_the_optional():
    # Flink's NFACompiler example: a !b c? d  -> {a c b d} matches, {a b d} does not
    steps = [Step("a", A), Step("b", B, negated=True), Step("c", C, optional=True, contiguity="any"),
             Step("d", D, contiguity="any")]
    assert run(steps, "a c b d") == ["a c d"]
    assert run(steps, "a b d") == []


# -- within -----------------------------------------------------------------------------------
def test_within_prunes_partial_matches_older_than_the_window():
    matcher = Matcher(Pattern((Step("a", A), Step("c", C)), within_ns=10))
    found = []
    for event in events("a1 a2 c", [0, 5, 10]):
        found += matcher.feed("k", event)
    assert [[e["name"] for e in m["a"]] for m in found] == [["a2"]]
    assert matcher.counters["timed_out"] == 1


def test_within_example_error_then_critical():
    steps = [Step("start"), Step("middle", named("error"), contiguity="strict"),
             Step("end", named("critical"))]
    found = run(steps, "x error y critical", times=[0, 1, 5, 9], within_ns=10)
    assert found == ["x error critical"]
    assert run(steps, "x error y critical", times=[0, 1, 5, 10], within_ns=10) == []
