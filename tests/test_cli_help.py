"""`cep --help` and each command's help: full summaries, examples, streams and exit codes."""
import re

import pytest

from cep import cli as cli_module
from tests.test_cli import cep

COMMANDS = sorted(cli_module.cli.commands)


def _flat(text: str) -> str:
    """`text` with its line wrapping undone."""
    return re.sub(r"\s+", " ", text)


def test_the_command_list_shows_every_summary_in_full(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cep("--help", capsys=capsys)
    assert code == 0
    listing = out[out.index("Commands:"):]
    assert "..." not in listing
    for name in COMMANDS:
        summary = cli_module.cli.commands[name].short_help
        assert summary and summary.endswith("."), f"{name} has no summary of its own"
        assert _flat(summary) in _flat(listing), name


def test_the_overview_states_the_streams_and_the_exit_codes(capsys):
    _, out, _ = cep("--help", capsys=capsys)
    text = _flat(out)
    assert "stdout" in text and "stderr" in text
    for code in ("0", "1", "2", "130", "143"):
        assert re.search(rf"\b{code}\b", text), code


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_shows_an_example(name, capsys):
    code, out, _ = cep(name, "--help", capsys=capsys)
    assert code == 0
    examples = out[out.index("Examples:"):]
    assert f"cep {name} " in examples
    assert "..." not in examples  # click's \b blocks keep example lines unwrapped
