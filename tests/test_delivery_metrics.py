"""What reliable delivery did, as the run summary and the live status show it."""
import cep
from cep.runtime.live import LiveStatus
from cep.runtime.metrics import RunStatus

PIPELINE = """
version: 1
name: dl-metrics
defaults: {delivery: at_least_once}
sources:
  ticks: {type: synthetic, count: 10}
rules:
  up: {use: momentum, from: ticks, with: {count: 2, direction: up, quantity: 1}}
sinks:
  out: {type: "null", from: [up]}
"""


def edge_counters(unacked=0, retransmitted=0, duplicates=0):
    return {"frames": 0, "events": 0, "dropped": 0, "gaps": 0, "unacked": unacked,
            "retransmitted": retransmitted, "duplicates": duplicates}


def status_with_a_restart(workdir) -> RunStatus:
    path = workdir / "p.yaml"
    path.write_text(PIPELINE)
    status = RunStatus(cep.compile(path))
    status.update("gateway-ticks", {"incarnation": 0, "edges_out": {"ticks->strategy": edge_counters(3, 7)}})
    status.update("strategy", {"incarnation": 0, "edges_in": {"ticks->strategy": edge_counters(duplicates=2)},
                               "edges_out": {"up->sink-out": edge_counters(unacked=9, retransmitted=1)}})
    status.update("strategy", {"incarnation": 1, "edges_in": {"ticks->strategy": edge_counters(duplicates=4)},
                               "edges_out": {"up->sink-out": edge_counters(unacked=2)}})
    return status


def test_edge_totals_sum_incarnations_but_count_only_live_windows(workdir):
    edges = status_with_a_restart(workdir).edges()
    ticks, up = edges["ticks->strategy"], edges["up->sink-out"]
    assert (ticks.delivery, ticks.unacked, ticks.retransmitted, ticks.duplicates) == ("at_least_once", 3, 7, 6)
    assert (up.unacked, up.retransmitted) == (2, 1)  # the dead incarnation's window died with it


def test_the_summary_and_the_live_status_show_reliable_edges(workdir, capsys):
    status = status_with_a_restart(workdir)
    assert ("delivery ticks->strategy at_least_once: unacked 3, retransmitted 7, duplicates 6 (passed on)"
            in status.summary_lines())
    live = LiveStatus(status.plan)
    live.redraw, live._next_plain = False, 0.0
    live.update(status)
    assert "ticks->strategy unacked 3 retx 7 dup 6" in capsys.readouterr().err


def test_the_summary_claims_a_drain_only_when_it_finished(workdir):
    status = status_with_a_restart(workdir)
    status.interrupted = True
    assert any("(interrupted, drained)" in line for line in status.summary_lines())
    status.drained = False  # the drain deadline passed, or a second interrupt cut it short
    lines = status.summary_lines()
    assert not any("(interrupted, drained)" in line for line in lines)
    assert any("(interrupted, not drained)" in line for line in lines)
