"""exactly_once with real processes: whichever process is SIGKILLed mid-run, the sink's output is
the inline run's, with no signal missing and none twice; and what cannot be checkpointed is refused
before anything runs."""
from pathlib import Path

import pytest

import cep
from cep.errors import CompileError
from tests.support import KillOnce, inline_then_killed, signal_ids

pytestmark = pytest.mark.integration

PIPELINE = """
version: 1
name: eo-{name}
defaults: {{delivery: exactly_once}}
sources:
  ticks: {{type: {source}}}
streams:
  quotes:
    from: ticks
    ops: [{ops}]
rules:
  up3: {{use: momentum, from: quotes, with: {{count: 3, direction: both, quantity: 1}}}}
  dip: {{from: quotes, within: 1s, pattern: [{{name: low, where: "bid_volume > ask_volume"}},
                                             {{name: high, where: "ask_volume > bid_volume"}}],
        emit: {{action: BUY, trigger_price: "high.ask_price", quantity: 1}}}}
sinks:
  signals: {{type: {sink}, from: [up3, dip]}}
"""
VWAP_PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "cep_vwap" / "cep_vwap" / "volume.py"
REALTIME = "synthetic, instruments: 2, seed: 8, count: 6000, rate: 3000, speed: realtime"


def write(workdir, name, source=REALTIME, ops='{filter: "ask_price > bid_price"}',
          sink="jsonl, path: out/signals.jsonl"):
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(name=name, source=source, ops=ops, sink=sink))
    return path


@pytest.mark.parametrize("victim", ["strategy", "sink-signals", "gateway-ticks"])
def test_killing_any_process_changes_nothing_in_the_output(workdir, victim):
    plan = cep.compile(write(workdir, victim.split("-")[0]))
    assert {edge.delivery for edge in plan.edges} == {"exactly_once"}
    kill = KillOnce(victim, "signals", after=200)
    inline, status = inline_then_killed(plan, lambda: sorted(signal_ids(workdir)), kill)
    assert kill.pid, "the sink never received 200 signals"
    assert status.restarts == {victim: 1}
    assert len(inline) > 500
    assert sorted(signal_ids(workdir)) == inline         # nothing missing, nothing twice


def test_what_cannot_be_checkpointed_is_refused_naming_each_node(workdir):
    path = write(workdir, "refused", source="zmq, endpoint: 'tcp://127.0.0.1:5999'",
                 ops="{key_by: instrument}, {vwap: {window: 5}}", sink="stdout")
    path.write_text(path.read_text().replace("version: 1\n", f"version: 1\nplugins: [{VWAP_PLUGIN}]\n"))
    with pytest.raises(CompileError) as refused:
        cep.compile(path)
    text = str(refused.value)
    assert 'source "ticks": zmq cannot replay' in text
    assert 'stream "quotes": operator vwap keeps state without a checkpoint hook' in text
    assert 'sink "signals": stdout has effects it cannot undo' in text
    assert "pipeline.yaml:" in text and "use delivery at_least_once" in text


def test_an_at_least_once_sink_asks_nothing_of_the_components_before_it(workdir):
    path = write(workdir, "relaxed", sink="stdout")
    path.write_text(path.read_text().replace("delivery: exactly_once", "delivery: at_least_once"))
    assert {edge.delivery for edge in cep.compile(path).edges} == {"at_least_once"}
