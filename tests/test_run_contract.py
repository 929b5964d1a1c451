"""The contract `cep` keeps with the shell: records own stdout, everything else goes to stderr,
the live view never draws over records on a terminal, and exit codes say what happened."""
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cep.components.base import BuildContext
from cep.components.sinks.jsonl_file import JsonlSinkParams, jsonl_sink
from tests.support import ROOT

CEP = [sys.executable, "-m", "cep.cli"]


def echo_pipeline(workdir: Path, count: int = 400, speed: str = "max", rate: int = 1000) -> Path:
    """A pipeline whose only sink prints every tick to stdout as JSON, plus a risky pattern whose
    validation warning goes to stderr."""
    path = workdir / "echo.yaml"
    path.write_text(f"""version: 1
name: echo
sources:
  ticks: {{type: synthetic, instruments: 2, count: {count}, rate: {rate}, speed: {speed}}}
rules:
  loop:
    from: ticks
    within: 1s
    pattern:
      - {{name: a, where: "bid_price > 0"}}
      - {{name: b, where: "bid_price > 1e9", one_or_more: true}}
sinks:
  echo: {{type: stdout, from: ticks}}
  none: {{type: "null", from: loop}}
""")
    return path


def _json_lines(text: str) -> list[dict]:
    """Every line of `text` parsed as JSON (fails the test on the first line that is not)."""
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.integration
@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "live"])
def test_stdout_holds_only_the_records_and_stderr_the_summary(workdir, quiet):
    pipeline = echo_pipeline(workdir)
    result = subprocess.run(CEP + ["run", str(pipeline)] + (["-q"] if quiet else []),
                            capture_output=True, text=True, timeout=120, cwd=workdir)
    assert result.returncode == 0, result.stderr
    records = _json_lines(result.stdout)
    assert len(records) == 400 and all("instrument" in r for r in records)
    assert "restarts 0" in result.stderr and "echo" in result.stderr


def _run_on_terminal(args: list[str], cwd: Path, stdout_is_terminal: bool) -> tuple[int, bytes, bytes]:
    """Run cep with stderr (and stdout, if asked) on a pseudo-terminal, as in an interactive
    shell; (exit code, what the terminal received, what the stdout pipe received)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stderr=terminal,
                               stdout=terminal if stdout_is_terminal else subprocess.PIPE)
    os.close(terminal)
    screen, piped = bytearray(), bytearray()
    streams = [controller] + ([] if stdout_is_terminal else [process.stdout.fileno()])
    deadline = time.monotonic() + 120
    while streams and time.monotonic() < deadline:
        for fd in select.select(streams, [], [], 1.0)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal's other end closed: the process is gone
                chunk = b""
            if not chunk:
                streams.remove(fd)
            (screen if fd == controller else piped).extend(chunk)
    os.close(controller)
    return process.wait(timeout=30), bytes(screen), bytes(piped)


CURSOR_UP, ERASE_LINE = b"\x1b[1A", b"\x1b[2K"


@pytest.mark.integration
def test_the_live_view_never_draws_over_a_stdout_sinks_records_on_a_terminal(workdir):
    # paced, so the live view updates many times while records arrive
    pipeline = echo_pipeline(workdir, count=60, speed="20x", rate=20)
    code, screen, _ = _run_on_terminal(CEP + ["run", str(pipeline)], workdir, stdout_is_terminal=True)
    assert code == 0, screen.decode(errors="replace")
    assert CURSOR_UP not in screen and ERASE_LINE not in screen, "the live view redraws over the records"
    records = [line for line in screen.decode().splitlines() if line.startswith("{")]
    assert len(_json_lines("\n".join(records))) == 60


@pytest.mark.integration
def test_the_live_table_goes_to_a_terminal_on_stderr_while_records_are_piped(workdir):
    pipeline = echo_pipeline(workdir, count=60, speed="20x", rate=20)
    code, screen, piped = _run_on_terminal(CEP + ["run", str(pipeline)], workdir, stdout_is_terminal=False)
    assert code == 0, screen.decode(errors="replace")
    assert len(_json_lines(piped.decode())) == 60
    assert b"cep: echo" in screen, "the live table is shown on the terminal"
    assert b"restarts 0" in screen


def momentum_copy(workdir: Path) -> tuple[Path, Path]:
    """pipelines/momentum.yaml with its output in `workdir` (path of the pipeline, of its output,
    which holds a previous run's line)."""
    text = (ROOT / "pipelines" / "momentum.yaml").read_text()
    text = text.replace("../data/", f"{ROOT}/data/").replace("../rules/", f"{ROOT}/rules/")
    pipeline = workdir / "momentum.yaml"
    pipeline.write_text(text.replace("../out/", "out/"))
    output = workdir / "out" / "momentum-signals.jsonl"
    output.parent.mkdir()
    output.write_text('{"from": "the previous run"}\n')
    return pipeline, output


REPLAY_MISTAKES = {
    "missing data file": (["--data", "/nonexistent/ticks.csv"], "--data", "no such"),
    "wrong header": (["--data", "{workdir}/bad.csv"], "--data", "header"),
    "unknown speed": (["--data", str(ROOT / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"),
                       "--speed", "fast"], "--speed", "10x"),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(REPLAY_MISTAKES))
def test_replay_checks_its_overrides_before_starting_and_keeps_the_output(case, workdir):
    pipeline, output = momentum_copy(workdir)
    (workdir / "bad.csv").write_text("time,symbol,bid,ask\n1,X,1,2\n")
    args, option, words = REPLAY_MISTAKES[case]
    args = [arg.replace("{workdir}", str(workdir)) for arg in args]
    result = subprocess.run(CEP + ["replay", str(pipeline), *args], capture_output=True, text=True,
                            timeout=60, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert option in result.stderr and words in result.stderr, result.stderr
    for internal in ("pydantic", "ValidationError", "Traceback", "worker"):
        assert internal not in result.stderr, result.stderr
    assert output.read_text() == '{"from": "the previous run"}\n'


@pytest.mark.integration
def test_a_run_that_fails_before_it_starts_keeps_the_previous_output(workdir):
    pipeline, output = momentum_copy(workdir)
    # a directory where the sink's socket goes: its worker builds the sink, then cannot bind
    (workdir / "run" / "momentum" / "sink-signals.momentum5.pull" / "x").mkdir(parents=True)
    result = subprocess.run(CEP + ["run", str(pipeline), "-q"], capture_output=True, text=True,
                            timeout=60, cwd=workdir)
    assert result.returncode == 1 and "sink-signals" in result.stderr, result.stderr
    assert output.read_text() == '{"from": "the previous run"}\n'


class SinkIncarnations:
    """Builds the `jsonl` sink of node `out` the way the runtime does: a first incarnation, then
    those of a worker restarted after a crash, over a file that holds a previous run's line."""

    PREVIOUS = '{"from":"the previous run"}\n'

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path, self.output = tmp_path, tmp_path / "out.jsonl"
        self.output.write_text(self.PREVIOUS)
        self.restored: list = []

    def build(self, incarnation: int, run_dir: Path | None = None):
        ctx = BuildContext(node="out", base_dir=self.tmp_path, incarnation=incarnation,
                           run_dir=self.tmp_path / "run" if run_dir is None else run_dir,
                           keep_state_fn=lambda node, snapshot, restore: self.restored.append((snapshot, restore)))
        return jsonl_sink(JsonlSinkParams(path="out.jsonl"), ctx)


def test_building_the_sink_keeps_the_file_until_the_first_record(tmp_path):
    runs = SinkIncarnations(tmp_path)
    sink = runs.build(0)
    assert runs.output.read_text() == runs.PREVIOUS
    sink.write([{"n": 1}])
    sink.close()
    assert runs.output.read_text() == '{"n":1}\n'


def test_a_run_that_ends_without_records_leaves_an_empty_file(tmp_path):
    runs = SinkIncarnations(tmp_path)
    runs.build(0).close()
    assert runs.output.read_text() == ""


def test_a_sink_restarted_before_its_first_record_still_starts_the_file_afresh(tmp_path):
    runs = SinkIncarnations(tmp_path)
    runs.build(0)  # crashes before any record came
    restarted = runs.build(1)
    restarted.write([{"n": 1}])
    restarted.close()
    assert runs.output.read_text() == '{"n":1}\n'


def test_a_sink_restarted_after_writing_continues_its_file(tmp_path):
    runs = SinkIncarnations(tmp_path)
    first = runs.build(0)
    first.write([{"n": 1}])
    first.flush()  # then the process dies
    restarted = runs.build(1)
    restarted.write([{"n": 2}])
    restarted.close()
    assert runs.output.read_text() == '{"n":1}\n{"n":2}\n'


def test_an_exactly_once_restore_to_a_checkpoint_taken_before_the_first_record(tmp_path):
    runs = SinkIncarnations(tmp_path)
    runs.build(0)
    snapshot, _ = runs.restored[-1]
    offset = snapshot()  # checkpointed before any record came
    restarted = runs.build(1)
    _, restore = runs.restored[-1]
    restore(offset)
    restarted.write([{"n": 1}])
    restarted.close()
    assert runs.output.read_text() == '{"n":1}\n'


def poisoned_pipeline(workdir: Path, count: int = 200) -> Path:
    """Every tick fails its map (a division by zero): all of them are dead-lettered."""
    path = workdir / "poison.yaml"
    path.write_text(f"""version: 1
name: poison
sources:
  ticks: {{type: synthetic, instruments: 2, count: {count}}}
streams:
  broken:
    from: ticks
    ops:
      - map: {{x: "1 / (bid_price - bid_price)"}}
sinks:
  out: {{type: "null", from: broken}}
""")
    return path


def cep_run(workdir: Path, pipeline: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(CEP + ["run", str(pipeline), "-q", *options], capture_output=True, text=True,
                          timeout=120, cwd=workdir)


@pytest.mark.integration
def test_the_summary_says_where_dead_letters_went_and_how_many_this_run_added(workdir):
    pipeline = poisoned_pipeline(workdir)
    for _ in range(2):  # the file is appended across runs; the summary counts this run's
        result = cep_run(workdir, pipeline)
        assert result.returncode == 0, result.stderr
        assert f"dead letters: 200 this run, appended to {workdir / 'out' / 'deadletter.jsonl'}" in result.stderr
    assert len((workdir / "out" / "deadletter.jsonl").read_text().splitlines()) == 400


@pytest.mark.integration
@pytest.mark.parametrize("limit, code", [("199", 1), ("200", 0), ("99%", 1), ("100%", 0)])
def test_more_dead_letters_than_max_dead_letters_exits_1(workdir, limit, code):
    result = cep_run(workdir, poisoned_pipeline(workdir), "--inline", "--max-dead-letters", limit)
    assert result.returncode == code, result.stderr
    if code:
        assert f"more than --max-dead-letters {limit}" in result.stderr
        assert "200 dead letters" in result.stderr and "deadletter.jsonl" in result.stderr


@pytest.mark.parametrize("limit", ["lots", "-1", "150%", "1.5"])
def test_a_malformed_dead_letter_limit_is_a_usage_error(limit, capsys):
    from tests.test_cli import cep
    code, _, err = cep("run", ROOT / "pipelines" / "synthetic.yaml", "--max-dead-letters", limit, capsys=capsys)
    assert code == 2 and "--max-dead-letters" in err and "N or P%" in err, err


@pytest.mark.integration
def test_summary_json_has_counts_workers_dead_letters_and_the_exit(workdir):
    summary = workdir / "summary.json"
    result = cep_run(workdir, poisoned_pipeline(workdir), "--max-dead-letters", "10%",
                     "--summary-json", str(summary))
    assert result.returncode == 1, result.stderr
    report = json.loads(summary.read_text())
    assert report["pipeline"] == "poison"
    assert report["exit"]["code"] == 1 and "max-dead-letters" in report["exit"]["reason"]
    assert report["nodes"]["ticks"]["emitted"] == 200 and report["nodes"]["broken"]["dead_lettered"] == 200
    dead = report["dead_letters"]
    assert (dead["path"], dead["count"]) == (str(workdir / "out" / "deadletter.jsonl"), 200)
    assert dead["bytes"] == (workdir / "out" / "deadletter.jsonl").stat().st_size
    assert (dead["rotated_bytes"], dead["dropped_by_rotation"]) == (0, 0)
    assert set(report["workers"]) == {"gateway-ticks", "sink-out"}
    assert all(worker["cpu_s"] >= 0 and worker["restarts"] == 0 for worker in report["workers"].values())
    assert list(report["edges"]) and all("delivery" in edge for edge in report["edges"].values())


@pytest.mark.integration
def test_summary_json_of_a_run_that_failed_says_why(workdir):
    pipeline, _ = momentum_copy(workdir)
    (workdir / "run" / "momentum" / "sink-signals.momentum5.pull" / "x").mkdir(parents=True)
    summary = workdir / "summary.json"
    result = cep_run(workdir, pipeline, "--summary-json", str(summary))
    assert result.returncode == 1
    report = json.loads(summary.read_text())
    assert report["exit"]["code"] == 1 and "sink-signals" in report["exit"]["reason"]


SPIN_PLUGIN = '''
import time

from cep.plugins import OpParams, operator, per_record


class SpinParams(OpParams):
    seconds: float = 2.0


@operator("spin", params=SpinParams, shorthand="seconds")
def spin(params, ctx):
    """Keeps the CPU busy for `seconds` on the first record: one long computation."""
    spun = []

    def think(record):
        if not spun:
            spun.append(True)
            end = time.monotonic() + params.seconds
            while time.monotonic() < end:
                pass
        return record

    return per_record(think, ctx)
'''


def spinning_pipeline(workdir: Path, seconds: float) -> Path:
    (workdir / "spin.py").write_text(SPIN_PLUGIN)
    path = workdir / "spinning.yaml"
    path.write_text(f"""version: 1
name: spinning
plugins: [spin.py]
sources:
  ticks: {{type: synthetic, count: 100}}
streams:
  slow:
    from: ticks
    ops:
      - spin: {seconds}
sinks:
  out: {{type: "null", from: slow}}
""")
    return path


@pytest.mark.integration
def test_a_worker_busy_in_one_long_computation_is_reported_stuck(workdir):
    """The gateway, done after its 100 ticks, reports while it waits for the sink: it must not
    be called stuck. `--stuck-after` is 2.5 s, not less: a loaded 2-core host leaves a nice-19
    worker without CPU for a second at times, a real silence that a 1 s threshold reports."""
    summary = workdir / "summary.json"
    result = cep_run(workdir, spinning_pipeline(workdir, 4.0), "--stuck-after", "2.5s", "--summary-json", str(summary))
    assert result.returncode == 0, result.stderr
    stuck = [line for line in result.stderr.splitlines() if line.startswith("stuck:")]
    assert len(stuck) == 1 and "sink-out" in stuck[0] and "busy" in stuck[0], result.stderr
    seconds = float(stuck[0].split("no progress for ")[1].split("s")[0])
    assert 3.5 <= seconds < 12
    workers = json.loads(summary.read_text())["workers"]
    assert workers["sink-out"]["stuck"] and workers["sink-out"]["longest_silence_s"] >= 3.5
    assert not workers["gateway-ticks"]["stuck"]


@pytest.mark.integration
def test_a_short_pause_below_stuck_after_is_not_reported(workdir):
    result = cep_run(workdir, spinning_pipeline(workdir, 0.5), "--stuck-after", "5s")
    assert result.returncode == 0, result.stderr
    assert "stuck" not in result.stderr


def test_a_malformed_stuck_after_is_a_usage_error(capsys):
    from tests.test_cli import cep
    code, _, err = cep("run", ROOT / "pipelines" / "synthetic.yaml", "--stuck-after", "soon", capsys=capsys)
    assert code == 2 and "--stuck-after" in err and "such as 500ms, 2s" in err, err


@pytest.mark.integration
def test_summary_json_of_a_run_stopped_by_sigterm_says_so(workdir):
    import signal
    summary = workdir / "summary.json"
    pipeline = echo_pipeline(workdir, count=1_000_000, speed="realtime", rate=2000)
    process = subprocess.Popen(CEP + ["run", str(pipeline), "-q", "--summary-json", str(summary)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir)
    assert "instrument" in process.stdout.readline()  # running: a tick reached the sink
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    report = json.loads(summary.read_text())
    assert report["exit"] == {"code": 143, "reason": "stopped by SIGTERM"}
    assert report["interrupted"] and report["nodes"]["ticks"]["emitted"] > 0
