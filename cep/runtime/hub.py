"""A node's output in a process graph: where its batches fan out to every consumer, counted.

It does what a ReactiveX `Subject` does in a worker's graph, which one thread drives: every
subscriber gets every batch, then the end of stream. It takes no lock and copies no observer list
per batch, and it counts on the way what the node emits and what each local consumer receives,
so counting adds no Rx stage to the graph. At a few events per frame, those stages and locks were
half of what a worker spent per frame (measured on the strategy of the benchmark pipeline).
"""
from __future__ import annotations

from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from cep.components.base import Counters
from cep.rows import Rows


class Hub(Observable, abc.ObserverBase):
    """Fan-out of one node's batches; `emitted` counts into `counters` (None: not a node's output,
    e.g. a remote input, whose inlet counts), `feed(c)` counts a consumer's input into `c`."""

    def __init__(self, counters: Counters | None = None) -> None:
        super().__init__()
        self._observers: list[abc.ObserverBase] = []
        self._counters = counters
        self._consumers: list[Counters] = []
        self._stopped = False
        self._error: Exception | None = None
        # the latest record passed on (and its row layout, None for a record dict): its event time
        # is read when the worker reports. Not the batch: a batch kept alive past its pass costs
        # 10-15% of at_most_once throughput (its rows outlive the young GC generation).
        self.last: Any = None
        self.last_fields: tuple[str, ...] | None = None

    def feed(self, consumer: Counters) -> None:
        """Count every batch this hub passes on as received by `consumer`."""
        self._consumers.append(consumer)

    def _subscribe_core(self, observer: abc.ObserverBase, scheduler: Any = None) -> abc.DisposableBase:
        if self._stopped:  # late subscribers learn how the stream ended, as with a Subject
            if self._error is not None:
                observer.on_error(self._error)
            else:
                observer.on_completed()
            return Disposable()
        self._observers.append(observer)
        return Disposable(lambda: self._observers.remove(observer) if observer in self._observers else None)

    def on_next(self, batch: Any) -> None:
        if self._stopped:
            return
        size = len(batch)
        if size:
            if type(batch) is Rows:
                self.last_fields, self.last = batch.fields, batch.rows[-1]
            else:
                self.last_fields, self.last = None, batch[-1]
        if self._counters is not None:
            self._counters.emitted += size
        for consumer in self._consumers:
            consumer.received += size
        for observer in self._observers:
            observer.on_next(batch)

    def on_error(self, error: Exception) -> None:
        if not self._stopped:
            self._stopped, self._error = True, error
            for observer in list(self._observers):
                observer.on_error(error)

    def on_completed(self) -> None:
        if not self._stopped:
            self._stopped = True
            for observer in list(self._observers):
                observer.on_completed()
