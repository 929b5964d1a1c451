"""The interfaces every component kind implements, and the context they are built with.

Components never import the runtime: everything they need from it (where to send dead letters,
how to count drops, which key partitions the stream) arrives in the `BuildContext`.

Operators and rules are ReactiveX operators over *batches*: `Observable[Batch] -> Observable[Batch]`.
A batch is a list of records; one Rx notification per batch keeps the operator model users know
while the per-event cost stays that of a Python loop (DESIGN §4). `on_completed` is end of stream:
an operator holding state (a time window, a pending bar) flushes it then. An exception raised for
one record must not end the stream: catch it, `ctx.dead_letter(...)` the record, go on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

import reactivex
from reactivex import Observable

from cep.events import Batch, Record
from cep.plan import BATCH_SIZE

BatchOperator = Callable[[Observable], Observable]


class Counters:
    """What one node did; every drop is counted under a reason, never lost silently, and so is
    every record let through despite a problem (`noted`: e.g. an out-of-order tick kept)."""

    __slots__ = ("received", "emitted", "dropped", "dead_lettered", "noted", "filtered", "gauges")

    def __init__(self) -> None:
        self.received = 0
        self.emitted = 0
        self.dropped: dict[str, int] = {}
        self.dead_lettered = 0
        self.noted: dict[str, int] = {}
        self.filtered = 0  # records a filter let through no further: not lost, so not a drop
        self.gauges: Gauges | None = None  # how the node stands now (`BuildContext.keep_gauges`)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def note(self, reason: str, count: int = 1) -> None:
        self.noted[reason] = self.noted.get(reason, 0) + count

    def snapshot(self) -> dict[str, Any]:
        return {"in": self.received, "out": self.emitted, "dropped": dict(self.dropped),
                "dead_lettered": self.dead_lettered, "noted": dict(self.noted), "filtered": self.filtered}


DeadLetterFn = Callable[[str, str, Any], None]
"""`dead_letter(node, reason, raw)`: raw is the offending record, row or bytes."""

Gauges = Callable[[], dict[str, Any]]
"""What a component reports of how it stands now (plain data), asked twice a second at most."""
Snapshot = Callable[[], Any]
Restore = Callable[[Any], None]
KeepStateFn = Callable[[str, Snapshot, Restore], None]
"""`keep_state(node, snapshot, restore)`: how the runtime learns a component's state hook."""


def _print_dead_letter(node: str, reason: str, raw: Any) -> None:
    import sys
    print(f"cep: dead letter from {node}: {reason}: {raw!r:.200}", file=sys.stderr)


@dataclass
class BuildContext:
    """What a component factory may know about where it runs."""

    node: str                                   # the pipeline id of the node being built
    key: str | None = None                      # the field the input stream is partitioned by
    base_dir: Path = field(default_factory=Path.cwd)  # relative paths resolve against the pipeline file
    partition: tuple[int, int] = (0, 1)         # (this worker's index, number of workers)
    counters: Counters = field(default_factory=Counters)
    dead_letter_fn: DeadLetterFn = _print_dead_letter
    batch_size: int = BATCH_SIZE                # how many records a source puts in one batch
    incarnation: int = 0                        # > 0 in a worker that takes over from one that had
                                                # started (a restart after a crash): a sink that
                                                # starts its output afresh continues it instead
    keep_state_fn: KeepStateFn | None = None    # set by the runtime where checkpoints are taken
    run_dir: Path | None = None                 # the run's scratch directory (sockets, checkpoints),
                                                # kept across a worker's restarts

    def dead_letter(self, reason: str, raw: Any) -> None:
        """Send one record/row/frame that could not be processed to the dead-letter queue."""
        self.counters.dead_lettered += 1
        self.dead_letter_fn(self.node, reason, raw)

    def keep_state(self, snapshot: Snapshot, restore: Restore) -> None:
        """Declare the component's state, for `exactly_once` checkpoints (DESIGN §5).

        `snapshot()` returns everything the component remembers between batches as plain data,
        which the runtime encodes with msgpack at once: None, bool, int, float, str, bytes, list,
        tuple and dict, nested (`cep.components.state` says how to convert deques, sets and
        objects); it is called between batches, never during one. `restore(data)` puts a
        snapshot back into a freshly built component, before its first batch; the data comes
        from a file, so check it first: `restorer(schema, apply)` (a pydantic type, e.g.
        `dict[str, int]`) does, and raises `InvalidState` for data of another shape, which stops
        the worker with `checkpoint of NODE is not valid`. A sink's snapshot covers what it
        wrote (e.g. a file offset) so that restore can undo writes made after it. A component
        that keeps state must call this from its factory and say so with `checkpoint=True` in
        its marker (`@rule("x", state="keyed", checkpoint=True)`); `exactly_once` refuses
        stateful components that do not.
        """
        if self.keep_state_fn is not None:
            self.keep_state_fn(self.node, snapshot, restore)

    def keep_gauges(self, gauges: Gauges) -> None:
        """Declare how the component stands now, for metrics and `cep top`: `gauges()` returns plain
        data (e.g. a pattern rule's `{"alive": partial matches, "top_keys": [[key, count], ...]}`).
        The worker calls it when it reports, at most twice a second and between batches, so it may
        walk the component's state; it must not change it."""
        self.counters.gauges = gauges

    def resolve(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)


@runtime_checkable
class Source(Protocol):
    """Produces batches of records until exhausted (finite) or stopped (live).

    What a source can do is declared in its marker, never on the object (`cep.plugins.markers`):
    a `live=True` source never stalls for a slow consumer (default backpressure: drop), replays
    block; a `replayable=True` source gives the same records again when rebuilt with the same
    params, so a restart resumes it from an offset (checkpointed under `exactly_once`).
    Optional `resume(records)`: called once before `batches()` on a restarted source,
    which then leaves out its first `records` records itself, before pacing (the built-in replays
    do, through `paced_batches(skip=...)`). Without it the runtime drops them from the batches, so
    a paced replay waits through them again.
    """

    def batches(self) -> Iterator[Batch]:
        """Yield batches in event-time order; bad input is dead-lettered, not raised."""
        ...

    def close(self) -> None:
        """Release files and sockets; called once, also after an early stop."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Consumes batches; `close()` at end of stream or drain flushes everything it holds.

    Optional `flush()`: make what `write` took durable (or handed to the world). Under
    `at_least_once` the runtime calls it before acknowledging the input upstream; a sink without
    it is taken to be done with a batch when `write` returns.
    """

    def write(self, batch: Batch) -> None:
        ...

    def close(self) -> None:
        ...


def per_record(transform: Callable[[Record], Record | None], ctx: BuildContext,
               pure: bool = False, filters: bool = False) -> BatchOperator:
    """Lift a record -> record|None function into a batch operator.

    None drops the record (as a filter does; a transform that `filters` has it counted as
    filtered, per batch); an exception dead-letters the record only.
    A `pure` transform (no state, no side effects) runs over the whole batch in one
    comprehension, and only a batch in which some record fails is redone record by record; the
    hot path then costs a call per record and nothing more.
    """
    counters = ctx.counters

    def careful(batch: Batch) -> Batch:
        out: Batch = []
        append = out.append
        failed = 0
        for record in batch:
            try:
                result = transform(record)
            except Exception as exc:  # one bad record must not end the stream
                ctx.dead_letter(f"{type(exc).__name__}: {exc}", record)
                failed += 1
                continue
            if result is not None:
                append(result)
        if filters:
            counters.filtered += len(batch) - failed - len(out)
        return out

    if not pure:
        return batch_map(careful)

    def fast(batch: Batch) -> Batch:
        try:
            results = [transform(record) for record in batch]
        except Exception:  # some record fails: find it (and dead-letter it) the careful way
            return careful(batch)
        out = [result for result in results if result is not None]
        if filters:
            counters.filtered += len(batch) - len(out)
        return out

    return batch_map(fast)


def batch_map(apply: Callable[[Batch], Batch]) -> BatchOperator:
    """A batch operator from a batch -> batch function; empty batches are not passed on.

    One Rx stage (not `map` then `filter`): per batch, each stage costs about what a small batch's
    work does. An exception from `apply` ends the stream with `on_error`, as `map` would.
    """
    def operator(source: Observable) -> Observable:
        def subscribe(observer: Any, scheduler: Any = None) -> Any:
            def on_next(batch: Batch) -> None:
                try:
                    out = apply(batch)
                except Exception as exc:  # the graph's failure handler reports it
                    observer.on_error(exc)
                    return
                if out:
                    observer.on_next(out)
            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)
        return reactivex.create(subscribe)
    return operator


def stateful(step: Callable[[Batch], Batch], finish: Callable[[], Batch] | None = None) -> BatchOperator:
    """A batch operator whose state is flushed by `finish()` at end of stream (windows, bars)."""
    def operate(source: Observable) -> Observable:
        def subscribe(observer, scheduler=None):
            def on_next(batch: Batch) -> None:
                out = step(batch)
                if out:
                    observer.on_next(out)

            def on_completed() -> None:
                if finish is not None:
                    tail = finish()
                    if tail:
                        observer.on_next(tail)
                observer.on_completed()

            return source.subscribe(on_next, observer.on_error, on_completed, scheduler=scheduler)
        return reactivex.create(subscribe)
    return operate
