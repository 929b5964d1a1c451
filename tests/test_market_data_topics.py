"""Market data topics: one topic unless a consumer is partitioned by instrument; then a topic per
partition among the least common multiple of those consumers' parallelism."""
import json

from hypothesis import given
from hypothesis import strategies as st

import cep
from cep.partition import partition_of
from cep.runtime.transport import topic_owner

PIPELINE = """
version: 1
name: topics
sources:
  ticks: {{type: synthetic, instruments: 40, seed: 5, count: 4000, speed: max}}
rules:
  two: {{use: momentum, from: ticks, with: {{count: 2, direction: both, quantity: 1}}}}
  three: {{use: momentum, from: ticks, with: {{count: 3, direction: both, quantity: 1}}}}
sinks:
  out_two: {{type: jsonl, from: [two], path: out/two.jsonl}}
  out_three: {{type: jsonl, from: [three], path: out/three.jsonl}}
{deploy}
"""


def compile_with(workdir, deploy=""):
    path = workdir / "p.yaml"
    path.write_text(PIPELINE.format(deploy=deploy))
    return cep.compile(path)


def market_data_edges(plan):
    return [(edge.consumer, edge.topic, edge.topic_partitions) for edge in plan.edges if edge.pattern == "pub/sub"]


def signal_ids(workdir, name):
    with open(workdir / "out" / f"{name}.jsonl") as file:
        return sorted(json.loads(line)["signal_id"] for line in file)


def test_without_a_partitioned_consumer_market_data_has_one_topic(workdir):
    assert market_data_edges(compile_with(workdir)) == [("strategy", "TICK.*", 1)]


def test_consumers_of_2_and_3_workers_share_6_topics_and_each_worker_gets_its_instruments(workdir):
    plan = compile_with(workdir, "deploy: {two: {parallelism: 2}, three: {parallelism: 3}}")
    assert sorted(market_data_edges(plan)) == [("strategy-x2-instrument", "TICK.0..5", 6),
                                               ("strategy-x3-instrument", "TICK.0..5", 6)]
    cep.run(plan, inline=True)
    inline = {name: signal_ids(workdir, name) for name in ("two", "three")}
    status = cep.run(plan)
    assert status.restarts == {}
    assert inline["two"] and inline["three"]
    assert {name: signal_ids(workdir, name) for name in ("two", "three")} == inline


@given(st.text(max_size=12), st.sampled_from([(2, 2), (2, 6), (3, 6), (4, 12), (3, 3)]))
def test_the_worker_that_owns_a_topic_owns_the_keys_published_under_it(key, workers_and_topics):
    workers, topic_partitions = workers_and_topics
    topic = f"TICK.{partition_of(key, topic_partitions)}".encode()  # as PubOutlet names it
    assert topic_owner(topic, workers) == partition_of(key, workers)


def test_other_topics_have_no_owner():
    assert topic_owner(b"TICK.*", 2) is None and topic_owner(b"!END", 2) is None
