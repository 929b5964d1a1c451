"""Plugins: the example package through its entry point, local modules by path, the switches of
the manager, name clashes, `cep plugins`, and the example operators' numbers by hand."""
from __future__ import annotations

import importlib
import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from click.testing import CliRunner

import cep
from cep.cli import cli
from cep.errors import ConfigError, PluginError
from cep.plugins import Registry, manager, operator, rule, sink
from cep.testing import run_inline

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "plugins" / "cep_vwap"
VOLUME = PACKAGE / "cep_vwap" / "volume.py"
SPREAD = PACKAGE / "cep_vwap" / "spread.py"
BUILTINS = EntryPoint("builtins", "cep.components", manager.GROUP)
VWAP = EntryPoint("vwap", "cep_vwap", manager.GROUP)


@pytest.fixture
def installed(monkeypatch):
    """As if `pip install -e plugins/cep_vwap` had run: importable, and its entry point listed."""
    monkeypatch.syspath_prepend(str(PACKAGE))
    monkeypatch.setattr(manager, "entry_points", lambda group: [BUILTINS, VWAP] if group == manager.GROUP else [])
    monkeypatch.setattr(manager, "_default", None)  # the CLI builds its registry afresh


def test_register_module_collects_the_package_factories(installed):
    registry = Registry()
    assert registry.register_module(importlib.import_module("cep_vwap"), origin="cep_vwap") == 2
    assert registry.names("operator") == ["spread_filter", "vwap"]
    assert registry.get("operator", "vwap").state == "keyed"


def test_entry_points_load_the_builtins_and_the_plugin(installed):
    registry = Registry()
    registry.load_entry_points()
    assert registry.get("operator", "vwap").origin == "entry point vwap"
    assert registry.get("operator", "filter").origin.startswith("cep.components.")


@pytest.mark.parametrize("setting, loaded", [("1", True), ("0", False), ("vwap", True), ("other", False)])
def test_cep_load_plugins_selects_entry_points_but_never_the_builtins(installed, monkeypatch, setting, loaded):
    monkeypatch.setenv("CEP_LOAD_PLUGINS", setting)
    registry = Registry()
    registry.load_entry_points()
    assert (registry.get("operator", "vwap") is not None) is loaded
    assert registry.get("source", "csv") is not None


def test_cep_trace_plugins_prints_each_registration(installed, monkeypatch, capsys):
    monkeypatch.setenv("CEP_TRACE_PLUGINS", "1")
    Registry().load_entry_points()
    assert "registered operator 'vwap' from entry point vwap" in capsys.readouterr().err


def test_a_broken_entry_point_is_a_plugin_error(monkeypatch):
    broken = EntryPoint("broken", "no_such_module_anywhere", manager.GROUP)
    monkeypatch.setattr(manager, "entry_points", lambda group: [BUILTINS, broken])
    with pytest.raises(PluginError, match="'broken'.*failed to load"):
        Registry().load_entry_points()


def test_a_plugin_both_installed_and_named_by_path_is_one_plugin(installed):
    registry = Registry()
    registry.register_module(importlib.import_module("cep_vwap"))
    registry.load_path(VOLUME)  # the same file as a second module object: not a clash
    assert registry.get("operator", "vwap").factory.__code__.co_filename == str(VOLUME.resolve())


def test_a_local_plugin_clashing_with_a_builtin_fails_validation_at_its_line(tmp_path):
    (tmp_path / "clash.py").write_text(
        "from cep.plugins import operator\n\n@operator('filter')\ndef mine(params, ctx):\n    '''x'''\n")
    (tmp_path / "p.yaml").write_text("name: p\nplugins:\n  - clash.py\nsources: {s: {type: synthetic}}\n"
                                     "sinks: {o: {type: null, from: [s]}}\n")
    with pytest.raises(ConfigError, match=r"p.yaml:3:5: operator 'filter' .* already registered"):
        cep.load(tmp_path / "p.yaml")


def test_plugins_lists_builtins_with_their_parameters():
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    for heading in ("sources:", "operators:", "rules:", "sinks:"):
        assert heading in result.output
    assert "  csv " in result.output and "      path: " in result.output
    assert "expr: str required  (shorthand)" in result.output


def test_plugins_lists_an_installed_plugin_with_its_origin_and_parameters(installed):
    result = CliRunner().invoke(cli, ["plugins", "--kind", "operator"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("  vwap "))
    assert "Volume-weighted average price" in line and "[entry point vwap]" in line
    assert "      window: int = 20  how many weighed ticks" in result.output
    assert "      max_bps: float required  (shorthand)" in result.output
    assert "sources:" not in result.output


def test_the_vwap_pipeline_validates():
    result = CliRunner().invoke(cli, ["validate", str(ROOT / "pipelines" / "vwap.yaml")])
    assert result.exit_code == 0, result.output


# -- the example operators, loaded by path in a pipeline ----------------------------------------
def pipeline(ops: str) -> str:
    return f"""
name: by-path
plugins: [{SPREAD}, {VOLUME}]
sources: {{ticks: {{type: list}}}}
streams:
  out: {{from: ticks, key_by: instrument, ops: {ops}}}
sinks: {{got: {{type: collect, from: [out]}}}}
"""


def tick(instrument, bid, ask, bid_volume, ask_volume):
    return {"timestamp": 0, "instrument": instrument, "bid_price": bid, "ask_price": ask,
            "bid_volume": bid_volume, "ask_volume": ask_volume}


TICKS = [tick("A", 10.0, 12.0, 1.0, 1.0),     # A: 22 / 2
         tick("B", 100.0, 101.0, 2.0, None),  # B: 200 / 2 (unit: 301 / 3)
         tick("A", 11.0, 13.0, 3.0, 1.0),     # A: (22 + 46) / (2 + 4)
         tick("A", 12.0, 14.0, 0.0, None),    # A: no volume (unit: (46 + 14) / (4 + 1))
         tick("A", 20.0, 20.0, 1.0, 1.0),     # A: window 2 -> (46 + 40) / 6 (unit: (14 + 40) / 3)
         tick("B", 100.0, 101.0, "x", 1.0)]   # dead letter: not a number


def test_vwap_by_hand_with_missing_volumes_dropped():
    out = run_inline(pipeline("[{vwap: {window: 2}}]"), inputs={"ticks": TICKS})
    assert [r["vwap"] for r in out["got"]] == pytest.approx([11.0, 100.0, 68 / 6, 86 / 6])
    assert out.status.nodes()["out"].dropped == 1
    assert [letter.raw["bid_volume"] for letter in out.dead_letters] == ["x"]


def test_vwap_by_hand_with_missing_volumes_as_unit():
    out = run_inline(pipeline("[{vwap: {window: 2, missing_volume: unit, into: w}}]"), inputs={"ticks": TICKS})
    assert [r["w"] for r in out["got"]] == pytest.approx([11.0, 301 / 3, 68 / 6, 12.0, 18.0])
    assert out.status.nodes()["out"].dropped == 0


def test_spread_filter_drops_and_counts_wide_quotes():
    quotes = [tick("A", 99.95, 100.05, 1, 1),   # 10 bp of the mid: kept
              tick("A", 99.9, 100.1, 1, 1),     # 20 bp: dropped
              tick("A", 100.1, 99.9, 1, 1),     # crossed: passes
              tick("A", -1.0, 0.0, 1, 1)]       # mid below zero: dead letter
    out = run_inline(pipeline("[{spread_filter: 10}]"), inputs={"ticks": quotes})
    assert out["got"] == [quotes[0], quotes[2]]
    assert out.status.nodes()["out"].dropped == 1 and len(out.dead_letters) == 1


def test_vwap_rejects_bad_parameters_at_validate_time():
    with pytest.raises(ConfigError, match="window"):
        run_inline(pipeline("[{vwap: {window: 0}}]"), inputs={"ticks": []})
    with pytest.raises(ConfigError, match="missing_volume"):
        run_inline(pipeline("[{vwap: {missing_volume: zero}}]"), inputs={"ticks": []})


def test_the_vwap_pipeline_over_the_shipped_ticks():
    out = run_inline(ROOT / "pipelines" / "vwap.yaml")
    nodes = out.status.nodes()
    assert nodes["ticks"].emitted == 131_932
    assert nodes["vwap50"].dropped == 235 and not out.dead_letters
    assert len(out["vwap"]) == 1243 and {r["instrument"] for r in out["vwap"]} == {"BTCUSDT", "ETHUSDT"}


@pytest.mark.integration
def test_worker_processes_load_the_local_plugin(workdir):
    rows = ["timestamp,instrument,bid_price,ask_price,bid_volume,ask_volume"]
    rows += [f"{i},{'AB'[i % 2]},{100 + i},{100.01 + i},1,{'' if i % 3 else 2}" for i in range(30)]
    (workdir / "ticks.csv").write_text("\n".join(rows) + "\n")
    (workdir / "p.yaml").write_text(f"""
name: by-path-processes
plugins: [{SPREAD}, {VOLUME}]
sources: {{ticks: {{type: csv, path: ticks.csv}}}}
streams:
  out: {{from: ticks, key_by: instrument, ops: [{{spread_filter: 5}}, {{vwap: {{window: 3}}}}]}}
sinks: {{got: {{type: jsonl, from: [out], path: got.jsonl}}}}
""")
    plan = cep.compile(workdir / "p.yaml")
    status = cep.run(plan)
    got = [json.loads(line) for line in (workdir / "got.jsonl").read_text().splitlines()]
    expected = run_inline(workdir / "p.yaml")["got"]

    def by_key(records):  # instruments travel on separate topics: only per-key order is kept
        return sorted(records, key=lambda r: (r["instrument"], r["timestamp"]))

    assert len(plan.processes) >= 2 and len(got) == 30 and by_key(got) == by_key(expected)
    assert status.nodes()["out"].emitted == 30



# -- capabilities: declared keyword arguments of the markers ------------------------------------
def test_a_misspelt_capability_is_refused_with_the_one_it_resembles():
    with pytest.raises(PluginError, match=r"@operator\('x'\) has no option 'checkpont' \(did you mean 'checkpoint'\?"):
        operator("x", state="keyed", checkpont=True)


def test_a_capability_of_another_kind_is_refused_naming_the_kinds_it_applies_to():
    with pytest.raises(PluginError, match=r"@sink\('x'\): replayable is a capability of sources, not of sinks"):
        sink("x", replayable=True)


@pytest.mark.parametrize("options", [{"checkpoint": "yes"}, {"rows": 1}, {"state": "keyd"}],
                         ids=["checkpoint", "rows", "state"])
def test_a_capability_of_the_wrong_type_is_refused(options):
    with pytest.raises(PluginError, match=f"@rule\\('x'\\): {next(iter(options))} must be"):
        rule("x", **options)


def test_a_local_plugin_with_a_misspelt_capability_fails_validation_at_the_marker_line(tmp_path):
    (tmp_path / "typo.py").write_text(
        "from cep.plugins import operator\n\n\n@operator('mine', state='keyed', checkpont=True)\n"
        "def mine(params, ctx):\n    '''x'''\n")
    (tmp_path / "p.yaml").write_text("name: p\nplugins:\n  - typo.py\nsources: {s: {type: synthetic}}\n"
                                     "sinks: {o: {type: \"null\", from: [s]}}\n")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'typo.py'}:4:" in result.output
    assert "has no option 'checkpont' (did you mean 'checkpoint'?" in result.output


def test_the_marker_is_the_one_home_of_a_capability():
    """What the compiler and the runtime read is the registered component: no source object
    carries a `replayable` or `live` of its own that could say otherwise."""
    from cep.components.base import Source
    from cep.components.sources.csv_file import CsvSource
    from cep.components.sources.synthetic import SyntheticSource
    from cep.components.sources.zmq_subscriber import ZmqSource
    from cep.testing import ListSource
    for cls in (Source, CsvSource, SyntheticSource, ZmqSource, ListSource):
        assert not hasattr(cls, "replayable") and not hasattr(cls, "live"), cls
    registry = Registry()
    registry.load_module("cep.components")
    assert registry.get("source", "csv").replayable and not registry.get("source", "csv").live
    assert registry.get("source", "zmq").live and not registry.get("source", "zmq").replayable
    assert registry.get("sink", "jsonl").checkpoint and registry.get("rule", "momentum").rows
    assert registry.get("operator", "key_by").sets_key


def test_plugins_shows_each_components_capabilities():
    result = CliRunner().invoke(cli, ["plugins"])
    lines = result.output.splitlines()

    def under(name: str) -> str:
        return lines[next(i for i, line in enumerate(lines) if line.startswith(f"  {name} ")) + 1]

    assert under("csv") == "      capabilities: replayable"
    assert under("zmq") == "      capabilities: live"
    assert under("momentum") == "      capabilities: keyed state, checkpoint, rows"
    assert under("filter").startswith("      expr: ")  # declares nothing: no line
