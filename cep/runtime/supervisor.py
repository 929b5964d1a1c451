"""The parent side: starts one OS process per plan worker, relays the end-of-stream handshake,
collects metrics (and publishes a snapshot of them twice a second for `cep top` and Prometheus:
`cep.observe`), restarts crashed workers with backoff, and stops everything cleanly.

Runs in the parent only (the child side is `worker.py`). Failure isolation: a crashed worker is
restarted while the others keep running; after `max_restarts` crashes of one worker the run stops
and its exception is re-raised here, chained. Stop is drain first (`stop` to every worker: sources
end, the end of stream flows through), then SIGTERM, then SIGKILL. SIGTERM to the supervisor
(`timeout`, systemd, `docker stop`) drains as Ctrl-C does; a drain that outlasts its deadline
ends with SIGKILL at once (a worker that ignored `stop` would ignore SIGTERM too).

A supervisor that dies takes its workers with it (`processes.die_with_parent`) and leaves the
marker of its run (`lastrun.py`); the next run in the same run directory says so and, under
exactly_once, resumes every worker from its checkpoint.
"""
from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgpack
import zmq

from cep.plan import Plan
from cep.errors import RuntimeFailure, TransportError, WorkerCrashed
from cep.observe.publisher import Publisher
from cep.runtime import processes
from cep.runtime.checkpoint import store_path
from cep.runtime.hostlink import HostLink, local_view
from cep.runtime.lastrun import RunMarker, remove_sockets
from cep.runtime.metrics import RunStatus
from cep.runtime.rundir import private_run_dir
from cep.runtime.transport import bind, jetstream
from cep.runtime.worker import checkpointing, worker_main

READY_TIMEOUT_S = 60.0
STATUS_EVERY_S = 0.5


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: drain, as for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated()


@dataclass
class _Child:
    worker: str
    process: multiprocessing.process.BaseProcess
    incarnation: int
    done: bool = False
    ready: bool = False
    error: dict[str, Any] | None = None
    resume: bool = False  # a former incarnation had started: this one continues its work
    started: bool = False  # told to start
    restart_at: float | None = None


@dataclass
class Supervisor:
    plan: Plan
    on_status: Callable[[RunStatus], None] | None = None
    on_notice: Callable[[str], None] | None = None  # what the user should know at once
    max_restarts: int = 3
    backoff_s: float = 0.2
    drain_timeout_s: float = 10.0
    metrics_port: int | None = None  # Prometheus metrics on 127.0.0.1 (else the plan's `metrics.port`)
    host: str | None = None  # of a multi-host plan: run only its processes (`cep.runtime.hostlink`)
    status: RunStatus = field(init=False)

    def __post_init__(self) -> None:
        self.status = RunStatus(local_view(self.plan, self.host) if self.host else self.plan)
        self._link: HostLink | None = None
        self._mp = processes.worker_processes()
        self._children: dict[str, _Child] = {}
        self._stop_requested_at: float | None = None
        self._drain_expired = False

    # -- public -------------------------------------------------------------------------------
    def run(self) -> RunStatus:
        """Run the plan to completion (or until `stop()`); returns the final status."""
        run_dir = private_run_dir(Path(self.plan.run_dir))
        lock = self._lock(run_dir)
        self._marker = RunMarker(run_dir, self.plan)
        self._publisher: Publisher | None = None
        presence = None
        try:
            resumed = self._after_previous_run()
            self._marker.begin(time.time())
            remove_sockets(self.plan)
            self.plan = jetstream.prepared(self.plan, fresh=not resumed, host=self.host)
            presence = jetstream.presence(self.plan, self.host)
            self._publisher = Publisher(run_dir, self.metrics_port or self.plan.metrics_port)
            self._supervise(resumed)
        finally:  # whatever ended the run, this supervisor saw it end: no marker, no status
            if presence is not None:
                presence.close()
            remove_sockets(self.plan)
            self._marker.remove()
            if self._publisher is not None:
                self._publisher.close()
            os.close(lock)
        self.status.finished = time.monotonic()
        return self.status

    def stop(self) -> None:
        """Ask every worker to drain (what Ctrl-C does)."""
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
            self.status.interrupted = True
            for worker, child in self._children.items():
                if not child.done:
                    self._tell(worker, {"t": "stop"})

    def pid(self, worker: str) -> int | None:
        child = self._children.get(worker)
        return child.process.pid if child else None

    # -- internals ------------------------------------------------------------------------------
    def _lock(self, run_dir: Path) -> int:
        fd = os.open(run_dir / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TransportError(f"ipc path {run_dir} is already in use: pipeline {self.plan.name!r} "
                                 "is running there (stop it, or set transport.dir / $CEP_RUN_DIR)") from None
        return fd

    def _supervise(self, resumed: dict[str, int]) -> None:
        """Start every worker (those in `resumed` from their checkpoints, as that incarnation),
        run until all are done or a drain ends, then stop whatever still runs."""
        context = zmq.Context()
        self._control = context.socket(zmq.ROUTER)
        self._control.setsockopt(zmq.LINGER, 0)
        self._control.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._control.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted worker takes its name over
        on_sigterm = threading.current_thread() is threading.main_thread()  # signals reach that one only
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_sigterm else None
        try:
            bind(self._control, self.plan.control)
            if self.host is not None:
                self._link = HostLink(context, self.plan, self.host, on_notice=self._notice)
            for worker in self.plan.workers(self.host):
                self._spawn(worker, resumed.get(worker, 0), resume=worker in resumed)
            self._loop()
        except KeyboardInterrupt as interrupt:
            self.status.signal = signal.SIGTERM if isinstance(interrupt, _Terminated) else signal.SIGINT
            self._drain_after_interrupt()
        finally:
            self._terminate_all(grace_s=0.0 if self._drain_expired else 3.0)
            if on_sigterm:
                signal.signal(signal.SIGTERM, previous)
            self._control.close(0)
            if refused := self.status.refused_connections():  # counted, not hidden
                self.status.notes.append(f"workers refused {refused} tcp handshakes from peers without the "
                                         "pipeline's keys")
            if self._link is not None:
                self.status.notes += self._link.notes()
                self._link.close()
            context.term()

    def _after_previous_run(self) -> dict[str, int]:
        """If the previous run in this run directory ended abnormally, say so; under exactly_once
        (same plan, checkpoints left) return the incarnation to resume each checkpointing worker
        with, else {}: a fresh start."""
        previous = self._marker.previous()
        if previous is None:
            return {}
        resumable = [worker for worker in self.plan.workers(self.host)
                     if checkpointing(self.plan, self.plan.process_of_worker(worker)[0].name)]
        if not resumable:
            afresh = "only exactly_once keeps checkpoints"
        elif not previous.fingerprint:
            afresh = f"its marker {self._marker.path} is unreadable"
        elif previous.fingerprint != self._marker.fingerprint:
            afresh = "the pipeline has changed since"
        elif not any(store_path(self.plan.run_dir, w).exists() for w in resumable):
            afresh = "it left no checkpoints"
        else:
            afresh = None
        pid = f" (pid {previous.pid})" if previous.pid else ""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(previous.last_seen))
        self._notice(f"the previous run of {self.plan.name}{pid} ended abnormally at about {when}; "
                     + (f"starting afresh: {afresh}" if afresh else "resuming from its checkpoints"))
        return {} if afresh else {w: previous.incarnations.get(w, 0) + 1 for w in resumable}

    def _notice(self, text: str) -> None:
        self.status.notes.append(text)
        if self.on_notice is not None:
            self.on_notice(text)

    def _spawn(self, worker: str, incarnation: int, resume: bool) -> None:
        self._marker.spawned(worker, incarnation)
        process = processes.start(self._mp, worker_main, (self.plan.to_dict(), worker, incarnation, resume,
                                                          dict(os.environ), os.getcwd()), f"cep:{worker}")
        self._children[worker] = _Child(worker, process, incarnation, resume=resume)
        self.status.pids[worker] = process.pid
        self.status.waiting.pop(worker, None)

    def _tell_start(self, child: _Child) -> None:
        child.started = True
        self._tell(child.worker, {"t": "start"})

    def _tell(self, worker: str, message: dict[str, Any]) -> None:
        try:
            self._control.send_multipart([worker.encode(), msgpack.packb(message)])
        except zmq.ZMQError:
            pass  # the worker is gone (crashed); the restart logic deals with it

    def _loop(self) -> None:
        ready_by = time.monotonic() + READY_TIMEOUT_S
        next_status = 0.0
        while not all(c.done for c in self._children.values()):
            self._receive(50)
            self._check_children()
            now = time.monotonic()
            if self.status.started is None:
                self._start_when_ready(now, ready_by)
            if self._stop_requested_at and now - self._stop_requested_at > self.drain_timeout_s:
                self.status.notes.append(f"drain took longer than {self.drain_timeout_s:g}s: workers killed")
                self._drain_expired = True
                self.status.drained = False
                return
            if now >= next_status:
                if self._link is not None:
                    self.status.links = self._link.states()
                self._marker.refresh()
                self._publisher.publish(self.status)
                if self.on_status:
                    self.on_status(self.status)
                next_status = now + STATUS_EVERY_S

    def _start_when_ready(self, now: float, ready_by: float) -> None:
        """The first start: every worker at once, once all are ready (subscribers joined), so no
        source runs ahead of a consumer that would miss its first events; on one host of
        several, also once the hosts it exchanges data with said they run the same pipeline
        (`HostLink.agreed`), so a host given another file never mixes its records in."""
        if all(c.ready for c in self._children.values()) and (self._link is None or self._link.agreed()):
            self.status.started = now  # rates count from here, not from spawning
            for child in self._children.values():
                self._tell_start(child)
        elif now > ready_by and self.host is None:  # one host of several waits for the others, visibly
            waiting = sorted(w for w, c in self._children.items() if not c.ready)
            raise RuntimeFailure(f"workers not ready after {READY_TIMEOUT_S:.0f}s: {', '.join(waiting)}")

    def _drain_after_interrupt(self) -> None:
        self.stop()
        try:
            self._loop()
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: stop waiting for the drain
            self.status.notes.append("second interrupt: terminated without draining")
            self.status.drained = False

    def _receive(self, timeout_ms: int) -> None:
        if self._link is not None:
            for message in self._link.receive():
                self._tell(message["producer"], {"t": "eos_ack", "edge": message["edge"],
                                                 "consumer": message["consumer"]})
        if not self._control.poll(timeout_ms):
            return
        while True:
            try:
                _, raw = self._control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            message = msgpack.unpackb(raw, raw=False)
            self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind, worker = message.get("t"), message.get("worker")
        child = self._children.get(worker)
        if child is not None:
            self.status.heard(worker, kind, cpu_s=message.get("cpu_s"))  # metrics.STUCK_RULE
        if kind == "ready" and child is not None and message.get("incarnation") == child.incarnation:
            child.ready = True
            if self.status.started is not None:  # a restarted worker joins the running pipeline
                self._tell_start(child)
                if self._stop_requested_at is not None:
                    self._tell(worker, {"t": "stop"})
        elif kind in ("metrics", "done"):
            self.status.update(worker, message)
            if kind == "done" and child is not None:
                child.done = True
        elif kind == "eos" and self._link is not None and not self._link.is_local(message["producer"]):
            self._link.forward(message)
        elif kind == "waiting" and child is not None:
            self._note_waiting(worker, tuple(message.get("peers", ())))
        elif kind == "eos":
            self._tell(message["producer"], {"t": "eos_ack", "edge": message["edge"],
                                             "consumer": message["consumer"]})
        elif kind == "error" and child is not None:
            child.error = message

    def _note_waiting(self, worker: str, peers: tuple[str, ...]) -> None:
        """A worker of a multi-host run waits for peers (another host not started yet), or no
        longer (empty `peers`): said once per change, not twice a second, and kept with since
        when in the status (`cep top`)."""
        waiting = self.status.waiting.get(worker)
        if peers and (waiting is None or tuple(waiting["for"]) != peers):
            self._notice(f"{worker}: waiting for {', '.join(peers)}")
            self.status.waiting[worker] = {"for": list(peers), "since": time.time()}
        elif not peers:
            self.status.waiting.pop(worker, None)

    def _check_children(self) -> None:
        """Restart crashed workers after their backoff. A worker that reported an error before it
        was ever ready cannot start (an import or bind error): the run fails with it at once."""
        now = time.monotonic()
        for worker, child in list(self._children.items()):
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(worker, child.incarnation + 1, resume=child.resume or child.started)
                continue
            if child.done or child.process.is_alive():
                continue
            code = child.process.exitcode
            if code == 0:
                continue
            failure = child.error or {"error": f"exited with code {code}", "traceback": ""}
            restarts = self.status.restarts.get(worker, 0) + 1
            cannot_start = child.error is not None and not child.ready
            if (cannot_start or not failure.get("restartable", True) or restarts > self.max_restarts
                    or self._stop_requested_at):
                raise WorkerCrashed(f"worker {worker} failed: {failure['error']}") from RemoteTraceback(
                    failure.get("traceback") or failure["error"])
            self.status.restarts[worker] = restarts
            self.status.notes.append(f"{worker} failed ({failure['error']}); restart {restarts}/{self.max_restarts}")
            child.restart_at = now + self.backoff_s * 2 ** (restarts - 1)

    def _terminate_all(self, grace_s: float) -> None:
        """SIGTERM (a worker drains) and SIGKILL after `grace_s` every worker still running."""
        children = [c.process for c in self._children.values()]
        for process in children:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + grace_s
        for process in children:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1)
