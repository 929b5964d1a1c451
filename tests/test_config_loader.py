"""Pipeline files -> validated `Pipeline`, and the bad-input cases the config layer owns."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cep.config import load_pipeline, load_pipeline_text, pipeline_registry
from cep.config.models import OpSpec, Pipeline
from cep.errors import ConfigError, Location
from test_config_registry import (CsvFileParams, FilterParams, MapParams, MomentumParams,
                                  PatternParams, TakeParams, make_registry)

MOMENTUM = """\
version: 1
name: momentum-demo
defaults: {delivery: at_most_once}

sources:
  ticks:
    type: csv
    path: ../data/binance_btcusdt_ethusdt_20240808.csv.gz
    backpressure: block

streams:
  quotes:
    from: ticks
    key_by: instrument
    ops:
      - filter: "ask_price > bid_price"
      - map: {mid: "(bid_price + ask_price) / 2"}
      - take: 10

rules:
  up5:
    use: momentum
    from: quotes
    with: {count: 5, direction: up, quantity: 100}
  dip_then_rise:
    from: quotes
    partition_by: instrument
    within: 2s
    pattern:
      - {name: dip, where: "mid < 10"}
      - {name: up, where: "prev is None or mid > prev.mid", times: 3}
    emit: {action: BUY, trigger_price: "up[-1].ask_price", confidence: "0.6"}

sinks:
  log: {type: jsonl, from: [up5, dip_then_rise], path: out/signals.jsonl}

deploy:
  quotes: {parallelism: 2}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems(text: str, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_pipeline_text(textwrap.dedent(text), "p.yaml", registry=make_registry(), **kwargs)
    return [str(p) for p in info.value.problems]


def minimal(extra: str = "") -> str:
    return "name: t\nsources:\n  ticks: {type: csv, path: a.csv}\n" + textwrap.dedent(extra)


# -- a valid pipeline ---------------------------------------------------------------------------
def test_design_example_loads_into_the_envelope(tmp_path):
    pipeline = load_pipeline(write(tmp_path, MOMENTUM, "pipelines/momentum.yaml"), make_registry())
    assert isinstance(pipeline, Pipeline) and pipeline.name == "momentum-demo"
    assert pipeline.path == tmp_path / "pipelines/momentum.yaml"

    ticks = pipeline.sources["ticks"]
    assert (ticks.type, ticks.backpressure) == ("csv", "block")
    assert ticks.params == {"path": "../data/binance_btcusdt_ethusdt_20240808.csv.gz"}
    assert ticks.config == CsvFileParams(
        path=tmp_path / "pipelines/../data/binance_btcusdt_ethusdt_20240808.csv.gz")

    quotes = pipeline.streams["quotes"]
    assert quotes.from_ == ("ticks",) and quotes.key_by == "instrument"
    assert [op.name for op in quotes.ops] == ["filter", "map", "take"]
    assert quotes.ops[0] == OpSpec(name="filter", args="ask_price > bid_price",
                                   config=FilterParams(expr="ask_price > bid_price"), index=0)
    assert quotes.ops[1].config == MapParams(fields={"mid": "(bid_price + ask_price) / 2"})
    assert quotes.ops[2].config == TakeParams(count=10)

    up5 = pipeline.rules["up5"]
    assert (up5.type, up5.from_, up5.partition_by) == ("momentum", ("quotes",), "instrument")
    assert up5.config == MomentumParams(count=5, direction="up", quantity=100)
    dip = pipeline.rules["dip_then_rise"]
    assert dip.type == "pattern" and isinstance(dip.config, PatternParams)
    assert set(dip.params) == {"within", "pattern", "emit"} and dip.config.pattern[1].times == 3

    assert pipeline.sinks["log"].from_ == ("up5", "dip_then_rise")
    assert pipeline.deploy["quotes"].parallelism == 2


def test_locations_of_every_key_are_kept_on_the_pipeline(tmp_path):
    path = write(tmp_path, MOMENTUM)
    pipeline = load_pipeline(path, make_registry())
    assert pipeline.locate("streams", "quotes", "from") == Location(str(path), 13, 5)
    assert pipeline.locate("streams", "quotes", "ops", 1) == Location(str(path), 17, 9)
    assert pipeline.locate("rules", "up5", "with", "count", "deeper") == Location(str(path), 24, 12)


def test_operator_params_may_be_written_in_full_instead_of_the_shorthand():
    pipeline = load_pipeline_text(minimal(
        "streams:\n  q:\n    from: ticks\n    ops:\n      - filter: {expr: 'bid_price > 0'}\n"
        "      - take: {count: 3}\n"), registry=make_registry())
    assert [op.config for op in pipeline.streams["q"].ops] == [
        FilterParams(expr="bid_price > 0"), TakeParams(count=3)]


def test_text_pipelines_resolve_paths_against_base_dir(tmp_path):
    pipeline = load_pipeline_text(minimal(), base_dir=tmp_path, registry=make_registry())
    assert pipeline.base_dir == tmp_path
    assert pipeline.sources["ticks"].config.path == tmp_path / "a.csv"


def test_env_values_are_substituted_before_validation(monkeypatch):
    monkeypatch.setenv("CEP_TEST_COUNT", "7")
    pipeline = load_pipeline_text(minimal(
        "rules:\n  up:\n    use: momentum\n    from: ticks\n"
        "    with: {count: '${CEP_TEST_COUNT}', quantity: '${CEP_TEST_QTY:-2.5}'}\n"),
        registry=make_registry())
    assert pipeline.rules["up"].config == MomentumParams(count=7, quantity=2.5)


# -- the bad-input cases of the issue -----------------------------------------------------------
def test_yaml_syntax_error_exits_with_position_and_hint():
    assert problems("name: t\nsources:\n  ticks: type: csv\n") == [
        "p.yaml:3:14: invalid YAML: mapping values are not allowed here "
        "(quote a value that contains ': ', or check the indentation)"]


def test_duplicate_key_is_reported_with_the_other_problems():
    found = problems("""\
        name: t
        sources:
          ticks: {type: csv, path: a.csv}
          ticks: {type: csv, path: b.csv}
        sinks:
          out: {type: jsonl, from: ticks}
        """)
    assert found[0].startswith("p.yaml:4:3: duplicate key 'ticks' (first at line 3)")
    assert found[1] == "p.yaml:6:3: sink \"out\": missing required key 'path'"


def test_unknown_key_names_the_component_and_suggests():
    found = problems("name: t\nsources:\n  ticks:\n    type: csv\n    pth: a.csv\n")
    assert "p.yaml:5:5: source \"ticks\": unknown key 'pth' (did you mean 'path'? valid keys: path)" in found
    assert "p.yaml:3:3: source \"ticks\": missing required key 'path'" in found


def test_unknown_top_level_and_stream_keys_suggest():
    found = problems(minimal("sinkz: {}\nstreams:\n  q: {from: ticks, keyby: instrument}\n"))
    assert found == [
        "p.yaml:4:1: unknown top-level key 'sinkz' (did you mean 'sinks'? valid keys: defaults, "
        "deploy, hosts, imports, metrics, name, orders, plugins, rules, security, sinks, sources, streams, tests, "
        "transport, venues, version)",
        "p.yaml:6:20: stream \"q\": unknown key 'keyby' (did you mean 'key_by'? "
        "valid keys: from, key_by, ops, transport)"]


def test_an_unquoted_null_sink_type_says_to_quote_it():
    found = problems(minimal("""\
        sinks:
          s: {type: null, from: ticks}
        """))
    assert len(found) == 1 and 'sink "s": the sink type must be a name' in found[0]
    assert found[0].endswith('(YAML reads an unquoted null as no value: write type: "null")')


def test_unknown_component_types_point_at_the_name_with_a_suggestion():
    found = problems(minimal("""\
        streams:
          q:
            from: ticks
            ops:
              - filtre: "bid_price > 0"
        rules:
          r: {use: momentun, from: q}
        sinks:
          s: {type: jsnol, from: r, path: x}
        """))
    assert found == [
        "p.yaml:8:9: operator \"filtre\" in stream \"q\": unknown operator type 'filtre' "
        "(did you mean 'filter'? known operators: filter, map, take)",
        "p.yaml:10:7: rule \"r\": unknown rule type 'momentun' "
        "(did you mean 'momentum'? known rules: momentum, pattern)",
        "p.yaml:12:7: sink \"s\": unknown sink type 'jsnol' (did you mean 'jsonl'? known sinks: jsonl)"]


def test_unknown_delivery_mode_is_a_schema_error():
    [found] = problems(minimal("defaults: {delivery: at_most}\n"))
    assert found.startswith("p.yaml:4:12: defaults: delivery: input should be 'at_most_once'")


def test_missing_import_points_at_the_import_entry(tmp_path):
    path = write(tmp_path, "name: t\nimports:\n  - ../rules/nope.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, make_registry())
    [problem] = info.value.problems
    assert problem.location == Location(str(path), 3, 5)
    assert problem.message == "imported rule library '../rules/nope.yaml' does not exist"
    assert "relative to the pipeline file" in problem.hint


def test_unset_env_var_is_an_error_at_its_value():
    assert problems(minimal("sinks:\n  s: {type: jsonl, from: ticks, path: '${CEP_UNSET_DIR}/x'}\n")) == [
        "p.yaml:5:39: environment variable 'CEP_UNSET_DIR' is not set "
        "(set it, or give a default: ${CEP_UNSET_DIR:-value})"]


def test_every_problem_is_reported_at_once_in_file_order():
    found = problems("""\
        name: t
        defaults: {delivery: exactly, batch_size: 0}
        sources:
          ticks: {type: csv, path: a.csv, speed: fast}
        streams:
          q:
            from: ticks
            ops:
              - take: -1
              - {filter: x, map: {}}
              - nope
        rules:
          up: {use: momentum, from: [q, 1], with: {count: 1, directoin: up}}
        deploy:
          q: {parallelism: 0}
        """)
    assert [p.split(": ")[0] for p in found] == [
        "p.yaml:2:12", "p.yaml:2:31", "p.yaml:4:35", "p.yaml:9:9", "p.yaml:10:9", "p.yaml:11:9",
        "p.yaml:13:23", "p.yaml:13:44", "p.yaml:13:54", "p.yaml:15:7"]
    assert "defaults: delivery: input should be 'at_most_once'" in found[0]
    assert "defaults: batch_size: input should be greater than or equal to 1 (got 0)" in found[1]
    assert "source \"ticks\": unknown key 'speed'" in found[2]
    assert 'operator "take" in stream "q": input should be greater than or equal to 0 (got -1)' in found[3]
    assert 'ops[1] must be one "name: args" mapping (got 2 keys)' in found[4]
    assert "ops[2] must be one \"name: args\" mapping (got 'nope')" in found[5]
    assert "'from' must be an id or a non-empty list of ids" in found[6]
    assert "count: input should be greater than or equal to 2 (got 1)" in found[7]
    assert "did you mean 'direction'?" in found[8]
    assert found[9].startswith('p.yaml:15:7: deploy "q": parallelism: input should be greater')


def test_union_alternatives_become_one_short_message():
    [found] = problems(minimal("rules:\n  r: {use: momentum, from: ticks, with: {direction: sideways}}\n"))
    assert found == ("p.yaml:5:42: rule \"r\": direction: input should be 'up' or 'down' "
                     "(got 'sideways')")
    assert "pydantic" not in found and "errors.pydantic.dev" not in found


def test_missing_name_from_and_type_are_reported():
    found = problems("sources:\n  t: {path: a.csv}\nstreams:\n  q: {ops: []}\n")
    assert found == [
        "p.yaml:1:1: pipeline: missing required key 'name'",
        "p.yaml:2:3: source \"t\": missing required key 'type' (known sources: csv)",
        "p.yaml:4:3: stream \"q\": missing required key 'from' (name the source, stream or rule it reads)"]


def test_file_that_is_not_a_mapping_is_refused():
    assert problems("- a\n- b\n")[0].startswith("p.yaml:1:1: a pipeline must be a mapping")
    assert problems("")[0].startswith("p.yaml:1:1: the pipeline file is empty")


def test_rule_needs_use_or_pattern_but_not_both():
    found = problems(minimal("rules:\n  a: {from: ticks}\n  b: {from: ticks, use: momentum, pattern: []}\n"))
    assert found == [
        "p.yaml:5:3: rule \"a\": needs 'use: NAME' or an inline 'pattern:' "
        "(use: names a rule template or a registered rule)",
        "p.yaml:6:35: rule \"b\": has both 'use:' and 'pattern:' "
        "(a rule either uses a named rule or writes a pattern inline)"]


def test_operator_without_shorthand_needs_a_mapping(tmp_path):
    write(tmp_path, """\
        from pydantic import BaseModel
        from cep.plugins import operator

        class Window(BaseModel):
            size: int = 5

        @operator("window", params=Window)
        def window(params, ctx):
            '''Count-based window.'''
        """, "window_op.py")
    path = write(tmp_path, minimal("plugins: [window_op.py]\nstreams:\n  q:\n    from: ticks\n"
                                   "    ops:\n      - window: 3\n      - window:\n"))
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, make_registry())
    assert [str(p) for p in info.value.problems] == [
        f"{path}:9:9: operator \"window\" in stream \"q\": takes a mapping of parameters (keys: size)"]


# -- plugins and the pipeline's registry --------------------------------------------------------
def test_local_plugins_load_into_the_pipelines_own_registry(tmp_path):
    write(tmp_path, """\
        from cep.plugins import operator

        @operator("spread_filter")
        def spread_filter(params, ctx):
            '''Drop quotes with a wide spread.'''
        """, "plugins/spread.py")
    path = write(tmp_path, minimal("plugins: [plugins/spread.py]\nstreams:\n  q:\n    from: ticks\n"
                                   "    ops:\n      - spread_filter:\n"), "p.yaml")
    shared = make_registry()
    pipeline = load_pipeline(path, shared)
    assert pipeline.streams["q"].ops[0].name == "spread_filter"
    assert pipeline_registry(pipeline).get("operator", "spread_filter") is not None
    assert shared.get("operator", "spread_filter") is None


def test_missing_plugin_file_points_at_its_entry(tmp_path):
    path = write(tmp_path, minimal("plugins:\n  - nope.py\n"))
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, make_registry())
    [problem] = info.value.problems
    assert problem.location == Location(str(path), 5, 5) and "does not exist" in problem.message


def test_broken_plugin_module_is_a_problem_not_a_traceback(tmp_path):
    write(tmp_path, "raise RuntimeError('boom')\n", "bad.py")
    path = write(tmp_path, minimal("plugins: [bad.py]\n"))
    with pytest.raises(ConfigError) as info:
        load_pipeline(path, make_registry())
    [problem] = info.value.problems
    assert problem.location == Location(str(path), 4, 11)
    assert "failed to import: RuntimeError: boom" in problem.message


def test_pipeline_built_in_code_gets_the_default_registry_with_its_plugins(tmp_path, monkeypatch):
    import cep.plugins.manager as manager

    monkeypatch.setattr(manager, "_default", make_registry())
    write(tmp_path, "from cep.plugins import sink\n\n@sink('blackhole')\n"
                    "def blackhole(params, ctx):\n    '''Drop everything.'''\n", "bh.py")
    pipeline = Pipeline(name="coded", path=tmp_path / "p.yaml", plugins=("bh.py",))
    registry = pipeline_registry(pipeline)
    assert registry.get("sink", "blackhole") is not None and registry.get("rule", "momentum")
    assert manager._default.get("sink", "blackhole") is None
    assert pipeline_registry(pipeline) is registry


def test_validator_messages_are_kept_and_cep_errors_located():
    found = problems(minimal("sinks:\n  a: {type: jsonl, from: ticks, path: x.csv}\n"
                             "  b: {type: jsonl, from: ticks, path: '-'}\n"))
    assert found == [
        "p.yaml:5:33: sink \"a\": path: a jsonl sink writes .jsonl files, got 'x.csv'",
        "p.yaml:6:3: sink \"b\": '-' is not a file (use the stdout sink)"]
