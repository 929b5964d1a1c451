"""The command line as users meet it: exit codes, messages with file:line, no tracebacks."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cep import cli
from tests.support import ROOT, SHIPPED_TICKS

PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
RULES = sorted((ROOT / "rules").glob("*.yaml"))
SNAPSHOTS = Path(__file__).parent / "snapshots"


def cep(*args, capsys):
    """Run the CLI in this process; (exit code, stdout, stderr)."""
    try:
        sys.argv = ["cep", *map(str, args)]
        cli.main()
        code = 0
    except SystemExit as exit:
        code = exit.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", PIPELINES + RULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_pipeline_and_rule_library_validates_without_a_warning(path, capsys):
    """An example runs clean: a warning on every `cep run` of it would teach users to ignore them."""
    code, out, err = cep("validate", path, capsys=capsys)
    assert code == 0, err
    assert "ok" in out
    assert "warning" not in out + err


VALID = f"""version: 1
name: t
sources:
  ticks: {{type: csv, path: {SHIPPED_TICKS}}}
streams:
  quotes:
    from: ticks
    ops:
      - filter: "ask_price > bid_price"
rules:
  up: {{use: momentum, from: quotes, with: {{count: 3}}}}
sinks:
  out: {{type: "null", from: up}}
"""

BAD_INPUT = {
    "yaml syntax error": (VALID.replace("ops:", "ops: [", 1), ":9:", "YAML"),
    "duplicate key": (VALID.replace("  quotes:\n", "  quotes:\n    from: ticks\n", 1), ":8:", "duplicate key"),
    "unknown key": (VALID.replace("with: {count: 3}", "with: {cout: 3}"), ":11:", "did you mean 'count'"),
    "unknown component type": (VALID.replace("type: csv", "type: cvs"), ":4:", "csv"),
    "missing from target": (VALID.replace("from: up}", "from: upp}"), ":13:", 'did you mean "up"'),
    "cycle": (VALID.replace("    from: ticks\n", "    from: [ticks, quotes]\n", 1), ":", "cycle"),
    "expression syntax error": (VALID.replace('"ask_price > bid_price"', '"ask_price >"'), ":9:", "syntax"),
    "expression unknown name": (VALID.replace('"ask_price > bid_price"', '"ask_prise > bid_price"'), ":9:", "ask_price"),
    "expression dunder": (VALID.replace('"ask_price > bid_price"', '"ask_price.__class__"'), ":9:", "__class__"),
    "expression import": (VALID.replace('"ask_price > bid_price"', '"__import__(\'os\')"'), ":9:", "__import__"),
    "expression 10 kB of nesting": (VALID.replace('"ask_price > bid_price"', '"' + "(" * 5000 + "1" + ")" * 5000 + '"'),
                                    ":9:", "long"),
    "missing data file": (VALID.replace(str(SHIPPED_TICKS), "no/such/ticks.csv"), ":4:", "no such"),
    "csv without the mapped columns": (VALID.replace("path:", "columns: {bid_price: best_bid}, path:"), ":4:", "best_bid"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_exit_2_with_file_line_and_hint_never_a_traceback(case, tmp_path, capsys):
    text, where, words = BAD_INPUT[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = cep("validate", path, capsys=capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert f"{path}{where}" in err, err
    assert words.lower() in err.lower(), err


def test_validate_reports_every_file_and_every_error_at_once(tmp_path, capsys):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(BAD_INPUT["unknown key"][0].replace("type: csv", "type: cvs"))
    second.write_text(BAD_INPUT["missing from target"][0])
    code, _, err = cep("validate", first, second, capsys=capsys)
    assert code == 2
    assert err.count(str(first)) == 2 and err.count(str(second)) == 1


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot", "json"])
def test_graph_output_matches_the_snapshot(fmt, capsys, monkeypatch):
    monkeypatch.setenv("CEP_RUN_DIR", "/tmp/cep-snapshot")
    code, out, err = cep("graph", ROOT / "pipelines" / "momentum.yaml", "--format", fmt, capsys=capsys)
    assert code == 0, err
    out = out.replace(str(ROOT), "<root>")
    snapshot = SNAPSHOTS / f"momentum.{fmt}"
    if os.environ.get("CEP_UPDATE_SNAPSHOTS"):
        snapshot.write_text(out)
    assert out == snapshot.read_text()


def test_graph_json_is_the_plan_itself(capsys):
    code, out, _ = cep("graph", ROOT / "pipelines" / "momentum.yaml", "-f", "json", capsys=capsys)
    plan = json.loads(out)
    assert [p["name"] for p in plan["processes"]] == ["gateway-ticks", "strategy", "sink-signals"]
    edge = plan["edges"][0]
    assert {edge["from"], edge["to"], edge["pattern"], edge["delivery"]} == {"gateway-ticks", "strategy", "pub/sub",
                                                                            "at_most_once"}
    assert edge["endpoints"][0].startswith("ipc://")


def test_graph_picture_without_graphviz_is_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = cep("graph", ROOT / "pipelines" / "momentum.yaml", "-o", tmp_path / "t.svg", capsys=capsys)
    assert code == 1 and "Graphviz" in err


def test_plugins_lists_every_kind_with_parameters(capsys):
    code, out, _ = cep("plugins", capsys=capsys)
    assert code == 0
    for heading in ("sources:", "operators:", "rules:", "sinks:"):
        assert heading in out
    assert "momentum" in out and "count:" in out and "window" in out


@pytest.mark.integration
def test_run_synthetic_end_to_end_prints_the_summary_and_exits_0(workdir):
    result = subprocess.run([sys.executable, "-m", "cep.cli", "run", str(ROOT / "pipelines" / "synthetic.yaml"), "-q"],
                            capture_output=True, text=True, timeout=120, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "restarts 0" in result.stderr
    lines = {line.split()[0]: line.split() for line in result.stderr.splitlines() if line.strip()}
    assert lines["quotes"][3] == "200,000"


@pytest.mark.integration
def test_ctrl_c_drains_every_process_and_prints_the_summary(workdir):
    pipeline = workdir / "slow.yaml"
    pipeline.write_text("""version: 1
name: slow
sources:
  ticks: {type: synthetic, instruments: 2, count: 1000000, rate: 2000, speed: realtime}
sinks:
  echo: {type: stdout, from: ticks}
""")
    process = subprocess.Popen([sys.executable, "-m", "cep.cli", "run", str(pipeline), "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir)
    first = process.stdout.readline()  # the pipeline is running once a tick reaches the sink
    assert "instrument" in first
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "interrupted, drained" in err
    assert "Traceback" not in err


RISKY_PATTERN = """version: 1
name: w
sources:
  ticks: {type: synthetic, count: 100}
rules:
  loop:
    from: ticks
    pattern:
      - {name: a, where: "bid_price > 0"}
      - {name: b, where: "bid_price > 0", one_or_more: true}
sinks:
  out: {type: "null", from: loop}
"""
"""A pipeline `cep validate` warns about (a loop with no `within`) but accepts."""


def test_a_risky_pattern_is_a_warning_not_an_error(tmp_path, capsys):
    path = tmp_path / "loop.yaml"
    path.write_text(RISKY_PATTERN)
    code, out, err = cep("validate", path, capsys=capsys)
    assert code == 0 and "ok" in out
    assert f"{path}:6:3: warning:" in err and "within" in err


@pytest.mark.skipif(not __import__("shutil").which("dot"), reason="Graphviz's dot is not installed here")
def test_graph_renders_a_picture_with_graphviz(tmp_path, capsys):
    picture = tmp_path / "topology.svg"
    code, out, err = cep("graph", ROOT / "pipelines" / "momentum.yaml", "-o", picture, capsys=capsys)
    assert code == 0, err
    assert picture.read_text().lstrip().startswith(("<?xml", "<svg")) and "strategy" in picture.read_text()


def test_replay_runs_a_pipeline_over_other_historical_data(workdir, capsys):
    data = workdir / "few.csv"
    data.write_text("timestamp,instrument,bid_price,ask_price,bid_volume,ask_volume\n"
                    + "".join(f"{i + 1},X,{100 + abs(i)},{101 + abs(i)},,\n" for i in range(-1, 7)))
    code, out, err = cep("replay", ROOT / "pipelines" / "momentum.yaml", "--data", data, "--inline", capsys=capsys)
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in err.splitlines() if line.strip()}
    assert rows["ticks"][3] == "8" and rows["momentum5"][3] == "1"


def test_plugins_of_a_pipeline_include_its_local_plugin_modules(capsys):
    code, out, _ = cep("plugins", ROOT / "pipelines" / "vwap.yaml", "--kind", "operator", capsys=capsys)
    assert code == 0
    assert "vwap" in out and "spread_filter" in out and "cep_vwap/volume.py" in out
