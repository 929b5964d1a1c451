"""Shared set-up, as fixtures: a short per-test directory (ipc socket paths are limited to ~100
bytes) used as both the pipeline's home and its run directory, a pipeline file written in it, the
problems a failing pipeline compiles to, and the paths of the real data. Constants and helpers
that are not set-up live in tests/support.py."""
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

import cep
from cep.errors import UserError
from tests import support  # not its names: no test imports them from here

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
def pipeline_file(workdir):
    """`pipeline_file(text, name="pipeline.yaml")`: the path of a file in `workdir` holding `text`
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
def root() -> Path:
    """The repository: README.md, pipelines/, rules/, data/."""
    return support.ROOT


@pytest.fixture
def shipped_ticks() -> Path:
    """The ticks shipped in data/ that pipelines/momentum.yaml replays (131,932 ticks)."""
    return support.SHIPPED_TICKS


@pytest.fixture
def shared_data() -> Path:
    if not support.SHARED_DATA.is_dir():
        pytest.skip(f"needs the real datasets in {support.SHARED_DATA} (not shipped with the project)")
    return support.SHARED_DATA


@pytest.fixture(autouse=True)
def no_run_outlives_its_test():
    """A `cep run` a test started in the background (`support.STARTED`) ends with the test,
    whatever the test's outcome: a host left waiting for its peer would load the tests after."""
    yield
    support.kill_started()
