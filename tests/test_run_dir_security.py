"""The run directory is the user's alone (issue 14, items 14 and 15): cep creates it 0700 whatever
the umask, refuses one another user could have planted or can write into, and keeps every file in
it (ipc sockets, lock, checkpoints with their -wal and -shm) 0600."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import cep
from cep.errors import RuntimeFailure
from cep.runtime.deadletter import DeadLetters
from cep.runtime.rundir import private_run_dir
from tests.support import ROOT, wait_for

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, then put it back."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_a_new_run_directory_and_the_base_it_creates_are_0700_whatever_the_umask(tmp_path, umask, mask):
    umask(mask)
    run_dir = private_run_dir(tmp_path / "cep-1000" / "momentum")
    assert run_dir == tmp_path / "cep-1000" / "momentum"
    assert mode(run_dir) == 0o700 and mode(run_dir.parent) == 0o700


def test_a_run_directory_of_ours_that_others_may_read_is_made_0700(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o755)                     # made by an older cep under umask 022
    private_run_dir(run_dir)
    assert mode(run_dir) == 0o700


@pytest.mark.parametrize("loose", [0o777, 0o770, 0o722])
def test_a_run_directory_others_can_write_into_is_refused(tmp_path, loose):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(loose)
    with pytest.raises(RuntimeFailure) as refused:
        private_run_dir(run_dir)
    text = str(refused.value)
    assert str(run_dir) in text and f"mode {loose:o}" in text and "writable by" in text
    assert "CEP_RUN_DIR" in text                 # what to do instead
    assert mode(run_dir) == loose                # refused, not "repaired": its content is not trusted


def test_a_symlinked_run_directory_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(elsewhere)
    with pytest.raises(RuntimeFailure, match=r"run directory .*/run is a symlink"):
        private_run_dir(tmp_path / "run")


def test_a_symlinked_base_directory_of_another_user_is_refused(tmp_path):
    """/tmp/cep-UID planted as a symlink: refused whoever owns what it points at."""
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    (tmp_path / "cep-1000").symlink_to(target)
    if os.geteuid() == 0:
        os.lchown(tmp_path / "cep-1000", NOBODY, NOBODY)
        with pytest.raises(RuntimeFailure, match=r"cep-1000 is a symlink owned by .*65534"):
            private_run_dir(tmp_path / "cep-1000" / "momentum")
    else:  # a symlink of our own may lead to a directory of our own
        assert private_run_dir(tmp_path / "cep-1000" / "momentum").is_dir()


@as_root
def test_a_run_directory_owned_by_another_user_is_refused_naming_the_owner(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, NOBODY, NOBODY)
    with pytest.raises(RuntimeFailure) as refused:
        private_run_dir(run_dir)
    text = str(refused.value)
    assert f"run directory {run_dir} is owned by" in text and "uid 65534" in text
    assert "not by you" in text and "Remove it" in text


@as_root
@pytest.mark.parametrize("loose", [0o700, 0o777])
def test_a_base_directory_planted_by_another_user_is_refused(tmp_path, loose):
    """The predictable /tmp/cep-UID, created first by someone else (who could swap what is in it)."""
    base = tmp_path / "cep-0"
    base.mkdir()
    base.chmod(loose)
    os.chown(base, NOBODY, NOBODY)
    with pytest.raises(RuntimeFailure, match=r"cep-0 is owned by .*uid 65534.*not by you"):
        private_run_dir(base / "momentum")
    assert not (base / "momentum").exists()


def test_an_ancestor_anyone_can_write_into_is_refused_unless_sticky(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(RuntimeFailure, match=r"shared .*writable by others"):
        private_run_dir(shared / "run")
    shared.chmod(0o1777)                     # like /tmp: nobody can rename what is not theirs
    assert mode(private_run_dir(shared / "run")) == 0o700


def test_a_refused_run_directory_fails_cep_run_with_exit_1_and_the_reason(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_dir.chmod(0o777)
    done = subprocess.run([sys.executable, "-m", "cep.cli", "run", "-q", "--run-dir", str(run_dir),
                           str(ROOT / "pipelines" / "synthetic.yaml")],
                          capture_output=True, text=True, timeout=60, env=_env(), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"cep: error: run directory {run_dir} has mode 777" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_dead_letter_file_is_0600_whatever_the_umask(tmp_path, umask):
    umask(0)
    letters = DeadLetters(tmp_path / "out" / "deadletter.jsonl", "w")
    letters("n", "bad", b"\xff")
    letters.close()
    assert mode(tmp_path / "out" / "deadletter.jsonl") == 0o600


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


PIPELINE = """
version: 1
name: private
defaults: {delivery: exactly_once}
sources:
  ticks: {type: synthetic, instruments: 2, seed: 3, count: 30000, rate: 5000, speed: realtime}
rules:
  up3: {use: momentum, from: ticks, with: {count: 3, direction: both, quantity: 1}}
sinks:
  signals: {type: jsonl, from: up3, path: out/signals.jsonl}
"""


@pytest.mark.integration
@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_every_file_a_running_pipeline_keeps_in_its_run_directory_is_0600(workdir, mask):
    """Sockets, lock, checkpoints, -wal and -shm, seen while the pipeline runs (sockets go with
    it), in a `cep run` started under the umask (its workers take their fork server's)."""
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE)
    run_dir = workdir / "run"
    workers = [w for w in cep.compile(path, run_dir=run_dir).workers()]
    wals = [run_dir / "checkpoints" / f"{worker}.sqlite-wal" for worker in workers]
    running = subprocess.Popen([sys.executable, "-m", "cep.cli", "run", "-q", "--run-dir", str(run_dir), str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                               preexec_fn=lambda: os.umask(mask))
    try:
        def checkpointed() -> bool:  # every worker checkpoints after binding its sockets
            assert running.poll() is None, running.communicate()
            return all(wal.exists() for wal in wals)
        wait_for(checkpointed, 30, f"a checkpoint of each of {workers}")
        seen = {p: (os.lstat(p).st_mode) for p in [run_dir, *run_dir.rglob("*")]}
    finally:
        out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    sockets = [p for p, m in seen.items() if stat.S_ISSOCK(m)]
    assert len(sockets) >= 3 and run_dir / "lock" in seen
    assert {p.name for p in seen if p.name.endswith("-shm")}      # sqlite made its shared memory too
    loose = {str(p): f"{stat.S_IMODE(m):o}" for p, m in seen.items()
             if stat.S_IMODE(m) != (0o700 if stat.S_ISDIR(m) else 0o600)}
    assert not loose
    assert mode(workdir / "out" / "signals.jsonl") == 0o666 & ~mask  # an output follows the umask
