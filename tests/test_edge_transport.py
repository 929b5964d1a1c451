"""Which transport each edge gets (`cep.compiler.nats`): `transport: {kind: nats}` on a source,
stream or rule puts the edges it sends on JetStream subjects, on a sink the edges into it;
`kind: zeromq` keeps a node's edges on ZeroMQ under a NATS pipeline. Mixed pipelines compile into
NATS and ipc edges side by side, `cep graph` and `cep validate` say which is which, misuse is
refused with its place, and against a real nats-server a mixed pipeline gives the inline run's
output in every delivery mode, also when a process is SIGKILLed mid-run."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest

import cep
from cep.config.schema import pipeline_schema
from cep.config.yamlsafe import parse_yaml
from cep.plugins import default_registry
from tests.natsserver import nats_server  # noqa: F401 (fixture)
from tests.support import KillOnce, inline_then_killed, signal_ids
from tests.test_cli import cep as cep_cli
from tests.test_multihost import (cep_run, finished, kill_and_rejoin, needs_aliases, reference_output, two_hosts,
                                  wait_for)

PIPELINE = """\
version: 1
name: mixed-{name}
transport: {transport}
defaults: {{delivery: {delivery}}}
sources:
  ticks: {{type: {source}}}
streams:
  quotes:
    from: ticks
    ops: [{{filter: "ask_price > bid_price"}}]{quotes}
rules:
  up3: {{use: momentum, from: quotes, with: {{count: 3, direction: both, quantity: 1}}{up3}}}
  dip: {{from: quotes, within: 1s, pattern: [{{name: low, where: "bid_volume > ask_volume"}},
                                             {{name: high, where: "ask_volume > bid_volume"}}],
        emit: {{action: BUY, trigger_price: "high.ask_price", quantity: 1}}{dip}}}
sinks:
  signals: {{type: jsonl, from: [up3, dip], path: out/signals.jsonl}}
deploy:
  quotes: {{process: feed}}
"""
QUICK = "synthetic, instruments: 2, seed: 8, count: 6000"
REALTIME = "synthetic, instruments: 2, seed: 8, count: 6000, rate: 3000, speed: realtime"
NATS = ", transport: {kind: nats}"
ZEROMQ = ", transport: {kind: zeromq}"
LAYOUTS = {
    # ipc pipeline; quotes (feed -> strategy) and up3 (strategy -> sink) over NATS
    "nats-nodes": dict(transport='{{url: "{url}"}}', quotes="\n    transport: {kind: nats}", up3=NATS, dip=""),
    # NATS pipeline; quotes and dip kept on ZeroMQ
    "zeromq-nodes": dict(transport='{{kind: nats, url: "{url}"}}', quotes="\n    transport: {kind: zeromq}",
                         up3="", dip=ZEROMQ),
}
NATS_EDGES = {"nats-nodes": {"quotes->strategy": "cep.mixed-{name}.quotes",
                             "up3->sink-signals": "cep.mixed-{name}.up3.sink-signals"},
              "zeromq-nodes": {"ticks->feed": "cep.mixed-{name}.ticks",
                               "up3->sink-signals": "cep.mixed-{name}.up3.sink-signals"}}


def write(workdir, layout, url="nats://127.0.0.1:4222", delivery="at_least_once", source=QUICK, name="t"):
    parts = dict(LAYOUTS[layout])
    parts["transport"] = parts["transport"].format(url=url)
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(name=name, delivery=delivery, source=source, **parts))
    return path


# -- compiling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_edge_gets_the_transport_of_the_node_that_sends_it(workdir, layout):
    plan = cep.compile(write(workdir, layout))
    subjects = {edge.id: edge.subject for edge in plan.edges if edge.subject}
    assert subjects == {edge: subject.format(name="t") for edge, subject in NATS_EDGES[layout].items()}
    for edge in plan.edges:
        if edge.subject is None:  # the rest stay on ZeroMQ, in the run directory
            assert all(endpoint.startswith(f"ipc://{workdir}/run/") for endpoint in edge.endpoints + edge.acks)
    assert plan.nats["url"] == "nats://127.0.0.1:4222"


def test_a_pipeline_without_nats_anywhere_has_no_nats_settings(workdir):
    path = write(workdir, "nats-nodes")
    path.write_text(path.read_text().replace(NATS, "").replace("\n    transport: {kind: nats}", "")
                    .replace('transport: {url: "nats://127.0.0.1:4222"}', "transport: {kind: ipc}"))
    plan = cep.compile(path)
    assert plan.nats is None and not any(edge.subject for edge in plan.edges)


def test_a_sink_transport_moves_the_edges_into_it(pipeline_file):
    path = pipeline_file("""\
        version: 1
        name: sinkside
        transport: {url: "nats://127.0.0.1:4222"}
        sources:
          ticks: {type: synthetic, instruments: 2, count: 100}
        rules:
          up3: {use: momentum, from: ticks, with: {count: 3, quantity: 1}}
        sinks:
          kept: {type: jsonl, from: up3, path: out/kept.jsonl, transport: {kind: nats}}
          shown: {type: "null", from: up3}
        """)
    plan = cep.compile(path)
    assert {edge.id: edge.subject for edge in plan.edges} == {
        "ticks->strategy": None, "up3->sink-kept": "cep.sinkside.up3.sink-kept", "up3->sink-shown": None}


def test_graph_and_validate_say_which_edges_are_nats(workdir, capsys):
    path = write(workdir, "nats-nodes")
    code, out, err = cep_cli("graph", path, capsys=capsys)
    assert code == 0, err
    assert "quotes: feed -> strategy  nats subject cep.mixed-t.quotes  at_least_once" in out
    assert "ticks: gateway-ticks -> feed  pub/sub  topic TICK.*" in out
    assert "dip: strategy -> sink-signals  push/pull  topic dip" in out
    code, out, err = cep_cli("graph", path, "-f", "json", capsys=capsys)
    carried = {edge["id"]: edge["subject"] for edge in json.loads(out)["edges"]}
    assert carried["up3->sink-signals"] == "cep.mixed-t.up3.sink-signals" and carried["dip->sink-signals"] is None
    code, out, err = cep_cli("validate", path, capsys=capsys)
    assert code == 0, err
    assert "up3->sink-signals: push/pull over nats cep.mixed-t.up3.sink-signals, at_least_once" in out
    assert "dip->sink-signals: push/pull, at_least_once" in out


def mistake(workdir, problems_of, layout="nats-nodes", **edits):
    path = write(workdir, layout)
    text = path.read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return problems_of(path)


@pytest.mark.parametrize("edit, line, message, hint", [
    ({"transport: {kind: nats}}": "transport: {kind: ipc}}"}, 13,
     'rule "up3": transport.kind: ipc is not a node\'s transport', "write kind: zeromq"),
    ({"transport: {kind: nats}}": "transport: {kind: natz}}"}, 13,
     "rule \"up3\": transport.kind: input should be 'nats' or 'zeromq' (got 'natz')", ""),
    ({'transport: {url: "nats://127.0.0.1:4222"}': "transport: {token: t0k}"}, 3,
     "transport: token is given without a url: no NATS server is named", "add url: nats://HOST:4222"),
    ({"transport: {kind: nats}}": 'transport: {kind: nats, url: "nats://10.0.0.9:4222"}}'}, 13,
     'rule "up3": transport: url differs from the one given by transport (at ', "give them once"),
    ({"transport: {kind: nats}}": 'transport: {kind: zeromq, user: me}}'}, 13,
     'rule "up3": transport: user is a setting of kind: nats, not of kind: zeromq', "write kind: nats"),
    ({"  quotes: {process: feed}": "  quotes: {nice: 1}"}, 11,
     'stream "quotes": transport: it sends nothing to another process (it runs in strategy, beside what reads it)',
     "deploy: {quotes: {process: NAME}}"),
    ({"path: out/signals.jsonl}": "path: out/signals.jsonl, transport: {kind: zeromq}}"}, 18,
     'sink "signals": transport: kind zeromq for the edge up3->sink-signals, but rule "up3" says kind nats',
     'write transport: only on "up3"'),
])
def test_misuse_is_refused_at_its_line_with_the_fix(workdir, problems_of, edit, line, message, hint):
    problems = mistake(workdir, problems_of, **edit)
    (problem,) = [p for p in problems if message in p]
    assert problem.startswith(f"{workdir / 'pipeline.yaml'}:{line}:") and hint in problem, problems


def test_nats_options_that_no_edge_uses_are_refused(workdir, problems_of):
    problems = mistake(workdir, problems_of, **{NATS: "", "\n    transport: {kind: nats}": ""})
    assert len(problems) == 1 and ":3:" in problems[0]
    assert "transport: url is a setting of kind: nats, not of kind: ipc" in problems[0]
    assert "on a stream, rule or sink for its edges" in problems[0]


def test_a_sink_transport_with_nothing_coming_in_is_refused(pipeline_file, problems_of):
    path = pipeline_file("""\
        version: 1
        name: alone
        transport: {url: "nats://127.0.0.1:4222"}
        sources:
          ticks: {type: synthetic, instruments: 2, count: 100}
        sinks:
          raw: {type: "null", from: ticks, transport: {kind: nats}}
        deploy:
          raw: {process: gateway-ticks}
        """)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:7:")
    assert 'sink "raw": transport: it receives nothing from another process' in problem and "nothing crosses" in problem


def test_a_sink_cannot_move_one_reader_of_market_data_alone(pipeline_file, problems_of):
    path = pipeline_file("""\
        version: 1
        name: split
        transport: {url: "nats://127.0.0.1:4222"}
        sources:
          ticks: {type: synthetic, instruments: 2, count: 100}
        rules:
          up3: {use: momentum, from: ticks, with: {count: 3, quantity: 1}}
        sinks:
          raw: {type: "null", from: ticks, transport: {kind: nats}}
          out: {type: "null", from: up3}
        """)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:9:")
    assert ('sink "raw": transport: kind nats for "ticks", which other processes (strategy) read over zeromq'
            in problem and 'write transport: {kind: nats} on "ticks" instead' in problem)


def test_the_schema_knows_a_nodes_transport(workdir):
    schema = pipeline_schema(default_registry())
    validator = jsonschema.Draft202012Validator(schema)
    data = parse_yaml(write(workdir, "nats-nodes").read_text(), "p.yaml").data
    data["sources"]["ticks"]["transport"] = {"kind": "zeromq"}
    data["sinks"]["signals"]["transport"] = {"kind": "nats"}
    assert [error.message for error in validator.iter_errors(json.loads(json.dumps(data)))] == []
    data["streams"]["quotes"]["transport"] = {"kind": "ipc"}
    (error,) = validator.iter_errors(json.loads(json.dumps(data)))
    assert list(error.absolute_path) == ["streams", "quotes", "transport", "kind"]
    assert "'ipc' is not one of ['nats', 'zeromq']" in error.message


# -- running against a real nats-server ----------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("layout, delivery", [("nats-nodes", "at_most_once"), ("nats-nodes", "at_least_once"),
                                              ("nats-nodes", "exactly_once"), ("zeromq-nodes", "exactly_once")])
def test_a_mixed_pipeline_gives_the_inline_output(workdir, nats_server, layout, delivery):
    plan = cep.compile(write(workdir, layout, nats_server.url, delivery, name=delivery.replace("_", "")))
    assert {edge.subject is None for edge in plan.edges} == {True, False}
    cep.run(plan, inline=True)
    inline = sorted(signal_ids(workdir))  # two rules' edges into the sink: their interleaving varies
    status = cep.run(plan)
    assert sorted(signal_ids(workdir)) == inline and inline
    assert status.nodes()["signals"].received == len(inline)


@pytest.mark.integration
@pytest.mark.parametrize("victim", ["feed", "strategy", "sink-signals", "gateway-ticks"])
def test_exactly_once_mixed_killing_any_process_changes_nothing(workdir, nats_server, victim):
    plan = cep.compile(write(workdir, "nats-nodes", nats_server.url, "exactly_once", REALTIME,
                             name=victim.split("-")[0]))
    kill = KillOnce(victim, "signals", after=200)
    inline, status = inline_then_killed(plan, lambda: sorted(signal_ids(workdir)), kill)
    assert kill.pid, "the sink never received 200 signals"
    assert status.restarts == {victim: 1}
    assert sorted(signal_ids(workdir)) == inline


@pytest.mark.integration
@pytest.mark.parametrize("victim", ["feed", "sink-signals"])
def test_at_least_once_mixed_killing_a_process_loses_nothing(workdir, nats_server, victim):
    plan = cep.compile(write(workdir, "nats-nodes", nats_server.url, "at_least_once", REALTIME,
                             name=victim.split("-")[0]))
    kill = KillOnce(victim, "signals", after=200)
    inline, status = inline_then_killed(plan, lambda: set(signal_ids(workdir)), kill)
    assert kill.pid and status.restarts == {victim: 1}
    assert set(signal_ids(workdir)) >= inline


# -- NATS between hosts ------------------------------------------------------------------------------
def nats_hosts(workdir, url, **pipeline):
    """test_multihost's two-host pipeline (gateway on edge; strategy and sink on core), every edge
    over NATS: the edge between the hosts needs no tcp port."""
    path = two_hosts(workdir, **pipeline)
    path.write_text(path.read_text() + f'transport: {{kind: nats, url: "{url}"}}\n')
    return path


def test_with_hosts_nats_carries_the_edges_between_hosts_and_ipc_stays_within(workdir):
    path = two_hosts(workdir)
    path.write_text(path.read_text().replace("  quotes: {type: synthetic", "  quotes: {transport: {kind: nats}, "
                                             "type: synthetic") + 'transport: {url: "nats://127.0.0.1:4222"}\n')
    plan = cep.compile(path)
    (across,) = [edge for edge in plan.edges if edge.node == "quotes"]
    assert across.subject == "cep.twohost.quotes" and not any(e.startswith("tcp://") for e in across.endpoints)
    (within,) = [edge for edge in plan.edges if edge.node == "rising"]
    assert within.subject is None and within.endpoints[0].startswith("ipc://")


def run_hosts(path, first, logs):
    """Both hosts' `cep run --host`, `first` first (the other once `first` is under way), to the end."""
    second = "core" if first == "edge" else "edge"
    runs = {first: cep_run(path, first, logs[first])}
    if first == "core":  # the strategy waits for the gateway on the other host, and says so
        wait_for(lambda: "strategy: waiting for gateway-quotes on NATS subject cep.twohost.quotes"
                 in logs["core"].read_text(),
                 "the strategy to say it waits for the gateway")
    runs[second] = cep_run(path, second, logs[second])
    for host in runs:
        finished(runs[host], logs[host])


@needs_aliases
@pytest.mark.integration
@pytest.mark.parametrize("first", ["edge", "core"])
def test_two_hosts_over_nats_started_in_either_order_equal_one_host(workdir, nats_server, first):
    """The second run reads none of the first run's messages, still in the stream, whichever
    host starts first (its ticks differ: another seed)."""
    logs = {host: workdir / f"{host}.log" for host in ("edge", "core")}
    earlier = nats_hosts(workdir, nats_server.url)
    assert all(edge.subject for edge in cep.compile(earlier).edges)
    run_hosts(earlier, "edge", logs)
    assert (workdir / "out.jsonl").read_text()
    expected = reference_output(workdir, seed=8)
    run_hosts(nats_hosts(workdir, nats_server.url, seed=8), first, logs)
    assert (workdir / "out.jsonl").read_text().splitlines() == expected


@needs_aliases
@pytest.mark.integration
@pytest.mark.parametrize("delivery, killed", [("exactly_once", "core"), ("exactly_once", "edge"),
                                               ("at_least_once", "core"), ("at_least_once", "edge")])
def test_a_host_killed_over_nats_rejoins(workdir, nats_server, delivery, killed):
    """exactly_once: the output equals the one-host run's, whichever host died. at_least_once,
    whichever host died: nothing is missing but a momentum streak in progress (at most one
    signal per instrument); the downstream host starts afresh and goes on from what its
    predecessor acknowledged (its durable consumers are kept: the edge host runs on), so it
    reads again only what was not acknowledged, not the edge from the start of the run."""
    pipeline = {"delivery": delivery, "count": 200_000, "speed": "50x", "mode": "append"}  # about 4 s
    expected = reference_output(workdir, **pipeline)
    rejoined = kill_and_rejoin(nats_hosts(workdir, nats_server.url, **pipeline), expected, delivery, killed)
    if (delivery, killed) == ("at_least_once", "core"):
        (read,) = re.findall(r"^mids\s+stream\s+([\d,]+)", rejoined, re.MULTILINE)
        assert int(read.replace(",", "")) < 0.9 * pipeline["count"], rejoined
