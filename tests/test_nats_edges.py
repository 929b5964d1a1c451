"""Pipelines whose edges are NATS JetStream subjects (`transport: {kind: nats}`), against a real
nats-server: the same output as the inline run in every delivery mode, and under exactly_once
whichever process is SIGKILLed mid-run (the kill tests of the ZeroMQ edges, over NATS)."""
import pytest

import cep
from tests.support import KillOnce, inline_then_killed, signal_ids
from tests.natsserver import nats_server  # noqa: F401 (fixture)

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
