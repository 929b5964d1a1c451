"""Delivery in one place: the `Delivery` type (`cep.plan`) and what the compiler derives from it
(`cep.compiler.guarantees`): the guarantee each part of the pipeline must give, propagated back
from the sinks, and the components refused for it."""
import json

import msgpack
import pytest

import cep
from cep.compiler.graph import build_graph
from cep.compiler.guarantees import check_guarantees, delivery_wanted
from cep.config import load_pipeline, pipeline_registry
from cep.plan import Delivery, EdgePlan


def test_a_delivery_reads_and_serialises_as_its_name():
    """The plan travels to workers and into `cep graph --format json` and `--summary-json` as
    plain strings: the type must not change a byte of them."""
    mode = Delivery.AT_LEAST_ONCE
    assert mode == "at_least_once" and f"{mode}" == "at_least_once" and type(str(mode)) is str
    assert json.dumps({"delivery": mode}) == '{"delivery": "at_least_once"}'
    assert msgpack.packb(mode) == msgpack.packb("at_least_once")
    assert Delivery("exactly_once") is Delivery.EXACTLY_ONCE


@pytest.mark.parametrize("mode, reliable, checkpoints", [
    (Delivery.AT_MOST_ONCE, False, False),
    (Delivery.AT_LEAST_ONCE, True, False),
    (Delivery.EXACTLY_ONCE, True, True),
])
def test_what_each_mode_asks_of_an_edge(mode, reliable, checkpoints):
    assert (mode.reliable, mode.checkpoints, mode.removes_duplicates) == (reliable, checkpoints, checkpoints)


def test_the_strongest_mode_wins_whatever_the_order():
    assert Delivery.strongest(["at_most_once", Delivery.EXACTLY_ONCE, "at_least_once"]) is Delivery.EXACTLY_ONCE
    assert Delivery.strongest([Delivery.AT_MOST_ONCE]) is Delivery.AT_MOST_ONCE
    assert Delivery.strongest(["at_least_once"]) is Delivery.AT_LEAST_ONCE  # a model updated by name


def test_an_edge_plan_takes_its_delivery_by_name():
    edge = EdgePlan(id="a->b", node="a", producer="p", consumer="c", pattern="push/pull", endpoints=(),
                    topic="a", delivery="at_least_once", backpressure="block")
    assert edge.delivery is Delivery.AT_LEAST_ONCE
    with pytest.raises(ValueError):
        EdgePlan(id="a->b", node="a", producer="p", consumer="c", pattern="push/pull", endpoints=(),
                 topic="a", delivery="twice", backpressure="block")


TWO_SINKS = """\
    name: two-sinks
    sources:
      ticks: {type: synthetic, count: 10}
    streams:
      quotes: {from: ticks, ops: [{filter: "ask_price > bid_price"}]}
    rules:
      up: {use: momentum, from: quotes, with: {count: 3, direction: up, quantity: 1}}
    sinks:
      signals: {type: SIGNALS, from: up, delivery: DELIVERY}
      raw: {type: "null", from: ticks}
    """


def loaded(pipeline_file, delivery: str, sink: str = "\"null\""):
    pipeline = load_pipeline(pipeline_file(TWO_SINKS.replace("DELIVERY", delivery).replace("SIGNALS", sink)))
    return pipeline, build_graph(pipeline).graph, pipeline_registry(pipeline)


def test_delivery_is_propagated_back_from_each_sink(pipeline_file):
    pipeline, graph, _ = loaded(pipeline_file, "at_least_once")
    wanted = {node: delivery_wanted(pipeline, graph, [node]) for node in graph}
    assert wanted == {"ticks": "at_least_once", "quotes": "at_least_once", "up": "at_least_once",
                      "signals": "at_least_once", "raw": "at_most_once"}
    assert delivery_wanted(pipeline, graph, ["raw", "up"]) is Delivery.AT_LEAST_ONCE


def test_the_default_applies_where_no_sink_asks_for_more(pipeline_file):
    pipeline, graph, _ = loaded(pipeline_file, "at_most_once")
    assert {delivery_wanted(pipeline, graph, [node]) for node in graph} == {Delivery.AT_MOST_ONCE}


def test_a_sink_that_cannot_undo_its_effects_is_refused_under_exactly_once(pipeline_file):
    pipeline, graph, registry = loaded(pipeline_file, "exactly_once", sink="stdout")
    [problem] = check_guarantees(pipeline, graph, registry)
    assert problem.message == ('sink "signals": stdout has effects it cannot undo (no checkpoint hook); '
                               "exactly_once needs it checkpointed")
    assert problem.location.line == 9 and "at_least_once" in problem.hint


def test_nothing_is_refused_below_exactly_once(pipeline_file):
    pipeline, graph, registry = loaded(pipeline_file, "at_least_once", sink="stdout")
    assert check_guarantees(pipeline, graph, registry) == []


def test_a_reliable_edge_blocks_whatever_backpressure_says(pipeline_file):
    text = TWO_SINKS.replace("DELIVERY", "at_least_once").replace("SIGNALS", "\"null\"")
    plan = cep.compile(pipeline_file(text.replace("count: 10}", "count: 10, backpressure: drop}")))
    by_node = {edge.node: edge for edge in plan.edges}
    assert (by_node["up"].delivery, by_node["up"].backpressure) == ("at_least_once", "block")
    assert by_node["up"].acks
    raw = next(edge for edge in plan.edges if edge.consumer == "sink-raw")
    assert (raw.delivery, raw.backpressure, raw.acks) == ("at_most_once", "drop", ())
