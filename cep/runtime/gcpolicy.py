"""How the engine runs the cyclic garbage collector while it moves events (worker and inline runner).

Events are acyclic and die by reference counting, but a batch holds hundreds of freshly built rows
alive at once; at CPython's default threshold (a young collection every 700 new container objects)
the collector walks each batch's rows several times: 15% of a strategy's CPU, measured with
py-spy. The engine collects the young generation only after `YOUNG_THRESHOLD` new objects instead,
and freezes what was built before the run (modules, the graph), which lives as long as the run and
would otherwise be walked by every full collection.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from collections.abc import Iterator

YOUNG_THRESHOLD = 100_000


@contextmanager
def engine_gc() -> Iterator[None]:
    """Collector settings for the duration of a run; the caller's settings come back after it.

    A caller that froze objects itself keeps them frozen, and nothing more is frozen: unfreezing
    is all or nothing, so what the run froze could not be told from what the caller did.
    """
    saved = gc.get_threshold()
    freezing = gc.get_freeze_count() == 0
    if freezing:
        gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        if freezing:
            gc.unfreeze()
