"""The plan: plain data at the bottom of the package, which a worker loads without the compiler."""
import json
import subprocess
import sys

import pytest

import cep

from tests.conftest import ROOT

CONFIG_LAYER = ("cep.config", "cep.config.loader", "cep.config.models", "cep.compiler", "yaml", "networkx")


@pytest.mark.parametrize("module", ["cep.runtime.worker", "cep.runtime.transport"])
def test_a_worker_loads_neither_the_config_layer_nor_networkx(module):
    """What a fork server preloads for every worker: importing the compiler there cost each
    worker ~14 MB and 0.1 s of start-up (YAML, the config models, networkx)."""
    probe = f"import {module}, sys, json; print(json.dumps([m for m in {CONFIG_LAYER!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_the_compiler_facade_loads_its_steps_only_when_it_compiles():
    """`cep graph`'s renderer and anything else that imports from cep.compiler without compiling
    do not pay for the config layer."""
    loaded_by_compiling = ("cep.config", "cep.config.loader", "cep.config.models", "yaml", "networkx")
    probe = ("import cep.compiler.render, sys, json; "
             f"print(json.dumps([m for m in {loaded_by_compiling!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


PIPELINE = """\
    name: planned
    sources:
      ticks: {type: synthetic, count: 10}
    streams:
      quotes: {from: ticks, key_by: instrument, ops: [{filter: "ask_price > bid_price"}, {take: 5}]}
    rules:
      up: {use: momentum, from: quotes, with: {count: 3, direction: up, quantity: 1}}
    sinks:
      signals: {type: jsonl, from: up, path: out/s.jsonl, delivery: at_least_once}
    deploy:
      up: {parallelism: 2}
    """


def test_node_plans_say_what_a_worker_builds(write_pipeline):
    from cep.compiler.assemble import node_plans
    from cep.compiler.graph import build_graph
    from cep.config import load_pipeline, pipeline_registry
    pipeline = load_pipeline(write_pipeline(PIPELINE))
    nodes = node_plans(pipeline, build_graph(pipeline).graph, pipeline_registry(pipeline))
    quotes = nodes["quotes"]
    assert (quotes.kind, quotes.type, quotes.inputs, quotes.key) == ("stream", "stream", ("ticks",), "instrument")
    assert [name for name, _ in quotes.ops] == ["key_by", "filter", "take"]
    assert quotes.stateless is False  # take counts
    assert (nodes["up"].type, nodes["up"].key, nodes["up"].params["count"]) == ("momentum", "instrument", 3)
    assert nodes["signals"].params["path"] == "out/s.jsonl"


def test_a_plan_survives_its_plain_data_form(write_pipeline):
    """What a worker receives (`to_dict` -> msgpack -> `from_dict`) is the plan the compiler made,
    and the plain form holds plain strings only."""
    import msgpack
    from cep.plan import Plan
    plan = cep.compile(write_pipeline(PIPELINE))
    data = plan.to_dict()
    assert {type(edge["delivery"]) for edge in data["edges"]} == {str}
    assert Plan.from_dict(msgpack.unpackb(msgpack.packb(data))) == plan
    assert Plan.from_dict(json.loads(json.dumps(data))) == plan


def test_the_plan_names_its_processes_edges_and_files(write_pipeline, workdir):
    plan = cep.compile(write_pipeline(PIPELINE))
    assert [(p.name, p.role, p.workers) for p in plan.processes] == [
        ("gateway-ticks", "gateway", ("gateway-ticks",)),
        ("strategy-x2-instrument", "strategy", ("strategy-x2-instrument.0", "strategy-x2-instrument.1")),
        ("sink-signals", "sink", ("sink-signals",))]
    assert [(e.id, e.pattern, e.delivery) for e in plan.edges] == [
        ("ticks->strategy-x2-instrument", "pub/sub", "at_least_once"),
        ("up->sink-signals", "push/pull", "at_least_once")]
    assert plan.run_dir == str(workdir / "run" / "planned")
    assert plan.control == f"ipc://{workdir / 'run' / 'planned' / 'control'}"
    assert plan.dead_letter == str(workdir / "out" / "deadletter.jsonl")
