"""Shared buffer, MatchView and validation of the pattern engine."""
from __future__ import annotations

import gc
import weakref

import pytest

from cep.components.patterns.buffer import events_by_step, extend, first_seq
from cep.components.patterns.matcher import Matcher
from cep.components.patterns.model import Pattern, Step, validate_pattern
from cep.components.patterns.view import MatchView
from cep.errors import ConfigError


class Event(dict):
    """A dict that can be weakly referenced, to watch when the buffer lets go of it."""


def is_(letter):
    return lambda event, view: event["name"] == letter


# -- shared buffer ------------------------------------------------------------------------------
def test_runs_share_their_prefix_nodes():
    root = extend(None, 0, {"n": 1}, 0)
    left, right = extend(root, 1, {"n": 2}, 1), extend(root, 1, {"n": 3}, 2)
    assert left[3] is right[3] is root
    assert events_by_step(left) == {0: [{"n": 1}], 1: [{"n": 2}]}
    assert first_seq(right) == 0


def test_buffer_releases_events_when_their_runs_die():
    matcher = Matcher(Pattern((Step("a", is_("a")), Step("b", is_("b"), contiguity="any")),
                              within_ns=10))
    first = Event(timestamp=0, name="a")
    watch = weakref.ref(first)
    matcher.feed("k", first)
    del first
    gc.collect()
    assert watch() is not None, "a waiting run keeps its event"
    matcher.feed("k", Event(timestamp=20, name="x"))  # the run times out
    gc.collect()
    assert watch() is None
    assert matcher.partial_count() == 0


def test_any_contiguity_branches_share_one_buffer_node_per_event():
    matcher = Matcher(Pattern((Step("a", is_("a")), Step("b", is_("b"), contiguity="any"),
                               Step("c", is_("c"), contiguity="any"))))
    for i, name in enumerate("abbb"):
        matcher.feed("k", {"timestamp": i, "name": name})
    runs = matcher._keys["k"].runs
    a_nodes = {id(node[3]) for _, node, _, _ in runs if node[0] == 1}
    assert len(runs) == 4 and len(a_nodes) == 1  # 3 branches at c + the a waiting for more b's


# -- MatchView ----------------------------------------------------------------------------------
def test_match_view_binds_prev_and_earlier_steps_in_order():
    index = {"dip": (0, False), "up": (1, True)}
    dip, up1, up2 = {"mid": 1}, {"mid": 2}, {"mid": 3}
    node = extend(extend(extend(None, 0, dip, 0), 1, up1, 1), 1, up2, 2)
    view = MatchView(node, 1, index)
    assert view.prev is up2
    assert view.bind(("prev", "dip", "up")) == (up2, dip, [up1, up2])
    assert MatchView(node, 2, index).prev is None
    assert MatchView(extend(None, 0, dip, 0), 1, index)["up"] == []


def test_condition_sees_prev_within_its_looping_step():
    rising = Step("up", lambda e, v: v.prev is None or e["mid"] > v.prev["mid"], times=3,
                  consecutive=True)
    matcher = Matcher(Pattern((rising,), skip="skip_past_last_event"))
    found = []
    for i, mid in enumerate([5, 1, 2, 3, 2, 4]):
        found += matcher.feed("k", {"timestamp": i, "mid": mid})
    assert [[e["mid"] for e in m["up"]] for m in found] == [[1, 2, 3]]


# -- validation ---------------------------------------------------------------------------------
def problems(*steps, **pattern):
    return [(p.severity, p.message) for p in validate_pattern(Pattern(tuple(steps), **pattern))]


def errors(*steps, **pattern):
    return [m for s, m in problems(*steps, **pattern) if s == "error"]


def test_trailing_not_followed_by_needs_within():
    steps = (Step("a"), Step("b", negated=True))
    assert any("no within" in m for m in errors(*steps))
    assert errors(*steps, within_ns=10) == []
    assert errors(Step("a"), Step("b", negated=True, contiguity="strict")) == []


def test_negated_step_cannot_follow_an_optional_one():
    assert any("cannot follow an optional" in m
               for m in errors(Step("a"), Step("o", optional=True), Step("n", negated=True),
                               Step("c")))


def test_flink_rejections_are_all_reported_at_once():
    found = errors(Step("a", negated=True), Step("a", greedy=True), Step("u", until=is_("x")),
                   Step("t", times=(3, 2)), skip=("skip_to_last", "zz"))
    assert len(found) == 6, found


def test_unbounded_pattern_without_within_is_a_warning():
    warned = problems(Step("a"), Step("b"))
    assert [s for s, _ in warned] == ["warning"]
    assert problems(Step("a"), Step("b"), within_ns=5) == []
    assert problems(Step("a"), Step("b", contiguity="strict")) == []


def test_matcher_refuses_an_invalid_pattern_with_every_problem():
    with pytest.raises(ConfigError) as raised:
        Matcher(Pattern((Step("a"), Step("a"), Step("b", negated=True))))
    assert len(raised.value.problems) == 2
