"""The `nats` sink records a stream into JetStream and the `nats` source replays it, against a
real nats-server: the same records, from a sequence number or an event time, each once."""
import json
from pathlib import Path

import pytest

import cep
from cep.components.base import BuildContext
from cep.components.sinks.nats_stream import NatsSink, NatsSinkParams
from cep.components.sources.nats_stream import NatsSource, NatsSourceParams, NatsSourceError
from cep.jetstream.client import connect, loop
from cep.jetstream.streams import StreamMismatch
from cep.orders.queries import parse_time
from cep.rows import as_records
from tests.support import KillOnce
from tests.natsserver import nats_server, reference, replayed  # noqa: F401 (fixture)

RECORD = """version: 1
name: record
defaults: {{delivery: {delivery}, batch_size: 64}}
sources:
  ticks: {{type: synthetic, {ticks}}}
sinks:
  log: {{type: nats, from: ticks, url: "{url}", stream: TICKS, max_age: 1h}}
"""


def _ticks_params(count: int, rate: int = 1000) -> str:
    return f"instruments: 3, count: {count}, rate: {rate}, seed: 7"


def _recording(workdir: Path, url: str, ticks: str, delivery: str = "at_most_once") -> Path:
    path = workdir / "record.yaml"
    path.write_text(RECORD.format(delivery=delivery, ticks=ticks, url=url))
    return path


@pytest.mark.integration
def test_a_recorded_stream_replays_the_same_records(workdir, nats_server):
    cep.run(cep.compile(_recording(workdir, nats_server.url, _ticks_params(5000))))
    assert replayed(workdir, nats_server.url, "TICKS") == reference(workdir, _ticks_params(5000))


def _context(node: str = "n") -> tuple[BuildContext, list]:
    dead: list = []
    return BuildContext(node=node, dead_letter_fn=lambda n, reason, raw: dead.append((reason, raw))), dead


def _sink(url: str, **params) -> NatsSink:
    return NatsSink(NatsSinkParams(url=url, **{"stream": "TICKS", **params}), _context("log")[0])


def _replay(url: str, **params) -> list[dict]:
    ctx, _ = _context("src")
    source = NatsSource(NatsSourceParams.model_validate({"url": url, "stream": "TICKS", **params}), ctx)
    try:
        return [record for batch in source.batches() for record in as_records(batch)]
    finally:
        source.close()


def _ticks(start: int, count: int) -> list[dict]:
    return [{"timestamp": start + i * 1_000_000, "instrument": "X", "bid_price": 1.0 + i, "ask_price": 2.0 + i}
            for i in range(count)]


@pytest.mark.integration
def test_replay_starts_from_an_event_time_inside_a_message(nats_server):
    origin = parse_time("2024-08-08T10:00Z")
    sink = _sink(nats_server.url)
    ticks = _ticks(origin - 50_000_000, 200)  # 1 ms apart: 50 before 10:00, 150 from it
    for at in range(0, 200, 30):  # messages of 30 records: 10:00 falls inside one
        sink.write(ticks[at:at + 30])
    sink.close()
    replayed = _replay(nats_server.url, **{"from": "2024-08-08T10:00Z"})
    assert replayed == ticks[50:]
    assert _replay(nats_server.url, **{"from": 3}) == ticks[60:]  # message 3 holds records 60..89
    assert _replay(nats_server.url) == ticks


@pytest.mark.parametrize("before, after", [((40, 70), ((40, 55), (55, 100))),
                                           ((40, 55), ((40, 70), (70, 100))),
                                           ((40, 70), ((40, 70), (70, 100)))])
@pytest.mark.integration
def test_a_restarted_exactly_once_sink_writes_records_again_and_the_source_reads_them_once(
        nats_server, before, after):
    """What a sink published after its checkpoint comes again cut into other batches: every
    record is read once, whichever message JetStream or the reader leaves out."""
    ticks = _ticks(10**18, 100)
    sink = _sink(nats_server.url)
    sink.write(ticks[:40])
    state = sink.state()  # the checkpoint: 40 records stored
    sink.write(ticks[slice(*before)])  # published after the checkpoint, then the sink "crashes"
    sink.flush()
    again = _sink(nats_server.url)
    again.restore(tuple(state))
    for cut in after:
        again.write(ticks[slice(*cut)])
    again.close()
    ctx, _ = _context("src")
    source = NatsSource(NatsSourceParams(url=nats_server.url, stream="TICKS"), ctx)
    replayed = [record for batch in source.batches() for record in as_records(batch)]
    source.close()
    assert replayed == ticks


@pytest.mark.integration
def test_a_stream_that_does_not_take_the_subject_or_disagrees_on_limits_is_refused(nats_server):
    _sink(nats_server.url, max_age="1h").close()
    with pytest.raises(StreamMismatch, match="max_age 3600.0, the pipeline asks for 7200.0"):
        _sink(nats_server.url, max_age="2h")
    with pytest.raises(StreamMismatch, match="does not take subject cep.other"):
        _sink(nats_server.url, subject="cep.other")
    _sink(nats_server.url).close()  # no limit stated: the stream as it is will do


@pytest.mark.integration
def test_a_missing_stream_is_named(nats_server):
    with pytest.raises(NatsSourceError, match="no stream TICKS on NATS at nats://127.0.0.1"):
        _replay(nats_server.url)


@pytest.mark.integration
def test_a_message_that_is_no_frame_is_dead_lettered_and_the_replay_goes_on(nats_server):
    sink = _sink(nats_server.url)
    sink.write(_ticks(10**18, 3))
    sink.flush()
    client = connect(NatsSinkParams(url=nats_server.url, stream="TICKS"), "test")
    loop().call(client.jetstream().publish("cep.TICKS", b"not msgpack"))
    sink.write(_ticks(2 * 10**18, 2))
    sink.close()
    ctx, dead = _context("src")
    source = NatsSource(NatsSourceParams(url=nats_server.url, stream="TICKS"), ctx)
    replayed = [record for batch in source.batches() for record in as_records(batch)]
    source.close()
    assert replayed == _ticks(10**18, 3) + _ticks(2 * 10**18, 2)
    assert len(dead) == 1 and "message 2" in dead[0][0]


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.integration
def test_a_killed_recording_sink_loses_nothing_and_exactly_once_repeats_nothing(workdir, nats_server, delivery):
    ticks = _ticks_params(20_000, rate=10_000)
    path = _recording(workdir, nats_server.url, ticks + ", speed: realtime", delivery)  # 2 s: time to kill
    kill = KillOnce("sink-log", "log", after=5000)
    status = cep.run(cep.compile(path), on_status=kill, backoff_s=0.05)
    assert kill.pid is not None and status.restarts
    expected = reference(workdir, ticks)
    found = replayed(workdir, nats_server.url, "TICKS")
    if delivery == "exactly_once":
        assert found == expected
    else:
        assert {json.dumps(r, sort_keys=True) for r in found} == {json.dumps(r, sort_keys=True) for r in expected}
