"""The child side: one OS process hosting one worker of one plan process.

Runs in the child only. It builds its slice of the plan, binds and connects its sockets, reports
`ready` to the supervisor once every subscriber it publishes to has joined and every PUSH is
connected, waits for `start`, then loops: read inbound frames, drive its sources, flush outbound
frames after each pass, report metrics. It ends by itself once every input has ended, every sink
is closed and every consumer has acknowledged its END frames. SIGTERM (or `stop` from the supervisor) drains: sources stop, the
end of stream flows on, the worker exits when drained. Any exception is sent to the supervisor
with its traceback before the process exits 1; the supervisor re-raises it chained.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import msgpack
import zmq

from cep.plan import EdgePlan, Plan
from cep.components.base import Source
from cep.components.state import restorer
from cep.errors import RuntimeFailure
from cep.observe.gauges import observed
from cep.runtime import processes, security, transport
from cep.runtime.builder import ProcessGraph, build_process
from cep.runtime.checkpoint import Checkpointer, CheckpointStore, offsets_part, seen_part, store_path
from cep.runtime.deadletter import DeadLetters
from cep.runtime.delivery import Receipts
from cep.runtime.gcpolicy import engine_gc
from cep.runtime.hub import Hub
from cep.runtime.metrics import COUNTS_SCHEMA, added
from cep.runtime.offsets import SAVE_EVERY_S, Acknowledged, OffsetFile, Reservation
from cep.runtime.registry import registry_for
from cep.rows import AnyBatch, concat, items, like
from cep.runtime.transport import Acknowledging, Inlet, Outlet, RetainingOutlet

METRICS_EVERY_S = 0.5
"""Workers report their counts at the same wall-clock instants, multiples of this ("rounds"), so
the status can show one instant's counts (`metrics.RunStatus`): a downstream count is then never
ahead of its upstream's."""
WAITING_AFTER_S = 1.0
"""A worker of a multi-host run not ready after this long says which peers it waits for (a
start on one machine is ready well within it)."""
INBOUND_BURST = 64
"""Frames read from one input before the others get a turn. They go through the graph as one
batch (per-batch costs shrink under load); the outlets cut what comes out into frames of at most
`Plan.frame_size` records again."""
IDLE_POLL_MS = 50
RECEIPTS_POLL_MS = 10  # reliable edges with acks still to send: come back sooner
BUSY_POLL_S = 0.0002
"""While it drives sources, a worker polls its sockets at most this often: a zero-timeout poll is a
few system calls, and a paced gateway makes a pass per tick or two (30,000 passes a second at
50,000 ticks/s). Control messages and frames into a process that also has sources wait at most
this long. A worker whose only input is one edge polls its other sockets just as often and
otherwise waits in that edge's read (`_solo_inlet`)."""


class WorkerOrphaned(RuntimeFailure):
    """The supervisor died without stopping this worker; it exits rather than run on unseen."""


def worker_main(plan_data: dict, worker: str, incarnation: int, resume: bool, environ: dict[str, str],
                cwd: str) -> None:
    """Entry point of the child process (a multiprocessing target). `incarnation` numbers the
    worker's processes within a run (sequence numbers carry it); `resume` says a former incarnation
    had started, so this one continues its work (its checkpoint, its sinks' files) rather than
    starting afresh. `environ` and `cwd` are the supervisor's when it started this worker: a forked
    worker would otherwise have its fork server's, from the server's first use (plugins may read
    either)."""
    processes.die_with_parent()
    processes.name_process(f"cep: {plan_data['name']}/{worker}")  # before the environment changes
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    plan = Plan.from_dict(plan_data)
    context = zmq.Context()
    control = context.socket(zmq.DEALER)
    control.setsockopt(zmq.IDENTITY, worker.encode())
    control.setsockopt(zmq.LINGER, 2000)
    control.connect(plan.control)
    try:
        gate = security.install(context, plan, plan.process_of_worker(worker)[0].host)
        Worker(plan, worker, incarnation, resume, context, control).run()
    except WorkerOrphaned:  # nobody is left to tell
        context.destroy(linger=0)
        os._exit(1)
    except BaseException as exc:  # everything reaches the parent, chained there
        _send(control, {"t": "error", "worker": worker, "error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(),
                        "restartable": getattr(exc, "restartable", True)})
        control.close()           # lingers until the error report is delivered
        context.destroy(linger=0)  # data sockets left open by the failure must not block the exit
        os._exit(1)
    control.close()
    if gate is not None:
        gate.close()
    context.term()


def checkpointing(plan: Plan, process: str) -> bool:
    """The workers of `process` take checkpoints: an edge of theirs is exactly_once."""
    return transport.checkpointed(plan.edges_to(process) + plan.edges_from(process))


def _send(socket: zmq.Socket, message: dict[str, Any]) -> None:
    """Report to the supervisor; never block on it (if it is gone, the orphan check ends us)."""
    try:
        socket.send(msgpack.packb(message, use_bin_type=True), zmq.NOBLOCK)
    except zmq.Again:
        pass


class Worker:
    def __init__(self, plan: Plan, worker: str, incarnation: int, resume: bool, context: zmq.Context,
                 control: zmq.Socket) -> None:
        self.plan = plan
        self.worker = worker
        self.incarnation = incarnation
        self.resuming = resume
        self.context = context
        self.control = control
        self.process, self.index = plan.process_of_worker(worker)
        self.stopping = False
        self.started = False
        self.cpu_at_start = 0.0
        self.created = time.monotonic()
        self.waited = False  # the last report said it waits for peers on other hosts
        self.supervisor = multiprocessing.parent_process()  # None outside multiprocessing (tests)
        self.dead_letters = DeadLetters(plan.dead_letter, worker)
        self.channels: list[Any] = []  # the executors' DEALERs to their venues (`_venue_channel`)
        self.graph: ProcessGraph = build_process(plan, self.process, self.index, registry_for(plan),
                                                 self.dead_letters, incarnation if resume else 0,
                                                 self._venue_channel)
        self.outlets: list[Outlet] = []
        self.outlet_by_edge: dict[str, Outlet] = {}
        self.inlets: list[Inlet] = []
        self.completed_inputs: set[str] = set()
        self.sources: list[tuple[Iterator[AnyBatch], Any, Any]] = []
        self.receipts = Receipts(flush=self._flush_sinks, clock=time.monotonic)
        self.offsets: dict[str, int] = {}  # records each replayable source emitted
        self.checkpointed_offsets: dict[str, int] = {}
        self.checkpointing = checkpointing(plan, self.process.name)
        self.reservation: Reservation | None = None
        self.acknowledged: Acknowledged | None = None
        self.resumed: dict[str, int] = {}  # where the sources resumed from the offsets file
        self._next_offsets = 0.0
        self.announced_ready = False
        self.next_metrics = 0.0  # the first pass reports
        self.next_poll = 0.0
        self._wire()
        self.counts_base: dict[str, Any] | None = {} if self.checkpointing and resume else None
        """What this worker's checkpointed predecessors had counted (exactly_once), else None."""
        self.checkpointer = self._checkpointer() if self.checkpointing else None
        if self.offsets and not self.checkpointing:
            self._keep_offsets()
        self.delivering = bool(self.reliable_inlets or self.retaining) or self.checkpointer is not None
        """Some edge of this worker is reliable: each pass ends with `_deliver`."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop())

    # -- setup ----------------------------------------------------------------------------------
    def _venue_channel(self, node):
        """How executor `node` here reaches its venue: a DEALER to the venue worker's ROUTER
        (the worker is ready once it is connected)."""
        from cep.runtime.transport import requests  # the order half loads only where it runs
        channel = requests.dealer_channel(self.context, self.plan, node, self.worker)
        self.channels.append(channel)
        return channel

    def _wire(self) -> None:
        is_stopping = lambda: self.stopping  # noqa: E731
        outgoing = self.plan.edges_from(self.process.name)
        for node in dict.fromkeys(edge.node for edge in outgoing):
            edges = [edge for edge in outgoing if edge.node == node]
            pubsub = [edge for edge in edges if edge.pattern == "pub/sub"]
            outlets: list[Outlet] = []
            if pubsub:
                outlets.append(transport.pub_outlet(self.context, self.plan, self.worker, self.incarnation,
                                                    node, pubsub, is_stopping))
            outlets += [transport.push_outlet(self.context, self.plan, self.worker, self.incarnation, edge,
                                              is_stopping)
                        for edge in edges if edge.pattern == "push/pull"]  # dealer/router: the executor's own
            for outlet in outlets:
                outlet.refuse = lambda reason, record, node=node: self._dead_letter(node, reason, record)
                self.graph.outputs[node].subscribe(outlet.send, on_completed=outlet.end)
                for edge in outlet.edges:
                    self.outlet_by_edge[edge.id] = outlet
            self.outlets += outlets
        self.retaining = [o for o in self.outlets if isinstance(o, RetainingOutlet)]
        self.reliable_inlets: dict[str, Acknowledging] = {}
        self.receipts.windows = [o.window for o in self.retaining]
        for edge in self.plan.edges_to(self.process.name):
            if edge.pattern == "dealer/router":  # an executor's requests to a venue node here
                from cep.runtime.transport import requests  # the order half loads only where it runs
                self.graph.remote_inputs.setdefault(edge.node, Hub())
                self.inlets.append(requests.router_inlet(self.context, self.plan, edge, self.graph.venues))
                continue
            reader = next(n for n in self.process.nodes if edge.node in self.plan.nodes[n].inputs)
            self.inlets.append(transport.inlet(
                self.context, self.plan, edge, self.worker, self.index, self.incarnation,
                lambda reason, raw, node=reader: self._dead_letter(node, reason, raw), self.receipts))
            if transport.reliable(edge):
                self.reliable_inlets[edge.id] = self.inlets[-1]  # type: ignore[assignment]
        self._wire_sources()

    def _wire_sources(self) -> None:
        """Every source's batches; a replayable one's counted, so a restart can resume it."""
        for node, (source, subject) in self.graph.sources.items():
            if self.checkpointing or node in self.graph.replayable:
                self.offsets[node] = 0
                batches = self._counted(node, source)
            else:
                batches = iter(source.batches())
            self.sources.append((batches, source, subject))

    def _checkpointer(self) -> Checkpointer:
        """exactly_once: the worker's checkpoints; a resuming worker restores the last one."""
        store = CheckpointStore(store_path(self.plan.run_dir, self.worker), fresh=not self.resuming)
        parts = dict(self.graph.states)
        parts["!seen"] = seen_part(self.receipts)
        parts["!offsets"] = offsets_part(self.offsets)
        parts["!counts"] = (lambda: added(self.counts_base or {}, self._counts()),
                            restorer(COUNTS_SCHEMA, self._restore_counts))
        windows = {"|".join(edge.id for edge in outlet.edges): outlet.window for outlet in self.retaining}
        checkpointer = Checkpointer(store, parts, windows)
        self.receipts.windows = []  # inputs are safe once checkpointed, outputs in the outbox
        if self.resuming:
            checkpointer.restore()
            for outlet in self.retaining:
                outlet.resume()
        return checkpointer

    def _keep_offsets(self) -> None:
        """at_most_once and at_least_once: the replayable sources' offsets go to a small file
        (`offsets.py`); a restarted worker's sources resume from it."""
        file = OffsetFile(Path(self.plan.run_dir), self.worker, fresh=not self.resuming)
        if self.resuming:
            self.offsets.update((node, offset) for node, offset in file.load().items() if node in self.offsets)
            self.resumed = dict(self.offsets)
        if self.retaining:  # a reliable edge leaves: never lose, so only acknowledged offsets
            self.acknowledged = Acknowledged(file, self.offsets, [o.window for o in self.retaining])
        else:
            self.reservation = Reservation(file, self.offsets, time.monotonic)

    def _counted(self, node: str, source: Source) -> Iterator[AnyBatch]:
        """A replayable source's batches, counted (and, at_most_once, reserved before they
        leave); after a restart, what the checkpoint or the offsets file says was already emitted
        is left out: by the source if it has `resume` (a paced replay then goes on at once), else
        here (the source replays, and paces, those records again)."""
        skip = self.offsets[node]  # read at the first batch: after the restore
        resume = getattr(source, "resume", None)
        if skip and resume is not None:
            resume(skip)
            skip = 0
        for batch in source.batches():
            if skip:
                if len(batch) <= skip:
                    skip -= len(batch)
                    continue
                batch, skip = like(batch, items(batch)[skip:]), 0
            self.offsets[node] += len(batch)
            if self.reservation is not None:
                self.reservation.cover(node, self.offsets[node])
            yield batch

    def _dead_letter(self, node: str, reason: str, raw: Any) -> None:
        """A frame for `node` (the local reader of the edge) that could not be decoded, or a
        record of `node`'s output that no frame can carry."""
        self.graph.counters[node].dead_lettered += 1
        self.dead_letters(node, reason, raw)

    def _stop(self) -> None:
        self.stopping = True

    def _flush_sinks(self) -> None:
        """Make the sinks' writes durable before their inputs are acknowledged (reliable edges)."""
        for sink in self.graph.sinks.values():
            flush = getattr(sink, "flush", None)
            if flush is not None:
                flush()

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        if self.process.nice:  # a gateway: what is in flight downstream goes first (GATEWAY_NICE)
            os.nice(self.process.nice)
        with engine_gc():
            self._loop()

    def _loop(self) -> None:
        """Passes until the worker is finished: each reads what came in, drives the sources,
        ships and settles what the pass produced, and reports on time. Told to stop before it
        was told to start (a host still waiting for its peers), it has nothing to drain."""
        self._register()
        while not (self.started and self._finished()) and not (self.stopping and not self.started):
            held = bool(self.retaining) and any(outlet.held for outlet in self.retaining)
            self._read(held)
            if not self.announced_ready:
                self._announce_ready()
            if self.started:
                self._drive(held)
            self.graph.raise_failure()
            self._on_time(time.monotonic())
        self._close()

    def _register(self) -> None:
        """The sockets to poll and who handles each. Two pollers: while a reliable outlet's window
        is full (`held`), inputs wait unread; control messages and the outlets' own sockets
        (subscriptions, acks) are read all the same."""
        self.handlers: dict[Any, Callable[[], None]] = {self.control: self._on_control}
        for outlet in self.outlets:
            self.handlers.update(outlet.readers)
        self.held_poller = zmq.Poller()
        self.poller = zmq.Poller()
        for pollable in self.handlers:
            self.held_poller.register(pollable, zmq.POLLIN)
            self.poller.register(pollable, zmq.POLLIN)
        for inlet in self.inlets:
            self.poller.register(inlet.pollable, zmq.POLLIN)
            self.handlers[inlet.pollable] = partial(self._on_inbound, inlet)

    def _read(self, held: bool) -> None:
        """Handle what waits on the sockets. While sources flow, or one input is read directly
        (`_solo_inlet`), the sockets are polled without waiting, at most every `BUSY_POLL_S`;
        otherwise the poll waits for something to come."""
        flowing = self.started and not self.stopping and not held
        solo = self._solo_inlet() if flowing else None
        if (flowing and self.sources) or solo is not None:
            now = time.monotonic()
            events = {}
            if now >= self.next_poll:
                events = dict(self.poller.poll(0))
                self.next_poll = now + BUSY_POLL_S
        else:
            events = dict((self.held_poller if held else self.poller).poll(self._idle_wait_ms()))
        for pollable in events:
            self.handlers[pollable]()
        if solo is not None and not events:
            self._on_inbound(solo, self._idle_wait_ms())

    def _announce_ready(self) -> None:
        """Tell the supervisor once every outlet's consumers can receive and every executor
        here is connected to its venue."""
        if all(outlet.ready for outlet in self.outlets) and all(channel.ready for channel in self.channels):
            _send(self.control, {"t": "ready", "worker": self.worker, "pid": os.getpid(),
                                 "incarnation": self.incarnation})
            self.announced_ready = True

    def _drive(self, held: bool) -> None:
        """After the reads: the sources' next batches (none while held; all ended when
        stopping), then ship and settle what the pass produced."""
        if self.stopping:
            self._stop_sources()
        elif self.sources and not held:
            self._pump_sources()
        self._flush()
        if self.delivering:
            self._deliver()

    def _on_time(self, now: float) -> None:
        """What is due by the clock: the sources' offsets, and twice a second the counts (and the
        check that the supervisor still lives)."""
        self._note_offsets(now)
        if now >= self.next_metrics:
            if self.supervisor is not None and not self.supervisor.is_alive():
                raise WorkerOrphaned(f"the supervisor (pid {self.supervisor.pid}) is gone")
            self._report("metrics")
            self._report_waiting()
            self.next_metrics = now + METRICS_EVERY_S - time.time() % METRICS_EVERY_S  # the next round

    def _close(self) -> None:
        """Finished: the last report, then every socket and file."""
        self._report("done")
        for outlet in self.outlets:
            outlet.close()
        for inlet in self.inlets:
            inlet.close()
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.graph.close()
        self.dead_letters.close()

    def _note_offsets(self, now: float) -> None:
        """at_least_once, every `SAVE_EVERY_S`: save the sources' offsets that became safe."""
        if self.acknowledged is not None and now >= self._next_offsets:
            self.acknowledged.note()
            self._next_offsets = now + SAVE_EVERY_S

    def _solo_inlet(self) -> Inlet | None:
        """The input to wait on directly, if this worker has no sources and one input edge still
        open. Blocking in its read costs a system call or two per wake-up; a poll of every socket
        and then a read costs several (measured: the poll and the readiness check were 45% of a
        strategy's CPU at 20,000 ticks/s, one frame per wake-up)."""
        if self.sources or len(self.inlets) != 1 or self.inlets[0].complete:
            return None
        return self.inlets[0]

    def _idle_wait_ms(self) -> int:
        """How long a pass may wait for input: acknowledgements still to send come back sooner."""
        return IDLE_POLL_MS if self.receipts.settled else RECEIPTS_POLL_MS

    def _flush(self) -> None:
        """Ship what this pass of the loop produced. A pass handles what was waiting (a burst of
        frames, a source batch), so frames grow with the load and stay single events when idle:
        batching without a timer, and latency without a deadline to tune."""
        for outlet in self.outlets:
            if not outlet.ended:
                outlet.flush()

    def _deliver(self) -> None:
        """Reliable edges, once per pass after the flush: (exactly_once) checkpoint, then let the
        pass's frames go; acknowledge what became safe upstream, go on resending downstream what
        a restarted consumer is owed."""
        if self.checkpointer is not None:
            if (self.receipts.reading or self.offsets != self.checkpointed_offsets
                    or any(o.window.journal for o in self.retaining)):
                self.checkpointer.commit()
                self.checkpointed_offsets = dict(self.offsets)
            for outlet in self.retaining:
                outlet.release()
        self.receipts.end_pass()
        transport.send_acks(self.receipts, self.reliable_inlets)
        for outlet in self.retaining:
            outlet.resend_owed()

    def _finished(self) -> bool:
        return (not self.sources and all(i.complete for i in self.inlets) and self.receipts.settled
                and self.graph.sinks_done and all(o.done for o in self.outlets))

    def _pump_sources(self) -> None:
        for entry in list(self.sources):
            batches, source, subject = entry
            try:
                batch = next(batches)
            except StopIteration:
                self._end_source(entry)
                continue
            if batch:
                subject.on_next(batch)

    def _stop_sources(self) -> None:
        for entry in list(self.sources):
            self._end_source(entry)

    def _end_source(self, entry) -> None:
        _, source, subject = entry
        self.sources.remove(entry)
        source.close()
        subject.on_completed()

    def _on_inbound(self, inlet: Inlet, wait_ms: int = 0) -> None:
        """Read what is waiting (up to a burst; the first frame may be waited for up to `wait_ms`)
        and push it through the graph as ONE batch: the busier the input, the bigger the batch,
        so per-batch costs shrink exactly under load."""
        subject = self.graph.remote_inputs[inlet.edge.node]
        burst: list[AnyBatch] = []
        for _ in range(INBOUND_BURST):
            try:
                batch, ended = inlet.receive(wait_ms)
            except BlockingIOError:  # nothing came in time, or the poll said readable too soon
                break
            wait_ms = 0
            if batch:
                burst.append(batch)
            if ended is not None:
                if burst:
                    subject.on_next(concat(burst))
                    burst = []
                _send(self.control, {"t": "eos", "edge": inlet.edge.id, "producer": ended,
                                     "consumer": self.worker})
                if inlet.complete and inlet.edge.node not in self.completed_inputs:
                    self.completed_inputs.add(inlet.edge.node)
                    subject.on_completed()
            if not inlet.waiting():
                break
        if burst:
            subject.on_next(concat(burst))

    def _on_control(self) -> None:
        for raw in transport.drain(self.control):
            message = msgpack.unpackb(raw, raw=False)
            kind = message.get("t")
            if kind == "start":
                self.started = True
                self.cpu_at_start = _cpu_seconds()
            elif kind == "stop":
                self.stopping = True
            elif kind == "eos_ack":
                outlet = self.outlet_by_edge.get(message["edge"])
                if outlet is not None:
                    outlet.acknowledged(message["consumer"])

    def _counts(self) -> dict[str, Any]:
        """Everything this incarnation counted, as plain data (`metrics.COUNTED`)."""
        return {"nodes": {node: c.snapshot() for node, c in self.graph.counters.items()},
                "edges_out": {edge_id: o.counters.snapshot() for edge_id, o in self.outlet_by_edge.items()},
                "edges_in": {i.edge.id: i.counters.snapshot() for i in self.inlets}}

    def _restore_counts(self, counts: dict[str, Any]) -> None:
        self.counts_base = counts

    def _report_waiting(self) -> None:
        """In a multi-host run, what this worker waits for on other hosts, and where (the
        supervisor shows it; a peer host may not have started yet): before it starts, the
        consumer workers that have not joined; and the producers on other hosts it has had
        nothing from yet."""
        if not self.plan.hosts or time.monotonic() - self.created < WAITING_AFTER_S:
            return
        peers = [] if self.started else [peer for end in (*self.outlets, *self.channels) if not end.ready
                                         for peer in end.waiting_for()]
        peers += [_awaited(inlet.edge, self.index) for inlet in self.inlets
                  if not inlet.counters.frames and not inlet.complete
                  and self.plan.process(inlet.edge.producer).host != self.process.host]
        if peers or self.waited:  # and once more, empty, when the wait is over
            _send(self.control, {"t": "waiting", "worker": self.worker, "incarnation": self.incarnation,
                                 "peers": peers})
        self.waited = bool(peers)

    def _report(self, kind: str) -> None:
        report = {"t": kind, "worker": self.worker, "incarnation": self.incarnation, **self._counts(),
                  "round": round(time.time() / METRICS_EVERY_S),  # every worker reports at the same instants
                  "cpu_s": _cpu_seconds() - self.cpu_at_start if self.started else 0.0,
                  "refused_connections": security.refused_connections()}
        if self.counts_base is not None:  # counts go on from the checkpoint's (metrics.RunStatus)
            report["base"] = self.counts_base
        if self.resumed:  # what a restart skipped is counted (metrics.RunStatus.nodes)
            report["resumed"] = self.resumed
        report.update(observed(self.graph, self.checkpointer))
        _send(self.control, report)


def _awaited(edge: EdgePlan, index: int) -> str:
    """The producer of `edge` and where this consumer worker meets it: its XPUB, this worker's
    PULL, or the edge's NATS subject."""
    if edge.subject is not None:
        return f"{edge.producer} on NATS subject {edge.subject}"
    if edge.pattern == "pub/sub":
        return f"{edge.producer} at {edge.endpoints[0]}"
    return f"{edge.producer} to connect to {edge.endpoints[index]}"


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used: which worker bounds a run's speed."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
