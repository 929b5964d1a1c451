"""`transport: {kind: nats}`: every edge becomes a JetStream subject in the plan, `cep graph`
shows it without credentials, and mistakes are named with their place."""
import json

import pytest

from tests.test_cli import cep

PIPELINE = """version: 1
name: momentum
transport: {{kind: nats, url: "nats://me:pw-9f2@127.0.0.1:4222", token: "tok-77e1"{extra}}}
defaults: {{delivery: {delivery}}}
sources:
  ticks: {{type: synthetic, instruments: 3, count: 1000}}
streams:
  quotes: {{from: ticks, ops: [{{map: {{mid: "(bid_price + ask_price) / 2"}}}}]}}
rules:
  up5: {{use: momentum, from: quotes, with: {{count: 5, quantity: 1}}}}
sinks:
  out: {{type: jsonl, from: up5, path: out/signals.jsonl}}
  all: {{type: "null", from: ticks}}
{deploy}"""


def _graph(tmp_path, capsys, fmt, delivery="at_least_once", extra="", deploy=""):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(delivery=delivery, extra=extra, deploy=deploy))
    return cep("graph", path, "-f", fmt, capsys=capsys)


def test_every_edge_is_a_subject_of_the_pipelines_stream(tmp_path, capsys):
    code, out, err = _graph(tmp_path, capsys, "json")
    assert code == 0, err
    plan = json.loads(out)
    subjects = {(edge["node"], edge["to"]): edge["subject"] for edge in plan["edges"]}
    assert subjects == {("ticks", "strategy"): "cep.momentum.ticks",      # market data: one subject
                        ("ticks", "sink-all"): "cep.momentum.ticks",      # every consumer reads it
                        ("up5", "sink-out"): "cep.momentum.up5.sink-out"}  # signals: one per consumer
    assert plan["nats"] == {"url": "nats://***@127.0.0.1:4222", "token": "***"}


@pytest.mark.parametrize("fmt", ["text", "json", "dot", "mermaid"])
def test_graph_shows_nats_edges_and_never_the_credentials(tmp_path, capsys, fmt):
    code, out, err = _graph(tmp_path, capsys, fmt)
    assert code == 0, err
    assert "pw-9f2" not in out + err and "tok-77e1" not in out + err
    assert "nats" in out
    if fmt == "text":
        assert "over NATS JetStream at nats://***@127.0.0.1:4222, stream CEP_momentum" in out
        assert "up5: strategy -> sink-out  nats subject cep.momentum.up5.sink-out  at_least_once" in out


def test_a_process_of_two_workers_reads_the_market_data_subject_whole(tmp_path, capsys):
    """Each worker reads the subject (a durable consumer each) and keeps its instruments: the
    edge carries one topic, not one per partition as a ZeroMQ publisher does."""
    code, out, err = _graph(tmp_path, capsys, "json", deploy="deploy:\n  up5: {parallelism: 2}\n")
    assert code == 0, err
    (edge,) = [e for e in json.loads(out)["edges"] if e["to"] == "strategy-x2-instrument"]
    assert (edge["subject"], edge["topic"], edge["topic_partitions"]) == ("cep.momentum.ticks", "TICK.*", 1)
    assert edge["partition_key"] == "instrument"


@pytest.mark.parametrize("extra, message", [
    (", replicas: 9", "transport: replicas: Input should be less than or equal to 5"),
    (", tls_ca: nope.pem", "transport: tls_ca: no such TLS file"),
    (", max_age: soon", "transport: max_age: expected a duration"),
])
def test_nats_transport_mistakes_name_the_key(tmp_path, capsys, extra, message):
    code, _, err = _graph(tmp_path, capsys, "text", extra=extra)
    assert code == 2
    assert "p.yaml:3:" in err and message in err


def test_nats_settings_without_kind_nats_are_a_mistake(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(delivery="at_most_once", extra="", deploy="").replace("kind: nats, ", ""))
    code, _, err = cep("validate", path, capsys=capsys)
    assert code == 2
    assert "transport: url is a setting of kind: nats, not of kind: ipc" in err
