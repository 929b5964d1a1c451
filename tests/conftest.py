"""Shared fixtures: a short per-test directory (ipc socket paths are limited to ~100 bytes) used as
both the pipeline's home and its run directory, and the paths of the real data."""
import json
import os
import shutil
import signal
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

import cep
from cep import codec
from cep.errors import UserError
from cep.rows import as_records

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_TICKS = ROOT / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()

# Hypothesis checks properties, not speed: its per-example deadline (200 ms) fails tests on a loaded
# 2-core CI host for reasons that have nothing to do with the property. Speed lives in bench/.
settings.register_profile("cep", deadline=None)
settings.load_profile("cep")


@pytest.fixture
def workdir(monkeypatch):
    path = Path(tempfile.mkdtemp(prefix="cep-"))
    monkeypatch.setenv("CEP_RUN_DIR", str(path / "run"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def write_pipeline(workdir):
    """`write_pipeline(text, name="pipeline.yaml")`: the path of a file in `workdir` holding `text`
    (dedented), so a test writes its pipeline as it reads, indented under the call."""
    def write(text: str, name: str = "pipeline.yaml") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


@pytest.fixture
def problems_of():
    """`problems_of(path)`: every problem `cep.compile` reports about a pipeline file, as
    `file:line:col: message (hint)` strings in file order (it must fail)."""
    def compile_failing(path: Path) -> list[str]:
        with pytest.raises(UserError) as info:
            cep.compile(path)
        return [str(problem) for problem in info.value.problems]
    return compile_failing


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the real datasets in {SHARED_DATA} (not shipped with the project)")
    return SHARED_DATA


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
