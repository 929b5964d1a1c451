"""Rule libraries (`imports:`): templates, their parameters, and errors pointing into the library."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cep.config import load_pipeline, load_rule_library
from cep.errors import ConfigError, Location
from test_config_registry import MomentumParams, PatternParams, make_registry

LIBRARY = """\
version: 1
description: Momentum rules.
templates:
  momentum_up:
    description: Buy after N strictly rising mids.
    params: {count: 5, quantity: 100}
    use: momentum
    with: {count: "{{count}}", direction: up, quantity: "{{ quantity }}"}
  dip_then_rise:
    description: A dip below a level, then N rises.
    params: {level: 10, rises: 3}
    partition_by: instrument
    within: 2s
    pattern:
      - {name: dip, where: "mid < {{level}}"}
      - {name: up, where: "mid > prev.mid", times: "{{rises}}"}
    emit: {action: BUY}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def pipeline_using(tmp_path: Path, rules: str, library: str = LIBRARY) -> Path:
    write(tmp_path, "rules/momentum.yaml", library)
    return write(tmp_path, "pipelines/p.yaml", "name: t\nimports: [../rules/momentum.yaml]\n"
                 "sources:\n  ticks: {type: csv, path: a.csv}\nrules:\n" + textwrap.indent(
                     textwrap.dedent(rules), "  "))


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, make_registry())
    return [str(p) for p in info.value.problems]


def test_template_defaults_are_overridden_by_with_and_placeholders_keep_their_type(tmp_path):
    path = pipeline_using(tmp_path, "up3: {use: momentum_up, from: ticks, with: {count: 3}}\n")
    rule = load_pipeline(path, make_registry()).rules["up3"]
    assert (rule.type, rule.from_) == ("momentum", ("ticks",))
    assert rule.params == {"count": 3, "direction": "up", "quantity": 100}
    assert rule.config == MomentumParams(count=3, direction="up", quantity=100)


def test_pattern_template_substitutes_text_inside_expressions(tmp_path):
    path = pipeline_using(tmp_path, "dip: {use: dip_then_rise, from: ticks, with: {level: 99.5}}\n")
    rule = load_pipeline(path, make_registry()).rules["dip"]
    assert rule.type == "pattern" and isinstance(rule.config, PatternParams)
    assert rule.config.pattern[0].where == "mid < 99.5"
    assert rule.config.pattern[1].times == 3 and rule.params["within"] == "2s"


def test_rule_keeps_its_own_partition_by_over_the_templates(tmp_path):
    path = pipeline_using(tmp_path, "dip: {use: dip_then_rise, from: ticks, partition_by: null}\n")
    assert load_pipeline(path, make_registry()).rules["dip"].partition_by is None


def test_unknown_with_key_suggests_the_templates_params(tmp_path):
    path = pipeline_using(tmp_path, "up: {use: momentum_up, from: ticks, with: {cuont: 3}}\n")
    assert problems(path) == [
        f"{path}:6:46: rule \"up\": template \"momentum_up\" has no parameter 'cuont' "
        "(did you mean 'count'? its params: count, quantity)"]


def test_bad_value_given_in_with_points_at_the_pipeline(tmp_path):
    path = pipeline_using(tmp_path, "up: {use: momentum_up, from: ticks, with: {count: 1}}\n")
    assert problems(path) == [
        f"{path}:6:46: rule \"up\" (template \"momentum_up\"): count: input should be greater "
        "than or equal to 2 (got 1)"]


def test_errors_in_the_template_body_point_into_the_library(tmp_path):
    library = LIBRARY.replace("direction: up", "direction: upward")
    path = pipeline_using(tmp_path, "up: {use: momentum_up, from: ticks}\n", library)
    [problem] = problems(path)
    assert problem.startswith(f"{tmp_path / 'pipelines/../rules/momentum.yaml'}:8:32: "
                              "rule \"up\" (template \"momentum_up\"): direction: input should be")


def test_unknown_use_lists_templates_and_registry_rules(tmp_path):
    path = pipeline_using(tmp_path, "up: {use: momentum_upp, from: ticks}\n")
    assert problems(path) == [
        f"{path}:6:8: rule \"up\": unknown rule type 'momentum_upp' (did you mean 'momentum_up'? "
        "known rules: dip_then_rise, momentum, momentum_up, pattern)"]


def test_template_defined_twice_across_imports_is_an_error(tmp_path):
    write(tmp_path, "rules/a.yaml", LIBRARY)
    write(tmp_path, "rules/b.yaml", LIBRARY)
    path = write(tmp_path, "p.yaml", "name: t\nimports: [rules/a.yaml, rules/b.yaml]\n")
    found = problems(path)
    assert len(found) == 2 and all(p.startswith(f"{path}:2:25: template ") for p in found)
    assert "already defined in" in found[0]


# -- a library on its own (`cep validate rules/x.yaml`) -------------------------------------------
def test_a_valid_library_loads_with_its_templates(tmp_path):
    templates = load_rule_library(write(tmp_path, "lib.yaml", LIBRARY), make_registry())
    assert sorted(templates) == ["dip_then_rise", "momentum_up"]
    assert templates["momentum_up"].params == {"count": 5, "quantity": 100}
    assert templates["momentum_up"].description == "Buy after N strictly rising mids."


def test_library_structure_errors_are_all_reported_in_that_file(tmp_path):
    path = write(tmp_path, "lib.yaml", """\
        version: 2
        name: not-here
        templates:
          a:
            params: {n: 1}
            use: momentum
            with: {count: "{{m}}"}
          b:
            description: neither use nor pattern
          c:
            description: both
            from: ticks
            use: momentum
            pattern: []
        """)
    with pytest.raises(ConfigError) as info:
        load_rule_library(path, make_registry())
    assert [str(p).replace(str(path), "lib") for p in info.value.problems] == [
        "lib:1:1: rule library version must be 1 (got 2) (start the file with 'version: 1')",
        "lib:2:1: unknown key 'name' in a rule library (a rule library has no name; pipelines "
        "name themselves)",
        "lib:4:3: template \"a\": needs a 'description:' string (say in one line what the rule "
        "detects)",
        "lib:7:12: template \"a\": {{m}} is not one of its params (params: n)",
        "lib:8:3: template \"b\": needs 'use: RULE' or an inline 'pattern:'",
        "lib:12:5: template \"c\": a template does not say where it reads from "
        "(the pipeline's rule gives 'from:')",
        "lib:14:5: template \"c\": has both 'use:' and 'pattern:' (keep one)"]


def test_library_templates_are_validated_with_their_defaults(tmp_path):
    path = write(tmp_path, "lib.yaml", LIBRARY.replace("params: {count: 5,", "params: {count: 0,"))
    with pytest.raises(ConfigError) as info:
        load_rule_library(path, make_registry())
    [problem] = info.value.problems
    assert problem.location == Location(str(path), 8, 12)
    assert problem.message.startswith('template "momentum_up": count: input should be greater')


def test_library_yaml_error_points_into_the_library(tmp_path):
    path = write(tmp_path, "lib.yaml", "version: 1\ntemplates:\n  a: {description: x\n")
    with pytest.raises(ConfigError) as info:
        load_rule_library(path, make_registry())
    assert str(info.value.problems[0]).startswith(f"{path}:4:1: invalid YAML")
