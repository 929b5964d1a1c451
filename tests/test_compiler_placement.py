"""Placement (`cep.compiler.placement`): which process hosts each node, and every problem of the
processes' parallelism, reported together with the pipeline's other problems."""
import textwrap

import pytest

import cep
from cep.compiler.assemble import node_plans
from cep.compiler.graph import build_graph
from cep.compiler.placement import GATEWAY_NICE, group, place
from cep.config import load_pipeline, pipeline_registry

MOMENTUM = "use: momentum, from: quotes, with: {count: 3, direction: up, quantity: 1}"

TWO_PROBLEMS = f"""\
    name: parallel
    sources:
      ticks: {{type: synthetic, count: 10}}
    streams:
      quotes: {{from: ticks, ops: [{{filter: "ask_price > bid_price"}}]}}
    rules:
      up: {{{MOMENTUM}, partition_by: instrument}}
      down: {{{MOMENTUM}, partition_by: bid_price}}
    sinks:
      out: {{type: "null", from: [up, down]}}
    deploy:
      quotes: {{parallelism: 2}}
      up: {{parallelism: 2, process: strat}}
      down: {{parallelism: 2, process: strat}}
    """


def placed(path):
    """`(processes, problems)` of the pipeline at `path`, from the placement step alone."""
    pipeline = load_pipeline(path)
    registry = pipeline_registry(pipeline)
    graph = build_graph(pipeline).graph
    return place(pipeline, graph, node_plans(pipeline, graph, registry), registry)


def test_two_independent_parallelism_problems_are_both_reported_at_their_keys(pipeline_file, problems_of):
    path = pipeline_file(TWO_PROBLEMS)
    found = problems_of(path)
    assert len(found) == 2, found
    unkeyed, mixed = found
    assert unkeyed.startswith(f'{path}:12:12: deploy "quotes": parallelism 2 needs a partition key'), unkeyed
    assert "key_by" in unkeyed
    assert mixed.startswith(f'{path}:14:26: process "strat": parallelism 2 needs one partition key, '
                            "found ['bid_price', 'instrument'] (up by instrument, down by bid_price)"), mixed
    assert "different processes" in mixed


def test_every_process_that_mixes_keys_is_reported(pipeline_file, problems_of):
    path = pipeline_file(f"""\
        name: parallel
        sources:
          ticks: {{type: synthetic, count: 10}}
        streams:
          quotes: {{from: ticks, ops: [{{filter: "ask_price > bid_price"}}]}}
        rules:
          up: {{{MOMENTUM}, partition_by: instrument}}
          down: {{{MOMENTUM}, partition_by: bid_price}}
          left: {{{MOMENTUM}, partition_by: instrument}}
          right: {{{MOMENTUM}, partition_by: ask_price}}
        sinks:
          out: {{type: "null", from: [up, down, left, right]}}
        deploy:
          up: {{parallelism: 2, process: strat}}
          down: {{parallelism: 2, process: strat}}
          left: {{parallelism: 3, process: other}}
          right: {{parallelism: 3, process: other}}
        """)
    found = problems_of(path)
    assert [line.split(": ", 2)[1] for line in found] == ['process "strat"', 'process "other"'], found
    assert [line.split(":")[1] for line in found] == ["15", "17"], found


def test_the_placement_step_returns_its_problems_beside_the_processes(pipeline_file):
    processes, problems = placed(pipeline_file(TWO_PROBLEMS))
    assert {p.name for p in processes} == {"gateway-ticks", "stream-quotes", "strat", "sink-out"}
    assert [problem.location.line for problem in problems] == [12, 14]


TWO_RULES = textwrap.dedent(f"""\
    name: p
    sources:
      ticks: {{type: synthetic, count: 10}}
    streams:
      quotes: {{from: ticks, ops: [{{filter: "ask_price > bid_price"}}]}}
    rules:
      up: {{{MOMENTUM}}}
      down: {{{MOMENTUM}}}
    sinks:
      out: {{type: "null", from: [up, down]}}
    """)


def test_rules_share_a_strategy_process_and_a_stateless_stream_is_fused_into_each_reader(pipeline_file):
    pipeline = load_pipeline(pipeline_file(TWO_RULES + '  raw: {type: "null", from: quotes}\n'))
    graph = build_graph(pipeline).graph
    assert group(pipeline, graph, node_plans(pipeline, graph, pipeline_registry(pipeline))) == {
        "gateway-ticks": ["ticks"], "strategy": ["quotes", "up", "down"], "sink-raw": ["quotes", "raw"],
        "sink-out": ["out"]}


@pytest.mark.parametrize("deploy, expected", [
    ("{up: {parallelism: 2}, down: {parallelism: 2}}", {"strategy-x2-instrument": 2}),
    ("{up: {parallelism: 2}, down: {parallelism: 3}}", {"strategy-x2-instrument": 2, "strategy-x3-instrument": 3}),
])
def test_parallel_rules_are_grouped_by_parallelism_and_key(pipeline_file, deploy, expected):
    processes, problems = placed(pipeline_file(TWO_RULES + f"deploy: {deploy}\n"))
    assert problems == []
    parallel = {p.name: p.parallelism for p in processes if p.parallelism > 1}
    assert parallel == expected
    assert {p.partition_key for p in processes if p.parallelism > 1} == {"instrument"}


def test_a_replay_gateway_runs_nicer_than_the_rest(pipeline_file):
    processes, _ = placed(pipeline_file(f"""\
        name: p
        sources:
          ticks: {{type: synthetic, count: 10}}
        sinks:
          out: {{type: "null", from: ticks}}
        """))
    assert {p.name: p.nice for p in processes} == {"gateway-ticks": GATEWAY_NICE, "sink-out": 0}


def test_cep_compile_places_as_the_step_does(pipeline_file):
    path = pipeline_file(TWO_PROBLEMS.replace("partition_by: bid_price", "partition_by: instrument")
                          .replace("quotes: {parallelism: 2}", "quotes: {parallelism: 1}"))
    plan = cep.compile(path)
    processes, problems = placed(path)
    assert problems == [] and plan.processes == tuple(processes)
