"""`cep graph -o FILE`: the format follows the file's suffix; the file is the primary output, so
stdout stays empty and the confirmation goes to stderr; a missing Graphviz is an environment
problem (exit 1), not a mistake in the input."""
import json

import pytest

from tests.support import ROOT
from tests.test_cli import cep

MOMENTUM = ROOT / "pipelines" / "momentum.yaml"

LOOKS_LIKE = {
    "topology.dot": lambda text: text.startswith('digraph "momentum"'),
    "topology.gv": lambda text: text.startswith('digraph "momentum"'),
    "topology.mmd": lambda text: text.startswith("flowchart LR"),
    "topology.json": lambda text: json.loads(text)["name"] == "momentum",
    "topology.txt": lambda text: text.startswith("pipeline momentum:"),
}


@pytest.mark.parametrize("name", sorted(LOOKS_LIKE))
def test_the_output_format_follows_the_suffix(name, tmp_path, capsys):
    output = tmp_path / name
    code, out, err = cep("graph", MOMENTUM, "-o", output, capsys=capsys)
    assert code == 0, err
    assert LOOKS_LIKE[name](output.read_text()), output.read_text()[:200]
    assert out == "" and f"wrote {output}" in err


def test_an_explicit_format_wins_over_the_suffix(tmp_path, capsys):
    output = tmp_path / "plan.txt"
    code, _, err = cep("graph", MOMENTUM, "-f", "json", "-o", output, capsys=capsys)
    assert code == 0, err
    assert json.loads(output.read_text())["name"] == "momentum"


def test_a_picture_from_a_format_other_than_dot_is_refused(tmp_path, capsys):
    code, _, err = cep("graph", MOMENTUM, "-f", "mermaid", "-o", tmp_path / "t.svg", capsys=capsys)
    assert code == 2 and "drop --format mermaid" in err
    assert not (tmp_path / "t.svg").exists()


def test_a_picture_without_graphviz_is_an_environment_problem(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = cep("graph", MOMENTUM, "-o", tmp_path / "t.png", capsys=capsys)
    assert code == 1, err
    assert "Graphviz" in err and "install" in err and "Traceback" not in err
    assert not (tmp_path / "t.png").exists()
