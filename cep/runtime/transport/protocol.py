"""The transport seam: what a worker asks of the two ends of an edge, whatever carries it.

An edge (`EdgePlan`) takes one node's output from a producer process to a consumer process. In
each producer worker the node's output goes into an `Outlet`; in each consumer worker an `Inlet`
reads the edge. The worker drives both through this protocol and nothing else, so an
implementation (plain ZeroMQ in `zeromq.py`; acknowledged, retained and checkpointed ZeroMQ in
`reliable.py`) is a choice of the factories in `cep.runtime.transport`, per edge.

**Frame.** What crosses: one `cep.codec` frame, `topic NUL [version, kind, producer, seq,
count, groups]`, whatever the carrier (its bytes are the codec's; an implementation may wrap them,
as the reliable one prefixes a retransmit's topic, but never re-encodes them). A DATA frame
carries 1 to `Plan.frame_size` records, whatever a pass of the producer worker produced (an
outlet cuts it); with `EdgePlan.hwm` that bounds what a socket queues and what a reliable window
holds, in records as well as frames. An END frame carries none and says its producer worker sends
nothing more on the edge. `producer` is the producer *worker*; `seq` numbers that worker's DATA
frames per topic from 1 (on reliable edges its incarnation sits in the high bits,
`delivery.epoch`). A frame an outlet drops under `backpressure: drop` takes no number, so a gap a
receiver sees is loss in transit, counted once, there.

**Outlet** (producer side; one per node and pattern in a producer worker):
- `send(batch)`: take a batch of the node's output (records or `Rows`, any length); ship every
  full frame (`frame_size` records) at once, keep the rest. Ships per the edge's backpressure: `block` waits for room
  (until the worker stops), `drop` drops the frame and counts it. Never reorders a stream.
- `flush()`: ship what `send` kept. The worker calls it after each pass of its loop, so frames
  grow with the load and stay single records when idle.
- `end()`: flush, then send END to every consumer worker; `ended` is then True. A consumer
  worker that comes back after the end (a restart) must get the END again once it can receive
  (pub/sub: when it subscribes again; reliable push/pull: when it says JOIN).
- `acknowledged(consumer_worker)`: that consumer worker got the END (the supervisor relays it).
- `done`: ended, every consumer worker acknowledged the END and (reliable) every frame was
  acknowledged: only then may `close()` run. Closing earlier can lose the unread tail of a
  backed-up peer, END included (DESIGN §4).
- `ready`: every consumer worker can receive (connected, subscribed); the worker reports ready to
  the supervisor only then, so no first frame waits for a reconnect.
- `waiting_for()`: while not `ready`, each consumer worker it waits for and where, as text
  (`strategy at tcp://10.0.0.6:7001`): what `cep run` shows while hosts start.
- `held`: take no more input now (a reliable outlet's window is full); the worker then reads
  only control messages and `readers` until it clears.
- `readers`: `{socket or file descriptor: handler}` the worker polls for input on the outlet's
  behalf (subscriptions, acks) and calls without arguments when readable, also while held.
- `counters` (`EdgeCounters`), `edges` (the plan edges it feeds), `refuse` (where a record no
  frame can carry goes; set by the worker).

**Inlet** (consumer side; one per edge in a consumer worker):
- `receive(wait_ms=0)`: the next frame, waiting up to `wait_ms` ms for it (0: not at all), as
  `(batch, ended)`: `batch` the records to process (None for a frame that is not this worker's,
  a duplicate, or one dead-lettered), `ended` the producer worker whose END this was, the first
  time it comes (else None). Raises BlockingIOError when no frame came. Never raises for what a
  peer sent: an undecodable or implausible frame is dead-lettered with its reason and counted.
- `waiting()`: a frame can be read now (cheap: asked after every frame of a burst).
- `complete`: every producer worker's END came; the edge carries nothing more.
- `pollable`: the socket or file descriptor the worker polls for POLLIN.
- `close()`.

**Reliable edges.** An inlet of a reliable edge (`Acknowledging`) notes every DATA frame it
reads in the worker's `Receipts` (duplicates too) and adds `acknowledge(producer, ranges)`: the
worker calls it with the sequence ranges (`{topic: SeqRanges}`) of `producer`'s frames whose
effects are safe, as `Receipts` decides (the worker's sinks flushed, and what it derived from
them acknowledged downstream or, exactly_once, checkpointed); carrying them to that producer
worker is the implementation's. The producing end is a `RetainingOutlet` (`reliable.py`): it
keeps each frame in a `delivery.Window` until every consumer worker it went to acknowledged it
(a full window is `held`: the back-pressure), sends a restarted consumer worker what it had not
acknowledged, and under exactly_once holds a pass's frames until the worker's checkpoint holds
them (`release()`). An at_most_once edge has no acknowledgements.

**End of stream.** An edge ends when each producer worker's END reached each consumer worker
(`Inlet.complete`). The consumer worker tells the supervisor of each END it gets ("eos"); the
supervisor relays it to the producer worker (`Outlet.acknowledged`), whose outlet is `done`
once every consumer worker did. END follows the producer's last DATA frame on every route it
used (exactly_once: `DedupingInlet` reports an END only after every frame before it came).

**Counters** (`EdgeCounters`, reported by the worker twice a second and summed by
`cep.runtime.metrics`). An outlet counts `frames` and `events` sent, `dropped` records not sent
(full peer under `drop`, or a consumer worker down: those also in `missed`), and on reliable
edges `unacked` (frames in the fullest consumer worker's window), `retransmitted` frames and
`refused` acks. An inlet counts `frames` and `events` delivered to the worker, `gaps` (frames lost
in transit), `duplicates` (reliable: frames received again) and `refused` frames.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from cep.plan import EdgePlan
from cep.rows import AnyBatch
from cep.runtime.delivery import SeqRanges


class EdgeCounters:
    """Per edge: frames and events sent or received, drops (`missed`: those of a consumer worker
    that was down), and sequence gaps; on reliable edges also unacknowledged frames (the largest
    window of any consumer worker), retransmitted frames and duplicate frames received."""

    __slots__ = ("frames", "events", "dropped", "missed", "gaps", "unacked", "retransmitted", "duplicates",
                 "refused")

    def __init__(self) -> None:
        self.frames = 0
        self.events = 0
        self.dropped = 0
        self.missed = 0
        self.gaps = 0
        self.unacked = 0
        self.retransmitted = 0
        self.duplicates = 0
        self.refused = 0  # frames or acks refused as implausible (cep.runtime.security)

    def snapshot(self) -> dict[str, int]:
        return {"frames": self.frames, "events": self.events, "dropped": self.dropped, "missed": self.missed,
                "gaps": self.gaps,
                "unacked": self.unacked, "retransmitted": self.retransmitted, "duplicates": self.duplicates,
                "refused": self.refused}


Pollable = Any
"""What a worker's `zmq.Poller` polls: a ZeroMQ socket or a file descriptor."""


class Outlet(Protocol):
    """The producing end of a node's edges in one producer worker (see the module docstring)."""

    edges: list[EdgePlan]
    counters: EdgeCounters
    refuse: Callable[[str, object], None] | None
    ended: bool

    def send(self, batch: AnyBatch) -> None: ...
    def flush(self) -> None: ...
    def end(self) -> None: ...
    def acknowledged(self, consumer_worker: str) -> None: ...
    @property
    def done(self) -> bool: ...
    @property
    def ready(self) -> bool: ...
    def waiting_for(self) -> list[str]: ...
    @property
    def held(self) -> bool: ...
    @property
    def readers(self) -> Mapping[Pollable, Callable[[], None]]: ...
    def close(self) -> None: ...


class Inlet(Protocol):
    """The consuming end of one edge in one consumer worker (see the module docstring)."""

    edge: EdgePlan
    counters: EdgeCounters

    def receive(self, wait_ms: int = 0) -> tuple[AnyBatch | None, str | None]: ...
    def waiting(self) -> bool: ...
    @property
    def complete(self) -> bool: ...
    @property
    def pollable(self) -> Pollable: ...
    def close(self) -> None: ...


class Acknowledging(Inlet, Protocol):
    """An inlet of a reliable edge: it notes what it reads in the worker's `Receipts` and carries
    the acknowledgements the worker gives it back to the producer workers."""

    def acknowledge(self, producer: str, acked: dict[bytes, SeqRanges]) -> None: ...
