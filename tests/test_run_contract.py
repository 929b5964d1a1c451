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

from tests.conftest import ROOT

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
