"""Pipelines whose edges are NATS JetStream subjects (`transport: {kind: nats}`), against a real
nats-server: the same output as the inline run in every delivery mode, and under exactly_once
whichever process is SIGKILLed mid-run (the kill tests of the ZeroMQ edges, over NATS)."""
import pytest

import cep
from cep import codec
from cep.jetstream.client import NatsConnection, close, connect, loop
from cep.jetstream.publish import PublishFailed
from cep.runtime.transport import jetstream
from tests.support import KillOnce, inline_then_killed, kill_at, signal_ids, wait_for
from tests.natsserver import FailingPublishes, nats_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

PIPELINE = """
version: 1
name: nats-{name}
transport: {{kind: nats, url: "{url}"}}
defaults: {{delivery: {delivery}}}
sources:
  ticks: {{type: {source}}}
streams:
  quotes:
    from: ticks
    ops: [{{filter: "ask_price > bid_price"}}]
rules:
  up3: {{use: momentum, from: quotes, with: {{count: 3, direction: both, quantity: 1}}}}
  dip: {{from: quotes, within: 1s, pattern: [{{name: low, where: "bid_volume > ask_volume"}},
                                             {{name: high, where: "ask_volume > bid_volume"}}],
        emit: {{action: BUY, trigger_price: "high.ask_price", quantity: 1}}}}
sinks:
  signals: {{type: jsonl, from: [up3, dip], path: out/signals.jsonl}}
"""
QUICK = "synthetic, instruments: 2, seed: 8, count: 6000"
REALTIME = "synthetic, instruments: 2, seed: 8, count: 6000, rate: 3000, speed: realtime"


def write(workdir, name, url, delivery, source=QUICK):
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(name=name, url=url, delivery=delivery, source=source))
    return path


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once", "exactly_once"])
def test_a_pipeline_over_nats_gives_the_inline_output(workdir, nats_server, delivery):
    plan = cep.compile(write(workdir, delivery, nats_server.url, delivery))
    assert all(edge.subject for edge in plan.edges)
    cep.run(plan, inline=True)
    inline = sorted(signal_ids(workdir))  # two rules' edges into the sink: their interleaving varies
    status = cep.run(plan)
    assert sorted(signal_ids(workdir)) == inline and inline
    assert status.nodes()["signals"].received == len(inline)
    again = cep.run(plan)  # a second run reads its own messages only, not the first run's
    assert sorted(signal_ids(workdir)) == inline and again.nodes()["signals"].received == len(inline)


@pytest.mark.parametrize("victim", ["strategy", "sink-signals", "gateway-ticks"])
def test_exactly_once_over_nats_killing_any_process_changes_nothing(workdir, nats_server, victim):
    plan = cep.compile(write(workdir, victim.split("-")[0], nats_server.url, "exactly_once", REALTIME))
    kill = KillOnce(victim, "signals", after=200)
    inline, status = inline_then_killed(plan, lambda: sorted(signal_ids(workdir)), kill)
    assert kill.pid, "the sink never received 200 signals"
    assert status.restarts == {victim: 1}
    assert sorted(signal_ids(workdir)) == inline


@pytest.mark.parametrize("victim", ["sink-signals", "gateway-ticks"])
def test_at_least_once_over_nats_killing_a_process_loses_nothing(workdir, nats_server, victim):
    plan = cep.compile(write(workdir, victim.split("-")[0], nats_server.url, "at_least_once", REALTIME))
    kill = KillOnce(victim, "signals", after=200)
    inline, status = inline_then_killed(plan, lambda: set(signal_ids(workdir)), kill)
    assert kill.pid and status.restarts == {victim: 1}
    assert set(signal_ids(workdir)) >= inline


PARALLEL = """
version: 1
name: nats-parallel-{delivery}
transport: {{kind: nats, url: "{url}"}}
defaults: {{delivery: {delivery}}}
sources:
  ticks: {{type: synthetic, instruments: 4, seed: 8, count: 6000}}
streams:
  quotes:
    from: ticks
    ops: [{{filter: "ask_price > bid_price"}}]
rules:
  up3: {{use: momentum, from: quotes, partition_by: instrument, with: {{count: 3, direction: both, quantity: 1}}}}
sinks:
  signals: {{type: jsonl, from: [up3], path: out/signals.jsonl}}
deploy:
  up3: {{parallelism: 2}}
"""


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once", "exactly_once"])
def test_a_process_of_two_workers_reads_its_partitions_over_nats(workdir, nats_server, delivery):
    """Each worker of a partitioned process reads the edge through a durable consumer of its own
    and keeps its instruments (as a ZeroMQ subscriber does): together they give the inline
    output, no signal twice, none missing."""
    path = workdir / "pipeline.yaml"
    path.write_text(PARALLEL.format(url=nats_server.url, delivery=delivery))
    plan = cep.compile(path)
    assert [p.parallelism for p in plan.processes if "up3" in p.nodes] == [2]
    assert all(edge.subject for edge in plan.edges)
    cep.run(plan, inline=True)
    inline = sorted(signal_ids(workdir))  # a worker reading nothing loses its instruments' signals,
    cep.run(plan)                         # one keeping every instrument doubles the others'
    assert sorted(signal_ids(workdir)) == inline and inline



PARALLEL_QUOTES = """
version: 1
name: nats-parallel-quotes
transport: {{kind: nats, url: "{url}"}}
defaults: {{delivery: at_least_once}}
sources:
  ticks: {{type: synthetic, instruments: 4, seed: 8, count: 6000, rate: 3000, speed: realtime}}
streams:
  quotes: {{from: ticks, key_by: instrument, ops: [{{filter: "ask_price > bid_price"}}]}}
sinks:
  copy: {{type: jsonl, from: quotes, path: out/quotes.jsonl}}
deploy:
  quotes: {{parallelism: 2}}
"""


def test_exactly_once_killing_a_worker_of_two_changes_nothing(workdir, nats_server):
    """SIGKILL of one worker of the pair: its successor restores its checkpoint and reads on
    from its own durable consumer; the other worker is untouched."""
    path = workdir / "pipeline.yaml"
    path.write_text(PARALLEL.format(url=nats_server.url, delivery="exactly_once").replace(
        "count: 6000}", "count: 6000, rate: 3000, speed: realtime}"))
    plan = cep.compile(path)
    victim = next(p for p in plan.processes if p.parallelism == 2).workers[1]
    kill = KillOnce(victim, "signals", after=100)
    inline, status = inline_then_killed(plan, lambda: sorted(signal_ids(workdir)), kill)
    assert kill.pid, "the sink never received 100 signals"
    assert status.restarts == {victim: 1}
    assert sorted(signal_ids(workdir)) == inline


def test_at_least_once_killing_a_worker_of_two_loses_nothing(workdir, nats_server):
    """Its durable consumer delivers again what the killed worker had not acknowledged. (A
    stateless stream: under at_least_once a restarted rule starts with empty state, so its
    signals may differ; README, Delivery.)"""
    path = workdir / "pipeline.yaml"
    path.write_text(PARALLEL_QUOTES.format(url=nats_server.url))
    plan = cep.compile(path)
    victim = next(p for p in plan.processes if p.parallelism == 2).workers[0]
    kill = KillOnce(victim, "copy", after=1000)

    def lines() -> set[str]:
        return set((workdir / "out" / "quotes.jsonl").read_text().splitlines())

    inline, status = inline_then_killed(plan, lines, kill)
    assert kill.pid, "the sink never received 1000 quotes"
    assert status.restarts == {victim: 1}
    assert lines() >= inline and len(inline) > 5000

TWO_READERS = """
version: 1
name: nats-two-readers-{delivery}
transport: {{kind: nats, url: "{url}"}}
defaults: {{delivery: {delivery}}}
sources:
  ticks: {{type: synthetic, instruments: 2, seed: 8, count: 6000}}
rules:
  up3: {{use: momentum, from: ticks, with: {{count: 3, direction: both, quantity: 1}}}}
sinks:
  log: {{type: jsonl, from: [up3], path: out/log.jsonl}}
  copy: {{type: jsonl, from: [up3], path: out/copy.jsonl}}
"""


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_every_process_reading_a_rules_output_gets_all_of_it(workdir, nats_server, delivery):
    """One node's edges to two consumer processes are two subjects, each published by an outlet
    of its own with the same frame numbers: their message ids must differ, or JetStream keeps
    only the first of each pair (in a stream, a message id is unique across subjects) and the
    consumers wait for frames that never come (the order executor's log and journal did)."""
    path = workdir / "pipeline.yaml"
    path.write_text(TWO_READERS.format(url=nats_server.url, delivery=delivery))
    plan = cep.compile(path)
    cep.run(plan, inline=True)
    inline = (workdir / "out" / "log.jsonl").read_text()
    assert inline and (workdir / "out" / "copy.jsonl").read_text() == inline
    _, status, hung = kill_at(plan, [], deadline_s=30)
    assert not hung, "the run hung: a consumer waited for frames JetStream never stored"
    assert (workdir / "out" / "log.jsonl").read_text() == inline
    assert (workdir / "out" / "copy.jsonl").read_text() == inline


ONE_EDGE = """
version: 1
name: nats-retried
transport: {{kind: nats, url: "{url}"}}
defaults: {{delivery: at_least_once}}
sources:
  ticks: {{type: synthetic, instruments: 1, count: 10}}
sinks:
  out: {{type: "null", from: ticks}}
"""


def _outlet(workdir, url: str, monkeypatch, failures: dict[int, int], stored: bool = False):
    """`(plan, the outlet of ticks)` of ONE_EDGE, its publishes failing per `failures`."""
    path = workdir / "pipeline.yaml"
    path.write_text(ONE_EDGE.format(url=url))
    plan = jetstream.prepared(cep.compile(path), fresh=True)
    monkeypatch.setattr(jetstream, "connect", lambda connection, name: FailingPublishes(
        connect(connection, name), failures, stored))
    edges = [edge for edge in plan.edges if edge.node == "ticks"]
    return plan, jetstream.outlet(plan, "gateway-ticks", 0, "ticks", edges, lambda: False)


def _send_five_frames_and_end(outlet) -> None:
    for price in range(1, 6):
        outlet.send([{"timestamp": price, "instrument": "X", "bid_price": float(price)}])
        outlet.flush()
    outlet.end()


@pytest.mark.parametrize("stored", [False, True], ids=["not stored", "stored, ack lost"])
def test_a_retried_publish_is_stored_before_the_end_of_its_stream(workdir, nats_server, monkeypatch, stored):
    """at_least_once: a consumer reads an edge's messages in the stream's order and stops at its
    producer's END, so every data frame must be stored before it, also one whose first publish
    failed (a leader election) and went again later. The END overtaking the retry is what lost
    ticks after a cluster's leader was killed (test_nats_cluster.py)."""
    plan, outlet = _outlet(workdir, nats_server.url, monkeypatch, {2: 1, 3: 1}, stored)
    try:
        _send_five_frames_and_end(outlet)

        def settled() -> bool:  # what the worker does when the outlet's bell rings
            outlet.on_stored()
            return outlet.window.empty and _messages(plan, nats_server.url) == 6

        wait_for(settled, 10, "5 frames and the END stored")
    finally:
        outlet.close()
    assert _kinds(plan, nats_server.url) == [codec.DATA] * 5 + [codec.END]


def test_an_end_jetstream_never_stores_fails_the_producer(workdir, nats_server, monkeypatch):
    """Consumers wait for the END: one that is never stored fails its worker, saying so,
    instead of leaving the run waiting."""
    monkeypatch.setattr("cep.jetstream.publish.RETRY_FOR_S", 0.3)
    plan, outlet = _outlet(workdir, nats_server.url, monkeypatch, {6: 100})
    try:
        _send_five_frames_and_end(outlet)
        with pytest.raises(PublishFailed, match="JetStream did not store the end of ticks: TimeoutError"):
            wait_for(lambda: outlet.on_stored(), 10, "the END given up")
    finally:
        outlet.close()


def _messages(plan, url: str) -> int:
    client = connect(NatsConnection(url=url), "test")
    try:
        return loop().call(client.jetstream().stream_info(f"CEP_{plan.name}")).state.messages
    finally:
        close(client)


def _kinds(plan, url: str) -> list[int]:
    """The frame kind (DATA, END) of each message of the plan's stream, in the stream's order."""
    client = connect(NatsConnection(url=url), "test")
    try:
        js = client.jetstream()
        count = loop().call(js.stream_info(f"CEP_{plan.name}")).state.messages
        return [codec.decode_header(codec.split_frame(loop().call(js.get_msg(f"CEP_{plan.name}", seq=seq)).data)[1])[0]
                for seq in range(1, count + 1)]
    finally:
        close(client)
