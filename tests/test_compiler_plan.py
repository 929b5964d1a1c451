"""The plan: plain data at the bottom of the package, which a worker loads without the compiler."""
import json
import subprocess
import sys

import pytest

import cep

CONFIG_LAYER = ("cep.config", "cep.config.loader", "cep.config.models", "yaml", "networkx")


def loaded_by_importing(module: str, root) -> list[str]:
    """Which of the config layer's modules (and cep.compiler) importing `module` loads, in a
    fresh interpreter."""
    watched = (*CONFIG_LAYER, "cep.compiler")
    probe = f"import {module}, sys, json; print(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=root, env={"PYTHONPATH": str(root)},
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("module", ["cep.runtime.worker", "cep.runtime.transport"])
def test_a_worker_loads_neither_the_config_layer_nor_networkx(module, root):
    """What a fork server preloads for every worker: importing the compiler there cost each
    worker ~14 MB and 0.1 s of start-up (YAML, the config models, networkx)."""
    assert loaded_by_importing(module, root) == []


def test_the_compiler_facade_loads_its_steps_only_when_it_compiles(root):
    """`cep graph`'s renderer and anything else that imports from cep.compiler without compiling
    do not pay for the config layer."""
    assert loaded_by_importing("cep.compiler.render", root) == ["cep.compiler"]


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


def test_node_plans_say_what_a_worker_builds(pipeline_file):
    from cep.compiler.assemble import node_plans
    from cep.compiler.graph import build_graph
    from cep.config import load_pipeline, pipeline_registry
    pipeline = load_pipeline(pipeline_file(PIPELINE))
    nodes = node_plans(pipeline, build_graph(pipeline).graph, pipeline_registry(pipeline))
    quotes = nodes["quotes"]
    assert (quotes.kind, quotes.type, quotes.inputs, quotes.key) == ("stream", "stream", ("ticks",), "instrument")
    assert [name for name, _ in quotes.ops] == ["key_by", "filter", "take"]
    assert quotes.stateless is False  # take counts
    assert (nodes["up"].type, nodes["up"].key, nodes["up"].params["count"]) == ("momentum", "instrument", 3)
    assert nodes["signals"].params["path"] == "out/s.jsonl"


def test_a_plan_survives_its_plain_data_form(pipeline_file):
    """What a worker receives (`to_dict` -> msgpack -> `from_dict`) is the plan the compiler made,
    and the plain form holds plain strings only."""
    import msgpack
    from cep.plan import Plan
    plan = cep.compile(pipeline_file(PIPELINE))
    data = plan.to_dict()
    assert {type(edge["delivery"]) for edge in data["edges"]} == {str}
    assert Plan.from_dict(msgpack.unpackb(msgpack.packb(data))) == plan
    assert Plan.from_dict(json.loads(json.dumps(data))) == plan


def test_the_plan_names_its_processes_edges_and_files(pipeline_file, workdir):
    plan = cep.compile(pipeline_file(PIPELINE))
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
