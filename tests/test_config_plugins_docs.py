"""What `cep plugins` and `cep validate` tell a user about the parameters they write: every
built-in parameter described, pattern steps and emits expanded, the window aggregate syntax
documented, imported templates listed, a template shadowing a built-in rule named, and a warning
for `distinct_until_changed` comparing across instruments."""
from __future__ import annotations

import textwrap

import pytest

import cep
from cep.config import load_pipeline, pipeline_registry
from cep.plugins import default_registry
from cep.plugins.describe import describe
from tests.support import ROOT


def test_every_built_in_parameter_has_a_description():
    from cep.components.patterns.params import SignalEmit, StepParams
    models = [(f"{c.kind} {c.name}", c.params) for c in default_registry().all()
              if c.origin.startswith("cep.")] + [("step", StepParams), ("emit", SignalEmit)]
    missing = [f"{owner}.{name}" for owner, model in models
               for name, info in model.model_fields.items() if not info.description]
    assert missing == [], missing


def test_pattern_steps_and_emits_are_expanded():
    listing = "\n".join(describe(default_registry(), "rule"))
    pattern = listing[listing.index("  pattern "):listing.index("  support_resistance")]
    for step_key in ("name:", "where:", "times:", "one_or_more:", "contiguity:", "negated:"):
        assert f"          {step_key}" in pattern, step_key
    for emit_key in ("action:", "trigger_price:", "quantity:", "confidence:"):
        assert f"          {emit_key}" in pattern, emit_key


def test_the_window_aggregate_syntax_is_in_its_description_and_the_readme():
    [aggregate] = [line for line in describe(default_registry(), "operator")
                   if line.strip().startswith("aggregate:")]
    assert "sum(events, 'pv')" in aggregate and "events[-1].mid" in aggregate
    readme = (ROOT / "README.md").read_text()
    bullet = readme[readme.index("- **Operators**"):readme.index("- **Rules**")]
    assert "events[-1].mid" in bullet and "sum(events, 'pv')" in bullet


def test_plugins_of_a_pipeline_list_its_imported_templates_with_their_parameters():
    registry = pipeline_registry(load_pipeline(ROOT / "pipelines" / "dip_then_rise.yaml"))
    listing = "\n".join(describe(registry))
    templates = listing[listing.index("templates"):]
    assert "momentum_pattern" in templates and "rules/momentum.yaml" in templates
    for param in ("count", "action", "within", "min_move_bps"):
        assert f"      {param} = " in templates, param
    assert "shadows" not in templates
    assert "templates" not in "\n".join(describe(default_registry()))


SHADOWING = textwrap.dedent("""\
    version: 1
    templates:
      momentum:
        description: Buy after N rising mids, as a pattern.
        params: {count: 3}
        pattern: [{name: up, where: "mid > prev.mid", times: "{{count}}"}]
    """)


def shadowing(tmp_path):
    """A pipeline importing a library whose template `momentum` shadows the built-in rule."""
    (tmp_path / "rules.yaml").write_text(SHADOWING)
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""\
        name: shadow
        imports: [rules.yaml]
        sources: {ticks: {type: synthetic}}
        streams: {quotes: {from: ticks, ops: [{map: {mid: "(bid_price + ask_price) / 2"}}]}}
        rules:
          a: {use: momentum, from: quotes, with: {count: 2}}
          b: {use: momentum, from: quotes}
        sinks: {out: {type: "null", from: [a, b]}}
        """))
    return tmp_path / "p.yaml"


def test_plugins_of_a_pipeline_name_a_template_that_shadows_a_built_in_rule(tmp_path):
    listing = "\n".join(describe(pipeline_registry(load_pipeline(shadowing(tmp_path)))))
    [line] = [line for line in listing.splitlines() if line.startswith("  momentum ") and "rules.yaml" in line]
    assert "shadows the built-in rule" in line


def test_validate_says_when_a_template_shadows_a_built_in_rule(tmp_path):
    plan = cep.compile(shadowing(tmp_path))
    shadowed = [w for w in plan.warnings if "shadows the built-in rule 'momentum'" in w]
    assert len(shadowed) == 2, plan.warnings  # a and b
    assert all(":6:" in w or ":7:" in w for w in shadowed), shadowed
    assert all("rules.yaml" in w for w in shadowed)
    builtin = cep.compile(ROOT / "pipelines" / "momentum.yaml")
    assert not [w for w in builtin.warnings if "shadows" in w]


DISTINCT = textwrap.dedent("""\
    name: distinct
    sources:
      ticks: {{type: synthetic, count: 10, instruments: 2}}
    streams:
      changes:
        from: ticks
        {key}
        ops:
          - distinct_until_changed: [bid_price]
    sinks:
      out: {{type: "null", from: changes}}
    """)


@pytest.mark.parametrize("key, warned", [("", True), ("key_by: instrument", False)])
def test_distinct_until_changed_over_several_instruments_without_a_key_is_a_warning(
        tmp_path, key, warned):
    path = tmp_path / "p.yaml"
    path.write_text(DISTINCT.format(key=key))
    plan = cep.compile(path)
    found = [w for w in plan.warnings if "distinct_until_changed" in w]
    if warned:
        [warning] = found
        assert f"{path}:9:" in warning and "instrument" in warning and "key_by" in warning
    else:
        assert found == []
