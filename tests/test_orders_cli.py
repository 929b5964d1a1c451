"""`cep positions` and `cep orders` on a journal file, as a user runs them (a subprocess)."""
import json
import subprocess
import sys

import pytest

from cep.orders.journal import Journal
from tests.test_orders_journal import issue_example_events


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "journal.db"
    with Journal(path) as written:
        written.append(issue_example_events())
    return path


def cep(*args):
    result = subprocess.run([sys.executable, "-m", "cep.cli", *map(str, args)], capture_output=True, text=True,
                            timeout=60)
    return result.returncode, result.stdout, result.stderr


def test_positions_now_and_as_of_an_earlier_time(journal):
    code, out, err = cep("positions", journal, "--json")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"instrument": "X", "quantity": 0.0, "average_cost": 0.0, "realized": 650.0}]
    code, out, _ = cep("positions", journal, "--at", "12")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["instrument", "quantity", "average_cost", "realized"]
    assert lines[1].split() == ["X", "-50", "55", "500.000000"] and lines[-1].split() == ["total", "500.000000"]


def test_one_orders_history_by_signal_and_every_orders_state(journal):
    code, out, err = cep("orders", journal, "--signal", "s1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "order c1 for signal s1: X SELL 150"
    assert [line.split()[2] for line in lines[1:]] == ["NEW", "SUBMITTED", "ACCEPTED", "FILLED"]
    assert "fill 150 at 55 (f1)" in lines[-1]
    code, out, _ = cep("orders", journal, "--order", "c1", "--json")
    assert [json.loads(line)["sequence"] for line in out.splitlines()] == [1, 2, 3, 4]
    code, out, _ = cep("orders", journal)
    assert [line.split()[0] for line in out.splitlines()] == ["c0", "c1", "c2"] and "FILLED" in out


def test_a_missing_journal_or_a_bad_time_is_exit_2_with_a_message_not_a_traceback(journal, tmp_path):
    (tmp_path / "notes.txt").write_text("not sqlite\n")
    for args, message in [(("positions", tmp_path / "nope.db"), "no such journal"),
                          (("orders", tmp_path), "is a directory"),
                          (("orders", tmp_path / "notes.txt"), "not a cep journal"),
                          (("positions", journal, "--at", "noon"), "ISO 8601")]:
        code, out, err = cep(*args)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)


def test_signal_and_order_together_are_a_usage_error_not_an_empty_answer(journal):
    """`--signal ID | --order COID`: one order, named one way; both were read as both at once."""
    code, out, err = cep("orders", journal, "--signal", "s1", "--order", "c0")
    assert code == 2 and "--signal" in err and "--order" in err and not out, (out, err)
