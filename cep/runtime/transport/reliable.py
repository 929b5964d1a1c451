"""`at_least_once` on the wire: the transport's outlets and inlets with acknowledgements and
retransmission (the bookkeeping is `delivery.py`; DESIGN §5).

The ack channel: every producer worker of a reliable edge binds a PULL at the edge's ack endpoint
(`EdgePlan.acks`, one per producer worker); each consumer worker connects a PUSH to it, announces
itself with JOIN, and sends ACKs naming the sequence ranges it processed safely.

Retransmission goes to one consumer worker only, and only to a new incarnation of it (push/pull
consumers say JOIN when they start; pub/sub consumers re-subscribe their HELLO topic): sends on a
reliable edge block rather than drop, so a live consumer, however slow or stopped, has every
frame it has not acknowledged in its queue already. A resend that does not fit in the socket at
once goes on in the next passes.
pub/sub retransmits travel on `!RETX.<worker>\\0<topic>`, a topic only that worker subscribes to
(reliable subscribers subscribe to the data topics by name, not to everything).

`exactly_once` adds (see `checkpoint.py`): outlets hold a pass's frames back until the worker's
checkpoint holds them (`release()`), and inlets drop frames whose sequence number their stream
already delivered ("duplicates removed").

"""
from __future__ import annotations

from typing import Callable

import zmq

from cep import codec
from cep.errors import CodecError
from cep.plan import EdgePlan, Plan
from cep.rows import AnyBatch, concat
from cep.runtime import security
from cep.runtime.delivery import (
    ACK,
    JOIN,
    InOrder,
    Receipts,
    SeqRanges,
    Window,
    decode_ack,
    encode_ack,
    encode_join,
    epoch,
)
from cep.runtime.transport.sockets import bind, connect, drain, send_frame
from cep.runtime.transport.zeromq import END_TOPIC, PubOutlet, PushOutlet, ZmqInlet, ZmqOutlet

RETX_PREFIX = b"!RETX."
TICK_PREFIX = b"TICK."  # every data topic of PubOutlet._publish


def reliable(edge: EdgePlan) -> bool:
    return edge.delivery.reliable


def checkpointed(edges: list[EdgePlan]) -> bool:
    return any(edge.delivery.checkpoints for edge in edges)


def retx_topic(worker: str) -> bytes:
    """The prefix of retransmits meant for `worker` alone (NUL ends the name: `w` is not `w.1`)."""
    return RETX_PREFIX + worker.encode() + b"\0"


# -- producer side --------------------------------------------------------------------------------
class RetainingOutlet:
    """What both reliable outlets add: the window, the ack socket, the epoch of sequence numbers.

    A reliable outlet blocks rather than drops (the window is the back-pressure) and is `done`
    only once every frame it sent is acknowledged, so it can still retransmit until then. Under
    exactly_once it holds a pass's frames (and its END) in `unsent` until `release()`, which the
    worker calls once its checkpoint holds them.
    """

    window: Window
    acks: zmq.Socket
    epoch: int
    unsent: list[tuple[zmq.Socket, bytes, int]] | None  # exactly_once: held until `release()`
    _ending: bool

    def _retain_setup(self: ZmqOutlet, context: zmq.Context, plan: Plan, ack_index: int,
                      incarnation: int) -> None:
        edges = [edge for edge in self.edges if reliable(edge)]
        workers = {w for edge in edges for w in plan.process(edge.consumer).workers}
        self.window = Window(workers, capacity=min(edge.hwm for edge in edges))
        self.retained_for = frozenset(workers)
        self.blocking = True
        self.epoch = epoch(incarnation)
        self.unsent = [] if checkpointed(edges) else None
        self._ending = False
        self.acks = context.socket(zmq.PULL)
        self.acks.setsockopt(zmq.RCVHWM, 10_000)
        self.acks.setsockopt(zmq.LINGER, 0)
        self.acks.setsockopt(zmq.MAXMSGSIZE, codec.MAX_MESSAGE_BYTES)
        bind(self.acks, edges[0].acks[ack_index])
        self.readers[self.acks] = self.on_acks

    def _frame(self, topic: bytes, kind: int, seq: int, batch: AnyBatch | None) -> bytes:
        return super()._frame(topic, kind, self.epoch + seq, batch)  # type: ignore[misc]

    def _ship(self, socket: zmq.Socket, topic: bytes, seq: int, batch: AnyBatch) -> bool:
        """Send and retain a frame; True: it takes its sequence number (it is in the window, to
        be sent again, even if a stop kept it from going now)."""
        frame = self._frame(topic, codec.DATA, seq, batch)
        self.window.admit(topic, self.epoch + seq, frame, self._recipients(socket))
        self.counters.unacked = self.window.size()
        if self.unsent is None:
            self._send_counted(socket, frame, len(batch))  # type: ignore[attr-defined]
        else:
            self.unsent.append((socket, frame, len(batch)))
        return True

    def end(self) -> None:
        if self.unsent is None:
            super().end()  # type: ignore[misc]
        else:  # the END follows the frames still held back
            self.flush()  # type: ignore[attr-defined]
            self._ending = True

    def release(self) -> None:
        """exactly_once, once the checkpoint holds them: send the frames held back, then the END."""
        if self.unsent:
            for socket, frame, events in self.unsent:
                self._send_counted(socket, frame, events)  # type: ignore[attr-defined]
            self.unsent = []
        if self._ending:
            self._ending = False
            super().end()  # type: ignore[misc]

    @property
    def done(self) -> bool:
        return super().done and self.window.empty  # type: ignore[misc]

    @property
    def held(self) -> bool:
        """True while a consumer worker's window is full: take no more input."""
        return self.window.full

    def on_acks(self) -> None:
        """Read the ack socket: release acknowledged frames, answer JOINs."""
        for message in drain(self.acks):
            try:
                kind, consumer, incarnation, acked = decode_ack(message)
            except CodecError:
                self.counters.refused += 1  # not from a consumer of ours
                continue
            if security.ack_refusal(kind, consumer, acked, self.window.workers, self._sent_through):
                self.counters.refused += 1
                continue
            if kind == ACK:
                self.window.ack(consumer, acked)
            elif kind == JOIN:
                self._on_rejoin(consumer, incarnation)
        self.counters.unacked = self.window.size()

    def resend_owed(self) -> None:
        """Go on with resends that did not fit in their socket at once."""
        for worker in self.window.owed():
            self._resend(worker)

    def _retransmit(self, worker: str) -> None:
        """A new incarnation of `worker` joined: send it everything it has not acknowledged."""
        self.window.rejoined(worker)
        self._resend(worker)

    def _resend(self, worker: str) -> None:
        """Send `worker` what it is owed, oldest first, without blocking: what does not fit now
        goes in a later pass. Frames held back for a checkpoint are not sent before it."""
        held = {id(frame) for _, frame, _ in self.unsent or ()}
        sent, through = 0, None
        for ordinal, _, _, frame in self.window.owed_frames(worker):
            if id(frame) not in held:
                socket, routed = self._route(worker, frame)
                try:
                    socket.send(routed, zmq.NOBLOCK)
                except zmq.Again:
                    break
                sent += 1
            through = ordinal
        self.window.resent(worker, sent, through)
        self.counters.retransmitted = self.window.retransmitted

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        self.acks.close(0)


class ReliablePubOutlet(RetainingOutlet, PubOutlet):
    def __init__(self, context: zmq.Context, plan: Plan, producer: str, node: str, edges: list[EdgePlan],
                 frame_size: int, stopping: Callable[[], bool], ack_index: int, incarnation: int) -> None:
        super().__init__(context, plan, producer, node, edges, frame_size, stopping)
        self._retain_setup(context, plan, ack_index, incarnation)

    def _recipients(self, socket: zmq.Socket) -> None:
        return None  # every reliable consumer worker gets every frame

    def _route(self, worker: str, frame: bytes) -> tuple[zmq.Socket, bytes]:
        return self.socket, retx_topic(worker) + frame

    def _sent_through(self, worker: str, topic: bytes) -> int:
        return self.epoch + self.seq.get(topic, 0)

    def _on_join(self, worker: str) -> None:
        """A re-subscription is a restart: what it missed goes first, the END after it."""
        if worker in self.window.workers:
            self._retransmit(worker)
        super()._on_join(worker)

    def _on_rejoin(self, worker: str, incarnation: int) -> None:
        pass  # subscribers rejoin by their HELLO subscription (`_on_join`), which orders the resend

    def resume(self) -> None:
        """After a restore from a checkpoint: nothing yet; each subscriber gets what it has not
        acknowledged when it joins this new incarnation (`_on_join`)."""


class ReliablePushOutlet(RetainingOutlet, PushOutlet):
    def __init__(self, context: zmq.Context, plan: Plan, producer: str, edge: EdgePlan, frame_size: int,
                 stopping: Callable[[], bool], ack_index: int, incarnation: int) -> None:
        super().__init__(context, plan, producer, edge, frame_size, stopping)
        self._retain_setup(context, plan, ack_index, incarnation)
        self._worker_of = {socket: worker for socket, worker in zip(self.sockets, self.workers)}
        self._index_of = {worker: index for index, worker in enumerate(self.workers)}

    def _recipients(self, socket: zmq.Socket) -> tuple[str]:
        return (self._worker_of[socket],)

    def resume(self) -> None:
        """After a restore from a checkpoint: send every consumer what it has not acknowledged
        (the PUSH sockets queue it until they are connected)."""
        for worker in self.workers:
            self._retransmit(worker)

    def _route(self, worker: str, frame: bytes) -> tuple[zmq.Socket, bytes]:
        return self.sockets[self._index_of[worker]], frame

    def _sent_through(self, worker: str, topic: bytes) -> int:
        return self.epoch + (self.seq[self._index_of[worker]] if topic == self.topic else 0)

    def _on_rejoin(self, worker: str, incarnation: int) -> None:
        if incarnation == 0:
            return  # a first start: nothing was sent to it that it could have lost
        self._retransmit(worker)
        if self.ended:  # it restarted after the end: tell it again
            index = self._index_of[worker]
            send_frame(self.sockets[index], self._frame(self.topic, codec.END, self.seq[index] + 1, None),
                  True, self.stopping)


# -- consumer side --------------------------------------------------------------------------------
class ReliableInlet(ZmqInlet):
    """An inlet that notes every data frame in the worker's `Receipts`, counts duplicates, and
    sends the acks back to each producer worker."""

    def __init__(self, context: zmq.Context, plan: Plan, edge: EdgePlan, worker: str, index: int,
                 dead_letter: Callable[[str, bytes], None], receipts: Receipts, incarnation: int) -> None:
        self._retx = retx_topic(worker)
        super().__init__(context, plan, edge, worker, index, dead_letter)
        self.receipts = receipts
        self.ack_sockets: dict[str, zmq.Socket] = {}
        for producer, endpoint in zip(plan.process(edge.producer).workers, edge.acks):
            socket = context.socket(zmq.PUSH)
            socket.setsockopt(zmq.SNDHWM, 1000)
            socket.setsockopt(zmq.LINGER, 1000)  # the last acks reach a producer that waits for them
            connect(socket, endpoint)
            socket.send(encode_join(worker, incarnation), zmq.NOBLOCK)
            self.ack_sockets[producer] = socket

    def _delivered(self, stream: tuple[str, bytes]) -> int | None:
        producer, topic = stream
        return self.receipts.last((self.edge.id, producer), topic)

    def _was_delivered(self, stream: tuple[str, bytes], seq: int) -> bool:
        producer, topic = stream
        return self.receipts.delivered((self.edge.id, producer), topic, seq)

    def _subscriptions(self) -> list[bytes]:
        return [TICK_PREFIX, END_TOPIC + codec.SEPARATOR, self._retx]  # NUL: END exactly

    def _next_frame(self, wait_ms: int) -> bytes:
        return super()._next_frame(wait_ms).removeprefix(self._retx)  # a retransmit: the frame it repeats

    def _sequence(self, stream: tuple[str, bytes], seq: int, batch: AnyBatch | None) -> AnyBatch | None:
        """No gaps on a reliable edge (a missing frame is sent again); duplicates are counted and
        passed on (at_least_once)."""
        producer, topic = stream
        if not self.receipts.read((self.edge.id, producer), topic, seq):
            self.counters.duplicates += 1
        return batch

    def acknowledge(self, producer: str, acked: dict[bytes, SeqRanges]) -> None:
        try:
            self.ack_sockets[producer].send(encode_ack(self.worker, acked), zmq.NOBLOCK)
        except zmq.Again:
            pass  # the producer is gone; its next incarnation has new sequence numbers anyway

    def close(self) -> None:
        super().close()
        for socket in self.ack_sockets.values():
            socket.close()


class DedupingInlet(ReliableInlet):
    """exactly_once: a frame whose sequence number its stream already delivered (to this worker or
    to a checkpointed predecessor) is dropped and counted as a duplicate removed; it is still
    acknowledged, so its producer lets it go. Frames are processed in their stream's order
    (`InOrder`): one that overtook a resend waits for it, and so does its producer's END."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.in_order = InOrder(self.receipts)
        self._ends_waiting: set[str] = set()

    def _sequence(self, stream: tuple[str, bytes], seq: int, batch: AnyBatch | None) -> AnyBatch | None:
        producer, topic = stream
        released = [b for b in self.in_order.arrive((self.edge.id, producer), topic, seq, batch) if b is not None]
        self.counters.duplicates = self.in_order.duplicates
        if not released:
            return None
        self.counters.frames += len(released) - 1  # the caller counts one
        return released[0] if len(released) == 1 else concat(released)

    def _end(self, producer: str) -> str | None:
        if self.in_order.holds((self.edge.id, producer)):
            self._ends_waiting.add(producer)  # reported once its last frames came (`receive`)
            return None
        return super()._end(producer)

    def receive(self, wait_ms: int = 0) -> tuple[AnyBatch | None, str | None]:
        batch, ended = super().receive(wait_ms)
        if ended is None and self._ends_waiting:
            done = next((p for p in self._ends_waiting if not self.in_order.holds((self.edge.id, p))), None)
            if done is not None:
                self._ends_waiting.discard(done)
                return batch, super()._end(done)
        return batch, ended


def send_acks(receipts: Receipts, inlets: dict[str, ReliableInlet]) -> None:
    """Send every acknowledgement that became due (channels are (edge id, producer worker))."""
    for (edge_id, producer), acked in receipts.due().items():
        inlets[edge_id].acknowledge(producer, acked)
