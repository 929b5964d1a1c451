"""NATS JetStream edges: the transport protocol (`protocol.py`) over a JetStream stream.

With `transport: {kind: nats, url: ...}` every edge of a pipeline travels as messages, each one
frame as the codec makes it (unchanged bytes), on a subject of the pipeline's stream
`CEP_<pipeline>`: `cep.<pipeline>.<node>` for market data (every consumer process reads it),
`cep.<pipeline>.<node>.<consumer process>` for what rules emit. Each consumer worker reads its
subject through a durable consumer of its own (named after the node and the worker; it pushes,
with flow control), so a restarted consumer worker goes on where its predecessor's
acknowledgements got to; the workers of a partitioned process each read the whole subject and
keep their partition's records (the inlet's filter, as on ZeroMQ). `prepared` runs in the
supervisor before any worker starts: it creates or checks the stream and, for a run that does
not resume from checkpoints, empties it of an earlier run's messages and consumers and gives
the run a token of its own.

Delivery:
- at_most_once: the producer publishes without waiting for JetStream (a core publish); consumers
  acknowledge nothing, so what JetStream had delivered to a crashed consumer and it had not
  processed is lost, and not counted (the restarted inlet's gap count starts afresh; on ZeroMQ
  the producer counts what a consumer that is down misses).
- at_least_once: JetStream acknowledges every publish, and a frame leaves the producer's window
  once JetStream stored it (replicated, on a cluster), so its input can be acknowledged upstream;
  a full window holds the producer back. Its END goes once the window is empty: a frame published
  again (no acknowledgement in time: a leader election) is stored after the frames published
  meanwhile, and the END must not overtake it. The consumer acknowledges each message once its
  effects are safe (the worker's `Receipts`, as on ZeroMQ); JetStream delivers what was not
  acknowledged again after `ACK_WAIT_S`, to the restarted consumer worker.
- exactly_once: at_least_once plus a message id per frame (`Nats-Msg-Id`: the run's token,
  producer worker, subject, topic, sequence number; without the token a second run's first frames would
  be taken for the first run's and dropped), so a restarted producer's resend of its
  checkpointed outbox is stored once,
  and the consumer's deduplicating inlet drops what its checkpoint says was delivered and
  processes each stream in order.

The consumer's end reuses the ZeroMQ inlets unchanged: an `InletBridge` on the process's NATS
event-loop thread takes the edge's messages and hands their frames to the inlet over inproc
ZeroMQ sockets (the endpoints the plan gives a NATS edge), and carries the inlet's
acknowledgements back to JetStream. The producer's end is `NatsOutlet`, which publishes itself.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from dataclasses import replace
from typing import Any, Callable

import zmq

from cep import codec
from cep.errors import CodecError
from cep.jetstream.client import close, connect, loop
from cep.jetstream.edges import connection, durable, prepare as prepare_stream, stream_name
from cep.jetstream.presence import Presence, wait_for_host
from cep.jetstream.publish import Publisher, PublishFailed
from cep.plan import EdgePlan, Plan
from cep.rows import AnyBatch, items
from cep.runtime.delivery import ACK, SeqRanges, Window, decode_ack, epoch
from cep.runtime.transport.protocol import Pollable
from cep.runtime.transport.reliable import RetainingOutlet, checkpointed, reliable
from cep.runtime.transport.sockets import bind, connect as zmq_connect
from cep.runtime.transport.zeromq import END_TOPIC, HELLO_PREFIX, ZmqOutlet

JETSTREAM = "jetstream"
"""The one receiver a NATS outlet's window waits for: JetStream's acknowledgement of a publish."""
ACK_WAIT_S = 5.0
"""How long JetStream waits for a consumer's acknowledgement before delivering a message again
(to the restarted consumer worker, after a crash)."""
HEARTBEAT_S = 5.0
"""A push consumer's idle heartbeat (JetStream's flow control asks for one)."""
ACK_POLL_S = 0.005
"""How often a bridge carries its inlet's acknowledgements to JetStream."""
RUN = "run"
"""The plan's NATS settings: the run's token (`prepared`), which message ids carry."""
CORE_IN_FLIGHT = 1024
"""at_most_once: frames handed to the event loop and not yet written to the server."""


def prepared(plan: Plan, fresh: bool, host: str | None = None) -> Plan:
    """In the supervisor, before any worker starts: the plan as its workers run it. For NATS
    edges the pipeline's stream is made ready (emptied of an earlier run's messages and
    consumers unless the run resumes, `fresh` False) and the run's token joins the settings;
    one `host` of several readies only what its processes publish and read (`presence`).

    A host keeps the durable consumers of the edges it reads from another host: if that host
    runs on, this one goes on from what its predecessor acknowledged (as a ZeroMQ producer sends
    a restarted consumer only what it had not acknowledged); if that host starts a run of its
    own, it empties its subjects before this host reads them (`wait_for_host`), and the kept
    consumer reads that run's messages, which come after any it had read."""
    if plan.nats is None:
        return plan
    mine = {p.name for p in plan.processes if host is None or p.host == host}
    edges = [e for e in plan.edges if e.subject]
    consumers = [(e.node, worker) for e in edges if e.consumer in mine and e.producer in mine
                 for worker in plan.process(e.consumer).workers]
    token = prepare_stream(plan.name, plan.nats, consumers, fresh,
                           host, None if host is None else sorted({e.subject for e in edges if e.producer in mine}))
    return replace(plan, nats={**plan.nats, RUN: token})


def presence(plan: Plan, host: str | None) -> Presence | None:
    """One host of several with NATS edges answers on its presence subject while it runs, once
    `prepared` readied its part of the stream (what consumers on other hosts wait for)."""
    if host is None or plan.nats is None:
        return None
    return Presence(connection(plan.nats), plan.name, host)


# -- producer side -------------------------------------------------------------------------------
def outlet(plan: Plan, worker: str, incarnation: int, node: str, edges: list[EdgePlan],
           stopping: Callable[[], bool]) -> ZmqOutlet:
    """The outlet of `worker` for `node`'s NATS edges (one publish serves them all)."""
    if any(reliable(edge) for edge in edges):
        return ReliableNatsOutlet(plan, worker, node, edges, plan.frame_size, stopping, incarnation)
    return NatsOutlet(plan, worker, node, edges, plan.frame_size, stopping)


class NatsOutlet(ZmqOutlet):
    """The producing end of a node's NATS edges: frames published on the node's subject, END
    after them; at_most_once (`protocol.Outlet`)."""

    def __init__(self, plan: Plan, producer: str, node: str, edges: list[EdgePlan], frame_size: int,
                 stopping: Callable[[], bool]) -> None:
        super().__init__(producer, node, edges, frame_size, stopping)
        edge = edges[0]
        self.subject = edge.subject
        self.topic = b"TICK.*" if edge.pattern == "pub/sub" else codec.topic_bytes(edge.topic)
        self.end_topic = END_TOPIC if edge.pattern == "pub/sub" else self.topic
        self.expected = {w for e in edges for w in plan.process(e.consumer).workers}
        self.bucket: list = []
        self.seq = 0
        self.client = connect(connection(plan.nats), f"cep {producer}")
        self._slots = threading.BoundedSemaphore(CORE_IN_FLIGHT)

    @property
    def ready(self) -> bool:
        return True  # the stream keeps what comes before a consumer reads

    def send(self, batch: AnyBatch) -> None:
        self._adopt(batch)
        bucket = self.bucket
        bucket += items(batch)
        size = self.frame_size
        while len(bucket) >= size:
            self._publish(bucket[:size])
            del bucket[:size]

    def flush(self) -> None:
        if self.bucket:
            bucket, self.bucket = self.bucket, []
            self._publish(bucket)

    def _publish(self, bucket: list) -> None:
        if self._ship(self.subject, self.topic, self.seq + 1, self._batch(bucket)):
            self.seq += 1

    def _send_counted(self, subject: str, frame: bytes, events: int) -> bool:
        if not self._put(subject, frame):
            self.counters.dropped += events
            return False
        self.counters.frames += 1
        self.counters.events += events
        return True

    def _put(self, subject: str, frame: bytes, blocking: bool | None = None) -> bool:
        """A core publish; under `block` waits while `CORE_IN_FLIGHT` frames are not yet written
        (until the worker stops), under `drop` gives up at once."""
        blocking = self.blocking if blocking is None else blocking
        while not self._slots.acquire(timeout=0.1 if blocking else 0):
            if not blocking or self.stopping():
                return False
        loop().post(self._start_core, subject, frame)
        return True

    def _start_core(self, subject: str, frame: bytes) -> None:
        asyncio.ensure_future(self._core(subject, frame))

    async def _core(self, subject: str, frame: bytes) -> None:
        try:
            await self.client.publish(subject, frame)
        except Exception:  # at_most_once: lost, and the receiver counts the gap
            pass
        finally:
            self._slots.release()

    def end(self) -> None:
        self.flush()
        self.ended = True
        self.awaiting_ack = set(self.expected)
        self._put(self.subject, self._frame(self.end_topic, codec.END, self.seq + 1, None), blocking=True)

    def close(self) -> None:
        close(self.client)


class ReliableNatsOutlet(RetainingOutlet, NatsOutlet):
    """at_least_once and exactly_once: every frame waits in the window until JetStream stored
    it; under exactly_once a frame carries its id and leaves only once the checkpoint holds it."""

    def __init__(self, plan: Plan, producer: str, node: str, edges: list[EdgePlan], frame_size: int,
                 stopping: Callable[[], bool], incarnation: int) -> None:
        NatsOutlet.__init__(self, plan, producer, node, edges, frame_size, stopping)
        self.window = Window({JETSTREAM}, capacity=min(edge.hwm for edge in edges))
        self.blocking = True
        self.epoch = epoch(incarnation)
        self.unsent = [] if checkpointed(edges) else None
        self._ending = False
        self.run = plan.nats[RUN]
        self.publisher = Publisher(self.client, in_flight=self.window.capacity * 2,
                                   notify=self._notify)
        self._stored: deque = deque()  # (future, topic, seq) in publish order
        self._end: bytes | None = None  # the END, until every data frame is stored
        self._end_stored: Any = None  # the END's publish, once it went
        self._bell_out, self._bell_in = os.pipe()
        os.set_blocking(self._bell_out, False)
        os.set_blocking(self._bell_in, False)
        self.readers[self._bell_out] = self.on_stored

    def _recipients(self, subject: str) -> tuple[str]:
        return (JETSTREAM,)

    def _send_counted(self, subject: str, frame: bytes, events: int) -> bool:
        topic, body = codec.split_frame(frame)
        seq = codec.decode_header(body)[2]
        self._stored.append((self._publish_frame(frame, topic, seq), topic, seq))
        self.counters.frames += 1
        self.counters.events += events
        return True

    def _publish_frame(self, frame: bytes, topic: bytes, seq: int) -> Any:
        """Publish with the frame's id: the run, the producer worker, the subject, the stream, the
        number. The subject tells apart a node's edges to several consumer processes, which
        number their frames alike: JetStream deduplicates ids across the whole stream."""
        return self.publisher.publish(self.subject, frame,
                                      f"{self.run}:{self.producer}:{self.subject}:{topic.decode()}:{seq}")

    def _put(self, subject: str, frame: bytes, blocking: bool | None = None) -> bool:
        """The END: published once JetStream stored every data frame before it (`on_stored`).
        A consumer reads the stream in order and stops at the END, and a frame whose publish
        failed (a cluster electing the stream's leader) is stored when it goes again, after any
        frame published meanwhile: an END published at once could overtake it and end the edge
        without it."""
        self._end = frame
        self._publish_end()
        return True

    def _publish_end(self) -> None:
        if self._end is not None and self.window.empty:
            topic, body = codec.split_frame(self._end)
            self._end_stored = self._publish_frame(self._end, topic, codec.decode_header(body)[2])
            self._end = None

    def _notify(self) -> None:
        """On the loop thread: a publish was acknowledged (or failed); wake the worker."""
        try:
            os.write(self._bell_in, b"!")
        except BlockingIOError:
            pass  # the worker has not read the earlier rings yet: one is enough

    def on_stored(self) -> None:
        """Release what JetStream stored; PublishFailed for what it did not, after retrying."""
        try:
            while os.read(self._bell_out, 4096):
                pass
        except BlockingIOError:
            pass
        stored: dict[bytes, SeqRanges] = {}
        while self._stored and self._stored[0][0].done():
            future, topic, seq = self._stored.popleft()
            exception = future.exception()
            if exception is not None:
                raise PublishFailed(f"JetStream did not store a frame of {self.node}: "
                                    f"{type(exception).__name__}: {exception}")
            (stored.get(topic) or stored.setdefault(topic, SeqRanges())).add(seq)
        if stored:
            self.window.ack(JETSTREAM, stored)
        self.counters.unacked = self.window.size()
        self._publish_end()
        if self._end_stored is not None and self._end_stored.done() and self._end_stored.exception():
            exception = self._end_stored.exception()
            raise PublishFailed(f"JetStream did not store the end of {self.node}: "
                                f"{type(exception).__name__}: {exception}")

    @property
    def held(self) -> bool:
        if self.window.full:
            self.on_stored()
        return self.window.full

    def resume(self) -> None:
        """After a restore from a checkpoint: publish again what JetStream had not acknowledged
        (the same ids: what it had stored, it stores once)."""
        for topic, seq, frame in self.window.unacked(JETSTREAM):
            self._stored.append((self._publish_frame(frame, topic, seq), topic, seq))
            self.counters.retransmitted += 1

    def resend_owed(self) -> None:
        """Nothing is owed to a consumer: JetStream delivers again what a consumer worker lost."""

    def close(self) -> None:
        self.publisher.close()
        NatsOutlet.close(self)
        os.close(self._bell_in)
        os.close(self._bell_out)


# -- consumer side -------------------------------------------------------------------------------
class InletBridge:
    """Feeds an edge's messages from its durable consumer to one consumer worker's inlet over
    inproc ZeroMQ, and the inlet's acknowledgements back to JetStream (reliable edges).

    Every socket is used on the event-loop thread only, after it was made here. A message waits
    while the inlet's socket is full (its HWM) and the next ones wait behind it, so the worker's
    pace holds JetStream's deliveries back (flow control).
    """

    def __init__(self, context: zmq.Context, plan: Plan, edge: EdgePlan, worker: str, index: int) -> None:
        self.edge = edge
        self.worker = worker
        self.reliable = reliable(edge)
        self.stream = stream_name(plan.name)
        self.producers = plan.process(edge.producer).workers
        if edge.pattern == "pub/sub":
            self.out = context.socket(zmq.XPUB)
            self.out.setsockopt(zmq.XPUB_NODROP, 1)
            bind(self.out, edge.endpoints[0])
        else:
            self.out = context.socket(zmq.PUSH)
            zmq_connect(self.out, edge.endpoints[index])
        self.out.setsockopt(zmq.SNDHWM, edge.hwm)
        self.out.setsockopt(zmq.LINGER, 0)
        self.acks: list[zmq.Socket] = []
        for endpoint in edge.acks if self.reliable else ():
            socket = context.socket(zmq.PULL)
            socket.setsockopt(zmq.LINGER, 0)
            bind(socket, endpoint)
            self.acks.append(socket)
        self.joined = edge.pattern != "pub/sub"
        self.unacked: dict[tuple[str, bytes, int], Any] = {}
        self.subscription: Any = None
        self.ends: list = []  # END messages held back (`_release_ends`)
        self.client = connect(connection(plan.nats), f"cep {worker}")
        self.closing = False
        self.pipeline = plan.name
        hosts = plan.process(edge.producer).host, plan.process(edge.consumer).host
        self.remote = hosts[0] if hosts[0] != hosts[1] else None  # the producer's host, if another
        self.task = loop().submit(self._pump())

    async def _subscribe(self) -> Any:
        """The edge's durable consumer, pushing to this bridge: each message as it is stored,
        with flow control, so a consumer worker that falls behind holds the server back."""
        from nats.js import api
        name = durable(self.edge.node, self.worker)
        config = api.ConsumerConfig(
            durable_name=name, deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT if self.reliable else api.AckPolicy.NONE,
            ack_wait=ACK_WAIT_S if self.reliable else None,
            max_ack_pending=self.edge.hwm * 4 if self.reliable else None,
            flow_control=True, idle_heartbeat=HEARTBEAT_S)
        return await self.client.jetstream().subscribe(
            self.edge.subject, durable=name, stream=self.stream, config=config, cb=self._on_message,
            manual_ack=True)

    async def _pump(self) -> None:
        """Subscribe once the inlet can receive, then carry its acknowledgements back."""
        while not self.joined and not self.closing:
            self._look_for_hello()
            await asyncio.sleep(0.002)
        if self.remote is not None:  # its subjects hold an earlier run's messages until it is up
            await wait_for_host(self.client, self.pipeline, self.remote, lambda: self.closing)
        if not self.closing:
            self.subscription = await self._subscribe()
        while not self.closing:
            self._take_acks()
            if self.ends:
                await self._release_ends()
            await asyncio.sleep(ACK_POLL_S)

    async def _on_message(self, message: Any) -> None:
        if self._note(message):
            await self._hand_over(message.data)

    async def _hand_over(self, frame: bytes) -> None:
        """Hand a frame to the inlet, waiting while its socket is full (the next message waits
        meanwhile: that is the back-pressure)."""
        while True:
            try:
                self.out.send(frame, zmq.NOBLOCK)
                return
            except zmq.Again:
                if self.closing:
                    return
                self._take_acks()
                await asyncio.sleep(0.0005)

    def _look_for_hello(self) -> None:
        """pub/sub: the inlet's SUB joined once its HELLO subscription arrives (as on ZeroMQ)."""
        hello = f"\x01{HELLO_PREFIX}{self.worker}".encode()
        while True:
            try:
                if self.out.recv(zmq.NOBLOCK) == hello:
                    self.joined = True
            except zmq.Again:
                return

    def _note(self, message: Any) -> bool:
        """Reliable: remember a data frame's message, to acknowledge it when the inlet says so;
        False for an END, which waits (`_release_ends`). A message that is no frame is
        acknowledged now (the inlet dead-letters it); an END never is, so a consumer worker
        restarted after it gets it again."""
        if not self.reliable:
            return True
        try:
            topic, body = codec.split_frame(message.data)
            kind, producer, seq, _ = codec.decode_header(body)
        except CodecError:
            asyncio.ensure_future(message.ack())
            return True
        if kind == codec.DATA:
            self.unacked[(producer, bytes(topic), seq)] = message
            return True
        self.ends.append(message)
        return False

    async def _release_ends(self) -> None:
        """Hand the ENDs that came to the inlet once no frame before them is still out with an
        earlier incarnation of this consumer worker (JetStream delivers those again after
        `ACK_WAIT_S`): an END that overtook them would end the edge without them."""
        info = await self.subscription.consumer_info()
        if info.num_pending or info.num_ack_pending > len(self.unacked) + len(self.ends):
            return
        while self.ends:
            await self._hand_over(self.ends.pop(0).data)

    def _take_acks(self) -> None:
        for producer, socket in zip(self.producers, self.acks):
            while True:
                try:
                    raw = socket.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    kind, _, _, acked = decode_ack(raw)
                except CodecError:
                    continue
                if kind == ACK:
                    self._ack(producer, acked)

    def _ack(self, producer: str, acked: dict[bytes, SeqRanges]) -> None:
        for topic, ranges in acked.items():
            for low, high in ranges.pairs():
                for seq in range(low, high + 1):
                    message = self.unacked.pop((producer, topic, seq), None)
                    if message is not None:
                        asyncio.ensure_future(message.ack())

    def close(self) -> None:
        """Stop taking messages, send the last acknowledgements, close."""
        self.closing = True
        try:
            self.task.result(timeout=5)
        except Exception:  # a pump that failed has nothing more to send
            pass
        loop().call(self._close_sockets())
        close(self.client)

    async def _close_sockets(self) -> None:
        if self.subscription is not None:
            await self.subscription.unsubscribe()
        self._take_acks()
        for socket in [self.out, *self.acks]:
            socket.close(0)


class BridgedInlet:
    """A ZeroMQ inlet fed by an `InletBridge`: the inlet as it is, closed with its bridge."""

    def __init__(self, inlet: Any, bridge: InletBridge) -> None:
        self.inlet = inlet
        self.bridge = bridge
        self.edge = inlet.edge
        self.counters = inlet.counters
        self.receive = inlet.receive
        self.waiting = inlet.waiting

    @property
    def complete(self) -> bool:
        return self.inlet.complete

    @property
    def pollable(self) -> Pollable:
        return self.inlet.pollable

    def acknowledge(self, producer: str, acked: dict[bytes, SeqRanges]) -> None:
        self.inlet.acknowledge(producer, acked)

    def close(self) -> None:
        self.inlet.close()
        self.bridge.close()
