"""at_least_once with real processes: nothing lost when the middle process is SIGKILLed mid-run,
and the same output as inline when nothing crashes."""

import pytest

import cep
from cep.compiler.render import render
from tests.support import SHIPPED_TICKS, KillOnce, inline_then_killed, signal_ids

pytestmark = pytest.mark.integration

PIPELINE = """
version: 1
name: dl-{name}
defaults: {{delivery: at_least_once}}
sources:
  ticks: {{type: {source}}}
rules:
  {rule}
sinks:
  signals: {{type: jsonl, from: [found], path: out/signals.jsonl}}
"""
# one step, no state: after a crash the restarted strategy computes exactly what the dead one would
STATELESS = ('found: {from: ticks, pattern: [{name: heavy, where: "bid_volume > ask_volume"}], '
             'emit: {action: BUY, trigger_price: "heavy.ask_price", quantity: 1}}')
MOMENTUM = "found: {use: momentum, from: ticks, with: {count: 5, direction: both, quantity: 100}}"


def write(workdir, name, source, rule, extra=""):
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(name=name, source=source, rule=rule) + extra)
    return path


def test_the_plan_gives_every_reliable_edge_an_ack_endpoint_and_blocks(workdir):
    plan = cep.compile(write(workdir, "plan", "synthetic, count: 10, speed: max", STATELESS))
    assert [(e.pattern, e.delivery, e.backpressure, len(e.acks)) for e in plan.edges] == [
        ("pub/sub", "at_least_once", "block", 1), ("push/pull", "at_least_once", "block", 1)]
    assert plan.edges[0].acks[0].endswith("gateway-ticks.ticks.ack")
    assert "acks ipc://" in render(plan, "text")


def test_only_the_edges_feeding_an_at_least_once_sink_are_reliable(workdir):
    extra = '  log: {type: "null", from: [found], delivery: at_most_once}\n'
    path = write(workdir, "mixed", "synthetic, count: 10, speed: max", STATELESS, extra)
    path.write_text(path.read_text().replace("defaults: {delivery: at_least_once}\n", "").replace(
        "path: out/signals.jsonl}", "path: out/signals.jsonl, delivery: at_least_once}"))
    plan = cep.compile(path)
    assert {e.id: (e.delivery, bool(e.acks)) for e in plan.edges} == {
        "ticks->strategy": ("at_least_once", True),         # propagated back from the reliable sink
        "found->sink-signals": ("at_least_once", True),
        "found->sink-log": ("at_most_once", False)}


def test_killing_the_middle_process_loses_nothing(workdir):
    source = "synthetic, instruments: 2, seed: 5, count: 4500, rate: 3000, speed: realtime"
    plan = cep.compile(write(workdir, "kill", source, STATELESS))
    kill = KillOnce("strategy", "found", after=500)
    inline, status = inline_then_killed(plan, lambda: signal_ids(workdir), kill)
    assert kill.pid, "the strategy never processed 500 ticks"
    assert status.restarts == {"strategy": 1}
    received = signal_ids(workdir)
    assert len(inline) > 1000
    assert set(received) == set(inline)                  # every signal at least once
    edges = status.edges()
    assert edges["ticks->strategy"].retransmitted > 0    # what the dead strategy had not acknowledged
    assert edges["ticks->strategy"].dropped == 0 and status.nodes()["ticks"].dropped == 0
    assert any(line.startswith("delivery ticks->strategy") and "retransmitted" in line
               for line in status.summary_lines())


def test_two_strategy_workers_acknowledge_their_own_partitions(workdir):
    source = "synthetic, instruments: 6, seed: 2, count: 6000, speed: max"
    plan = cep.compile(write(workdir, "par", source, MOMENTUM, "deploy: {found: {parallelism: 2}}\n"))
    assert len(plan.edges[1].acks) == 2                  # one ack endpoint per producing worker
    cep.run(plan, inline=True)
    inline = signal_ids(workdir)
    status = cep.run(plan)
    assert sorted(signal_ids(workdir)) == sorted(inline) and len(inline) > 50
    assert all(e.unacked == 0 and e.duplicates == 0 for e in status.edges().values())


def test_without_a_crash_the_output_equals_the_inline_run_exactly(workdir):
    plan = cep.compile(write(workdir, "real", f"csv, path: {SHIPPED_TICKS}", MOMENTUM))
    cep.run(plan, inline=True)
    inline = signal_ids(workdir)
    status = cep.run(plan)
    assert sorted(signal_ids(workdir)) == sorted(inline) and len(inline) > 100
    edges = status.edges()
    assert all(e.unacked == 0 and e.retransmitted == 0 and e.duplicates == 0 for e in edges.values())


def test_killing_the_sink_loses_nothing_it_had_not_flushed(workdir):
    source = "synthetic, instruments: 2, seed: 6, count: 4500, rate: 3000, speed: realtime"
    plan = cep.compile(write(workdir, "sink", source, STATELESS))
    kill = KillOnce("sink-signals", "signals", after=300)
    inline, status = inline_then_killed(plan, lambda: signal_ids(workdir), kill)
    assert kill.pid, "the sink never wrote 300 signals"
    assert status.restarts == {"sink-signals": 1}
    received = signal_ids(workdir)                       # the restarted sink appended, not truncated
    assert set(received) == set(inline)
    assert status.edges()["found->sink-signals"].retransmitted > 0


def test_a_drain_ends_with_every_frame_acknowledged_and_nothing_lost(workdir):
    from cep.runtime.supervisor import Supervisor
    source = "synthetic, instruments: 2, seed: 4, count: 1000000, rate: 3000, speed: realtime"
    plan = cep.compile(write(workdir, "drain", source, STATELESS))

    def stop_after_some(status):
        if status.nodes()["signals"].received > 300:
            supervisor.stop()

    supervisor = Supervisor(plan, on_status=stop_after_some)
    status = supervisor.run()
    nodes = status.nodes()
    assert status.interrupted and status.restarts == {}
    assert nodes["found"].emitted == nodes["signals"].received == len(signal_ids(workdir)) > 300
    assert all(e.unacked == 0 and e.retransmitted == 0 for e in status.edges().values())
