"""A running pipeline seen from outside, with real processes: its Prometheus metrics scraped over
http, `cep top --once` from another process, and what `cep top` says when nothing runs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cep.observe.prometheus import METRICS
from tests.ports import free_port_range
from tests.test_lifecycle import wait_for
from tests.test_observe import WATCHED

pytestmark = pytest.mark.integration
CEP = [sys.executable, "-m", "cep.cli"]
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running(workdir: Path, text: str, *options: str, name: str = "watched",
            command: str = "run") -> Iterator[tuple[Path, subprocess.Popen]]:
    """`cep run` (or `command`) of the pipeline `text` named `name` (paced: it runs for minutes)
    until the block ends; then Ctrl-C, and the run must drain and exit 130."""
    path = workdir / f"{name}.yaml"
    path.write_text(text)
    process = subprocess.Popen(CEP + [command, str(path), "-q", *options], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (workdir / "run" / name / "status.json").exists() or process.poll() is not None,
                 60, "no status file")
        assert process.poll() is None, process.stderr.read()
        yield path, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of the exposition at `port` (it must parse), by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} <= {name.removesuffix("_total") for name in METRICS}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def ticks_out(samples: dict, pipeline: str = "watched") -> float:
    key = ("cep_node_events_total", (("direction", "out"), ("kind", "source"), ("node", "ticks"),
                                     ("pipeline", pipeline)))
    return samples.get(key, 0)


def in_mode(delivery: str) -> str:
    return WATCHED.replace("version: 1\n", f"version: 1\ndefaults: {{delivery: {delivery}}}\n", 1)


@pytest.mark.parametrize("delivery", ["at_most_once", "at_least_once", "exactly_once"])
def test_metrics_are_served_on_the_port_and_counters_grow(workdir, delivery):
    port = free_port_range(1)
    with running(workdir, in_mode(delivery), "--metrics-port", str(port)):
        first = wait_for(lambda: ticks_out(samples := scrape(port)) > 0 and samples, 30, "no ticks counted")
        second = wait_for(lambda: ticks_out(samples := scrape(port)) > ticks_out(first) and samples, 30,
                          "the tick counter did not grow")
        names = {name for name, _ in second}
        assert {"cep_worker_resident_memory_bytes", "cep_pattern_partial_matches", "cep_edge_lag_seconds",
                "cep_edge_frame_events_count"} <= names
        assert ("cep_edge_unacked_frames" in names) == (delivery != "at_most_once")
        if delivery == "exactly_once":
            taken = wait_for(lambda: {labels: value for (name, labels), value in scrape(port).items()
                                      if name == "cep_checkpoint_duration_seconds_count" and value > 0},
                             30, "no checkpoint counted")
            assert {dict(labels)["worker"] for labels in taken} >= {"gateway-ticks", "sink-signals"}
    with pytest.raises(OSError):  # the server ends with the run
        scrape(port)


def test_a_killed_worker_s_restart_shows_in_the_metrics_and_in_top(workdir):
    port = free_port_range(1)
    with running(workdir, in_mode("at_least_once"), "--metrics-port", str(port)) as (path, _):
        status = workdir / "run" / "watched" / "status.json"
        pid = wait_for(lambda: json.loads(status.read_text())["workers"]["sink-signals"]["pid"], 30, "no sink pid")
        os.kill(pid, signal.SIGKILL)
        restarts = ("cep_worker_restarts_total", (("pipeline", "watched"), ("worker", "sink-signals")))
        wait_for(lambda: scrape(port).get(restarts) == 1, 30, "the restart was not counted")
        top = subprocess.run(CEP + ["top", str(path), "--once"], cwd=workdir, capture_output=True, text=True,
                             timeout=60)
        row = next(line for line in top.stdout.splitlines() if line.strip().startswith("sink-signals"))
        assert str(pid) not in row and row.split()[-2:] == ["1", "running"], row


def test_a_pipeline_s_metrics_port_that_is_taken_fails_the_run_naming_it(workdir):
    port = free_port_range(1)
    path = workdir / "watched.yaml"
    path.write_text(WATCHED + f"metrics: {{port: {port}}}\n")
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run(CEP + ["run", str(path), "-q"], cwd=workdir, capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_top_once_shows_a_running_pipeline_s_processes_nodes_and_pattern_rules(workdir):
    port = free_port_range(1)
    with running(workdir, WATCHED + f"metrics: {{port: {port}}}\n") as (path, _):
        run_dir = workdir / "run" / "watched"
        assert oct((run_dir / "status.json").stat().st_mode & 0o777) == "0o600"
        wait_for(lambda: ticks_out(scrape(port)) > 0, 30, "the metrics port from the pipeline file")
        for target in (str(path), str(run_dir)):
            top = subprocess.run(CEP + ["top", target, "--once"], cwd=workdir, capture_output=True, text=True,
                                 timeout=60)
            assert top.returncode == 0, top.stderr
            for name in ("gateway-ticks", "strategy-x2-instrument.1", "sink-signals", "ticks", "quotes",
                         "rises", "signals", "partial matches"):
                assert name in top.stdout
    assert not (run_dir / "status.json").exists()  # the run ended: nothing says it goes on
    ended = subprocess.run(CEP + ["top", str(run_dir), "--once"], capture_output=True, text=True, timeout=60)
    assert ended.returncode == 1 and "nothing is running" in ended.stderr


def test_top_says_nothing_is_running_and_exits_1(workdir):
    env = dict(os.environ, CEP_RUN_DIR=str(workdir / "empty"))
    result = subprocess.run(CEP + ["top", "--once"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert f"no pipeline is running under {workdir / 'empty'}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["run", "replay"])
def test_momentum_yaml_at_1x_is_scraped_and_watched_while_it_runs(workdir, command):
    """The shipped pipeline on the shipped ticks, paced at their own speed (1x): as the pipeline
    says, and as `cep replay --data FILE --speed 1x` makes it."""
    data = next((ROOT / "data").glob("*.csv.gz"))
    text = (ROOT / "pipelines" / "momentum.yaml").read_text()
    text = text.replace("../data/", f"{ROOT}/data/").replace("../out/", "out/")
    options = ["--metrics-port", str(port := free_port_range(1))]
    if command == "run":
        text = text.replace("speed: max", "speed: 1x")
    else:
        options += ["--data", str(data), "--speed", "1x"]
    with running(workdir, text, *options, name="momentum", command=command) as (path, _):
        first = wait_for(lambda: ticks_out(samples := scrape(port), "momentum") > 0 and samples, 30, "no ticks")
        wait_for(lambda: ticks_out(scrape(port), "momentum") > ticks_out(first, "momentum"), 30,
                 "the tick counter did not grow")
        top = subprocess.run(CEP + ["top", str(path), "--once"], cwd=workdir, capture_output=True, text=True,
                             timeout=60)
        assert top.returncode == 0, top.stderr
        assert all(name in top.stdout for name in ("gateway-ticks", "momentum5", "signals", "ticks->strategy"))


def test_top_on_a_terminal_redraws_until_q(workdir):
    import pty
    import select
    with running(workdir, WATCHED) as (path, _):
        controller, terminal = pty.openpty()
        top = subprocess.Popen(CEP + ["top", str(path)], cwd=workdir, stdin=terminal, stdout=terminal,
                               stderr=subprocess.PIPE, text=True)
        os.close(terminal)
        try:
            seen = b""
            deadline = time.monotonic() + 30
            while seen.count(b"processes") < 2 and time.monotonic() < deadline:  # drawn, then redrawn
                if select.select([controller], [], [], 1)[0]:
                    seen += os.read(controller, 65536)
            assert seen.count(b"processes") >= 2, seen[-2000:]
            os.write(controller, b"q")
            assert top.wait(timeout=10) == 0, top.stderr.read()
        finally:
            if top.poll() is None:
                top.kill()
            os.close(controller)


def test_top_after_the_supervisor_was_killed_says_it_is_gone(workdir):
    path = workdir / "watched.yaml"
    path.write_text(WATCHED)
    supervisor = subprocess.Popen(CEP + ["run", str(path), "-q"], cwd=workdir, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    run_dir = workdir / "run" / "watched"
    try:
        wait_for(lambda: (run_dir / "status.json").exists(), 60, "no status file")
    finally:
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
    assert (run_dir / "status.json").exists()  # left behind: nobody removed it
    top = subprocess.run(CEP + ["top", str(run_dir), "--once"], capture_output=True, text=True, timeout=60)
    assert top.returncode == 1
    assert f"the run's supervisor (pid {supervisor.pid}) is gone" in top.stderr
