"""The bookkeeping of `at_least_once` delivery (DESIGN §5), with no sockets: what a producer keeps
until it is acknowledged, and what a consumer may acknowledge when.

Producer side, `Window`: every frame sent on a reliable edge is retained (already encoded, with
its stream and sequence number) for each consumer worker that must acknowledge it. A worker's
window is full at `capacity` frames; the producer then stops taking input until acks arrive
(back-pressure, never a drop). Retransmission resends exactly what a worker has not acknowledged,
and only to a new incarnation of that worker: a live consumer loses nothing on a socket (sends
block, never drop), so one that is slow or stopped (SIGSTOP) gets no copies of what already waits
in its queue, however long it is silent.

Consumer side, `Receipts`: frames read in one pass of the worker loop become acknowledgeable once
their effects are safe: the process's sinks are flushed, and every frame its reliable outlets had
sent by the end of that pass (which includes everything derived from the input) is acknowledged
downstream. A crash of a middle process therefore never loses what sat in its window: its inputs
were not acknowledged, so they are sent again.

Acks name exact sequence ranges per (producer, stream): one range per stream in the steady state
(a cumulative ack), several when retransmits arrive out of order. An ack therefore never releases a
frame the consumer has not processed, whatever the interleaving of restarts and retransmits.
Sequence numbers carry the producer's incarnation in their high bits (`epoch`), so frames of a
restarted producer never collide with its former self's.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

import msgpack

from cep.errors import CodecError

EPOCH_BITS = 32
ACK, JOIN = 0, 1
ACK_EVERY_S = 0.01
"""How often a consumer acknowledges (and flushes its sinks): bounds the ack traffic."""


def epoch(incarnation: int) -> int:
    """The first sequence number of a producer incarnation, minus one."""
    return incarnation << EPOCH_BITS


class SeqRanges:
    """A set of sequence numbers as sorted disjoint inclusive ranges; usually one range."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self.ranges: list[list[int]] = _merged([[low, high] for low, high in ranges])

    def __contains__(self, seq: int) -> bool:
        index = bisect_right(self.ranges, [seq, float("inf")]) - 1
        return index >= 0 and self.ranges[index][1] >= seq

    def add(self, seq: int) -> bool:
        """Add `seq`; False if it was already there."""
        ranges = self.ranges
        if ranges and ranges[-1][1] + 1 == seq:  # the steady state: the next frame of the stream
            ranges[-1][1] = seq
            return True
        if seq in self:
            return False
        self.ranges = _merged(ranges + [[seq, seq]])
        return True

    def pairs(self) -> list[tuple[int, int]]:
        return [(low, high) for low, high in self.ranges]

    def __iter__(self):
        for low, high in self.ranges:
            yield from range(low, high + 1)


def _merged(ranges: list[list[int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged


# -- the ack channel's messages -------------------------------------------------------------------
def encode_ack(consumer: str, acked: dict[bytes, SeqRanges]) -> bytes:
    """`consumer` has safely processed these sequence ranges, per stream (topic)."""
    return msgpack.packb([ACK, consumer, 0, [[topic, ranges.pairs()] for topic, ranges in acked.items()]],
                         use_bin_type=True)


def encode_join(consumer: str, incarnation: int) -> bytes:
    """`consumer` (re)started: send it everything it has not acknowledged."""
    return msgpack.packb([JOIN, consumer, incarnation, []], use_bin_type=True)


def decode_ack(data: bytes) -> tuple[int, str, int, dict[bytes, SeqRanges]]:
    """`(kind, consumer, incarnation, ranges per topic)`; CodecError for anything else."""
    try:
        kind, consumer, incarnation, streams = msgpack.unpackb(data, raw=False, max_array_len=1 << 20, max_ext_len=0)
        acked = {bytes(topic): SeqRanges((int(low), int(high)) for low, high in ranges)
                 for topic, ranges in streams}
    except Exception as exc:  # garbage on the ack endpoint is reported, never trusted
        raise CodecError(f"malformed ack: {type(exc).__name__}: {exc}") from None
    if kind not in (ACK, JOIN) or not isinstance(consumer, str) or not isinstance(incarnation, int):
        raise CodecError(f"malformed ack: kind {kind!r}, consumer {consumer!r}")
    return kind, consumer, incarnation, acked


# -- producer side --------------------------------------------------------------------------------
@dataclass
class _Retained:
    ordinal: int          # position among every frame this window admitted
    frame: bytes


class Window:
    """Frames sent and not yet acknowledged, per consumer worker and stream.

    `capacity` counts frames (`EdgePlan.hwm`), each of at most `Plan.frame_size` records, so it
    bounds records too. `admit` never refuses: the sender's worker checks `full` before each pass
    of its loop and takes no input while it is, so a worker's window exceeds `capacity` by at most
    the frames of the one pass during which it filled (a pass reads at most `INBOUND_BURST`
    frames from each input and one batch from each source).
    """

    def __init__(self, workers: Iterable[str], capacity: int) -> None:
        self.capacity = capacity
        self.workers = frozenset(workers)
        self._frames: dict[str, dict[bytes, dict[int, _Retained]]] = {w: defaultdict(dict) for w in self.workers}
        self._sizes = dict.fromkeys(self.workers, 0)
        self._owed: dict[str, tuple[int, int]] = {}  # worker -> ordinals [from, to) still to resend
        self._ordinal = 0
        self.retransmitted = 0
        self.journal: list[tuple] | None = None
        """When a checkpoint keeps this window (exactly_once): every change since the last one,
        `(worker, topic, seq, ordinal, frame)` for an admission, `(worker, topic, seq)` for a release."""

    # the sender
    @property
    def next_ordinal(self) -> int:
        """Every frame admitted so far has an ordinal below this."""
        return self._ordinal

    def admit(self, topic: bytes, seq: int, frame: bytes, workers: Iterable[str] | None = None) -> None:
        retained = _Retained(self._ordinal, frame)
        self._ordinal += 1
        for worker in self.workers if workers is None else workers:
            self._retain(worker, topic, seq, retained)
            if self.journal is not None:
                self.journal.append((worker, topic, seq, retained.ordinal, frame))

    def _retain(self, worker: str, topic: bytes, seq: int, retained: _Retained) -> None:
        self._frames[worker][topic][seq] = retained
        self._sizes[worker] += 1

    def restore(self, entries: Iterable[tuple[str, bytes, int, int, bytes]]) -> None:
        """Take back what a checkpoint kept: `(worker, topic, seq, ordinal, frame)`, any order.
        New frames are admitted after them."""
        for worker, topic, seq, ordinal, frame in sorted(entries, key=lambda e: e[3]):
            if worker in self._sizes:
                self._retain(worker, topic, seq, _Retained(ordinal, frame))
                self._ordinal = max(self._ordinal, ordinal + 1)

    @property
    def full(self) -> bool:
        return any(size >= self.capacity for size in self._sizes.values())

    def size(self, worker: str | None = None) -> int:
        """Unacked frames of one worker, or the largest of any worker."""
        if worker is not None:
            return self._sizes[worker]
        return max(self._sizes.values(), default=0)

    @property
    def empty(self) -> bool:
        return not any(self._sizes.values())

    # the acks
    def ack(self, worker: str, acked: dict[bytes, SeqRanges]) -> int:
        """Release what `worker` acknowledged; returns how many frames were released. Acks of
        unknown workers, streams or sequence numbers (an earlier incarnation's) release nothing."""
        streams = self._frames.get(worker)
        if streams is None:
            return 0
        released = 0
        for topic, ranges in acked.items():
            retained = streams.get(topic)
            if not retained:
                continue
            for low, high in ranges.pairs():
                if high - low < len(retained):
                    seqs = [seq for seq in range(low, high + 1) if seq in retained]
                else:  # a wide range over a short stream: walk the stream instead
                    seqs = [seq for seq in retained if low <= seq <= high]
                for seq in seqs:
                    del retained[seq]
                released += len(seqs)
                if self.journal is not None:
                    self.journal += [(worker, topic, seq) for seq in seqs]
        self._sizes[worker] -= released
        return released

    def low_ordinal(self) -> int:
        """Every frame admitted before this ordinal is acknowledged by every worker."""
        low = self._ordinal
        for streams in self._frames.values():
            for retained in streams.values():
                if retained:  # a stream's frames were admitted in order: its first is its oldest
                    low = min(low, next(iter(retained.values())).ordinal)
        return low

    # retransmission
    def unacked(self, worker: str) -> list[tuple[bytes, int, bytes]]:
        """`(topic, seq, frame)` of everything `worker` has not acknowledged, oldest first."""
        return [(topic, seq, frame) for _, topic, seq, frame in self._unacked(worker)]

    def _unacked(self, worker: str, low: int = 0, high: int | None = None) -> list[tuple[int, bytes, int, bytes]]:
        high = self._ordinal if high is None else high
        entries = [(retained.ordinal, topic, seq, retained.frame)
                   for topic, frames in self._frames[worker].items() for seq, retained in frames.items()
                   if low <= retained.ordinal < high]
        return sorted(entries, key=lambda e: e[0])

    def rejoined(self, worker: str) -> None:
        """A new incarnation of `worker` started: it is owed every frame admitted so far that it
        has not acknowledged (later frames are sent to the new incarnation itself)."""
        self._owed[worker] = (0, self._ordinal)

    def owed(self) -> list[str]:
        """Workers with a resend in progress."""
        return list(self._owed)

    def owed_frames(self, worker: str) -> list[tuple[int, bytes, int, bytes]]:
        """`(ordinal, topic, seq, frame)` still to resend to `worker`, oldest first."""
        low, high = self._owed.get(worker, (0, 0))
        return self._unacked(worker, low, high)

    def resent(self, worker: str, frames: int, through: int | None) -> None:
        """`frames` were resent to `worker`, everything owed up to ordinal `through` (None: none);
        the resend is complete once nothing owed is left."""
        self.retransmitted += frames
        low, high = self._owed.get(worker, (0, 0))
        if through is not None:
            low = through + 1
        if low >= high or not self._unacked(worker, low, high):
            self._owed.pop(worker, None)
        else:
            self._owed[worker] = (low, high)


# -- consumer side --------------------------------------------------------------------------------
@dataclass
class _Pass:
    frames: list[tuple[Hashable, bytes, int]]            # (channel, topic, seq) read in the pass
    watermarks: list[int]                                # each window's next ordinal then


@dataclass
class Receipts:
    """What one consumer worker has read on reliable edges and may acknowledge.

    A channel is (inlet, producer worker): the ack for its frames goes back to that producer.
    `read` is called for every data frame (also those filtered out or dead-lettered: they need
    nothing more); `end_pass` after the pass's outputs were handed to the outlets; `due` returns
    the acks that became safe, after `flush` (the sinks') has been called.
    """

    windows: list[Window] = field(default_factory=list)   # this worker's reliable outlets
    flush: Callable[[], None] = lambda: None
    clock: Callable[[], float] = lambda: 0.0
    _current: list[tuple[Hashable, bytes, int]] = field(default_factory=list)
    _pending: list[_Pass] = field(default_factory=list)
    _seen: dict[tuple[Hashable, bytes], SeqRanges] = field(default_factory=dict)
    _next_ack: float = 0.0

    def read(self, channel: Hashable, topic: bytes, seq: int) -> bool:
        """Note a frame; False if it is a duplicate (already processed by this incarnation)."""
        self._current.append((channel, topic, seq))
        seen = self._seen.get((channel, topic))
        if seen is None:
            seen = self._seen[(channel, topic)] = SeqRanges()
        return seen.add(seq)

    def end_pass(self) -> None:
        if self._current:
            self._pending.append(_Pass(self._current, [w.next_ordinal for w in self.windows]))
            self._current = []

    @property
    def reading(self) -> bool:
        """Frames were read since the last `end_pass`."""
        return bool(self._current)

    def seen(self) -> dict[tuple[Hashable, bytes], list[tuple[int, int]]]:
        """What each stream delivered to this incarnation (and its checkpointed predecessors)."""
        return {stream: ranges.pairs() for stream, ranges in self._seen.items()}

    def restore_seen(self, seen: dict[tuple[Hashable, bytes], list[tuple[int, int]]]) -> None:
        self._seen = {stream: SeqRanges(pairs) for stream, pairs in seen.items()}

    def delivered(self, channel: Hashable, topic: bytes, seq: int) -> bool:
        """`seq` of the stream was read by this incarnation or its checkpointed predecessors."""
        seen = self._seen.get((channel, topic))
        return seen is not None and seq in seen

    def last(self, channel: Hashable, topic: bytes) -> int | None:
        """The highest sequence number read on a stream, None before its first frame."""
        seen = self._seen.get((channel, topic))
        return seen.ranges[-1][1] if seen is not None and seen.ranges else None

    @property
    def settled(self) -> bool:
        """Nothing read is waiting for its acknowledgement."""
        return not self._pending and not self._current

    def due(self) -> dict[Hashable, dict[bytes, SeqRanges]]:
        """The acks to send now, per channel; empty between ack intervals."""
        if not self._pending or self.clock() < self._next_ack:
            return {}
        self._next_ack = self.clock() + ACK_EVERY_S
        self.flush()
        acks: dict[Hashable, dict[bytes, SeqRanges]] = {}
        lows = [window.low_ordinal() for window in self.windows]  # once: a window may hold many streams
        while self._pending and all(low >= mark for low, mark in zip(lows, self._pending[0].watermarks)):
            for channel, topic, seq in self._pending.pop(0).frames:
                streams = acks.setdefault(channel, {})
                (streams.get(topic) or streams.setdefault(topic, SeqRanges())).add(seq)
        return acks


class InOrder:
    """exactly_once, consumer side: each stream's frames are let through in sequence order.

    After a consumer worker restarts, its producer sends again what the worker had not
    acknowledged, but frames published meanwhile can overtake that resend: a subscriber gets new
    frames as soon as its subscription reaches the publisher's socket, and the publisher's loop
    notices the rejoin a little later. Processed in arrival order, a rule would see its ticks out
    of order and the output would differ from an uninterrupted run. So a frame ahead of a gap in
    its producer incarnation's sequence waits here until the gap is filled, which it is: the
    producer keeps every frame until it is acknowledged, and resends it. A frame of a newer
    producer incarnation lets through what waits for the older one (a restarted producer resends
    its predecessor's frames before it sends its own, so nothing else can still fill that gap).

    `arrive` notes frames in `Receipts` as they are let through, never while they wait, so a
    waiting frame is not acknowledged before it is processed.
    """

    def __init__(self, receipts: Receipts) -> None:
        self.receipts = receipts
        self.waiting: dict[tuple[Hashable, bytes], dict[int, object]] = {}
        self.duplicates = 0

    def arrive(self, channel: Hashable, topic: bytes, seq: int, item: object) -> list:
        """The items to process now, in order (`item` is the frame's; [] while it waits)."""
        stream = (channel, topic)
        last = self.receipts.last(channel, topic)
        era = seq >> EPOCH_BITS
        newer = last is None or era > last >> EPOCH_BITS  # the first frame of an incarnation is its epoch + 1
        expected = epoch(era) + 1 if newer else last + 1
        if seq > expected:
            waiting = self.waiting.setdefault(stream, {})
            if seq in waiting:
                self.duplicates += 1
            else:
                waiting[seq] = item
            return []
        released = []
        if newer and stream in self.waiting:  # the gaps of older incarnations can no longer fill
            older = sorted(s for s in self.waiting[stream] if s >> EPOCH_BITS < era)
            released = self._release(channel, topic, older)
        if not self.receipts.read(channel, topic, seq):
            self.duplicates += 1
            return released
        released.append(item)
        waiting = self.waiting.get(stream)
        if waiting:
            following = []
            while seq + 1 in waiting:
                seq += 1
                following.append(seq)
            released += self._release(channel, topic, following)
        return released

    def _release(self, channel: Hashable, topic: bytes, seqs: list[int]) -> list:
        waiting = self.waiting[(channel, topic)]
        released = []
        for seq in seqs:
            self.receipts.read(channel, topic, seq)
            released.append(waiting.pop(seq))
        if not waiting:
            del self.waiting[(channel, topic)]
        return released

    def holds(self, channel: Hashable) -> bool:
        """Frames of `channel` wait for a gap to fill."""
        return any(stream[0] == channel for stream in self.waiting)
