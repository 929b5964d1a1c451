"""The trading half under exactly_once with real processes and real kills: the executor, the venue
or the positions process SIGKILLed at random instants, several times per run, changes nothing.
No client order id is placed at the venue twice (its request log holds each place once), no fill
is journaled twice, and the orders, fills and positions equal a fault-free run's.

A failure prints its seed; `CEP_FAULT_SEED=<seed>` replays it. `CEP_SOAK=N` runs N seeds per
victim (by hand; CI runs one).
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import msgpack
import pytest

import cep
from cep.orders import positions_report, read_events
from cep.runtime.supervisor import Supervisor
from tests.test_trading_run import outcome, write_trading

pytestmark = pytest.mark.integration

SPEED = "200x"              # the shipped ticks take about 3.3 s: kills land mid-run
KILL_WINDOW_S = (0.3, 3.0)
KILLS = 3                   # per run
RUN_DEADLINE_S = 60.0


def write(directory: Path) -> Path:
    path = write_trading(directory, "exactly_once")
    text = path.read_text().replace("speed: max", f"speed: {SPEED}")
    text = text.replace("request: {timeout: 250ms, retries: 3}", "request: {timeout: 300ms, retries: 20}")
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    path = write(directory)
    cep.run(cep.compile(path), inline=True)
    return outcome(directory)


def placed_at_the_venue(run_dir: Path) -> Counter:
    """How often each client order id was placed, from the venue's log of the requests it served
    (a retry whose reply was lost is answered with the order placed, marked `repeat`)."""
    db = sqlite3.connect(run_dir / "paper.requests.sqlite")
    try:
        requests = [msgpack.unpackb(data) for (data,) in db.execute("SELECT request FROM served")]
    finally:
        db.close()
    return Counter(r["order"]["client_order_id"] for r in requests if r["op"] == "place" and not r.get("repeat"))


def run_under_fire(plan, victim: str, seed: int) -> tuple[list[int], dict]:
    rng = random.Random(seed)
    times = sorted(rng.uniform(*KILL_WINDOW_S) for _ in range(KILLS))
    supervisor = Supervisor(plan, backoff_s=0.05, drain_timeout_s=10.0)
    finished = threading.Event()
    killed: list[int] = []

    def fire() -> None:
        while supervisor.status.started is None and not finished.wait(0.005):
            pass
        began = time.monotonic()
        for at in times:
            if finished.wait(max(0.0, began + at - time.monotonic())):
                return
            pid = supervisor.status.pids.get(victim)
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except (ProcessLookupError, TypeError):
                pass  # restarting at that instant
        if not finished.wait(RUN_DEADLINE_S):
            supervisor.stop()

    killer = threading.Thread(target=fire, daemon=True)
    killer.start()
    try:
        status = supervisor.run()
    finally:
        finished.set()
        killer.join()
    return killed, dict(status.restarts)


SEEDS = [int(os.environ["CEP_FAULT_SEED"])] if os.environ.get("CEP_FAULT_SEED") else None


@pytest.mark.parametrize("victim", ["executor-exec", "venue-paper", "sink-book"])
def test_killing_the_executor_the_venue_or_the_positions_process_changes_nothing(workdir, fault_free, victim):
    runs = int(os.environ.get("CEP_SOAK", "1"))
    for seed in SEEDS or [random.randrange(1 << 32) for _ in range(runs)]:
        plan = cep.compile(write(workdir))
        killed, restarts = run_under_fire(plan, victim, seed)
        where = f"seed {seed}, {victim} killed {len(killed)} times (replay: CEP_FAULT_SEED={seed})"
        assert len(killed) >= 2 and restarts.get(victim, 0) >= len(killed), where
        assert outcome(workdir) == fault_free, where
        fills = [(e.client_order_id, e.fill_id) for e in read_events(workdir / "out" / "trading-journal.db")
                 if e.fill_id]
        assert len(fills) == len(set(fills)), where
        placed = placed_at_the_venue(Path(plan.run_dir))
        assert placed and max(placed.values()) == 1, where
        assert sum(placed.values()) == len({e["client_order_id"] for e in fault_free[0]
                                            if e["status"] == "SUBMITTED"}), where
