"""The life of a run's processes: crashes during start-up, the supervisor's own death, signals,
exit codes and process names. Real processes, real signals."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import cep
from cep.runtime import processes
from cep.runtime.lastrun import RunMarker, fingerprint
from cep.runtime.supervisor import Supervisor
from tests.support import wait_for
from tests.test_faults import fault_free, output_lines, write_pipeline  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration


def kill_when_spawned(supervisor: Supervisor, worker: str, killed: list) -> None:
    """SIGKILL `worker` as soon as it has a pid, before the pipeline started; notes in `killed`
    when the pipeline had started by then (None: not yet)."""
    def watch() -> None:
        pid = wait_for(lambda: supervisor.status.pids.get(worker), 30, f"{worker} was never started", 0.001)
        killed.append(supervisor.status.started)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


@pytest.mark.parametrize("victim", ["strategy", "sink-signals", "gateway-ticks"])
def test_a_worker_killed_during_start_up_is_restarted_like_any_crash(workdir, fault_free, victim):
    plan = cep.compile(write_pipeline(workdir, "exactly_once", speed="max"))
    supervisor = Supervisor(plan, backoff_s=0.05)
    killed: list = []
    kill_when_spawned(supervisor, victim, killed)
    status = supervisor.run()
    assert killed == [None], "the kill did not land before the start"
    assert status.restarts == {victim: 1}
    assert output_lines(workdir) == fault_free


# -- signals, orphans and names -----------------------------------------------------------------
BUSY_PLUGIN = """
import os
from pathlib import Path

from cep.plugins import OpParams, operator, per_record


class BurnParams(OpParams):
    mark: str


@operator("burn", params=BurnParams, shorthand="mark")
def burn(params, ctx):
    \"\"\"At the first record, write this process's pid to `mark`, then compute for hours in one
    call that never lets the interpreter run a signal handler or another thread.\"\"\"
    def admit(record):
        Path(params.mark).write_text(str(os.getpid()))
        sum(range(10 ** 15))
        return record

    return per_record(admit, ctx)
"""

SLOW = """
version: 1
name: {name}
plugins: [{plugin}]
sources:
  ticks: {{type: synthetic, instruments: 2, count: 1000000, rate: 2000, speed: realtime}}
streams:
  quotes: {{from: ticks, ops: [{ops}]}}
sinks:
  out: {{type: jsonl, from: quotes, path: out/quotes.jsonl}}
"""


def slow_pipeline(workdir: Path, name: str, busy: bool = False) -> Path:
    """A pipeline that runs for minutes; with `busy`, its sink's process computes forever at the
    first record and writes its pid to `busy.pid` first."""
    plugin = workdir / "burn.py"
    plugin.write_text(BUSY_PLUGIN)
    ops = f"{{burn: {workdir / 'busy.pid'}}}" if busy else '{filter: "ask_price > bid_price"}'
    path = workdir / f"{name}.yaml"
    path.write_text(SLOW.format(name=name, plugin=plugin, ops=ops))
    return path


def cep_run(pipeline: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cep.cli", "run", str(pipeline), "-q", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=pipeline.parent)


def descendants(pid: int) -> set[int]:
    """Every process whose chain of parents reaches `pid`."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit():
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie has finished)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def lines_in(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except OSError:
        return 0


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_drains_every_process_prints_the_summary_and_exits_128_plus_it(workdir, signum, code):
    supervisor = cep_run(slow_pipeline(workdir, "drained"))
    wait_for(lambda: lines_in(workdir / "out" / "quotes.jsonl") > 10, 30, "no record reached the sink")
    workers = descendants(supervisor.pid)
    supervisor.send_signal(signum)
    _, err = supervisor.communicate(timeout=30)
    assert supervisor.returncode == code, err
    assert "interrupted, drained" in err and "drain took longer" not in err
    assert "Traceback" not in err
    wait_for(lambda: not alive(workers), 10, "a worker outlived its supervisor")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_inline_run_drains_on_a_signal_too(workdir, signum, code):
    run = cep_run(slow_pipeline(workdir, "inline"), "--inline")
    wait_for(lambda: lines_in(workdir / "out" / "quotes.jsonl") > 10, 30, "no record reached the sink")
    run.send_signal(signum)
    _, err = run.communicate(timeout=30)
    assert run.returncode == code, err
    assert "interrupted, drained" in err and "Traceback" not in err


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_no_worker_outlives_its_supervisor_not_even_one_busy_in_a_long_computation(workdir, signum):
    supervisor = cep_run(slow_pipeline(workdir, "busy", busy=True), "--drain-timeout", "1")
    busy = int(wait_for(lambda: (workdir / "busy.pid").exists() and (workdir / "busy.pid").read_text(),
                        30, "the operator never started computing"))
    workers = descendants(supervisor.pid)
    assert busy in workers
    supervisor.send_signal(signum)
    supervisor.wait(timeout=30)
    wait_for(lambda: not alive(workers), 10, f"processes {sorted(alive(workers))} outlived their supervisor")
    _, err = supervisor.communicate(timeout=10)  # its pipes close once no process is left holding them
    if signum == signal.SIGTERM:
        assert supervisor.returncode == 143, err
        assert "drain took longer than 1s" in err and "elapsed" in err


def test_workers_are_named_after_their_pipeline_and_process(workdir):
    plan = cep.compile(slow_pipeline(workdir, "named"))
    names = {}

    def look(status) -> None:
        if status.started is not None and not names:
            for worker, pid in status.pids.items():
                names[worker] = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            supervisor.stop()

    supervisor = Supervisor(plan, on_status=look)
    supervisor.run()
    assert names == {worker: f"cep: named/{worker}" for worker in plan.workers()}


# -- a rerun after the supervisor died ----------------------------------------------------------
def killed_midway(workdir: Path, mode: str) -> tuple[Path, Path]:
    """SIGKILL `cep run` of the fault suite's pipeline in `mode` once its sink wrote 100 signals;
    returns (pipeline, run directory) once every process of that run is gone."""
    pipeline = write_pipeline(workdir, mode)
    signals = workdir / "out" / "signals.jsonl"
    supervisor = cep_run(pipeline)
    wait_for(lambda: lines_in(signals) >= 100, 60, "the sink never wrote 100 signals")
    workers = descendants(supervisor.pid)
    supervisor.kill()
    supervisor.communicate(timeout=30)
    wait_for(lambda: not alive(workers), 10, "a worker outlived its supervisor")
    assert 100 <= lines_in(signals) < 629, "the run was not killed midway"
    return pipeline, Path(cep.compile(pipeline).run_dir)


def sockets_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if stat.S_ISSOCK(p.lstat().st_mode))


def test_a_rerun_after_the_supervisor_was_killed_resumes_exactly_once_from_the_checkpoints(workdir, fault_free):
    pipeline, run_dir = killed_midway(workdir, "exactly_once")
    assert (run_dir / "running").exists(), "a run that ended abnormally leaves no marker"
    checkpoints = {path.name: path.stat().st_ino for path in (run_dir / "checkpoints").glob("*.sqlite")}
    assert len(checkpoints) == 3
    rerun = subprocess.run([sys.executable, "-m", "cep.cli", "run", str(pipeline), "-q"],
                           capture_output=True, text=True, timeout=120, cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    assert "the previous run of faults" in rerun.stderr and "ended abnormally" in rerun.stderr
    assert "resuming from its checkpoints" in rerun.stderr
    kept = {path.name: path.stat().st_ino for path in (run_dir / "checkpoints").glob("*.sqlite")}
    assert kept == checkpoints, "the rerun started afresh (a fresh start makes new checkpoint files)"
    assert output_lines(workdir) == fault_free  # nothing lost, nothing twice
    assert not (run_dir / "running").exists()
    assert sockets_in(run_dir) == []


@pytest.mark.parametrize("mode", ["at_least_once", "at_most_once"])
def test_a_rerun_without_checkpoints_says_it_starts_afresh(workdir, fault_free, mode):
    pipeline, run_dir = killed_midway(workdir, mode)
    rerun = subprocess.run([sys.executable, "-m", "cep.cli", "run", str(pipeline), "-q"],
                           capture_output=True, text=True, timeout=120, cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    assert "ended abnormally" in rerun.stderr and "starting afresh" in rerun.stderr
    assert output_lines(workdir) == fault_free
    assert not (run_dir / "running").exists()
    assert sockets_in(run_dir) == []


def test_a_clean_run_leaves_no_marker_and_no_sockets_and_the_next_says_nothing(workdir):
    pipeline = write_pipeline(workdir, "at_most_once", speed="max")
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "cep.cli", "run", str(pipeline), "-q"],
                                capture_output=True, text=True, timeout=120, cwd=workdir)
        assert result.returncode == 0, result.stderr
        assert "previous run" not in result.stderr
    run_dir = Path(cep.compile(pipeline).run_dir)
    assert not (run_dir / "running").exists()
    assert sockets_in(run_dir) == []


# -- the marker itself ----------------------------------------------------------------------------
@pytest.fixture
def marker(workdir):
    plan = cep.compile(write_pipeline(workdir, "exactly_once"))
    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True, mode=0o700)
    return RunMarker(run_dir, plan), plan


def test_the_marker_holds_what_a_rerun_needs_and_only_the_user_reads_it(marker):
    mark, plan = marker
    assert mark.previous() is None
    mark.begin(1_700_000_000.0)
    mark.spawned("strategy", 0)
    mark.spawned("strategy", 1)
    found = RunMarker(mark.path.parent, plan).previous()
    assert (found.pid, found.started, found.incarnations) == (os.getpid(), 1_700_000_000.0, {"strategy": 1})
    assert found.fingerprint == fingerprint(plan) != ""
    assert stat.S_IMODE(mark.path.stat().st_mode) == 0o600


def test_a_damaged_marker_still_says_a_run_died_and_resumes_nothing(marker):
    mark, _ = marker
    mark.path.write_text('{"pid": "not a number"')
    found = mark.previous()
    assert found is not None and found.fingerprint == "" and found.incarnations == {}


def test_a_marker_removed_under_a_running_pipeline_is_no_failure(marker):
    mark, _ = marker
    mark.begin(0.0)
    mark.remove()
    mark.refresh()
    assert mark.previous() is None


def test_without_setproctitle_a_worker_runs_unnamed_rather_than_fails(monkeypatch):
    monkeypatch.setitem(sys.modules, "setproctitle", None)  # what an import of a missing module meets
    processes.name_process("cep: x/y")
