"""Property tests: the matcher against brute-force references over random small sequences."""
from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from cep.components.patterns.matcher import Matcher
from cep.components.patterns.model import Pattern, Step

FAST = settings(max_examples=60, deadline=None)
letters = st.lists(st.sampled_from("abc"), max_size=9)


def is_(letter):
    return lambda event, view: event["name"] == letter


def feed_all(pattern, names, times=None, key="k"):
    matcher = Matcher(pattern)
    found = []
    for i, name in enumerate(names):
        found += matcher.feed(key, {"timestamp": times[i] if times else i, "name": name, "i": i})
    return found + matcher.finish()


def positions(match) -> tuple[int, ...]:
    return tuple(e["i"] for events in match.values() for e in events)


def a_then_b(contiguity, **pattern):
    return Pattern((Step("a", is_("a")), Step("b", is_("b"), contiguity=contiguity)), **pattern)


@FAST
@given(letters)
def test_strict_a_b_is_every_adjacent_pair(names):
    expected = [(i, i + 1) for i in range(len(names) - 1) if names[i:i + 2] == ["a", "b"]]
    assert [positions(m) for m in feed_all(a_then_b("strict"), names)] == expected


@FAST
@given(letters)
def test_relaxed_a_b_pairs_each_a_with_the_first_b_after_it(names):
    expected = set()
    for i, name in enumerate(names):
        if name == "a":
            later = [j for j in range(i + 1, len(names)) if names[j] == "b"]
            if later:
                expected.add((i, later[0]))
    assert {positions(m) for m in feed_all(a_then_b("relaxed"), names)} == expected


@FAST
@given(letters)
def test_any_a_b_is_every_ordered_pair(names):
    expected = sorted((i, j) for i, j in combinations(range(len(names)), 2)
                      if names[i] == "a" and names[j] == "b")
    assert sorted(positions(m) for m in feed_all(a_then_b("any"), names)) == expected


@FAST
@given(letters)
def test_any_loop_is_every_subsequence(names):
    pattern = Pattern((Step("a", is_("a")),
                       Step("b", is_("b"), one_or_more=True, allow_combinations=True,
                            contiguity="any"),
                       Step("c", is_("c"), contiguity="any")))
    expected = []
    for i, j in combinations(range(len(names)), 2):
        if names[i] == "a" and names[j] == "c":
            bs = [k for k in range(i + 1, j) if names[k] == "b"]
            for size in range(1, len(bs) + 1):
                expected += [(i, *chosen, j) for chosen in combinations(bs, size)]
    assert sorted(positions(m) for m in feed_all(pattern, names)) == sorted(expected)


@FAST
@given(letters)
def test_relaxed_loop_takes_consecutive_bs_then_the_first_c(names):
    # a -> b+ followedByAny, relaxed inside the loop, -> c followedBy: a run may start at any b
    # after its a, then takes every following b (skipping only non-b events) as long as it
    # likes, and ends at the first c after its last b
    pattern = Pattern((Step("a", is_("a")),
                       Step("b", is_("b"), one_or_more=True, contiguity="any"),
                       Step("c", is_("c"))))
    expected = []
    for i, name in enumerate(names):
        if name != "a":
            continue
        bs = [k for k in range(i + 1, len(names)) if names[k] == "b"]
        for first in range(len(bs)):
            for last in range(first, len(bs)):
                cs = [j for j in range(bs[last] + 1, len(names)) if names[j] == "c"]
                if cs:
                    expected.append((i, *bs[first:last + 1], cs[0]))
    assert sorted(positions(m) for m in feed_all(pattern, names)) == sorted(expected)


@FAST
@given(letters)
def test_skip_past_last_event_matches_never_overlap(names):
    pattern = Pattern((Step("a", is_("a"), one_or_more=True), Step("b", is_("b"), contiguity="any")),
                      skip="skip_past_last_event")
    spans = [positions(m) for m in feed_all(pattern, names)]
    for earlier, later in zip(spans, spans[1:]):
        assert max(earlier) < min(later)


@FAST
@given(letters, st.lists(st.integers(0, 4), min_size=9, max_size=9), st.integers(1, 8))
def test_within_never_yields_a_longer_match(names, gaps, within):
    times = [sum(gaps[:i + 1]) for i in range(len(names))]
    pattern = a_then_b("any", within_ns=within)
    found = feed_all(pattern, names, times)
    for match in found:
        span = [times[i] for i in positions(match)]
        assert span[-1] - span[0] < within
    expected = sorted((i, j) for i, j in combinations(range(len(names)), 2)
                      if names[i] == "a" and names[j] == "b" and times[j] - times[i] < within)
    assert sorted(positions(m) for m in found) == expected


@FAST
@given(st.lists(st.tuples(st.sampled_from("xy"), st.sampled_from("abc")), max_size=14),
       st.sampled_from(["no_skip", "skip_to_next", "skip_past_last_event"]))
def test_key_partitions_are_independent(tagged, skip):
    pattern = Pattern((Step("a", is_("a")), Step("b", is_("b"), one_or_more=True,
                                                 contiguity="any")), skip=skip)
    together = Matcher(pattern)
    interleaved = {"x": [], "y": []}
    for i, (key, name) in enumerate(tagged):
        for match in together.feed(key, {"timestamp": i, "name": name, "i": i}):
            interleaved[match.key].append(positions(match))
    for match in together.finish():
        interleaved[match.key].append(positions(match))
    for key in "xy":
        alone = Matcher(pattern)
        own = []
        for i, (k, name) in enumerate(tagged):
            if k == key:
                own += [positions(m) for m in alone.feed(key, {"timestamp": i, "name": name,
                                                                "i": i})]
        own += [positions(m) for m in alone.finish()]
        assert interleaved[key] == own


@FAST
@given(letters, st.integers(1, 4))
def test_partial_match_cap_discards_and_counts(names, cap):
    matcher = Matcher(Pattern((Step("a", is_("a")), Step("b", is_("b")))), max_partials=cap)
    found = 0
    waiting = discarded = completed = 0
    for i, name in enumerate(names):
        found += len(matcher.feed("k", {"timestamp": i, "name": name}))
        if name == "a":
            if waiting < cap:
                waiting += 1
            else:
                discarded += 1
        elif name == "b":
            completed, waiting = completed + waiting, 0
        assert matcher.partial_count("k") == waiting
    assert matcher.counters["discarded"] == discarded
    assert found == completed
