"""The zmq sink and the zmq source over real ipc sockets: the same [topic, payload] format.

No sleeping: the sink waits for the source's subscription (XPUB), and every receive is bounded.
"""
import msgpack
import pytest
import zmq
from pydantic import ValidationError

from cep.components.base import BuildContext
from cep.components.sinks.zmq_publisher import ZmqSinkParams, zmq_sink
from cep.components.sources.zmq_subscriber import ZmqSourceParams, zmq_source
from cep.errors import TransportError
from cep.plugins.markers import MARK

TICKS = [{"timestamp": 1_000 + i, "instrument": "ETHUSDT" if i % 3 else "BTCUSDT",
          "bid_price": 2683.8 + i, "ask_price": 2683.81 + i, "bid_volume": None,
          "ask_volume": 0.5} for i in range(30)]


@pytest.fixture
def endpoint(tmp_path):
    return f"ipc://{tmp_path}/feed.sock"


def context(letters=None, batch_size=8):
    return BuildContext(node="n", batch_size=batch_size,
                        dead_letter_fn=lambda node, reason, raw: (letters if letters is not None
                                                                  else []).append((reason, raw)))


def collect(src) -> list[dict]:
    try:
        return [r for batch in src.batches() for r in batch]
    finally:
        src.close()


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_what_the_sink_publishes_the_source_receives(endpoint, fmt):
    sink = zmq_sink(ZmqSinkParams(endpoint=endpoint, format=fmt, wait_for_subscriber="5s"),
                    context())
    src = zmq_source(ZmqSourceParams(endpoint=endpoint, format=fmt, count=len(TICKS),
                                     idle_timeout="5s"), context())
    sink.write(TICKS[:10])
    sink.write(TICKS[10:])
    received = collect(src)
    sink.close()
    assert received == TICKS


def test_topics_select_by_the_topic_field(endpoint):
    eth = [t for t in TICKS if t["instrument"] == "ETHUSDT"]
    sink = zmq_sink(ZmqSinkParams(endpoint=endpoint, wait_for_subscriber="5s"), context())
    src = zmq_source(ZmqSourceParams(endpoint=endpoint, topics=["ETH"], count=len(eth),
                                     idle_timeout="5s"), context())
    sink.write(TICKS)
    assert collect(src) == eth
    sink.close()


def test_undecodable_messages_are_dead_lettered_and_the_feed_goes_on(endpoint):
    publisher = zmq.Context.instance().socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.setsockopt(zmq.RCVTIMEO, 5000)
    publisher.bind(endpoint)
    letters: list = []
    src = zmq_source(ZmqSourceParams(endpoint=endpoint, count=1, idle_timeout="5s",
                                     max_message_bytes=64), context(letters))
    assert publisher.recv() == b"\x01"  # the source's subscription: it is connected
    publisher.send_multipart([b"only-one-frame"])
    publisher.send_multipart([b"t", b"\xc1\xc1", b"extra"])
    publisher.send_multipart([b"t", b"\xc1garbage"])
    publisher.send_multipart([b"t", msgpack.packb([1, 2])])
    publisher.send_multipart([b"t", msgpack.packb({"timestamp": 5})])
    assert collect(src) == [{"timestamp": 5}]
    publisher.close()
    reasons = [reason for reason, _ in letters]
    assert reasons[0] == "1 frames, expected [topic, payload]"
    assert reasons[1] == "3 frames, expected [topic, payload]"
    assert reasons[2].startswith("undecodable msgpack payload")
    assert reasons[3] == "payload is a list, expected a map of fields"
    assert letters[2][1] == b"t\xc1garbage"


def test_an_idle_source_hands_back_empty_batches_then_ends_after_idle_timeout(endpoint):
    src = zmq_source(ZmqSourceParams(endpoint=endpoint, idle_timeout="60ms", poll_interval="10ms"),
                     context())
    batches = list(src.batches())
    src.close()
    assert batches and all(batch == [] for batch in batches)
    component = getattr(zmq_source, MARK)
    assert component.live and not component.replayable  # a feed: drop, never block


def test_a_full_subscriber_makes_the_sink_drop_and_count_never_block(endpoint):
    ctx = context(batch_size=4096)
    sink = zmq_sink(ZmqSinkParams(endpoint=endpoint, sndhwm=1, linger="0ms",
                                  wait_for_subscriber="5s"), ctx)
    src = zmq_source(ZmqSourceParams(endpoint=endpoint, rcvhwm=1, idle_timeout="300ms"), ctx)
    sent = [{"instrument": "X", "n": i, "pad": "p" * 200} for i in range(20_000)]
    sink.write(sent)  # nobody reads meanwhile: the queues and the socket buffer fill up
    dropped = ctx.counters.dropped.get("subscriber_full", 0)
    received = collect(src)
    sink.close()
    assert dropped > 0
    assert len(received) + dropped == len(sent)
    assert [r["n"] for r in received] == sorted(r["n"] for r in received)


def test_binding_an_endpoint_in_use_fails_saying_which(endpoint):
    first = zmq_sink(ZmqSinkParams(endpoint=endpoint), context())
    with pytest.raises(TransportError) as err:
        zmq_sink(ZmqSinkParams(endpoint=endpoint), context())
    assert endpoint in str(err.value) and "another process uses it" in str(err.value)
    assert err.value.exit_code == 1
    first.close()


def test_a_tcp_port_in_use_fails_saying_which():
    first = zmq_sink(ZmqSinkParams(endpoint="tcp://127.0.0.1:*"), context())
    taken = first.endpoint
    with pytest.raises(TransportError, match=f"cannot bind {taken}"):
        zmq_sink(ZmqSinkParams(endpoint=taken), context())
    first.close()


@pytest.mark.parametrize("model", [ZmqSinkParams, ZmqSourceParams])
def test_endpoints_must_be_zeromq_addresses(model):
    with pytest.raises(ValidationError, match="not a ZeroMQ endpoint"):
        model(endpoint="localhost:5556")


def test_the_sink_binds_to_loopback_by_default():
    assert ZmqSinkParams().endpoint.startswith("tcp://127.0.0.1:")
