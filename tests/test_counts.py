"""The run's counts add up, restarts included: with real processes and real kills, the summary
says what the output files hold; a stream fused into two processes is counted once; drops have
reasons and filtered records are counted apart; a restarted receiver counts no gaps for what its
predecessor received."""
import pytest

import cep
from cep.runtime.metrics import RunStatus
from tests.support import KillOnce, signal_ids

EXACT = """
version: 1
name: counts-{name}
defaults: {{delivery: exactly_once}}
sources:
  ticks: {{type: synthetic, instruments: 2, seed: 8, count: 6000, rate: 3000, speed: realtime}}
streams:
  quotes:
    from: ticks
    ops: [{{filter: "bid_volume > ask_volume"}}]
rules:
  up3: {{use: momentum, from: quotes, with: {{count: 3, direction: both, quantity: 1}}}}
sinks:
  signals: {{type: jsonl, from: [up3], path: out/signals.jsonl}}
"""


@pytest.mark.integration
@pytest.mark.parametrize("victim", ["gateway-ticks", "strategy", "sink-signals"])
def test_after_a_kill_under_exactly_once_the_counts_are_what_the_files_hold(workdir, victim):
    path = workdir / "pipeline.yaml"
    path.write_text(EXACT.format(name=victim.split("-")[0]))
    plan = cep.compile(path)
    cep.run(plan, inline=True)
    expected = cep.run(plan, inline=True).nodes()
    kill = KillOnce(victim, "signals", after=150)
    status = cep.run(plan, on_status=kill, backoff_s=0.05)
    assert kill.pid and status.restarts == {victim: 1}
    nodes = status.nodes()
    assert nodes["ticks"].emitted == 6000
    assert nodes["signals"].received == len(signal_ids(workdir)) == expected["signals"].received
    assert (nodes["quotes"].received, nodes["quotes"].emitted) == (6000, expected["quotes"].emitted)
    assert nodes["quotes"].filtered == 6000 - nodes["quotes"].emitted > 0
    assert nodes["up3"].emitted == nodes["signals"].received


FUSED = """
version: 1
name: counts-fused
sources:
  quotes: {type: synthetic, instruments: 4, seed: 7, count: 20000, speed: max}
streams:
  mids:
    from: quotes
    ops: [{map: {spread: "ask_price - bid_price"}}, {filter: "bid_volume > ask_volume"}]
rules:
  rising: {use: momentum, from: mids, with: {count: 6, direction: up, quantity: 10}}
sinks:
  signals: {type: jsonl, from: [rising], path: out/signals.jsonl}
  counts: {type: "null", from: mids}
"""


@pytest.mark.integration
def test_a_stream_fused_into_two_processes_is_counted_once(workdir):
    path = workdir / "pipeline.yaml"
    path.write_text(FUSED)
    plan = cep.compile(path)
    assert sum("mids" in process.nodes for process in plan.processes) == 2
    status = cep.run(plan)
    mids = status.nodes()["mids"]
    assert mids.received == 20000
    assert mids.emitted + mids.filtered == 20000 and mids.filtered > 0
    assert status.nodes()["counts"].received == mids.emitted


AT_MOST_ONCE = """
version: 1
name: counts-gaps
sources:
  ticks: {type: synthetic, instruments: 2, seed: 5, count: 9000, rate: 3000, speed: realtime}
rules:
  found: {from: ticks, pattern: [{name: any, where: "bid_volume > 0"}],
          emit: {action: BUY, trigger_price: "any.ask_price", quantity: 1}}
sinks:
  signals: {type: jsonl, from: [found], path: out/signals.jsonl}
"""


@pytest.mark.integration
def test_a_restarted_receiver_counts_no_gap_for_what_its_predecessor_received(workdir):
    path = workdir / "pipeline.yaml"
    path.write_text(AT_MOST_ONCE)
    kill = KillOnce("strategy", "signals", after=3000)
    status = cep.run(cep.compile(path), on_status=kill, backoff_s=0.05)
    assert kill.pid and status.restarts == {"strategy": 1}
    ticks = status.nodes()["ticks"]
    assert status.nodes()["found"].gaps == 0  # what it missed while down is the gateway's drop
    assert set(ticks.drops) <= {"consumer down"}
    assert ticks.emitted == 9000


def test_drops_are_kept_per_reason_and_filtered_records_apart(workdir):
    path = workdir / "pipeline.yaml"
    path.write_text(FUSED)
    status = RunStatus(cep.compile(path))
    node = {"in": 10, "out": 4, "dropped": {"cooldown": 3, "late": 1}, "dead_lettered": 0, "filtered": 2}
    status.update("strategy", {"incarnation": 0, "nodes": {"rising": node}})
    status.update("strategy", {"incarnation": 1, "nodes": {"rising": dict(node, dropped={"late": 2})}})
    rising = status.nodes()["rising"]
    assert (rising.dropped, rising.drops, rising.filtered) == (6, {"cooldown": 3, "late": 3}, 4)
    assert "rising: filtered 4, dropped 6 (cooldown 3, late 3)" in status.summary_lines()


def test_a_restored_incarnation_carries_the_counts_on_and_replaces_its_predecessors(workdir):
    path = workdir / "pipeline.yaml"
    path.write_text(FUSED)
    status = RunStatus(cep.compile(path))
    node = lambda n: {"in": n, "out": n, "dropped": {}, "dead_lettered": 0}  # noqa: E731
    status.update("sink-signals", {"incarnation": 0, "nodes": {"signals": node(251)}, "cpu_s": 1.0})
    status.update("sink-signals", {"incarnation": 1, "nodes": {"signals": node(10)}, "cpu_s": 0.5,
                                   "base": {"nodes": {"signals": node(248)}}})
    assert status.nodes()["signals"].received == 258  # the checkpoint's 248, then 10 more
    assert status.cpu()["sink-signals"] == 1.5


def test_live_counts_come_from_the_same_round_of_reports_so_downstream_never_leads(workdir):
    path = workdir / "pipeline.yaml"
    path.write_text(FUSED)
    status = RunStatus(cep.compile(path))
    node = lambda received, emitted: {"in": received, "out": emitted, "dropped": {}, "dead_lettered": 0}  # noqa: E731

    def report(worker, round_, nodes):
        status.update(worker, {"t": "metrics", "incarnation": 0, "round": round_, "nodes": nodes})

    report("gateway-quotes", 10, {"quotes": node(0, 100)})
    report("strategy", 10, {"mids": node(100, 100), "rising": node(100, 5)})
    report("strategy", 11, {"mids": node(150, 150), "rising": node(150, 7)})  # the gateway's 11 is late
    nodes = status.nodes()
    assert (nodes["quotes"].emitted, nodes["rising"].received) == (100, 100)
    report("gateway-quotes", 11, {"quotes": node(0, 160)})
    nodes = status.nodes()
    assert (nodes["quotes"].emitted, nodes["rising"].received) == (160, 150)


def test_what_restarted_gateways_skipped_is_counted_per_restart(workdir):
    path = workdir / "pipeline.yaml"
    path.write_text(FUSED)
    status = RunStatus(cep.compile(path))
    out = lambda n: {"quotes": {"in": 0, "out": n, "dropped": {}, "dead_lettered": 0}}  # noqa: E731
    status.update("gateway-quotes", {"t": "metrics", "incarnation": 0, "nodes": out(100)})
    status.update("gateway-quotes", {"t": "metrics", "incarnation": 1, "nodes": out(50), "resumed": {"quotes": 150}})
    status.update("gateway-quotes", {"t": "done", "incarnation": 2, "nodes": out(40), "resumed": {"quotes": 260}})
    quotes = status.nodes()["quotes"]
    assert (quotes.emitted, quotes.drops) == (190, {"restart": 110})  # 150 - 100, then 260 - (150 + 50)
