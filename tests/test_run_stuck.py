"""How the supervisor tells a stuck worker from an idle one, on a status fed by hand with a
clock of the test's: a worker is stuck once it has sent nothing for `stuck_after` seconds while
the run goes on (its loop reports twice a second, so only a single pass that long, or a block,
keeps it silent); busy or waiting by the CPU its process used meanwhile."""
import os
import subprocess

import cep
from cep.runtime.live import LiveStatus
from cep.runtime.metrics import RunStatus
from tests.support import ROOT

PLAN = cep.compile(ROOT / "pipelines" / "momentum.yaml", run_dir="/tmp/cep-stuck-test")
WORKERS = PLAN.workers()


def status_heard_at(started: float, heard: dict[str, float]) -> RunStatus:
    status = RunStatus(PLAN)
    status.started = started
    for worker in WORKERS:
        status.pids[worker] = os.getpid()  # a live process whose CPU time /proc can tell
    for worker, at in heard.items():
        status.heard(worker, "metrics", now=at)
    return status


def test_a_worker_silent_for_stuck_after_is_stuck_and_the_others_are_not():
    status = status_heard_at(100.0, {worker: 100.0 for worker in WORKERS})
    status.heard("sink-signals", "metrics", now=111.5)
    status.heard("gateway-ticks", "metrics", now=111.5)
    stuck = status.stuck(10.0, now=112.0)
    assert set(stuck) == {"strategy"} and stuck["strategy"].seconds == 12.0
    assert status.stuck(13.0, now=112.0) == {}


def test_silence_counts_from_the_start_for_a_worker_never_heard_since():
    status = status_heard_at(100.0, {"strategy": 90.0})
    assert status.stuck(10.0, now=105.0) == {}
    assert status.stuck(10.0, now=111.0)["strategy"].seconds == 11.0


def test_a_finished_worker_is_never_stuck():
    status = status_heard_at(100.0, {worker: 100.0 for worker in WORKERS})
    status.heard("strategy", "done", now=101.0)
    assert "strategy" not in status.stuck(10.0, now=200.0)


def test_nothing_is_stuck_before_the_run_starts():
    status = status_heard_at(None, {})
    assert status.stuck(10.0, now=1e9) == {}


def test_the_summary_names_a_worker_that_was_stuck_for_a_while_and_recovered():
    status = status_heard_at(100.0, {worker: 100.0 for worker in WORKERS})
    status.heard("strategy", "metrics", now=146.0)  # 46 s in one pass, then on again
    for worker in WORKERS:
        status.heard(worker, "done", now=149.0 if worker == "strategy" else 100.5)
    status.finished = 150.0
    lines = [line for line in status.summary_lines(stuck_after_s=10.0) if line.startswith("stuck:")]
    assert len(lines) == 1 and "strategy" in lines[0] and "no progress for 46.0s" in lines[0]
    assert not [line for line in status.summary_lines(stuck_after_s=60.0) if line.startswith("stuck:")]
    workers = status.to_dict(stuck_after_s=10.0)["workers"]
    assert workers["strategy"]["stuck"] and workers["strategy"]["longest_silence_s"] == 46.0
    assert not workers["sink-signals"]["stuck"]


def test_busy_or_waiting_follows_the_cpu_the_process_used_while_silent():
    status = status_heard_at(100.0, {worker: 100.0 for worker in WORKERS})
    silence = status.stuck(10.0, now=130.0)["strategy"]
    # this process used far less than 30 s of CPU since it was last heard: waiting, not busy
    assert silence.cpu_share is not None and silence.cpu_share < 0.5
    assert "waiting" in silence.describe()


def test_a_silence_ended_by_a_report_is_judged_by_the_cpu_the_worker_reports():
    # the worker may have exited (and /proc forgotten it) before its last reports are read
    gone = subprocess.Popen(["true"])
    gone.wait()
    status = status_heard_at(100.0, {})
    status.pids["strategy"] = gone.pid
    status.heard("strategy", "metrics", now=100.0, cpu_s=0.5)
    status.heard("strategy", "done", now=130.0, cpu_s=27.5)  # 27 s of CPU in 30 s of silence
    silence = status.silences()["strategy"]
    assert silence.seconds == 30.0 and silence.cpu_share == 0.9 and "busy" in silence.describe()


def test_the_live_view_shows_a_stuck_worker(capsys):
    status = status_heard_at(0.0, {worker: 0.0 for worker in WORKERS})
    live = LiveStatus(PLAN, stuck_after_s=0.0)
    live.redraw, live._next_plain = False, 0.0
    live.update(status)
    err = capsys.readouterr().err
    assert "STUCK" in err and "strategy" in err
