"""Messages say what the user got wrong in the user's terms: no follow-on error for an unset
variable, no Python class names, a hint for a swapped mapping, one precise cause per problem."""
from __future__ import annotations

import textwrap

import pytest

import cep
from cep.errors import UserError


@pytest.fixture
def ticks(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("timestamp,instrument,best_bid,ask_price\n1,X,1,2\n")
    return path


def problems_of(tmp_path, sources: str, extra: str = "") -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""\
        name: p
        sources:
        {sources}
        {extra}
        sinks:
          out: {{type: "null", from: ticks}}
        """).format(sources=textwrap.indent(sources, "  "), extra=extra))
    with pytest.raises(UserError) as caught:
        cep.compile(path)
    return [str(problem) for problem in caught.value.problems]


def test_an_unset_variable_is_the_only_problem_of_the_value_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    [problem] = problems_of(tmp_path, 'ticks: {type: csv, path: "${DATA_DIR}/t.csv"}')
    assert "environment variable 'DATA_DIR' is not set" in problem
    assert "no such CSV file" not in problem


def test_a_path_that_is_not_a_string_says_so_without_python_internals(tmp_path):
    [problem] = problems_of(tmp_path, "ticks: {type: csv, path: 5}")
    assert "a file path (string)" in problem
    assert "class" not in problem and "pathlib" not in problem


def test_a_reversed_columns_mapping_asks_whether_field_and_header_were_swapped(tmp_path, ticks):
    [problem] = problems_of(tmp_path, f"ticks: {{type: csv, path: {ticks}, "
                                      "columns: {best_bid: bid_price}}")
    assert "did you swap field and header?" in problem
    assert "columns: {bid_price: best_bid}" in problem


def test_a_value_no_alternative_of_a_union_accepts_gets_one_precise_cause(tmp_path):
    rule = textwrap.dedent("""\
        rules:
          r:
            from: ticks
            pattern:
              - {name: a, times: "x"}
        """)
    found = problems_of(tmp_path, "ticks: {type: synthetic, count: 5}", rule)
    [problem] = [p for p in found if "times" in p]
    assert " or input should" not in problem
    assert "expected an integer or a list" in problem and "(got 'x')" in problem


def test_the_warning_of_a_pattern_that_may_wait_forever_names_its_one_cause(tmp_path):
    from cep.components.patterns.model import Pattern, Step, validate_pattern
    relaxed = Pattern((Step("a"), Step("b", contiguity="relaxed")))
    looping = Pattern((Step("a", one_or_more=True),))
    [waits] = [p.message for p in validate_pattern(relaxed) if p.severity == "warning"]
    [loops] = [p.message for p in validate_pattern(looping) if p.severity == "warning"]
    assert "step 'b' waits for its event (relaxed contiguity)" in waits and " or " not in waits
    assert "step 'a' loops without an upper bound or until" in loops


@pytest.mark.parametrize("key", ["imports", "plugins"])
def test_an_unset_variable_in_an_import_or_plugin_path_is_its_only_problem(tmp_path, monkeypatch,
                                                                            key):
    monkeypatch.delenv("LIBS", raising=False)
    found = problems_of(tmp_path, "ticks: {type: synthetic, count: 5}",
                        f'{key}: ["${{LIBS}}/x.yaml"]')
    assert len(found) == 1, found
    assert "environment variable 'LIBS' is not set" in found[0]


def test_an_unset_variable_naming_an_input_is_its_only_problem(tmp_path, monkeypatch):
    monkeypatch.delenv("INPUT", raising=False)
    found = problems_of(tmp_path, "ticks: {type: synthetic, count: 5}",
                        'streams:\n  quotes: {from: "${INPUT}"}')
    assert len(found) == 1, found
    assert "environment variable 'INPUT' is not set" in found[0]
