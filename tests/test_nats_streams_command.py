"""`cep streams [URL]` lists cep's streams on a real nats-server with their sizes and the event
times of their first and last records, and says clearly when there is no server."""
import json

import pytest

from cep import compile as compile_pipeline, run as run_pipeline
from cep.components.base import BuildContext
from cep.components.sinks.nats_stream import NatsSink, NatsSinkParams
from cep.jetstream.client import NatsConnection, close, connect, loop
from cep.orders.queries import parse_time
from tests.natsserver import nats_server  # noqa: F401 (fixture)
from tests.ports import free_port_range
from tests.test_cli import cep


def _record(url: str, stream: str, times: list[int]) -> None:
    sink = NatsSink(NatsSinkParams(url=url, stream=stream), BuildContext(node="log"))
    for at in times:
        sink.write([{"timestamp": at, "instrument": "X", "bid_price": 1.0, "ask_price": 2.0}])
    sink.close()


@pytest.mark.integration
def test_streams_lists_cep_streams_with_sizes_and_event_times(nats_server, capsys):
    first, last = parse_time("2024-08-08T10:00Z"), parse_time("2024-08-08T11:30Z")
    _record(nats_server.url, "TICKS", [first, first + 10**9, last])
    client = connect(NatsConnection(url=nats_server.url), "test")
    loop().call(client.jetstream().add_stream(name="OTHER", subjects=["other.>"]))
    close(client)

    code, out, err = cep("streams", nats_server.url, "--json", capsys=capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["name"] for row in rows] == ["TICKS"]  # not OTHER: neither made by cep nor under cep.
    assert rows[0]["messages"] == 3 and rows[0]["bytes"] > 0
    assert (rows[0]["first_time"], rows[0]["last_time"]) == (first, last)

    code, out, _ = cep("streams", nats_server.url, capsys=capsys)
    assert code == 0
    assert "2024-08-08T10:00:00.000000000Z" in out and "2024-08-08T11:30:00.000000000Z" in out
    code, out, _ = cep("streams", nats_server.url, "--all", capsys=capsys)
    assert "OTHER" in out and "TICKS" in out


@pytest.mark.integration
def test_streams_without_a_server_fails_naming_it(capsys):
    pytest.importorskip("nats", reason="needs nats-py: pip install -e '.[dev]'")
    url = f"nats://me:secret@127.0.0.1:{free_port_range(1)}"
    code, out, err = cep("streams", url, capsys=capsys)
    assert code == 1
    assert "cannot connect to NATS at nats://***@127.0.0.1:" in err
    assert "secret" not in err and out == ""


EDGES = """version: 1
name: streams-edges
transport: {{kind: nats, url: "{url}"}}
sources:
  ticks: {{type: synthetic, instruments: 2, seed: 8, count: 2000}}
rules:
  up3: {{use: momentum, from: ticks, with: {{count: 3, direction: both, quantity: 1}}}}
sinks:
  out: {{type: jsonl, from: [up3], path: out/signals.jsonl}}
"""


@pytest.mark.integration
def test_an_edge_stream_shows_the_event_times_of_its_first_and_last_records(workdir, nats_server, capsys):
    """A pipeline's edges over NATS (`CEP_<pipeline>`) hold frames with their topic, and end
    with each producer's END: the times come from the first and last messages holding records."""
    path = workdir / "p.yaml"
    path.write_text(EDGES.format(url=nats_server.url))
    run_pipeline(compile_pipeline(path))
    client = connect(NatsConnection(url=nats_server.url), "test")
    try:
        js = client.jetstream()
        state = loop().call(js.stream_info("CEP_streams-edges")).state
        first = loop().call(js.get_msg("CEP_streams-edges", seq=state.first_seq)).data
    finally:
        close(client)
    assert first.startswith(b"TICK.*\x00")  # a frame as ZeroMQ carries it, not a recorded body
    code, out, err = cep("streams", nats_server.url, "--json", capsys=capsys)
    assert code == 0, err
    (row,) = [row for row in map(json.loads, out.splitlines()) if row["name"] == "CEP_streams-edges"]
    signals = [json.loads(line) for line in (workdir / "out" / "signals.jsonl").read_text().splitlines()]
    assert row["first_time"] is not None and row["last_time"] is not None, row
    assert row["first_time"] <= signals[0]["timestamp"] and row["last_time"] >= signals[-1]["timestamp"], row
