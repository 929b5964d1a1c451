"""Safe YAML reading with positions, and `${ENV}` interpolation."""
from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from cep.config.interpolate import interpolate_env
from cep.config.problems import Report
from cep.config.yamlsafe import MAX_BYTES, parse_yaml, read_yaml_file
from cep.errors import ConfigError, Location


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "p.yaml")
    return [str(p) for p in info.value.problems]


def test_keys_and_list_items_have_one_based_positions():
    doc = parse_yaml("sources:\n  ticks:\n    path: a.csv\nops:\n  - filter: x\n", "p.yaml")
    assert doc.keys[("sources", "ticks", "path")] == Location("p.yaml", 3, 5)
    assert doc.keys[("ops", 0)] == Location("p.yaml", 5, 5)
    assert doc.keys[("ops", 0, "filter")] == Location("p.yaml", 5, 5)
    assert doc.values[("sources", "ticks", "path")] == Location("p.yaml", 3, 11)


def test_syntax_error_points_at_the_mark_with_a_hint():
    [problem] = problems_of("name: x\nsources:\n  ticks: type: csv\n")
    assert problem.startswith("p.yaml:3:14: invalid YAML: mapping values are not allowed here")
    assert "(quote a value that contains ': '" in problem


def test_tab_indentation_hint():
    [problem] = problems_of("sources:\n\tticks: 1\n")
    assert problem.startswith("p.yaml:2:1:") and problem.endswith("(indent with spaces, not tabs)")


def test_duplicate_key_is_reported_at_the_second_occurrence():
    doc = parse_yaml("name: a\nsources:\n  t: 1\n  u: 2\n  t: 3\n", "p.yaml")
    [problem] = doc.problems
    assert str(problem).startswith("p.yaml:5:3: duplicate key 't' (first at line 3)")
    assert doc.data["sources"] == {"t": 1, "u": 2}


def test_keys_stay_the_names_written():
    doc = parse_yaml("on: yes\n1: x\nnull: 2\n", "p.yaml")
    assert doc.data == {"on": True, "1": "x", "null": 2}


def test_merge_keys_own_values_win():
    doc = parse_yaml("base: &b {path: a.csv, speed: max}\nticks:\n  <<: *b\n  speed: 10\n", "p.yaml")
    assert doc.data["ticks"] == {"path": "a.csv", "speed": 10}
    assert doc.keys[("ticks", "speed")] == Location("p.yaml", 4, 3)
    assert doc.problems == []


def test_python_tags_are_refused():
    [problem] = problems_of("x: !!python/object/apply:os.system ['echo hi']\n")
    assert problem.startswith("p.yaml:1:4: unsupported YAML tag")


def test_unknown_collection_tags_are_refused():
    [problem] = problems_of("x: !!set {a: null}\n")
    assert "unsupported YAML tag" in problem


def test_alias_bomb_is_stopped():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    [problem] = problems_of("\n".join(lines))
    assert "expands to more than" in problem


def test_deep_nesting_is_an_error_not_a_crash():
    [problem] = problems_of("x: " + "[" * 3000 + "]" * 3000)
    assert "nested too deeply" in problem


def test_more_than_one_document_is_refused():
    [problem] = problems_of("name: a\n---\nname: b\n")
    assert problem.startswith("p.yaml:2:1:") and "remove the '---'" in problem


def test_oversized_file_is_refused_before_parsing(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(ConfigError, match="too large"):
        read_yaml_file(big)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no such pipeline file"):
        read_yaml_file(tmp_path / "nope.yaml")


def test_non_utf8_file_says_so(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml_file(bad)


# -- ${ENV} interpolation ---------------------------------------------------------------------
def interpolate(text: str, env: dict[str, str]):
    doc = parse_yaml(text, "p.yaml")
    report = Report(doc.keys)
    interpolate_env(doc, report, env)
    return doc.data, [str(p) for p in report.problems]


def test_set_variable_and_default_are_substituted():
    data, problems = interpolate('a: "${HOST}:${PORT:-5555}"\nb: [x, "${HOST}"]\n', {"HOST": "h"})
    assert data == {"a": "h:5555", "b": ["x", "h"]} and problems == []


def test_unset_variable_without_default_is_an_error_at_its_value():
    data, problems = interpolate("sinks:\n  log:\n    path: ${OUT_DIR}/s.jsonl\n", {})
    assert problems == ["p.yaml:3:11: environment variable 'OUT_DIR' is not set "
                        "(set it, or give a default: ${OUT_DIR:-value})"]


def test_dollar_dollar_escapes_and_malformed_reference_is_reported():
    data, problems = interpolate("a: $${KEEP}\nb: ${X-1}\n", {})
    assert data["a"] == "${KEEP}"
    assert len(problems) == 1 and "malformed variable reference '${X-1}'" in problems[0]


def test_keys_and_non_strings_are_not_interpolated():
    data, problems = interpolate("${A}: 1\nn: 5\n", {"A": "z"})
    assert data == {"${A}": 1, "n": 5} and problems == []


names = st.text(string.ascii_uppercase + "_", min_size=1, max_size=8)
plain = st.text(string.ascii_letters + string.digits + " .-/", max_size=20)


@settings(max_examples=60, deadline=None)
@given(name=names, value=plain, default=plain, before=plain, after=plain)
def test_interpolation_is_textual_substitution(name, value, default, before, after):
    written = f"{before}${{{name}:-{default}}}{after}"
    set_, _ = interpolate(yaml.safe_dump({"v": written}), {name: value})
    unset, _ = interpolate(yaml.safe_dump({"v": written}), {})
    assert set_["v"] == f"{before}{value}{after}"
    assert unset["v"] == f"{before}{default}{after}"


scalars = st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=10),
                    st.floats(allow_nan=False))
keys = st.text(string.ascii_lowercase + "_", min_size=1, max_size=6)
trees = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


def paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield prefix + (index,)
            yield from paths(item, prefix + (index,))


@settings(max_examples=80, deadline=None)
@given(tree=st.dictionaries(keys, trees, max_size=5))
def test_safe_dump_round_trips_and_every_key_is_located(tree):
    doc = parse_yaml(yaml.safe_dump(tree), "p.yaml")
    assert doc.data == tree and doc.problems == []
    assert all(path in doc.keys for path in paths(tree))


def test_times_of_day_stay_text_not_base_60_numbers():
    # YAML 1.1 reads 10:00:01 as 36001 (base 60); a test's tick times and any `at: 10:00` mean text
    doc = parse_yaml("t: 10:00:01\nu: '1:30'\nv: 10:00:01.250\nw: -1:30\nn: 12\nf: 1.5\n", "p.yaml")
    assert doc.data == {"t": "10:00:01", "u": "1:30", "v": "10:00:01.250", "w": "-1:30", "n": 12, "f": 1.5}
