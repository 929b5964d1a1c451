"""A circuit breaker for the path to the venue (closed / open / half-open).

Why: a venue that is down or slow makes every order wait out its timeout and retries; piling
more orders onto it makes things worse and ties up the executor. After `failures` failures in a
row the breaker opens and the executor denies at once (CIRCUIT_OPEN) instead of calling the
venue. After `reset_after` seconds one probe call is let through (half-open): its success closes
the breaker, its failure opens it again for another `reset_after`.

The clock is injectable (any `() -> float` of seconds; `time.monotonic` by default), so tests
drive it with a fake clock and never sleep, and a replay may drive it in event time.
"""
from __future__ import annotations

import math
import time
from enum import Enum
from typing import Callable


class BreakerState(str, Enum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitBreaker:
    """`allow()` before each venue call, then `record_success()` or `record_failure()`.
    `refused` counts calls refused while open; `opened` how often it opened; `changed_at` is when
    (by its clock) it took its present state."""

    def __init__(self, failures: int = 5, reset_after: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError(f"failures must be at least 1, got {failures}")
        if not (math.isfinite(reset_after) and reset_after >= 0):
            raise ValueError(f"reset_after must be a finite number of seconds >= 0, got {reset_after}")
        self.threshold, self.reset_after, self.clock = failures, reset_after, clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.refused = 0
        self.opened = 0
        self._opened_at = 0.0
        self._probing = False
        self.changed_at = clock()

    def allow(self) -> bool:
        if self.state is BreakerState.OPEN and self.clock() - self._opened_at >= self.reset_after:
            self.state, self._probing = BreakerState.HALF_OPEN, False
            self.changed_at = self._opened_at + self.reset_after
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        self.refused += 1
        return False

    def record_success(self) -> None:
        if self.state is not BreakerState.CLOSED:
            self.changed_at = self.clock()
        self.state, self.failures, self._probing = BreakerState.CLOSED, 0, False

    def record_failure(self) -> None:
        """A failed call; one that was let through before the breaker opened changes nothing."""
        if self.state is BreakerState.OPEN:
            return
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            self._open()

    def _open(self) -> None:
        self.state, self._probing = BreakerState.OPEN, False
        self._opened_at = self.changed_at = self.clock()
        self.opened += 1
