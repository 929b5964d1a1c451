"""Dead letters on disk are bounded: the file rotates at its size limit, the oldest rotated file is
dropped and what it held is counted, and several processes writing one file lose nothing uncounted."""
from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cep.errors import ConfigError
from cep.runtime.deadletter import DeadLetters, Rotation, dead_letter_files, parse_size


def letters_in(path) -> int:
    return sum(1 for _ in open(path, encoding="utf-8")) if path.exists() else 0


def kept_and_dropped(path, rotation: Rotation) -> tuple[int, int]:
    files = dead_letter_files(path, rotation)
    return sum(letters_in(p) for p in files.paths()), files.dropped_letters


def test_the_file_rotates_at_its_limit_and_the_oldest_rotated_file_is_counted_when_dropped(tmp_path):
    path = tmp_path / "out" / "deadletter.jsonl"
    letters = DeadLetters(path, "w", Rotation(max_bytes=2_000, keep=1))
    for index in range(100):
        letters("n", f"bad {index}", {"i": index, "pad": "x" * 50})
    letters.close()
    files = dead_letter_files(path, Rotation(max_bytes=2_000, keep=1))
    assert [p.name for p in files.paths()] == ["deadletter.jsonl.1", "deadletter.jsonl"]
    assert all(p.stat().st_size <= 2_000 + 200 for p in files.paths())  # at most one line over
    kept, dropped = kept_and_dropped(path, Rotation(max_bytes=2_000, keep=1))
    assert dropped > 0 and kept + dropped == 100
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["reason"] == "bad 99"
    assert files.dropped_bytes > 0
    for p in [*files.paths(), files.dropped_path]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 600), min_size=1, max_size=80), limit=st.integers(300, 3_000),
       keep=st.integers(1, 3))
def test_every_letter_is_kept_or_counted_as_dropped(tmp_path_factory, sizes, limit, keep):
    path = tmp_path_factory.mktemp("dl") / "deadletter.jsonl"
    letters = DeadLetters(path, "w", Rotation(max_bytes=limit, keep=keep))
    for size in sizes:
        letters("n", "r", "x" * size)
    letters.close()
    kept, dropped = kept_and_dropped(path, Rotation(limit, keep))
    assert kept + dropped == len(sizes)
    assert len(dead_letter_files(path, Rotation(limit, keep)).paths()) <= keep + 1


def _write_many(path: str, worker: str, count: int) -> None:
    letters = DeadLetters(path, worker, Rotation(max_bytes=5_000, keep=2))
    for index in range(count):
        letters("n", f"{worker} {index}", {"pad": "y" * 40})
    letters.close()


def test_processes_writing_one_file_at_once_lose_nothing_uncounted(tmp_path):
    path = tmp_path / "deadletter.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_many, args=(str(path), f"w{n}", 400)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    kept, dropped = kept_and_dropped(path, Rotation(max_bytes=5_000, keep=2))
    assert kept + dropped == 1_200
    for p in dead_letter_files(path, Rotation(max_bytes=5_000, keep=2)).paths():
        for line in p.read_text().splitlines():
            json.loads(line)  # no torn lines


def test_an_unbounded_file_never_rotates(tmp_path):
    path = tmp_path / "deadletter.jsonl"
    letters = DeadLetters(path, "w", Rotation(max_bytes=None))
    for _ in range(50):
        letters("n", "r", "z" * 100)
    letters.close()
    assert letters_in(path) == 50 and not (tmp_path / "deadletter.jsonl.1").exists()


@pytest.mark.parametrize("text, size", [("64MB", 64_000_000), ("512kB", 512_000), ("1GiB", 1 << 30),
                                        ("100", 100), ("2.5 MB", 2_500_000), ("0", None)])
def test_sizes_read_as_written(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("variable, value", [("CEP_DEAD_LETTERS_MAX_SIZE", "lots"),
                                             ("CEP_DEAD_LETTERS_MAX_SIZE", "-1MB"),
                                             ("CEP_DEAD_LETTERS_KEEP", "0"),
                                             ("CEP_DEAD_LETTERS_KEEP", "two")])
def test_a_bad_setting_in_the_environment_is_a_mistake_naming_it(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        Rotation.from_environment()
    assert f"{variable}={value}" in str(caught.value)


def test_the_environment_sets_the_limit(monkeypatch):
    monkeypatch.setenv("CEP_DEAD_LETTERS_MAX_SIZE", "1MB")
    monkeypatch.setenv("CEP_DEAD_LETTERS_KEEP", "3")
    assert Rotation.from_environment() == Rotation(max_bytes=1_000_000, keep=3)
    monkeypatch.delenv("CEP_DEAD_LETTERS_MAX_SIZE")
    monkeypatch.delenv("CEP_DEAD_LETTERS_KEEP")
    assert Rotation.from_environment() == Rotation()


def test_the_summary_says_how_big_the_files_are_and_what_rotation_dropped(tmp_path):
    path = tmp_path / "deadletter.jsonl"
    rotation = Rotation(max_bytes=1_000, keep=1)
    letters = DeadLetters(path, "w", rotation)
    for _ in range(40):
        letters("n", "r", "q" * 80)
    letters.close()
    text = dead_letter_files(path, rotation).describe()
    kept, dropped = kept_and_dropped(path, rotation)
    assert "rotates at 1.0 kB" in text and "1 older file" in text
    assert f"{dropped:,} dropped by rotation" in text
    assert dead_letter_files(tmp_path / "none.jsonl", rotation).describe() == "(none yet; it rotates at 1.0 kB)"


def test_a_file_moved_away_by_another_writer_is_reopened(tmp_path):
    path = tmp_path / "deadletter.jsonl"
    first, second = (DeadLetters(path, w, Rotation(max_bytes=10_000)) for w in ("a", "b"))
    first("n", "one", 1)
    second("n", "two", 2)
    os.rename(path, tmp_path / "elsewhere.jsonl")
    first("n", "three", 3)
    first.close()
    second.close()
    assert [json.loads(line)["reason"] for line in path.read_text().splitlines()] == ["three"]


POISON = """version: 1
name: poison
sources:
  ticks: {type: synthetic, instruments: 2, count: 3000}
streams:
  broken:
    from: ticks
    ops:
      - map: {x: "1 / (bid_price - bid_price)"}
sinks:
  out: {type: "null", from: broken}
"""


@pytest.mark.integration
@pytest.mark.parametrize("inline", [False, True], ids=["processes", "inline"])
def test_a_run_past_the_limit_rotates_and_its_summary_shows_sizes_and_drops(workdir, inline):
    (workdir / "poison.yaml").write_text(POISON)
    summary = workdir / "summary.json"
    env = {**os.environ, "CEP_DEAD_LETTERS_MAX_SIZE": "100kB"}
    done = subprocess.run([sys.executable, "-m", "cep.cli", "run", "poison.yaml", "-q", "--summary-json",
                           str(summary), *(["--inline"] if inline else [])], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    dead = json.loads(summary.read_text())["dead_letters"]
    assert dead["count"] == 3000 and dead["max_bytes"] == 100_000
    assert 0 < dead["bytes"] <= 101_000 and 0 < dead["rotated_bytes"] <= 101_000
    kept, dropped = kept_and_dropped(workdir / "out" / "deadletter.jsonl", Rotation(100_000, 1))
    assert dropped == dead["dropped_by_rotation"] > 0 and kept + dropped == 3000
    assert "it rotates at 100.0 kB into 1 older file" in done.stderr
    assert f"{dropped:,} dropped by rotation" in done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("inline", [[], ["--inline"]], ids=["processes", "inline"])
def test_a_bad_limit_in_the_environment_stops_the_run_with_a_message(workdir, inline):
    (workdir / "poison.yaml").write_text(POISON)
    done = subprocess.run([sys.executable, "-m", "cep.cli", "run", "poison.yaml", "-q", *inline], cwd=workdir,
                          env={**os.environ, "CEP_DEAD_LETTERS_MAX_SIZE": "lots"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "CEP_DEAD_LETTERS_MAX_SIZE=lots" in done.stderr and "Traceback" not in done.stderr


def test_a_writer_paused_between_its_stat_and_its_write_loses_nothing_to_two_rotations(tmp_path, monkeypatch):
    """A writer that looked at the file and then lost the CPU while another process rotated it
    twice wrote its letter into the dropped file, uncounted (a full suite on a loaded host lost
    one that way). Here the other writer rotates twice while this one is between the two."""
    import threading

    import cep.runtime.deadletter as deadletter

    path = tmp_path / "deadletter.jsonl"
    rotation = Rotation(max_bytes=300, keep=1)
    paused, other = DeadLetters(path, "paused", rotation), DeadLetters(path, "other", rotation)
    paused("n", "first", {"pad": "y" * 40})
    real_stat, rotated_twice = os.stat, threading.Event()

    def rotate_twice() -> None:
        for index in range(20):  # 20 letters of about 140 bytes: past two rotations at 300 bytes
            other("n", f"other {index}", {"pad": "y" * 40})
        rotated_twice.set()

    def stat_then_pause(target, *args, **kwargs):
        found = real_stat(target, *args, **kwargs)
        if threading.current_thread() is threading.main_thread() and str(target) == str(path):
            threading.Thread(target=rotate_twice).start()
            rotated_twice.wait(1.0)  # the lock holds the other writer back: this wait times out
        return found

    monkeypatch.setattr(deadletter.os, "stat", stat_then_pause)
    paused("n", "second", {"pad": "y" * 40})
    monkeypatch.setattr(deadletter.os, "stat", real_stat)
    assert rotated_twice.wait(10)
    paused.close()
    other.close()
    kept, dropped = kept_and_dropped(path, rotation)
    assert kept + dropped == 22
