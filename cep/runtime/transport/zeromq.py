"""Plain ZeroMQ edges (at_most_once): `PubOutlet`, `PushOutlet` and `ZmqInlet` implement the
transport protocol (`protocol.py`) with no acknowledgements; `reliable.py` builds on them.

- pub/sub: the producer binds an XPUB; consumers connect SUBs. Subscribers join by handshake,
  never by sleeping: each subscribes to everything, then to its own `!HELLO.<worker>` topic; the
  XPUB sees that subscription arrive after the first, so once it is seen the subscriber gets every
  frame that follows. XPUB_NODROP makes a full peer visible (EAGAIN) instead of a silent drop.
  XPUB_VERBOSE passes on every subscription, not only a topic's first: a restarted consumer
  worker may subscribe before the XPUB has torn down its killed predecessor's connection (its
  threads run late on a loaded host), and its HELLO must still be seen as a join.
- push/pull: every consumer worker binds a PULL; the producer connects one PUSH to each and routes
  records by partition key, so a key always reaches the same worker.

Records leave in frames of at most `frame_size` (`Plan.frame_size`), however much one pass of
the worker gave the outlet; the worker flushes partial frames after each pass of its loop. A full peer is handled per the edge's `backpressure`: `block` waits (nothing is lost
while nothing crashes) and `drop` drops the frame and counts it. HWM and LINGER are set on every
socket. End of stream is an END frame; the producer keeps its socket open until every consumer
worker has acknowledged it (through the supervisor), because closing a PUSH whose peer is backed
up loses the unread tail (DESIGN §4).
"""
from __future__ import annotations

from typing import Callable

import zmq

from cep import codec
from cep.errors import CodecError
from cep.partition import Partitioner
from cep.plan import EdgePlan, Plan
from cep.rows import AnyBatch, Rows, items, like, split_by
from cep.runtime import security
from cep.runtime.transport.protocol import EdgeCounters, Pollable
from cep.runtime.transport.sockets import (
    EVENTS,
    NOBLOCK,
    POLLIN,
    RECONNECT_MS,
    Connecting,
    bind,
    connect,
    drain,
    get_option,
    send_frame,
)

END_TOPIC = b"!END"
HELLO_PREFIX = "!HELLO."
CONTROL_PREFIX = b"!"


def topic_owner(topic: bytes, workers: int) -> int | None:
    """The worker among `workers` that owns market data topic `TICK.<p>` (None: not such a topic).

    p is the partition among the edge's `topic_partitions`, a multiple of `workers`; partitions
    are a hash modulo their count, so `p % workers` is the key's worker, as `partition_of` says.
    """
    partition = topic.removeprefix(b"TICK.")
    return int(partition) % workers if partition.isdigit() else None


class ZmqOutlet:
    """The producing end of one node's edges over ZeroMQ (`protocol.Outlet`)."""

    retained_for: frozenset[str] = frozenset()
    """Consumer workers for which sent frames are kept until acknowledged (reliable delivery)."""
    refuse: Callable[[str, object], None] | None = None
    """Dead-letters a record no frame can carry (`codec.encode_frame`); without it one raises."""
    held = False
    """Never: only a reliable outlet's window holds its worker's input back."""

    def __init__(self, producer: str, node: str, edges: list[EdgePlan], frame_size: int,
                 stopping: Callable[[], bool]) -> None:
        self.producer = producer
        self.node = node
        self.edges = edges
        self.frame_size = frame_size
        self.blocking = all(edge.backpressure == "block" for edge in edges)
        self.stopping = stopping
        self.counters = EdgeCounters()
        self.layout: tuple[str, ...] | None = None  # of the pending rows; None: records
        self.ended = False
        # consumer workers that must acknowledge the END frame before the socket may close
        self.awaiting_ack: set[str] = set()
        self.readers: dict[Pollable, Callable[[], None]] = {}

    def acknowledged(self, consumer_worker: str) -> None:
        self.awaiting_ack.discard(consumer_worker)

    @property
    def done(self) -> bool:
        return self.ended and not self.awaiting_ack

    def _ship(self, socket: zmq.Socket, topic: bytes, seq: int, batch: AnyBatch) -> bool:
        """Send one data frame of `batch`; False if it was dropped."""
        return self._send_counted(socket, self._frame(topic, codec.DATA, seq, batch), len(batch))

    def _send_counted(self, socket: zmq.Socket, frame: bytes, events: int) -> bool:
        """Send a data frame per the backpressure policy; what is not sent is counted dropped."""
        if send_frame(socket, frame, self.blocking, self.stopping):
            self.counters.frames += 1
            self.counters.events += events
            return True
        self.counters.dropped += events
        return False

    def _adopt(self, batch: AnyBatch) -> None:
        """Pending items share one form: rows of one layout, or records. A batch of another form
        first ships what is pending, so order is kept and every frame is one layout."""
        layout = batch.fields if type(batch) is Rows else None  # type: ignore[union-attr]
        if layout != self.layout:
            self.flush()
            self.layout = layout

    def _batch(self, pending: list) -> AnyBatch:
        return pending if self.layout is None else Rows(self.layout, pending)

    def _frame(self, topic: bytes, kind: int, seq: int, batch: AnyBatch | None) -> bytes:
        return codec.encode_frame(topic, kind, self.producer, seq, batch, self.refuse)


class PubOutlet(ZmqOutlet):
    """XPUB fan-out of market data: a topic per instrument partition (`TICK.<p>`) when a consumer
    is partitioned by instrument, else every instrument under `TICK.*` (see `EdgePlan`)."""

    def __init__(self, context: zmq.Context, plan: Plan, producer: str, node: str,
                 edges: list[EdgePlan], frame_size: int, stopping: Callable[[], bool]) -> None:
        super().__init__(producer, node, edges, frame_size, stopping)
        self.socket = context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.SNDHWM, edges[0].hwm)
        self.socket.setsockopt(zmq.LINGER, 0)   # END is acknowledged before close; nothing left to flush
        self.socket.setsockopt(zmq.XPUB_NODROP, 1)
        self.socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # a restart's HELLO while its predecessor's lingers
        bind(self.socket, edges[0].endpoints[0])
        self.readers[self.socket] = self.on_subscriptions
        self.expected = {w for edge in edges for w in plan.process(edge.consumer).workers}
        self.joined: set[str] = set()
        self._missing: int | None = None  # workers neither joined nor retained for; None: to count
        partitions = edges[0].topic_partitions  # the node's edges share it
        self.topic_partition = Partitioner(partitions) if partitions > 1 else None
        self.buckets: dict[object, list] = {}
        self.seq: dict[bytes, int] = {}
        self.topics: dict[object, bytes] = {}

    @property
    def ready(self) -> bool:
        return self.expected <= self.joined

    def waiting_for(self) -> list[str]:
        return [f"{worker} to subscribe at {self.edges[0].endpoints[0]}" for worker in sorted(self.expected - self.joined)]

    def _on_join(self, worker: str) -> None:
        """A consumer worker subscribed (first start or restart)."""
        if self.ended:  # a restarted consumer joined after the end: tell it again
            self._send_end()

    def on_subscriptions(self) -> None:
        """Subscription messages: track which consumer workers are connected."""
        for message in drain(self.socket):
            subscribed, topic = message[:1] == b"\x01", message[1:].decode(errors="replace")
            if not topic.startswith(HELLO_PREFIX):
                continue
            worker = topic[len(HELLO_PREFIX):]
            self._missing = None
            if subscribed:
                self.joined.add(worker)
                self._on_join(worker)
            else:
                self.joined.discard(worker)

    def send(self, batch: AnyBatch) -> None:
        self._adopt(batch)
        size = self.frame_size
        buckets = self.buckets
        if self.topic_partition is None:
            parts = {"*": items(batch)}
        else:
            parts = split_by(batch, "instrument", self.topic_partition)
        for partition, part in parts.items():
            bucket = buckets.get(partition)
            if bucket is None:
                bucket = buckets[partition] = []
            bucket += part
            while len(bucket) >= size:
                self._publish(partition, bucket[:size])
                del bucket[:size]

    def flush(self) -> None:
        for partition, bucket in self.buckets.items():
            if bucket:
                self._publish(partition, bucket)
        self.buckets.clear()

    def _publish(self, partition: object, bucket: list) -> None:
        topic = self.topics.get(partition)
        if topic is None:
            topic = self.topics[partition] = f"TICK.{partition}".encode()
        seq = self.seq.get(topic, 0) + 1
        missing = self._missing  # counted again only when a worker joins or leaves, not per frame
        if missing is None:
            missing = self._missing = len(self.expected - self.joined - self.retained_for)
        if missing:  # a consumer worker is down (restarting): what it misses is counted, not hidden
            self.counters.dropped += len(bucket) * missing
            self.counters.missed += len(bucket) * missing
        if self._ship(self.socket, topic, seq, self._batch(bucket)):
            self.seq[topic] = seq  # a dropped frame takes no number: receivers' gaps are not drops again

    def end(self) -> None:
        self.flush()
        self.ended = True
        self.awaiting_ack = set(self.expected)
        self._send_end()

    def _send_end(self) -> None:
        send_frame(self.socket, self._frame(END_TOPIC, codec.END, 0, None), True, self.stopping)

    def close(self) -> None:
        self.socket.close(0)


class PushOutlet(ZmqOutlet):
    """PUSH to each worker of one consuming process; records routed by partition key."""

    def __init__(self, context: zmq.Context, plan: Plan, producer: str, edge: EdgePlan,
                 frame_size: int, stopping: Callable[[], bool]) -> None:
        super().__init__(producer, edge.node, [edge], frame_size, stopping)
        self.workers = plan.process(edge.consumer).workers
        self.sockets = []
        self._connecting = Connecting()  # by socket index
        for index, endpoint in enumerate(edge.endpoints):
            socket = context.socket(zmq.PUSH)
            socket.setsockopt(zmq.SNDHWM, edge.hwm)
            socket.setsockopt(zmq.LINGER, 0)  # END is acknowledged before close
            self._connecting.connect(index, socket, endpoint)
            self.sockets.append(socket)
        self.key = edge.partition_key
        self.partition = Partitioner(len(self.sockets))
        self.buckets: list[list] = [[] for _ in self.sockets]
        self.seq = [0] * len(self.sockets)
        self.topic = codec.topic_bytes(edge.topic)

    @property
    def ready(self) -> bool:
        """Every consumer worker is connected (`Connecting`)."""
        return not self._connecting.pending()

    def waiting_for(self) -> list[str]:
        return [f"{self.workers[index]} at {self.edges[0].endpoints[index]}"
                for index in sorted(self._connecting.pending())]

    def send(self, batch: AnyBatch) -> None:
        self._adopt(batch)
        if len(self.sockets) == 1:
            parts = {0: items(batch)}
        else:
            parts = split_by(batch, self.key, self.partition)
        size = self.frame_size
        for index, part in parts.items():
            bucket = self.buckets[index]
            bucket += part
            while len(bucket) >= size:
                self._push(index, bucket[:size])
                del bucket[:size]

    def flush(self) -> None:
        for index, bucket in enumerate(self.buckets):
            if bucket:
                self.buckets[index] = []
                self._push(index, bucket)

    def _push(self, index: int, bucket: list) -> None:
        if self._ship(self.sockets[index], self.topic, self.seq[index] + 1, self._batch(bucket)):
            self.seq[index] += 1  # a dropped frame takes no number: receivers' gaps are not drops again

    def end(self) -> None:
        self.flush()
        self.ended = True
        self.awaiting_ack = set(self.workers)
        for index, socket in enumerate(self.sockets):
            send_frame(socket, self._frame(self.topic, codec.END, self.seq[index] + 1, None), True, self.stopping)

    def close(self) -> None:
        self._connecting.close()
        for socket in self.sockets:
            socket.close(0)


class ZmqInlet:
    """The receiving end of one edge in one consumer worker over ZeroMQ (`protocol.Inlet`).

    `receive()` returns the decoded batch of the next frame (or None for a control frame, a frame
    of another partition, or one that failed to decode and was dead-lettered). Gaps in sequence
    numbers are counted per (producer, topic); END frames are tracked per producer worker.
    """

    def __init__(self, context: zmq.Context, plan: Plan, edge: EdgePlan, worker: str, index: int,
                 dead_letter: Callable[[str, bytes], None]) -> None:
        self.edge = edge
        self.worker = worker
        self.counters = EdgeCounters()
        self.dead_letter = dead_letter
        consumer = plan.process(edge.consumer)
        self.producers = set(plan.process(edge.producer).workers)
        self.guard = security.SequenceGuard(plan.max_sequence_jump, self._delivered, self._was_delivered)
        self.ended: set[str] = set()
        self.last_seq: dict[tuple[str, bytes], int] = {}
        self.partitions = consumer.parallelism
        self.index = index
        self.partition = Partitioner(self.partitions)
        every_record = edge.pattern == "pub/sub" or edge.subject is not None  # NATS: one subject for all workers
        self.topic_filter = (self.partitions > 1 and every_record and edge.partition_key == "instrument"
                             and edge.topic_partitions > 1)
        self.record_filter = self.partitions > 1 and every_record and not self.topic_filter
        self._wait_ms = -1  # the socket's RCVTIMEO (ZeroMQ's default: wait forever)
        if edge.pattern == "pub/sub":
            self.socket = context.socket(zmq.SUB)
            self.socket.setsockopt(zmq.RCVHWM, edge.hwm)
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
            connect(self.socket, edge.endpoints[0])
            for topic in self._subscriptions():
                self.socket.setsockopt(zmq.SUBSCRIBE, topic)
            self.socket.setsockopt(zmq.SUBSCRIBE, f"{HELLO_PREFIX}{worker}".encode())  # last: the handshake
        else:
            self.socket = context.socket(zmq.PULL)
            self.socket.setsockopt(zmq.RCVHWM, edge.hwm)
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.MAXMSGSIZE, codec.MAX_MESSAGE_BYTES)
            bind(self.socket, edge.endpoints[index])

    @property
    def complete(self) -> bool:
        return self.producers <= self.ended

    @property
    def pollable(self) -> Pollable:
        return self.socket

    def waiting(self) -> bool:
        """A frame is waiting to be read. Asking is cheaper than a read that finds nothing: pyzmq
        raises for that, and the exception cost a strategy 12 µs per frame at low rates."""
        return bool(get_option(self.socket, EVENTS) & POLLIN)

    def _subscriptions(self) -> list[bytes]:
        """pub/sub: the topics to subscribe to before the HELLO handshake."""
        return [b""]

    def _next_frame(self, wait_ms: int) -> bytes:
        """The next frame on the socket, waiting up to `wait_ms` for it (0: not at
        all); BlockingIOError when none came."""
        if wait_ms and wait_ms != self._wait_ms:
            self.socket.setsockopt(zmq.RCVTIMEO, wait_ms)
            self._wait_ms = wait_ms
        try:
            return self.socket.recv(0 if wait_ms else NOBLOCK)
        except zmq.Again:
            raise BlockingIOError from None

    def _sequence(self, stream: tuple[str, bytes], seq: int, batch: AnyBatch | None) -> AnyBatch | None:
        """A data frame of `stream` (producer, topic) arrived with `batch` (None: not for this
        worker): count the gap before it, if any. Returns what to process now (exactly_once:
        nothing for a duplicate or a frame that waits for its turn, several frames when it came).

        Gaps are frames lost in transit, which no one else counts: a frame a producer dropped
        takes no sequence number, the first frame this incarnation sees of a stream opens no gap
        (before it: what a predecessor received, or missed while down, which its producer counts),
        and a number that goes back is a restarted producer's, counted from there."""
        last = self.last_seq.get(stream)
        if last is not None and seq > last + 1:
            self.counters.gaps += seq - last - 1
        self.last_seq[stream] = seq
        return batch

    def _end(self, producer: str) -> str | None:
        """An END frame of `producer` arrived: the producer, if this is news (once per producer)."""
        if producer in self.ended:
            return None
        self.ended.add(producer)
        return producer

    def receive(self, wait_ms: int = 0) -> tuple[AnyBatch | None, str | None]:
        """(batch or None, producer that just ended or None) of the next frame, waiting up to
        `wait_ms` for it; BlockingIOError when none came."""
        frame = self._next_frame(wait_ms)
        try:
            topic, body = codec.split_frame(frame)
        except CodecError as exc:
            self.dead_letter(str(exc), frame)
            return None, None
        if topic[:1] == CONTROL_PREFIX and topic != END_TOPIC:
            return None, None  # a retransmit for a reliable subscriber of the same publisher
        others = self.topic_filter and topic != END_TOPIC and not self._owns_topic(topic)
        refused = None
        try:
            if others:  # another partition's: its events are left undecoded, its sequence still counts
                kind, producer, seq, _ = codec.decode_header(body)
                batch = None
            else:
                try:
                    kind, producer, seq, batch = codec.decode_body(body)
                except CodecError:  # a few records may spoil it: the others are kept
                    kind, producer, seq, batch, refused = codec.salvage_body(body)
        except CodecError as exc:
            self.dead_letter(str(exc), frame)
            return None, None
        if producer not in self.producers:
            self._refuse(f"frame from {producer!r}, which is not a producer of {self.edge.id}", frame)
            return None, None
        if kind == codec.DATA and (refusal := self.guard.refusal((producer, topic), seq)) is not None:
            self._refuse(refusal, frame)
            return None, None
        if refused:
            for reason, record in refused:
                self.dead_letter(reason, record)
        if kind == codec.END:
            return None, self._end(producer)
        batch = self._sequence((producer, topic), seq, batch)
        if batch is None:
            return None, None
        if self.record_filter:
            batch = like(batch, split_by(batch, self.edge.partition_key, self.partition).get(self.index, []))
        self.counters.frames += 1
        self.counters.events += len(batch)
        return batch, None

    def _refuse(self, reason: str, frame: bytes) -> None:
        """A frame that cannot be from a producer of this edge: dead-lettered, counted refused."""
        self.counters.refused += 1
        self.dead_letter(f"refused: {reason}", frame)

    def _delivered(self, stream: tuple[str, bytes]) -> int | None:
        """The highest sequence number of `stream` delivered before this inlet existed (a reliable
        inlet restored from a checkpoint knows it)."""
        return None

    def _was_delivered(self, stream: tuple[str, bytes], seq: int) -> bool:
        """Whether `seq` of `stream` was delivered (a reliable inlet's receipts know)."""
        return False

    def _owns_topic(self, topic: bytes) -> bool:
        """Anything but a partition topic is decoded, and the producer check judges it."""
        owner = topic_owner(topic, self.partitions)
        return owner is None or owner == self.index

    def close(self) -> None:
        self.socket.close(0)
