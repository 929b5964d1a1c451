"""Every command keeps its primary output on stdout and its diagnostics on stderr, so a pipe
gets only what it asked for."""
import json

from tests.support import ROOT
from tests.test_cli import RISKY_PATTERN, cep


def test_validate_puts_verdicts_on_stdout_and_warnings_on_stderr(tmp_path, capsys):
    path = tmp_path / "risky.yaml"
    path.write_text(RISKY_PATTERN)
    code, out, err = cep("validate", path, ROOT / "rules" / "momentum.yaml", capsys=capsys)
    assert code == 0
    assert "warning" not in out and "warning" in err
    verdicts = [line for line in out.splitlines() if not line.startswith("  ")]
    assert [line.split(": ok (")[0] for line in verdicts] == [str(path), str(ROOT / "rules" / "momentum.yaml")]


def test_graph_and_plugins_print_only_their_output(capsys, monkeypatch):
    monkeypatch.setenv("CEP_RUN_DIR", "/tmp/cep-streams")
    code, out, err = cep("graph", ROOT / "pipelines" / "momentum.yaml", "-f", "json", capsys=capsys)
    assert code == 0 and err == "" and json.loads(out)["name"] == "momentum"
    code, out, err = cep("plugins", "--kind", "sink", capsys=capsys)
    assert code == 0 and err == "" and "jsonl" in out
