"""What tests share that is not set-up: the repository's paths (needed while tests are collected,
e.g. in parametrize lists, where a fixture cannot reach) and small helpers that take their input
as arguments. Set-up (a run directory, a pipeline file, the data a test needs) is a fixture in
conftest.py; pytest loads conftest.py itself, so no test imports it."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import cep
from cep import codec
from cep.rows import as_records

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_TICKS = ROOT / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


STARTED: list = []
"""`cep run` processes a test started in the background (`subprocess.Popen`): any still running
when the test ends is killed (conftest), so a failing test leaves no host waiting for its peer."""


def kill_started() -> None:
    """SIGKILL every `STARTED` process still running (its workers exit once their supervisor is gone)."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_for(condition, timeout_s: float, what: str, every_s: float = 0.02):
    """The first true value of `condition()`, polled every `every_s`; AssertionError naming `what`
    after the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s")


def through_the_wire(batch):
    """The batch a receiver decodes from the frame a sender encodes of `batch`."""
    topic, body = codec.split_frame(codec.encode_frame(b"TICK.X", codec.DATA, "p", 1, batch))
    assert topic == b"TICK.X"
    return codec.decode_body(body)[3]


def records_into(out: list):
    """An on_next that collects what an operator emits as records (a rule may emit Rows)."""
    return lambda batch: out.extend(as_records(batch))


def split(records: list, sizes: list[int] | None) -> list[list]:
    """`records` cut into consecutive batches of `sizes` (one batch when None)."""
    batches, at = [], 0
    for size in sizes or [len(records)]:
        batches.append(records[at:at + size])
        at += size
    return batches


def signal_ids(workdir: Path) -> list[str]:
    """The `signal_id` of every line of `out/signals.jsonl` under `workdir`, in file order."""
    with open(workdir / "out" / "signals.jsonl") as file:
        return [json.loads(line)["signal_id"] for line in file]


def inline_then_killed(plan, output, kill: "KillOnce"):
    """`(output() after an inline run of plan, status of a multi-process run with kill)`: what a
    crash test compares, the reference output first."""
    cep.run(plan, inline=True)
    reference = output()
    return reference, cep.run(plan, on_status=kill, backoff_s=0.05)


class KillOnce:
    """A run's `on_status` callback: SIGKILL `worker` once, when `node` has received more than
    `after` events. `pid` is the killed process (None until then)."""

    def __init__(self, worker: str, node: str, after: int) -> None:
        self.worker, self.node, self.after = worker, node, after
        self.pid: int | None = None

    def __call__(self, status) -> None:
        if self.pid is None and status.nodes()[self.node].received > self.after:
            self.pid = status.pids[self.worker]
            os.kill(self.pid, signal.SIGKILL)


def kill_at(plan, volleys, deadline_s: float, drain_timeout_s: float = 10.0):
    """Run `plan` under a Supervisor while a thread SIGKILLs workers: each volley is `(at_s,
    victims)` or `(at_s, victims, gaps_ms)`, its victims killed one after another (`gaps_ms`
    apart) `at_s` after the pipeline started. A victim that an earlier shot killed and that is
    not back yet is killed as soon as the supervisor has started it again: every shot lands
    while the run goes on, however long a restart takes on a loaded host. A run still going
    `deadline_s` after the last volley is stopped (drained) and counts as hung. Returns `(pids
    killed, status, hung)`."""
    from cep.runtime.supervisor import Supervisor

    supervisor = Supervisor(plan, backoff_s=0.05, drain_timeout_s=drain_timeout_s)
    finished = threading.Event()
    killed: list[int] = []
    hung: list[bool] = []

    def restarted(victim: str) -> int | None:
        """The victim's pid once it is not one killed already (None if the run ended first)."""
        while (pid := supervisor.status.pids.get(victim)) in killed:
            if finished.wait(0.005):
                return None
        return pid

    def fire() -> None:
        while supervisor.status.started is None and not finished.wait(0.005):
            pass
        began = time.monotonic()
        for at_s, victims, *gaps in volleys:
            if finished.wait(max(0.0, began + at_s - time.monotonic())):
                return
            for victim, gap_ms in zip(victims, [*(gaps[0] if gaps else []), *[0.0] * len(victims)]):
                pid = restarted(victim)
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except (ProcessLookupError, TypeError):
                    pass  # it ended (the run did), or the run ended before it came back
                time.sleep(gap_ms / 1000)
        if not finished.wait(deadline_s):
            hung.append(True)
            supervisor.stop()  # drains, or is terminated after the drain deadline

    killer = threading.Thread(target=fire, daemon=True)
    killer.start()
    try:
        status = supervisor.run()
    finally:
        finished.set()
        killer.join()
    return killed, status, bool(hung or status.interrupted)
