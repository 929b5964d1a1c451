"""The testing kit: the module docstring's example file passes as written, doctests pass, and
the list source, collecting sink and runners behave as documented."""
from __future__ import annotations

import doctest
import json
import re
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cep
import cep.testing
from cep.errors import CompileError, ConfigError
from cep.plugins import operator
from cep.components.base import per_record
from cep.testing import run_inline, run_operator

PIPELINE = """
name: kit
sources:
  quotes: {type: list}
streams:
  mids:
    from: quotes
    key_by: instrument
    ops:
      - map: {mid: "(bid_price + ask_price) / 2", spread: "ask_price / bid_price"}
sinks:
  all: {type: collect, from: [mids]}
  raw: {type: jsonl, from: [quotes], path: never-written.jsonl}
"""


def quote(timestamp: int, bid: float, ask: float, instrument: str = "X") -> dict:
    return {"timestamp": timestamp, "instrument": instrument, "bid_price": bid, "ask_price": ask}


def test_the_module_docstring_example_is_a_passing_test_file():
    block = re.search(r"::\n\n(.*?)\n\S", cep.testing.__doc__, re.S).group(1)
    namespace: dict = {}
    exec(compile(textwrap.dedent(block), "cep.testing example", "exec"), namespace)
    tests = [name for name in namespace if name.startswith("test_")]
    assert len(tests) == 2
    for name in tests:
        namespace[name]()


def test_docstring_examples_pass():
    result = doctest.testmod(cep.testing)
    assert result.attempted >= 2 and result.failed == 0


def test_every_sink_is_collected_and_no_file_is_written(tmp_path):
    inputs = [quote(1, 1.0, 3.0), quote(2, 2.0, 4.0)]
    out = run_inline(PIPELINE, inputs={"quotes": inputs}, base_dir=tmp_path)
    assert set(out) == {"all", "raw"}
    assert [r["mid"] for r in out["all"]] == [2.0, 3.0]
    assert out["raw"] == inputs
    assert not (tmp_path / "never-written.jsonl").exists()


def test_the_inputs_are_not_changed_by_the_run():
    inputs = [quote(1, 1.0, 3.0)]
    run_inline(PIPELINE, inputs={"quotes": inputs})
    assert inputs == [quote(1, 1.0, 3.0)]


def test_dead_letters_and_counts_are_reported():
    out = run_inline(PIPELINE, inputs={"quotes": [quote(1, 1.0, 3.0), quote(2, 0.0, 4.0)]})
    assert [r["timestamp"] for r in out["all"]] == [1]
    [letter] = out.dead_letters
    assert letter.node == "mids" and "ZeroDivisionError" in letter.reason
    assert letter.raw["timestamp"] == 2
    nodes = out.status.nodes()
    assert (nodes["mids"].received, nodes["mids"].emitted, nodes["mids"].dead_lettered) == (2, 1, 1)


@settings(max_examples=25, deadline=None)
@given(bids=st.lists(st.floats(1, 1000), max_size=30), batch_size=st.integers(1, 7))
def test_output_does_not_depend_on_batching(bids, batch_size):
    inputs = [quote(t, bid, bid + 1, "AB"[t % 2]) for t, bid in enumerate(bids)]
    whole = run_inline(PIPELINE, inputs={"quotes": inputs})["all"]
    split = run_inline(PIPELINE, inputs={"quotes": inputs}, batch_size=batch_size)["all"]
    assert split == whole and len(whole) == len(inputs)


def test_a_source_of_another_type_is_replaced_by_the_inputs(tmp_path):
    text = PIPELINE.replace("quotes: {type: list}", "quotes: {type: csv, path: missing.csv}")
    with pytest.raises(ConfigError, match="missing.csv"):
        run_inline(text, base_dir=tmp_path)
    (tmp_path / "present.csv").write_text("timestamp,instrument,bid_price,ask_price\n")
    text = text.replace("missing.csv", "present.csv")
    assert run_inline(text, inputs={"quotes": [quote(1, 1.0, 3.0)]}, base_dir=tmp_path)["all"][0]["mid"] == 2.0


def test_a_pipeline_file_by_path(tmp_path):
    path = tmp_path / "kit.yaml"
    path.write_text(PIPELINE)
    assert len(run_inline(path, inputs={"quotes": [quote(1, 1.0, 3.0)]})["all"]) == 1
    assert len(run_inline(str(path), inputs={"quotes": [quote(1, 1.0, 3.0)]})["all"]) == 1


def test_mistakes_are_reported_as_validate_would():
    with pytest.raises(ConfigError, match="unknown key"):
        run_inline(PIPELINE.replace("key_by: instrument", "key_bye: instrument"))
    with pytest.raises(CompileError, match="nowhere"):
        run_inline(PIPELINE.replace("from: [mids]", "from: [nowhere]"))
    with pytest.raises(ConfigError, match='no source "ticks"'):
        run_inline(PIPELINE, inputs={"ticks": []})


def test_run_operator_takes_the_yaml_forms():
    records = [quote(t, 1.0 + t, 2.0 + t, "AB"[t % 2]) for t in range(6)]
    assert run_operator("filter", "bid_price > 3", records) == records[3:]
    assert run_operator("filter", {"expr": "bid_price > 3"}, records) == records[3:]
    assert run_operator("skip", 4, records) == records[4:]
    assert run_operator("distinct_until_changed", ["ask_price"], records * 2) == records * 2
    assert run_operator("distinct_until_changed", ["instrument"], records[:1] * 3) == records[:1]


def test_run_operator_keys_the_input():
    records = [quote(t, 1.0, 2.0, "AAB"[t % 3]) for t in range(6)]
    assert [r["timestamp"] for r in run_operator("throttle_first", "1s", records, key="instrument")] == [0, 2]
    assert [r["timestamp"] for r in run_operator("throttle_first", "1s", records)] == [0]


@operator("kit_double_bid")
def double_bid(params, ctx):
    """Doubles bid_price (a test operator)."""
    return per_record(lambda record: {**record, "bid_price": 2 * record["bid_price"]}, ctx)


def test_run_operator_with_a_tagged_factory():
    assert run_operator(double_bid, None, [quote(1, 1.5, 4.0)]) == [quote(1, 3.0, 4.0)]


def test_run_operator_runs_a_rule():
    ticks = [{**quote(t, 100.0 + abs(t), 100.5 + abs(t)), "mid": 100.25 + abs(t)} for t in range(-1, 4)]
    signals = run_operator("momentum", {"count": 3, "direction": "both"}, ticks, key="instrument")
    assert [(s["action"], s["trigger_price"]) for s in signals] == [("BUY", 103.5)]


def test_run_operator_names_what_it_cannot_find():
    with pytest.raises(ConfigError, match="did you mean 'filter'"):
        run_operator("filtr", "x > 1", [])
    with pytest.raises(ConfigError, match="not a factory tagged"):
        run_operator(print, None, [])


ONCE = """
name: kit-once
defaults: {delivery: exactly_once}
sources:
  quotes: {type: list}
streams:
  totals:
    from: quotes
    key_by: instrument
    ops: [{scan: {into: bids, expr: "acc + bid_price", initial: 0}}]
sinks:
  all: {type: collect, from: [totals]}
"""


def test_an_exactly_once_pipeline_runs_on_the_list_source():
    inputs = [quote(t, 1.0 + t, 2.0 + t, "AB"[t % 2]) for t in range(20)]
    out = run_inline(ONCE, inputs={"quotes": inputs}, batch_size=3)
    assert [r["bids"] for r in out["all"][-2:]] == [sum(1.0 + t for t in range(0, 20, 2)),
                                                    sum(1.0 + t for t in range(1, 20, 2))]


@pytest.mark.integration
def test_an_exactly_once_pipeline_runs_on_the_list_source_in_worker_processes(workdir):
    """A worker finds `list` as any local plugin, by the path of `cep.testing`."""
    inputs = [quote(t, 1.0 + t, 2.0 + t, "AB"[t % 2]) for t in range(2000)]
    document = ONCE.replace("sources:", f"plugins: [{cep.testing.__file__}]\nsources:").replace(
        "{type: list}", "{type: list, batch_size: 64, records: " + json.dumps(inputs) + "}").replace(
        "{type: collect, from: [totals]}", "{type: jsonl, from: [totals], path: out.jsonl}")
    (workdir / "p.yaml").write_text(document)
    plan = cep.compile(workdir / "p.yaml")
    status = cep.run(plan)
    assert len(plan.processes) >= 2 and {edge.delivery for edge in plan.edges} == {"exactly_once"}
    got = [json.loads(line) for line in (workdir / "out.jsonl").read_text().splitlines()]
    assert got == run_inline(ONCE, inputs={"quotes": inputs})["all"]
    assert status.nodes()["all"].received == 2000
