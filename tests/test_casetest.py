"""`cep test`: the shipped cases pass (this is how CI runs them), a wrong expectation fails with a
diff, a malformed file exits 2 naming file:line, and tick times read as documented."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cep import cli
from cep.casetest.times import Clock, absolute_time, day_start

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "rules").glob("*.yaml")) + sorted((ROOT / "pipelines").glob("*.yaml"))
MOMENTUM = ROOT / "pipelines" / "momentum.yaml"
S = 1_000_000_000


def cep_test(*args: object):
    """`cep test ARGS` in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli.cli, ["test", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("MOMENTUM", str(MOMENTUM)))
    return path


def test_every_shipped_pipeline_and_rule_library_has_cases_and_they_pass():
    done = subprocess.run([sys.executable, "-m", "cep.cli", "test", *SHIPPED], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in SHIPPED:
        assert f"{path.relative_to(ROOT)}::" in done.stdout or f"{path}::" in done.stdout, path
    assert "FAILED" not in done.stdout
    assert re.search(r"^\d+ passed in [\d.]+s$", done.stdout, re.M)


RISING = """\
pipeline: MOMENTUM
tests:
  - name: rising
    feed: quotes
    instrument: BTCUSDT
    columns: [bid, ask]
    input: [[100, 100.2], [99, 99.2], [99.5, 99.7], [100, 100.2], [100.5, 100.7], [101, 101.2],
            [101.5, 101.7]]
    expect:
      momentum5: EXPECTED
"""


def test_a_wrong_expectation_fails_with_a_diff_of_expected_and_actual(tmp_path):
    path = write(tmp_path, RISING.replace("EXPECTED", "[{action: SELL, trigger_price: 101.7}]"))
    code, out, _ = cep_test(path)
    assert code == 1
    assert f"{path}::rising FAILED" in out
    assert f"{path}:10:7: expect.momentum5: expected 1 record, got 1 record" in out
    assert '  - {"action": "SELL", "trigger_price": 101.7}' in out
    assert '  + {"action": "BUY", "trigger_price": 101.7}' in out
    assert out.rstrip().splitlines()[-1].startswith("1 failed, 0 passed in ")


@pytest.mark.parametrize("expected, passes", [
    ("[{action: BUY}]", True),
    ("{count: 1}", True),
    ("{count: 0}", False),
    ("[]", False),
    ("{records: [{action: BUY}]}", False),                 # records compares every field
    ("{match: [{t: 00:00:06, quantity: 100.0}]}", True),   # 7 ticks one a second from midnight
    ("{match: [{t: 00:00:05}]}", False),
    ("{dead_lettered: 0, dropped: {}}", True),
    ("{dead_lettered: 1}", False),
])
def test_each_form_of_expectation_is_checked(tmp_path, expected, passes):
    code, out, _ = cep_test(write(tmp_path, RISING.replace("EXPECTED", expected)))
    assert code == (0 if passes else 1), out


def test_exact_records_pass_when_every_field_agrees(tmp_path):
    record = ('{signal_id: "momentum5:BTCUSDT:6000000000:BUY", t: 6000000000, action: BUY, '
              'instrument: BTCUSDT, trigger_price: 101.7, quantity: 100, strategy_name: momentum5, '
              'confidence: 0.996052}')
    code, out, _ = cep_test(write(tmp_path, RISING.replace("EXPECTED", f"{{records: [{record}]}}")))
    assert code == 0, out


def test_feeding_a_rule_reads_no_data_file_and_leaves_out_what_the_input_does_not_reach(tmp_path):
    text = """\
pipeline: MOMENTUM
tests:
  - name: mids straight into the rule
    feed: momentum5
    columns: [t, instrument, mid, bid_price, ask_price]
    input:
      - [10:00:00, X, 10, 9, 11]
      - [10:00:01, X, 9, 8, 10]
      - [+1s, X, 10, 9, 11]
      - [+1s, X, 11, 10, 12]
      - [+1s, X, 12, 11, 13]
      - [+1s, X, 13, 12, 14]
      - [+1s, X, 14, 13, 15]
    expect:
      signals: [{t: 10:00:06, instrument: X, trigger_price: 15}]
"""
    code, out, _ = cep_test(write(tmp_path, text))
    assert code == 0, out
    unreached = text.replace("signals: [", "quotes: [")
    code, _, err = cep_test(write(tmp_path, unreached))
    assert code == 2
    assert "expect: 'quotes' does not read from 'momentum5'" in err


def test_a_malformed_test_file_exits_2_with_every_mistake_at_its_line_and_runs_nothing(tmp_path):
    path = write(tmp_path, """\
pipeline: MOMENTUM
tests:
  - name: broken
    feed: quotez
    input:
      - [10:00:00, BTC, 100]
      - [1.5, BTC, 100, 101]
      - advance: 2q
    expect:
      momentum6: []
  - name: ok otherwise
    expct: {momentum5: []}
""")
    code, out, err = cep_test(path)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    for where, what in [(":4:5:", "feed: no node 'quotez' (did you mean 'quotes'?"),
                        (":6:9:", "input[0]: 3 values for 4 columns (t, instrument, bid, ask)"),
                        (":7:9:", "input[1]: 1.5 is not an event time"),
                        (":8:9:", "input[2]: expected a duration"),
                        (":10:7:", "expect: no node 'momentum6' (did you mean 'momentum5'?"),
                        (":12:5:", "unknown key 'expct' (did you mean 'expect'?")]:
        assert any(line.startswith(f"{path}{where}") and what in line for line in lines), (where, err)
    assert "Traceback" not in err


def test_the_count_of_a_negative_expectation_names_its_key(tmp_path):
    code, _, err = cep_test(write(tmp_path, RISING.replace("EXPECTED", "{count: -1}")))
    assert code == 2
    assert ":10:19: case \"rising\": expect.momentum5.count: input should be greater than or equal to 0" in err


@pytest.mark.parametrize("text, message", [
    ("pipeline: nowhere.yaml\ntests: [{name: a, expect: {x: []}}]\n", ":1:1: pipeline: no such file 'nowhere.yaml'"),
    ("- just\n- a list\n", ":1:1: a test file must be a mapping"),
    ("pipeline: MOMENTUM\ntests: {cases: []}\n", "'cases:' must be a non-empty list"),
    ("pipeline: [MOMENTUM]\ntests: []\n", "pipeline: input should be a valid string"),
    ("tests: [\n", "invalid YAML"),
])
def test_bad_test_files_get_a_message_and_exit_2(tmp_path, text, message):
    code, _, err = cep_test(write(tmp_path, text))
    assert code == 2
    assert message in err, err


def test_a_pipeline_without_tests_is_a_mistake(tmp_path):
    code, _, err = cep_test(write(tmp_path, MOMENTUM.read_text().split("\ntests:")[0], "p.yaml"))
    assert code == 2
    assert "has no 'tests:' section" in err


def test_a_missing_file_exits_2(tmp_path):
    code, _, err = cep_test(tmp_path / "absent.yaml")
    assert code == 2
    assert "absent.yaml: no such test file" in err


def test_a_rule_library_case_reports_a_bad_parameter_at_its_rule_line(tmp_path):
    library = ROOT / "rules" / "momentum.yaml"
    text = f"pipeline: {library}\ntests:\n  - name: c\n    rule: {{use: momentum_pattern, with: {{count: zero}}}}\n" \
           "    expect: {momentum_pattern: []}\n"
    code, _, err = cep_test(write(tmp_path, text))
    assert code == 2
    assert ":4:5: case \"c\": rule:" in err and "'zero'" in err


def test_k_selects_cases_by_name(tmp_path):
    code, out, _ = cep_test(MOMENTUM, "-k", "flat")
    assert code == 0
    assert "1 passed, 4 deselected" in out


# -- tick times ----------------------------------------------------------------------------------
DAY = day_start("2024-08-08")


@pytest.mark.parametrize("written, expected", [
    ("10:00:01", DAY + 36_001 * S),
    ("10:00", DAY + 36_000 * S),
    ("10:00:01.25", DAY + 36_001 * S + 250_000_000),
    ("10:00:01.123456789", DAY + 36_001 * S + 123_456_789),
    ("2024-08-08T10:00:01Z", DAY + 36_001 * S),
    ("2024-08-08T12:00:01+02:00", DAY + 36_001 * S),
    (dt.datetime(2024, 8, 8, 10, 0, 1), DAY + 36_001 * S),
    (1723111201000000000, 1723111201000000000),
])
def test_absolute_times(written, expected):
    assert absolute_time(written, DAY) == expected


@pytest.mark.parametrize("written", ["24:00:00", "10:61", 1.5, True, "soon", None])
def test_what_is_no_time_is_refused(written):
    with pytest.raises(ValueError):
        absolute_time(written, DAY)


def test_the_clock_steps_jumps_and_advances():
    clock = Clock(DAY, step=S)
    assert clock.at(None) == DAY
    assert clock.at(None) == DAY + S
    assert clock.at("+250ms") == DAY + S + 250_000_000
    clock.advance("5s")
    assert clock.at(None) == DAY + 6 * S + 250_000_000  # right where the advance left it
    assert clock.at(None) == DAY + 7 * S + 250_000_000
    assert clock.at("10:00") == DAY + 36_000 * S


@given(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999_999_999))
def test_any_time_of_day_is_read_to_the_nanosecond(hours, minutes, seconds, nanos):
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}.{nanos:09d}"
    assert absolute_time(text, DAY) == DAY + ((hours * 60 + minutes) * 60 + seconds) * S + nanos


def test_the_readme_example_is_a_passing_case(tmp_path):
    readme = (ROOT / "README.md").read_text()
    example = next(block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                   if block.startswith("tests:"))
    pipeline = MOMENTUM.read_text().split("\ntests:")[0].replace("../data/", f"{ROOT}/data/")
    code, out, _ = cep_test(write(tmp_path, f"{pipeline}\n{example}", "readme.yaml"))
    assert code == 0, out
    assert "1 passed" in out


TRADING = """\
name: trading
sources:
  ticks: {type: synthetic, instruments: [BTCUSDT], count: 100, seed: 1}
streams:
  quotes: {from: ticks, ops: [{filter: "ask_price > bid_price"}]}
rules:
  up3: {use: momentum, from: quotes, with: {count: 3, direction: up, quantity: 1}}
venues:
  paper: {type: paper, quotes: quotes, seed: 7}
orders:
  exec: {from: [up3], venue: paper, risk: {max_quantity: 10}}
sinks:
  signals: {type: jsonl, from: [up3], path: signals.jsonl}
  log: {type: jsonl, from: [exec], path: orders.jsonl}
tests:
  - name: signals without their venue's quotes
    feed: up3
    input: [[0, BTCUSDT, 100, 101], [+1s, BTCUSDT, 99, 100], [+1s, BTCUSDT, 100, 101],
            [+1s, BTCUSDT, 101, 102], [+1s, BTCUSDT, 102, 103]]
    expect: {signals: {count: 1}}
"""


def test_an_order_executor_whose_venue_the_input_does_not_reach_is_left_out(tmp_path):
    code, _, err = cep_test(write(tmp_path, TRADING, "trading.yaml"))
    assert code == 0, err
    code, _, err = cep_test(write(tmp_path, TRADING.replace("{signals: {count: 1}}", "{log: []}"), "trading.yaml"))
    assert code == 2
    assert "expect: 'log' does not read from 'up3'" in err
