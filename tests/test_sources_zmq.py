"""The zmq source against a hostile publisher: every bad message is dead-lettered alone, and an
oversize one never enters memory (ZeroMQ drops the connection; the source counts it and
connects again). No sleeping: the publisher is an XPUB that waits for the source's subscription."""
import json
import math

import msgpack
import pytest
import zmq

from cep.components.base import BuildContext
from cep.components.sources.zmq_subscriber import ZmqSourceParams, zmq_source


@pytest.fixture
def publisher(tmp_path):
    socket = zmq.Context.instance().socket(zmq.XPUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, 5000)
    socket.bind(f"ipc://{tmp_path}/feed.sock")
    yield socket, f"ipc://{tmp_path}/feed.sock"
    socket.close(0)


def source(endpoint, letters, **params):
    ctx = BuildContext(node="feed", batch_size=8,
                       dead_letter_fn=lambda node, reason, raw: letters.append(reason))
    return zmq_source(ZmqSourceParams(endpoint=endpoint, idle_timeout="5s", **params), ctx), ctx


def collect(src) -> list[dict]:
    try:
        return [r for batch in src.batches() for r in batch]
    finally:
        src.close()


def good(i: int) -> dict:
    return {"timestamp": 1_000 + i, "instrument": "BTCUSDT", "bid_price": 1.5 + i, "ask_price": 1.6 + i}


HOSTILE = [
    (msgpack.packb({"timestamp": 1, "x": msgpack.ExtType(5, b"ab")}), "ExtType value is not plain data"),
    (msgpack.packb({"timestamp": 1, "at": msgpack.Timestamp(1, 2)}), "Timestamp value is not plain data"),
    (msgpack.packb({"timestamp": 1, "bid_price": math.nan}), "invalid bid_price"),
    (msgpack.packb({"timestamp": 1, "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
     "nested deeper than 32"),
    (msgpack.packb({"timestamp": 1, "note": "x" * 70_000}), "string of 70000 characters"),
    (msgpack.packb({"timestamp": -5}), "invalid timestamp"),
    (msgpack.packb({"timestamp": 1, "instrument": "A\0B"}), "NUL"),
    (b"\x91" * 100_000 + b"\xc0", "undecodable msgpack payload"),
]


def test_each_hostile_message_is_dead_lettered_alone_between_good_ones(publisher):
    pub, endpoint = publisher
    letters: list[str] = []
    src, ctx = source(endpoint, letters, count=20)
    assert pub.recv() == b"\x01"  # the source's subscription: it is connected
    for i, (payload, _) in enumerate(HOSTILE):
        pub.send_multipart([b"t", msgpack.packb(good(i))])
        pub.send_multipart([b"t", payload])
    for i in range(len(HOSTILE), 20):
        pub.send_multipart([b"t", msgpack.packb(good(i))])
    assert collect(src) == [good(i) for i in range(20)]
    assert len(letters) == len(HOSTILE) == ctx.counters.dead_lettered
    for letter, (_, reason) in zip(letters, HOSTILE):
        assert reason in letter


def test_json_payloads_with_nan_or_a_huge_integer_are_dead_lettered(publisher):
    pub, endpoint = publisher
    letters: list[str] = []
    src, _ = source(endpoint, letters, count=2, format="json")
    assert pub.recv() == b"\x01"
    pub.send_multipart([b"t", b'{"timestamp": 1, "price": NaN}'])
    pub.send_multipart([b"t", b'{"timestamp": 1, "size": 12345678901234567890123456}'])
    pub.send_multipart([b"t", b'{"timestamp": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"])
    pub.send_multipart([b"t", json.dumps(good(0)).encode()])
    pub.send_multipart([b"t", json.dumps(good(1)).encode()])
    assert collect(src) == [good(0), good(1)]
    assert ["NaN is not JSON" in letters[0], "out of range" in letters[1], "nested too deep" in letters[2]] == [True] * 3


def test_an_oversize_message_never_reaches_the_source_which_counts_the_disconnect_and_reconnects(publisher):
    pub, endpoint = publisher
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription comes up, a repeated one too
    letters: list[str] = []
    src, ctx = source(endpoint, letters, count=2, max_message_bytes=1024, poll_interval="10ms")
    assert pub.recv() == b"\x01"
    pub.send_multipart([b"t", msgpack.packb(good(0))])
    pub.send_multipart([b"t", b"x" * 10_000_000])
    batches = src.batches()
    assert next(b for b in batches if b) == [good(0)]
    subscription = None
    while subscription != b"\x01":  # (the dropped connection's unsubscription may come first)
        while not pub.poll(10):
            assert next(batches) == []  # the idle source sees the drop and connects again
        subscription = pub.recv()
    pub.send_multipart([b"t", msgpack.packb(good(1))])
    assert next(b for b in batches if b) == [good(1)]
    src.close()
    assert ctx.counters.dropped == {"disconnected": 1} and letters == []
