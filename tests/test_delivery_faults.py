"""Delivery under faults, with real processes: a stopped (SIGSTOP) consumer is slow, not dead, so
it gets no copies and its blocked producers do not spin; a killed gateway resumes its file near
where it stopped, within what its delivery mode promises."""
import os
import signal
import time

import pytest

import cep
from cep.runtime.supervisor import Supervisor
from tests.support import KillOnce, inline_then_killed, signal_ids

pytestmark = pytest.mark.integration

PIPELINE = """
version: 1
name: faults-{name}
defaults: {{delivery: {delivery}, backpressure: block, batch_size: 32}}
sources:
  ticks: {{type: {source}}}
rules:
  found: {{from: ticks, pattern: [{{name: any, where: "bid_volume > 0"}}],
          emit: {{action: BUY, trigger_price: "any.ask_price", quantity: 1}}}}
sinks:
  signals: {{type: jsonl, from: [found], path: out/signals.jsonl}}
"""
ENDLESS = "synthetic, instruments: 2, seed: 3, count: 100000000, speed: max"


def write(workdir, name, delivery, source=ENDLESS):
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(name=name, delivery=delivery, source=source))
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, from /proc (fields 14 and 15 of its stat)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StopAConsumer:
    """A run's `on_status`: once `node` received `after` events, SIGSTOP its process `victim`; once
    the gateway has stopped emitting (blocked behind it), measure the gateway's CPU time over
    `measure_s`; then SIGCONT the victim and drain the run."""

    def __init__(self, victim: str, node: str, after: int = 2000, measure_s: float = 2.0) -> None:
        self.victim, self.node, self.after, self.measure_s = victim, node, after, measure_s
        self.supervisor: Supervisor | None = None
        self.stopped_pid: int | None = None
        self.gateway_out: list[int] = []
        self.started: tuple[float, float] | None = None  # (wall, cpu) when the gateway was blocked
        self.cpu_used: float | None = None

    def __call__(self, status) -> None:
        supervisor = self.supervisor
        if self.stopped_pid is None:
            if status.nodes()[self.node].received > self.after:
                self.stopped_pid = supervisor.pid(self.victim)
                os.kill(self.stopped_pid, signal.SIGSTOP)
            return
        gateway = supervisor.pid("gateway-ticks")
        out = status.nodes()["ticks"].emitted
        if self.started is None:
            self.gateway_out.append(out)
            if self.gateway_out[-4:] == [out] * 4:  # no progress for over a second: it is blocked
                self.started = (time.monotonic(), cpu_seconds(gateway))
        elif self.cpu_used is None and time.monotonic() - self.started[0] >= self.measure_s:
            self.cpu_used = cpu_seconds(gateway) - self.started[1]
            os.kill(self.stopped_pid, signal.SIGCONT)
            supervisor.stop()


def run_stopping(plan, victim: str, node: str, **kwargs) -> tuple[StopAConsumer, object]:
    stop = StopAConsumer(victim, node, **kwargs)
    supervisor = stop.supervisor = Supervisor(plan, on_status=stop)
    try:
        status = supervisor.run()
    finally:
        if stop.stopped_pid is not None and stop.cpu_used is None:
            os.kill(stop.stopped_pid, signal.SIGCONT)
    return stop, status


def test_a_gateway_blocked_behind_a_stopped_consumer_does_not_spin(workdir):
    plan = cep.compile(write(workdir, "spin", "at_most_once"))
    stop, status = run_stopping(plan, "strategy", "found")
    assert stop.cpu_used is not None, "the gateway never blocked behind the stopped sink"
    assert stop.cpu_used < 0.25 * stop.measure_s, f"the gateway used {stop.cpu_used:.2f}s of CPU while blocked"
    assert status.nodes()["ticks"].dropped == 0


def test_at_least_once_sends_no_copies_to_a_consumer_that_is_only_stopped(workdir):
    plan = cep.compile(write(workdir, "slow", "at_least_once"))
    # stopped for longer than the 3 s after which a silent consumer used to get its frames again
    stop, status = run_stopping(plan, "sink-signals", "signals", measure_s=4.0)
    assert stop.cpu_used is not None, "the gateway never blocked behind the stopped sink"
    ids = signal_ids(workdir)
    assert len(ids) > 2000
    assert len(ids) - len(set(ids)) == 0, "lines written twice"
    edges = status.edges()
    assert all(e.retransmitted == 0 and e.duplicates == 0 for e in edges.values())
    assert status.restarts == {}


PACED = "synthetic, instruments: 2, seed: 9, count: 20000, rate: 5000, speed: realtime"


def duplicated(ids: list[str]) -> int:
    return len(ids) - len(set(ids))


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once"])
def test_a_restarted_gateway_resumes_its_file_near_where_it_stopped(workdir, delivery):
    plan = cep.compile(write(workdir, delivery.split("_")[1], delivery, PACED))
    kill = KillOnce("gateway-ticks", "signals", after=10000)
    inline, status = inline_then_killed(plan, lambda: signal_ids(workdir), kill)
    assert kill.pid, "the sink never received 10,000 signals"
    assert status.restarts == {"gateway-ticks": 1}
    ids = signal_ids(workdir)
    assert len(inline) == 20000 and set(ids) <= set(inline)
    nodes = status.nodes()
    assert nodes["found"].emitted == nodes["signals"].received == len(ids)  # the counts say what the file holds
    if delivery == "at_most_once":
        assert duplicated(ids) == 0                  # may lose, never repeat
        ticks = nodes["ticks"]                       # what the restart skipped is counted, not hidden
        assert ticks.emitted + ticks.drops.get("restart", 0) == 20000 and ticks.drops["restart"] > 0
    else:
        assert set(ids) == set(inline)              # may repeat, never lose
        assert duplicated(ids) < 3000, f"{duplicated(ids)} signals twice: the file was replayed from far back"
