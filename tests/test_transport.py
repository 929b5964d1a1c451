"""The transport protocol's implementations (`cep.runtime.transport`), driven directly as a worker
drives them: real ZeroMQ sockets in one process, an outlet of the producer worker and an inlet of
a consumer worker, no processes. Each test sends batches and the end of stream, receives them,
acknowledges what needs it, and checks the counters both ends keep."""
import os
import time
from dataclasses import replace

import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import cep
from cep import codec
from cep.rows import Rows, as_records
from cep.runtime import transport
from cep.runtime.delivery import Receipts
from cep.runtime.transport.reliable import DedupingInlet, ReliableInlet
from cep.runtime.transport.sockets import drain
from cep.runtime.transport.zeromq import PubOutlet, PushOutlet, ZmqInlet

PIPELINE = """
version: 1
name: seam
defaults: {{delivery: {delivery}}}
sources:
  ticks: {{type: synthetic, instruments: [A, B], count: 10, seed: 1}}
rules:
  up: {{use: momentum, from: ticks, with: {{count: 3, quantity: 1}}}}
sinks:
  out: {{type: "null", from: [up]}}
"""
FIELDS = ("instrument", "timestamp", "mid")
DEADLINE_S = 10.0


def compiled(workdir, delivery: str):
    path = workdir / "seam.yaml"
    path.write_text(PIPELINE.format(delivery=delivery))
    plan = cep.compile(path)
    os.makedirs(plan.run_dir, exist_ok=True)
    return plan


def edge_of(plan, pattern: str):
    return next(edge for edge in plan.edges if edge.pattern == pattern)


def ticks(start: int, count: int) -> Rows:
    return Rows(FIELDS, [("A" if i % 2 else "B", i, 100.0 + i) for i in range(start, start + count)])


@pytest.fixture
def context():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


class Consumer:
    """What a consumer worker does with one inlet: read frames, collect records and ENDs."""

    def __init__(self, inlet) -> None:
        self.inlet = inlet
        self.records: list = []
        self.ended: list[str] = []

    def read(self, outlet=None, until=lambda: False) -> None:
        """Read frames (serving the outlet's readers, as the producer worker would) until
        `until()`, failing after DEADLINE_S."""
        deadline = time.monotonic() + DEADLINE_S
        while not until():
            assert time.monotonic() < deadline, "timed out"
            for handler in (outlet.readers.values() if outlet is not None else ()):
                handler()
            try:
                batch, ended = self.inlet.receive(10)
            except BlockingIOError:
                continue
            if batch:
                self.records += as_records(batch)
            if ended is not None:
                self.ended.append(ended)


def serve(outlet, until) -> None:
    """Serve the outlet's readers (subscriptions, acks) until `until()`, failing after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not until():
        assert time.monotonic() < deadline, "timed out"
        for handler in outlet.readers.values():
            handler()
        time.sleep(0.001)


def wait_ready(outlet) -> None:
    serve(outlet, until=lambda: outlet.ready)


def test_plain_push_pull_carries_batches_and_the_end_and_counts_both_ends(workdir, context):
    plan = compiled(workdir, "at_most_once")
    edge = edge_of(plan, "push/pull")
    inlet = transport.inlet(context, plan, edge, "sink-out", 0, 0, lambda *a: pytest.fail(str(a)), Receipts())
    outlet = transport.push_outlet(context, plan, "strategy", 0, edge, lambda: False)
    assert type(outlet) is PushOutlet and type(inlet) is ZmqInlet and not outlet.held
    wait_ready(outlet)
    sent = [{"signal": i, "instrument": "A"} for i in range(300)]
    outlet.send(sent[:3])
    outlet.send(sent[3:])
    outlet.end()
    consumer = Consumer(inlet)
    consumer.read(until=lambda: inlet.complete)
    assert consumer.records == sent and consumer.ended == ["strategy"]
    assert inlet.counters.snapshot() == {**outlet.counters.snapshot(), "dropped": 0}
    assert (inlet.counters.events, inlet.counters.gaps, inlet.counters.dropped) == (300, 0, 0)
    assert outlet.ended and not outlet.done  # END not acknowledged yet: the socket must stay open
    outlet.acknowledged("sink-out")
    assert outlet.done
    outlet.close()
    inlet.close()


def test_plain_pub_sub_joins_by_handshake_and_ends_each_subscriber(workdir, context):
    plan = compiled(workdir, "at_most_once")
    edge = edge_of(plan, "pub/sub")
    outlet = transport.pub_outlet(context, plan, "gateway-ticks", 0, "ticks", [edge], lambda: False)
    inlet = transport.inlet(context, plan, edge, "strategy", 0, 0, lambda *a: pytest.fail(str(a)), Receipts())
    assert type(outlet) is PubOutlet and type(inlet) is ZmqInlet
    wait_ready(outlet)
    outlet.send(ticks(0, 5))
    outlet.flush()  # the end of a pass: the partial frame goes
    outlet.send(ticks(5, 600))
    outlet.end()
    consumer = Consumer(inlet)
    consumer.read(outlet, until=lambda: inlet.complete)
    assert consumer.records == as_records(ticks(0, 605)) and consumer.ended == ["gateway-ticks"]
    assert (outlet.counters.events, inlet.counters.events) == (605, 605)
    assert outlet.counters.frames == inlet.counters.frames and inlet.counters.gaps == 0
    outlet.acknowledged("strategy")
    assert outlet.done
    outlet.close()
    inlet.close()


def test_reliable_push_pull_keeps_frames_until_acknowledged(workdir, context):
    plan = compiled(workdir, "at_least_once")
    edge = edge_of(plan, "push/pull")
    receipts = Receipts(clock=time.monotonic)
    inlet = transport.inlet(context, plan, edge, "sink-out", 0, 0, lambda *a: pytest.fail(str(a)), receipts)
    outlet = transport.push_outlet(context, plan, "strategy", 0, edge, lambda: False)
    assert isinstance(outlet, transport.RetainingOutlet) and type(inlet) is ReliableInlet
    wait_ready(outlet)
    sent = [{"signal": i, "instrument": "A"} for i in range(10)]
    for record in sent:  # a frame each, as an idle strategy sends them
        outlet.send([record])
        outlet.flush()
    assert outlet.counters.unacked == 10  # each kept until acknowledged
    outlet.end()
    consumer = Consumer(inlet)
    consumer.read(outlet, until=lambda: inlet.complete)
    assert consumer.records == sent and consumer.ended == ["strategy"]
    outlet.acknowledged("sink-out")
    assert not outlet.done  # the END is acknowledged, the frames are not
    receipts.end_pass()  # the frames' effects are safe: acknowledge them
    transport.send_acks(receipts, {edge.id: inlet})
    consumer.read(outlet, until=lambda: outlet.done)
    assert outlet.counters.unacked == 0 and receipts.settled
    assert (outlet.counters.frames, inlet.counters.frames, inlet.counters.duplicates) == (10, 10, 0)
    assert outlet.counters.retransmitted == 0 and outlet.counters.refused == 0
    outlet.close()
    inlet.close()


def test_exactly_once_pub_sub_holds_frames_until_released_and_drops_a_resend(workdir, context):
    plan = compiled(workdir, "exactly_once")
    edge = edge_of(plan, "pub/sub")
    receipts = Receipts(clock=time.monotonic)
    outlet = transport.pub_outlet(context, plan, "gateway-ticks", 0, "ticks", [edge], lambda: False)
    inlet = transport.inlet(context, plan, edge, "strategy", 0, 0, lambda *a: pytest.fail(str(a)), receipts)
    assert type(inlet) is DedupingInlet
    wait_ready(outlet)
    outlet.send(ticks(0, 300))
    outlet.flush()
    consumer = Consumer(inlet)
    with pytest.raises(BlockingIOError):  # held back until the worker's checkpoint holds them
        inlet.receive(50)
    outlet.release()
    consumer.read(outlet, until=lambda: len(consumer.records) == 300)
    # the consumer restarts before it acknowledged anything; its checkpoint kept what it read
    inlet.close()
    serve(outlet, until=lambda: "strategy" not in outlet.joined)  # it is gone, as a crash is seen
    restarted = Consumer(transport.inlet(context, plan, edge, "strategy", 0, 1, lambda *a: pytest.fail(str(a)),
                                         receipts))
    serve(outlet, until=lambda: "strategy" in outlet.joined)  # its rejoin: the resend goes out first
    outlet.end()
    outlet.release()
    restarted.read(outlet, until=lambda: restarted.inlet.complete)
    assert restarted.records == [] and restarted.ended == ["gateway-ticks"]
    assert outlet.counters.retransmitted == 2 == restarted.inlet.counters.duplicates  # 256 + 44 records
    receipts.end_pass()
    transport.send_acks(receipts, {edge.id: restarted.inlet})
    outlet.acknowledged("strategy")
    restarted.read(outlet, until=lambda: outlet.done)
    assert outlet.counters.unacked == 0
    outlet.close()
    restarted.inlet.close()


def test_a_subscriber_restarted_before_its_publisher_saw_it_go_gets_what_it_had_not_acknowledged(workdir, context):
    """A killed subscriber's connection is torn down by its publisher's ZeroMQ threads, which a
    loaded host may run late: the new incarnation can subscribe while the old one still counts
    as subscribed. Its join must still be seen, or it never gets the resend (under exactly_once
    it then holds every later frame for it: the run hung)."""
    plan = compiled(workdir, "at_least_once")
    edge = edge_of(plan, "pub/sub")
    outlet = transport.pub_outlet(context, plan, "gateway-ticks", 0, "ticks", [edge], lambda: False)
    crashed = Consumer(transport.inlet(context, plan, edge, "strategy", 0, 0, lambda *a: pytest.fail(str(a)),
                                       Receipts(clock=time.monotonic)))
    wait_ready(outlet)
    outlet.send(ticks(0, 300))
    outlet.flush()
    crashed.read(outlet, until=lambda: len(crashed.records) == 300)  # read, never acknowledged
    receipts = Receipts(clock=time.monotonic)
    restarted = Consumer(transport.inlet(context, plan, edge, "strategy", 0, 1, lambda *a: pytest.fail(str(a)),
                                         receipts))
    restarted.read(outlet, until=lambda: len(restarted.records) == 300)
    crashed.inlet.close()  # only now does the publisher see the old incarnation go
    outlet.end()
    restarted.read(outlet, until=lambda: restarted.inlet.complete)
    assert restarted.records == as_records(ticks(0, 300)) and restarted.ended == ["gateway-ticks"]
    assert outlet.counters.retransmitted == 2  # 256 + 44 records
    receipts.end_pass()
    transport.send_acks(receipts, {edge.id: restarted.inlet})
    outlet.acknowledged("strategy")
    restarted.read(outlet, until=lambda: outlet.done)
    assert "strategy" in outlet.joined and outlet.counters.unacked == 0
    outlet.close()
    restarted.inlet.close()


def test_drain_reads_what_waits_and_never_waits(context):
    pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    pull.bind("inproc://drain")
    push.connect("inproc://drain")
    for message in (b"a", b"b", b"c"):
        push.send(message)
    deadline = time.monotonic() + DEADLINE_S
    while not pull.poll(10) and time.monotonic() < deadline:
        pass
    got = []
    while len(got) < 3 and time.monotonic() < deadline:
        got += drain(pull)
    assert got == [b"a", b"b", b"c"]
    assert list(drain(pull)) == []
    pull.close(0)
    push.close(0)


# -- what a frame carries, what a window holds ------------------------------------------------------
def read_frames(socket, received: list, count: int) -> None:
    """Append to `received` the batches of the DATA frames a raw receiving socket gets, until it
    holds `count` (what the outlet counted as sent)."""
    while len(received) < count:
        assert socket.poll(DEADLINE_S * 1000), "a frame never came"
        kind, _, _, batch = codec.decode_body(codec.split_frame(socket.recv())[1])
        if kind == codec.DATA:
            received.append(batch)


@pytest.mark.parametrize("pattern", ["push/pull", "pub/sub"])
def test_a_frame_never_carries_more_than_frame_size_records(workdir, context, pattern):
    """A worker hands its outlet whatever a pass produced: a burst of up to INBOUND_BURST frames
    merged, or a rule's output; an outlet splits it, so no frame exceeds `frame_size` (push/pull
    once shipped a whole burst in one frame)."""
    plan = compiled(workdir, "at_most_once")
    edge = edge_of(plan, pattern)
    if pattern == "push/pull":
        receiver = context.socket(zmq.PULL)
        receiver.bind(edge.endpoints[0])
        outlet = transport.push_outlet(context, plan, "strategy", 0, edge, lambda: False)
    else:
        outlet = transport.pub_outlet(context, plan, "gateway-ticks", 0, "ticks", [edge], lambda: False)
        receiver = context.socket(zmq.SUB)
        receiver.connect(edge.endpoints[0])
        receiver.subscribe(b"")
        receiver.subscribe(b"!HELLO.strategy")
    wait_ready(outlet)
    received: list = []

    @settings(max_examples=40)
    @given(sizes=st.lists(st.integers(1, 3 * plan.frame_size + 7), min_size=1, max_size=6),
           flushes=st.lists(st.booleans(), min_size=6, max_size=6))
    def each_frame_within_the_bound(sizes, flushes):
        at = 0
        for size, flush in zip(sizes, flushes):
            outlet.send(ticks(at, size))
            at += size
            if flush:
                outlet.flush()
        outlet.flush()
        first = len(received)
        read_frames(receiver, received, outlet.counters.frames)
        batches = received[first:]
        assert [len(b) for b in batches if len(b) > plan.frame_size] == []
        assert [r for b in batches for r in as_records(b)] == as_records(ticks(0, at))

    each_frame_within_the_bound()
    outlet.close()
    receiver.close(0)


def test_a_reliable_window_holds_at_most_hwm_frames_of_frame_size_records_past_one_pass(workdir, context):
    """The worker takes no input while an outlet is `held`, so a consumer worker's window holds at
    most `hwm` frames plus those of the pass during which it filled, each of at most `frame_size`
    records: counted in frames, it bounds the records too (a burst shipped as one frame once let
    it hold 64 times the records `hwm` suggests)."""
    plan = compiled(workdir, "at_least_once")
    edge = replace(edge_of(plan, "push/pull"), hwm=32)
    inlet = transport.inlet(context, plan, edge, "sink-out", 0, 0, lambda *a: pytest.fail(str(a)), Receipts())
    outlet = transport.push_outlet(context, plan, "strategy", 0, edge, lambda: False)
    wait_ready(outlet)
    consumer = Consumer(inlet)  # reads every frame, acknowledges none
    # what a pass produced: more than a frame's worth, less than the sockets queue (sends block)
    burst = [{"signal": i, "instrument": "A"} for i in range(20 * plan.frame_size + 5)]
    passes = 0
    while not outlet.held:
        before = outlet.window.size("sink-out")
        outlet.send(burst)
        outlet.flush()
        passes += 1
        in_pass = outlet.window.size("sink-out") - before
        consumer.read(outlet, until=lambda: outlet.counters.frames == inlet.counters.frames)
    retained = [codec.decode_body(codec.split_frame(frame)[1])[3] for _, _, frame in outlet.window.unacked("sink-out")]
    assert max(len(batch) for batch in retained) <= plan.frame_size
    assert len(retained) <= edge.hwm + in_pass
    assert sum(map(len, retained)) == passes * len(burst) <= (edge.hwm + in_pass) * plan.frame_size
    outlet.close()
    inlet.close()
