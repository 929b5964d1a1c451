"""Runs a whole plan in the calling process: the same builder, no sockets.

For tests, debugging and the in-process benchmark. By topology invariance (DESIGN §6) its output
equals the multi-process run's, which the integration tests check.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Callable

from cep.observe.gauges import observed
from cep.plan import Plan, ProcessPlan
from cep.runtime.builder import build_process
from cep.runtime.deadletter import DeadLetters
from cep.runtime.gcpolicy import engine_gc
from cep.runtime.metrics import RunStatus
from cep.runtime.registry import registry_for


def topological(plan: Plan) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node not in seen:
            seen.add(node)
            for upstream in plan.nodes[node].inputs:
                visit(upstream)
            order.append(node)

    for node in plan.nodes:
        visit(node)
    return order


def run_inline(plan: Plan, stopping: Callable[[], bool] = lambda: False) -> RunStatus:
    """Run every node of `plan` in this process until the sources are exhausted (or `stopping`)."""
    status = RunStatus(plan)
    process = ProcessPlan(name="inline", role="strategy", nodes=tuple(topological(plan)))
    dead_letters = DeadLetters(plan.dead_letter, "inline")
    graph = build_process(plan, process, 0, registry_for(plan), dead_letters)
    status.started = time.monotonic()
    active = [(iter(source.batches()), source, subject) for source, subject in graph.sources.values()]
    try:
        with engine_gc():
            while active:
                for entry in list(active):
                    batches, source, subject = entry
                    batch = next(batches, None)
                    if batch is None or stopping():
                        active.remove(entry)
                        source.close()
                        subject.on_completed()
                    elif batch:
                        subject.on_next(batch)
                    graph.raise_failure()
                status.interrupted = stopping()
    finally:
        graph.close()
        dead_letters.close()
    graph.raise_failure()
    status.finished = time.monotonic()
    status.record_inline({"nodes": {node: c.snapshot() for node, c in graph.counters.items()},
                          **observed(graph, None)})  # how nodes stood at the end (an executor's book)
    return status


def run_inline_until_signalled(plan: Plan) -> RunStatus:
    """`run_inline`, where Ctrl-C and SIGTERM drain as they do for a supervised run: the sources
    stop, the end of stream flows through every node, and the status names the signal (the CLI
    exits 128 + it). Handlers are installed only on the main thread, where signals arrive."""
    if threading.current_thread() is not threading.main_thread():
        return run_inline(plan)
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, _frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = run_inline(plan, stopping=lambda: bool(received))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        status.signal = received[0]
    return status
