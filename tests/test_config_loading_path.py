"""One loading path for every command: the size check comes before parsing and nesting is
bounded while composing, for `validate`, `run`, `graph`, `replay` and rule libraries alike; a
file too large or too deep is a located user error (exit 2), never an internal error."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cep.config.yamlsafe import MAX_BYTES, MAX_DEPTH, parse_yaml
from cep.errors import ConfigError

DEEP = 100_000


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cep.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def huge(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\nsources: {}\n# " + "x" * (50 * MAX_BYTES) + "\n")
    return path


@pytest.fixture
def deep(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\nsources:\n  ticks: " + "[" * DEEP + "]" * DEEP + "\n")
    return path


@pytest.mark.parametrize("command", [["validate"], ["run", "--inline"], ["graph"]])
def test_a_huge_file_is_refused_before_it_is_parsed(command, huge):
    started = time.perf_counter()
    done = cli(*command, str(huge))
    assert done.returncode == 2, done.stderr
    assert f"{huge}:1:1: the file is too large" in done.stderr
    assert time.perf_counter() - started < 10  # start-up and a stat, not a 30 s parse


@pytest.mark.parametrize("command", [["validate"], ["run", "--inline"], ["graph"]])
def test_a_deep_flow_list_is_a_located_user_error(command, deep):
    done = cli(*command, str(deep))
    assert done.returncode == 2, done.stderr
    assert "internal error" not in done.stderr
    assert f"{deep}:3:{10 + MAX_DEPTH - 1}: the document is nested too deeply" in done.stderr


def test_replay_refuses_a_deep_pipeline_as_validate_does(deep, tmp_path):
    data = tmp_path / "ticks.csv"
    data.write_text("timestamp,instrument,bid_price,ask_price\n")
    done = cli("replay", "--inline", str(deep), "--data", str(data))
    assert done.returncode == 2, done.stderr
    assert "nested too deeply" in done.stderr


def test_a_deep_imported_rule_library_is_located_in_the_library(tmp_path):
    library = tmp_path / "deep_rules.yaml"
    library.write_text("version: 1\ntemplates:\n  x: " + "[" * DEEP + "]" * DEEP + "\n")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("name: p\nimports: [deep_rules.yaml]\n"
                        "sources: {ticks: {type: synthetic, count: 1}}\n"
                        "sinks: {out: {type: 'null', from: ticks}}\n")
    for target in (library, pipeline):
        done = cli("validate", str(target))
        assert done.returncode == 2, done.stderr
        assert f"{library}:3:" in done.stderr and "nested too deeply" in done.stderr


def test_nesting_is_bounded_while_composing_at_the_too_deep_node():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a:\n  b: " + "{c: " * 200 + "1" + "}" * 200 + "\n", "p.yaml")
    [problem] = caught.value.problems
    assert problem.location.line == 2
    assert "nested too deeply" in problem.message


def test_nesting_up_to_the_limit_is_read():
    depth = MAX_DEPTH - 1
    doc = parse_yaml("a: " + "[" * depth + "1" + "]" * depth + "\n", "p.yaml")
    value = doc.data["a"]
    for _ in range(depth - 1):
        value = value[0]
    assert value == [1]
