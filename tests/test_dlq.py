"""`cep dlq`: what was dead-lettered and why, across rotated files, and replaying fixed records
into a pipeline's source; every bad input a message with the right exit code."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cep import cli
from cep.runtime.deadletter import DeadLetters, Rotation

PIPELINE = """\
version: 1
name: mixed
sources:
  ticks: {type: jsonl, path: ticks.jsonl}
streams:
  mids:
    from: ticks
    ops:
      - map: {mid: "(bid_price + ask_price) / 2", inverse: "1 / (ask_price - bid_price)"}
sinks:
  out: {type: jsonl, from: mids, path: out/mids.jsonl, mode: append}
"""
TICKS = [
    '{"timestamp": 1, "instrument": "A", "bid_price": 1.0, "ask_price": 2.0}',
    '{"timestamp": 2, "instrument": "A", "bid_price": 1.0, "ask_price": 1.0}',   # 1 / 0
    'not json',
    '{"timestamp": 3, "instrument": "A", "bid_price": 2.0, "ask_price": 3.0}',
]
FIXER = """\
import sys
path = sys.argv[1]
text = open(path).read()
open(path, "w").write(text.replace('"ask_price": 1.0}', '"ask_price": 1.5}'))
"""


def cep(*args: object, env: dict | None = None):
    result = CliRunner().invoke(cli.cli, [str(arg) for arg in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def ran(tmp_path, monkeypatch):
    """A pipeline that has run once: two dead letters (a line that is no JSON, a division by 0)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(PIPELINE)
    (tmp_path / "ticks.jsonl").write_text("\n".join(TICKS) + "\n")
    code, _, err = cep("run", "p.yaml", "--inline", "-q")
    assert code == 0, err
    return tmp_path


def test_list_numbers_each_letter_with_its_node_and_reason(ran):
    code, out, err = cep("dlq", "p.yaml", "list")
    assert code == 0
    rows = out.splitlines()[1:]
    assert len(rows) == 2
    assert rows[0].split()[0] == "1" and " ticks " in rows[0] and "ticks.jsonl line 3" in rows[0]
    assert rows[1].split()[0] == "2" and " mids " in rows[1] and "ZeroDivisionError" in rows[1]
    assert "2 dead letters in out/deadletter.jsonl" in err
    code, out, _ = cep("dlq", "p.yaml", "list", "--json", "--node", "mids")
    [letter] = map(json.loads, out.splitlines())
    assert (letter["number"], letter["node"], letter["line"]) == (2, "mids", 2)


@pytest.mark.parametrize("where", ["p.yaml", "out/deadletter.jsonl", "out", ".", None])
def test_where_is_a_pipeline_a_file_or_a_directory(ran, where):
    code, out, _ = cep("dlq", *([where] if where else []), "list")
    assert code == 0 and len(out.splitlines()) == 3


def test_a_running_pipelines_run_directory_names_its_file(ran, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    status = run_dir / "status.json"
    status.write_text(json.dumps({"format": 1, "dead_letters": {"path": str(ran / "out" / "deadletter.jsonl"),
                                                                 "count": 2}}))
    status.chmod(0o600)
    code, out, _ = cep("dlq", run_dir, "list")
    assert code == 0 and len(out.splitlines()) == 3


def test_show_prints_the_whole_letter_raw_input_included(ran):
    code, out, _ = cep("dlq", "p.yaml", "show", "2")
    assert code == 0
    assert "dead letter 2 (out/deadletter.jsonl:2)" in out
    assert "node:   mids (worker inline)" in out and "reason: ZeroDivisionError" in out
    assert '"ask_price": 1.0' in out
    code, out, _ = cep("dlq", "p.yaml", "show", "1", "--json")
    assert json.loads(out)["raw"] == "not json"


def test_records_are_one_json_line_each_and_what_is_no_record_is_a_comment(ran):
    code, out, _ = cep("dlq", "p.yaml", "records")
    assert code == 0
    lines = [line for line in out.splitlines() if not line.startswith("#")]
    assert [json.loads(line) for line in lines] == [json.loads(TICKS[1])]
    assert '# letter 1 (ticks: ticks.jsonl line 3: ' in out and 'rewrite it as one: "not json"' in out
    code, _, _ = cep("dlq", "p.yaml", "records", "2", "-o", "fixed.jsonl")
    assert code == 0 and oct(os.stat("fixed.jsonl").st_mode & 0o777) == "0o600"


def test_replay_after_an_edit_feeds_the_fixed_record_to_the_pipeline(ran):
    (ran / "fix.py").write_text(FIXER)
    code, _, err = cep("dlq", "p.yaml", "replay", "--to", "p.yaml", "--inline", "-q", "--edit", "2",
                       env={"EDITOR": f"{sys.executable} {ran / 'fix.py'}"})
    assert code == 0, err
    assert "replaying 1 record into p.yaml" in err
    written = [json.loads(line) for line in (ran / "out" / "mids.jsonl").read_text().splitlines()]
    assert written[-1] == {"timestamp": 2, "instrument": "A", "bid_price": 1.0, "ask_price": 1.5,
                           "mid": 1.25, "inverse": 2.0}
    assert len(written) == 3


def test_replay_of_an_unfixed_record_dead_letters_it_again(ran):
    code, _, err = cep("dlq", "p.yaml", "replay", "--to", "p.yaml", "--inline", "-q", "2")
    assert code == 0
    assert "dead letters: 1 this run" in err
    assert len((ran / "out" / "deadletter.jsonl").read_text().splitlines()) == 3


def test_replay_of_a_records_file(ran):
    (ran / "fixed.jsonl").write_text('# fixed by hand\n{"timestamp": 5, "instrument": "B", "bid_price": 4.0, '
                                     '"ask_price": 6.0}\n')
    code, _, err = cep("dlq", "replay", "--to", "p.yaml", "--records", "fixed.jsonl", "--inline", "-q")
    assert code == 0, err
    assert json.loads((ran / "out" / "mids.jsonl").read_text().splitlines()[-1])["mid"] == 5.0


@pytest.mark.integration
def test_replay_runs_the_pipeline_in_processes_too(ran):
    (ran / "fix.py").write_text(FIXER)
    done = subprocess.run([sys.executable, "-m", "cep.cli", "dlq", "p.yaml", "replay", "--to", "p.yaml", "-q",
                           "--edit", "2"], cwd=ran, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "EDITOR": f"{sys.executable} {ran / 'fix.py'}",
                               "CEP_RUN_DIR": str(ran / "run")})
    assert done.returncode == 0, done.stderr
    assert json.loads((ran / "out" / "mids.jsonl").read_text().splitlines()[-1])["ask_price"] == 1.5


def test_letters_of_rotated_files_come_first_and_what_rotation_dropped_is_said(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CEP_DEAD_LETTERS_MAX_SIZE", "1kB")
    letters = DeadLetters(tmp_path / "deadletter.jsonl", "w", Rotation(max_bytes=1_000, keep=1))
    for index in range(40):
        letters("n", f"reason {index}", {"timestamp": index, "pad": "p" * 60})
    letters.close()
    code, out, err = cep("dlq", "deadletter.jsonl", "list", "--json")
    assert code == 0
    found = [json.loads(line) for line in out.splitlines()]
    assert [f["number"] for f in found] == list(range(1, len(found) + 1))
    assert found[-1]["reason"] == "reason 39" and found[0]["file"].endswith("deadletter.jsonl.1")
    dropped = 40 - len(found)
    assert dropped > 0 and f"{dropped:,} older ones dropped by rotation" in err


def test_lines_that_are_no_dead_letter_are_counted_and_skipped(ran):
    with open(ran / "out" / "deadletter.jsonl", "a") as file:
        file.write('{"cut in the mid\n[1, 2]\n')
    code, out, err = cep("dlq", "p.yaml", "list")
    assert code == 0 and len(out.splitlines()) == 3
    assert "2 lines that are no dead letter skipped" in err


@pytest.mark.parametrize("args, code, message", [
    (["nowhere", "list"], 2, "nowhere: no such file or directory"),
    (["p.yaml", "show", "9"], 2, "no dead letter 9 in"),
    (["p.yaml", "show", "0"], 2, "0 is not in the range x>=1"),
    (["empty", "list"], 2, "no dead letters in empty"),
    (["replay", "--to", "p.yaml", "--records", "bad.jsonl"], 2, "bad.jsonl:1:1: not JSON"),
    (["replay", "--to", "p.yaml", "--records", "bad.jsonl"], 2, "bad.jsonl:2:1: no integer timestamp"),
    (["replay", "--to", "p.yaml", "--records", "missing.jsonl"], 2, "missing.jsonl: cannot read the records"),
    (["replay", "--to", "p.yaml", "--records", "bad.jsonl", "3"], 2, "--records replays a file"),
    (["p.yaml", "replay", "--to", "p.yaml", "1"], 2, "no records to replay"),
    (["p.yaml", "replay", "--to", "two.yaml", "2"], 2, "the pipeline has 2 sources"),
    (["p.yaml", "replay", "--to", "absent.yaml", "2"], 2, "absent.yaml: no such pipeline file"),
])
def test_bad_input_is_a_message_with_its_exit_code(ran, args, code, message):
    (ran / "empty").mkdir()
    (ran / "bad.jsonl").write_text('nope\n{"timestamp": "soon"}\n')
    (ran / "two.yaml").write_text(PIPELINE.replace("sources:\n", "sources:\n  more: {type: jsonl, path: ticks.jsonl}\n"))
    done = subprocess.run([sys.executable, "-m", "cep.cli", "dlq", *args], cwd=ran, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_an_edit_that_is_not_saved_replays_nothing(ran):
    code, _, err = cep("dlq", "p.yaml", "replay", "--to", "p.yaml", "--inline", "--edit", "2",
                       env={"EDITOR": "true"})
    assert code == 1
    assert "not saved: nothing replayed" in err
