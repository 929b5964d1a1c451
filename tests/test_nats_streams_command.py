"""`cep streams [URL]` lists cep's streams on a real nats-server with their sizes and the event
times of their first and last records, and says clearly when there is no server."""
import json

import pytest

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
