"""`cep validate` lists every problem in one pass: key and type errors, missing references,
cycles, deploy targets and unknown field names together, each at its file:line:col, and no
follow-on error for a reference to a component that is itself broken."""
from __future__ import annotations

import re
import textwrap

ONE_OF_EACH = textwrap.dedent("""\
    name: one-of-each
    sources:
      ticks: {type: synthetic, count: 10}
      more: {type: synthetic, count: "many"}
    streams:
      quotes:
        from: ticks
        ops:
          - filter: "ask_prise > bid_price"
      lost: {from: tiks}
      ping: {from: pong}
      pong: {from: ping}
    sinks:
      out: {type: "null", from: [quotes, lost, ping, more]}
    deploy:
      quotse: {parallelism: 2}
    sinkz: {}
    """)
EXPECTED = {  # line:col -> words of the message
    "17:1": "unknown top-level key 'sinkz'",
    "4:27": "count",
    "9:9": "unknown name 'ask_prise'",
    "10:10": 'reads "tiks", which does not exist',
    "11:10": "cycle",
    "16:3": 'deploy "quotse": no such node',
}


def test_one_problem_of_each_kind_is_reported_in_one_pass(tmp_path, problems_of):
    path = tmp_path / "bad.yaml"
    path.write_text(ONE_OF_EACH)
    found = problems_of(path)
    for where, words in EXPECTED.items():
        assert any(line.startswith(f"{path}:{where}:") and words in line for line in found), (
            where, words, found)
    assert len(found) == len(EXPECTED), found


def test_problems_come_in_file_order(tmp_path, problems_of):
    path = tmp_path / "bad.yaml"
    path.write_text(ONE_OF_EACH)
    lines = [int(re.match(rf"{re.escape(str(path))}:(\d+):", text).group(1))
             for text in problems_of(path)]
    assert lines == sorted(lines)


def test_a_reference_to_a_broken_component_is_not_a_second_error(tmp_path, problems_of):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        name: broken-source
        sources:
          ticks: {type: synthetic, cuont: 10}
        streams:
          quotes: {from: ticks, ops: [{filter: "ask_prise > bid_price"}]}
        sinks:
          out: {type: "null", from: quotes}
        """))
    [problem] = problems_of(path)
    assert "unknown key 'cuont'" in problem


def test_a_broken_envelope_value_does_not_hide_the_graph(tmp_path, problems_of):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        name: bad-defaults
        defaults: {batch_size: 0}
        sources:
          ticks: {type: synthetic, count: 10}
        sinks:
          out: {type: "null", from: tick}
        """))
    found = problems_of(path)
    assert any(":2:" in line and "batch_size" in line for line in found), found
    assert any(":6:" in line and '"tick"' in line for line in found), found


def test_the_cli_prints_all_of_them_and_exits_2(tmp_path, capsys):
    from tests.test_cli import cep as run_cli
    path = tmp_path / "bad.yaml"
    path.write_text(ONE_OF_EACH)
    code, _, err = run_cli("validate", path, capsys=capsys)
    assert code == 2
    assert err.count(str(path)) == len(EXPECTED), err


def test_parallelism_without_a_partition_key_comes_with_the_other_problems(tmp_path, problems_of):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        name: parallel
        sources:
          ticks: {type: synthetic, count: 10}
        streams:
          quotes: {from: ticks, ops: [{filter: "ask_prise > bid_price"}]}
        sinks:
          out: {type: "null", from: quotes}
        deploy:
          quotes: {parallelism: 2}
        """))
    found = problems_of(path)
    assert any(":5:" in line and "ask_prise" in line for line in found), found
    assert any(":9:" in line and "parallelism 2 needs" in line and "key_by" in line
               for line in found), found
