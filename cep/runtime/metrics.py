"""What a run did, per node and per edge, summed over workers and their incarnations.

Workers report cumulative counters about twice a second. How a restart adds up:
- a worker that checkpoints (exactly_once) keeps its counts in the checkpoint, with the state
  they describe; its restarted incarnation reports them as `base` plus what it did since, and
  that replaces every earlier incarnation's counts (what the dead one did after its last
  checkpoint is done again, and counted once);
- any other restarted worker starts from zero: the status keeps the last report of each
  incarnation and sums them, so counts survive a crash up to the dead incarnation's last report.
A node that runs in several processes (a stateless stream fused into each consumer's) is counted
in one of them, the first in plan order: each copy sees the same records. Drops are kept per
reason; records a `filter` removed are counted apart (`filtered`), as they are not lost.

While a run goes, workers report at the same wall-clock instants (rounds); the status shows each
running worker's report of the latest round all of them reached, so a count downstream is never
from a later instant than the counts upstream of it.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Union

from cep.plan import Delivery, Plan
from cep.runtime.deadletter import dead_letter_files

LIVE_COUNTS = frozenset({"unacked"})
"""Edge counters that say how things are now, not how many happened: never added up."""


def added(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Two reports' counts (nested dicts of counts, plain data) added up key by key."""
    total = dict(base)
    for key, value in more.items():
        if key in LIVE_COUNTS or key not in total:
            total[key] = value
        elif isinstance(value, dict):
            total[key] = added(total[key], value)
        else:
            total[key] = total[key] + value
    return total


LAGGING = 2
"""A running worker this many rounds of reports behind the others does not hold the status back."""
COUNTED = ("nodes", "edges_out", "edges_in")
"""The parts of a report that are counts (the rest: incarnation, cpu time)."""
COUNTS_SCHEMA = dict[str, dict[str, dict[str, Union[int, dict[str, int]]]]]
"""Counts as a checkpoint keeps them: part -> node or edge -> counter -> count or counts per reason."""


@dataclass
class NodeTotals:
    received: int = 0
    emitted: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    gaps: int = 0
    filtered: int = 0
    drops: dict[str, int] = field(default_factory=dict)  # dropped, per reason
    noted: dict[str, int] = field(default_factory=dict)  # let through despite a problem, per reason

    def drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped += count
            self.drops[reason] = self.drops.get(reason, 0) + count


@dataclass
class EdgeTotals:
    """One socket edge, summed over its workers: what reliable delivery did on it."""

    delivery: Delivery
    dropped: int = 0
    unacked: int = 0         # frames waiting for acknowledgement now (current incarnations only)
    retransmitted: int = 0
    duplicates: int = 0
    refused: int = 0         # frames and acks refused as implausible (cep.runtime.security)
    frames_sent: int = 0     # by its producer workers (a pub/sub outlet's frames count on each of its edges)
    events_sent: int = 0
    frames_received: int = 0  # by its consumer workers (another partition's frames are not theirs)
    events_received: int = 0
    missed: int = 0          # events sent while a consumer worker was down (of `dropped`)

    @property
    def queued(self) -> int:
        """Events sent on the edge that its consumers have not read yet, from both sides' counts of
        the same instant: ZeroMQ's queues and the consumer's unread socket buffer. An estimate:
        what a consumer that crashed had not read stays in it under at_most_once."""
        return max(0, self.events_sent - self.missed - self.events_received)


STUCK_AFTER_S = 10.0
STUCK_RULE = """A worker is stuck when the supervisor has heard nothing from it for `--stuck-after`
seconds (default 10) after the run started and before the worker finished. A worker's loop
reports after every pass, at most twice a second, so only a single pass that long (one long
computation, e.g. a pattern without `within` trying every combination) or a block in a send
keeps it silent. Busy or waiting is told by the CPU time its process used meanwhile
(/proc/PID/stat): busy at a tenth of a core or more. A worker waiting on a socket wakes every
50 ms and uses far less; one computing gets what the scheduler gives it, which on a loaded
machine can be much less than a core (a spinning worker measured 22% next to six busy ones)."""


@dataclass(frozen=True)
class Silence:
    """A stretch of time in which a worker sent nothing to the supervisor."""

    seconds: float
    cpu_share: float | None = None  # CPU time its process used in it, per second; None if unknown

    def describe(self) -> str:
        if self.cpu_share is None:
            return f"no progress for {self.seconds:.1f}s"
        state = "busy" if self.cpu_share >= BUSY_SHARE else "waiting"
        return f"no progress for {self.seconds:.1f}s, {state} (CPU {self.cpu_share:.0%})"


NO_SILENCE = Silence(0.0)


@dataclass(frozen=True)
class _Heard:
    """The last message from a worker: when, its pid then, and its CPU seconds by /proc and by
    its own report (None where unknown)."""

    at: float
    pid: int | None = None
    proc_cpu_s: float | None = None
    reported_cpu_s: float | None = None
BUSY_SHARE = 0.1


def _cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds of process `pid` so far, from /proc; None if unknown."""
    usage = process_usage(pid)
    return None if usage is None else usage[0]


def process_usage(pid: int | None) -> tuple[float, int] | None:
    """(user plus system CPU seconds so far, resident bytes) of process `pid`, from
    /proc/PID/stat; None if it is gone or unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[21]) * PAGE_SIZE


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class RunStatus:
    plan: Plan
    started: float | None = None
    finished: float | None = None
    interrupted: bool = False
    drained: bool = True  # False when the drain deadline or a second interrupt cut the drain short
    signal: int | None = None  # SIGINT or SIGTERM, when one stopped the run
    pids: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # other host -> its link (hostlink.HostLink.states)
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)  # worker -> {"for": peers, "since": time.time()}
    inline: bool = False
    _reports: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    _continued: dict[str, int] = field(default_factory=dict)  # worker -> incarnation that carries the counts on
    _earlier: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # the report before the last
    _heard: dict[str, _Heard] = field(default_factory=dict)
    _longest: dict[str, Silence] = field(default_factory=dict)  # worker -> its longest silence so far
    _done: set[str] = field(default_factory=set)

    def heard(self, worker: str, kind: str, now: float | None = None, cpu_s: float | None = None) -> None:
        """The supervisor got a message from `worker` (its loop sends metrics twice a second);
        `cpu_s`, the CPU time the worker reports using since it started, if the message says."""
        now = time.monotonic() if now is None else now
        silence = self._silence(worker, now, cpu_s)
        if silence is not None and silence.seconds > self._longest.get(worker, NO_SILENCE).seconds:
            self._longest[worker] = silence
        pid = self.pids.get(worker)
        self._heard[worker] = _Heard(now, pid, _cpu_seconds(pid), cpu_s)
        if kind == "done":
            self._done.add(worker)

    def stuck(self, after_s: float, now: float | None = None) -> dict[str, Silence]:
        """Workers silent for `after_s` seconds or more now, while the run goes on (STUCK_RULE)."""
        now = time.monotonic() if now is None else now
        silences = {worker: self._silence(worker, now) for worker in self.pids}
        return {worker: silence for worker, silence in silences.items()
                if silence is not None and silence.seconds >= after_s}

    def silences(self) -> dict[str, Silence]:
        """Each worker's longest silence in the run, the one going on at its end included."""
        longest = dict(self._longest)
        for worker, silence in self.stuck(0.0, now=self.finished).items():
            if silence.seconds > longest.get(worker, NO_SILENCE).seconds:
                longest[worker] = silence
        return longest

    def _silence(self, worker: str, now: float, reported_cpu_s: float | None = None) -> Silence | None:
        """How long `worker` has been silent at `now`, counted from the start of the run; None
        before the start and once it is done. The CPU it used meanwhile: by its own count when
        the silence ends with a report (its process may be gone by the time the report is
        read), else from /proc."""
        if self.started is None or worker in self._done:
            return None
        last = self._heard.get(worker, _Heard(self.started))
        since = max(last.at, self.started)
        if reported_cpu_s is not None:  # its count starts at the start of the run
            used = reported_cpu_s - ((last.reported_cpu_s or 0.0) if last.at >= self.started else 0.0)
        elif last.pid == self.pids.get(worker) and last.proc_cpu_s is not None:  # not across a restart
            now_cpu_s = _cpu_seconds(last.pid)
            used = None if now_cpu_s is None else now_cpu_s - last.proc_cpu_s
        else:
            used = None
        share = used / (now - since) if used is not None and used >= 0 and now > since else None
        return Silence(round(now - since, 3), share)

    def update(self, worker: str, report: dict[str, Any]) -> None:
        incarnation = report.get("incarnation", 0)
        if "base" in report:  # restored from a checkpoint: earlier incarnations are included
            base = report["base"]
            report = dict(report, **{part: added(base.get(part, {}), report.get(part, {})) for part in COUNTED})
            self._continued[worker] = max(incarnation, self._continued.get(worker, 0))
        key = (worker, incarnation)
        if key in self._reports:
            self._earlier[key] = self._reports[key]
        self._reports[key] = report

    def record_inline(self, report: dict[str, Any]) -> None:
        self._reports[("inline", 0)] = report
        self.inline = True

    def _counted(self) -> list[tuple[str, int, dict[str, Any]]]:
        """(worker, incarnation, report) of the reports whose counts add up to the run's: of the
        running workers', those of one round (`_round`), so that no count is from a later instant
        than the counts upstream of it."""
        shown = self._round()
        counted = []
        for key, report in self._reports.items():
            worker, incarnation = key
            if incarnation < self._continued.get(worker, 0):
                continue
            if (shown is not None and report.get("t") == "metrics" and report.get("round", shown) > shown
                    and key in self._earlier):
                report = self._earlier[key]
            counted.append((worker, incarnation, report))
        return counted

    def _round(self) -> int | None:
        """The latest round every running worker has reported (workers more than `LAGGING`
        rounds behind, stuck or dead, are shown as they last were), None when none runs."""
        latest_incarnation = self._latest_incarnations()
        rounds = [report["round"] for (worker, incarnation), report in self._reports.items()
                  if incarnation == latest_incarnation[worker] and report.get("t") == "metrics"
                  and "round" in report]
        if not rounds:
            return None
        latest = max(rounds)
        return min(r for r in rounds if r >= latest - LAGGING)

    def _latest_incarnations(self) -> dict[str, int]:
        latest: dict[str, int] = {}
        for worker, incarnation in self._reports:
            latest[worker] = max(incarnation, latest.get(worker, 0))
        return latest

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def nodes(self) -> dict[str, NodeTotals]:
        """Per pipeline node, each counted once (a node fused into several processes, in the
        first of them)."""
        totals = {node: NodeTotals() for node in self.plan.nodes}
        edge_node = {edge.id: edge.node for edge in self.plan.edges}
        process_of, home = self._homes()
        for worker, _, report in self._counted():
            process = process_of.get(worker)
            for node, counters in report.get("nodes", {}).items():
                if process is not None and home.get(node, process) != process:
                    continue  # a copy of a stream counted in its first process
                total = totals.setdefault(node, NodeTotals())
                total.received += counters["in"]
                total.emitted += counters["out"]
                total.filtered += counters.get("filtered", 0)
                for reason, count in counters["dropped"].items():
                    total.drop(reason, count)
                for reason, count in counters.get("noted", {}).items():
                    total.noted[reason] = total.noted.get(reason, 0) + count
                total.dead_lettered += counters["dead_lettered"]
            for edge_id, counters in report.get("edges_out", {}).items():
                total = totals[edge_node[edge_id]]
                total.drop("consumer down", counters.get("missed", 0))
                total.drop("peer full", counters["dropped"] - counters.get("missed", 0))
            for edge_id, counters in report.get("edges_in", {}).items():
                totals[edge_node[edge_id]].gaps += counters["gaps"]
        for node, skipped in self._skipped_at_restarts().items():
            totals[node].drop("restart", skipped)
        return totals

    def _skipped_at_restarts(self) -> dict[str, int]:
        """Per source, the records restarted gateways skipped (at_most_once resumes past what it
        had reserved): where each incarnation resumed, less where its predecessor had got to by
        its last report. Records the predecessor sent after that report are counted here too."""
        skipped: dict[str, int] = {}
        for worker in {worker for worker, _ in self._reports}:
            reached: dict[str, int] = {}
            for incarnation in sorted(i for w, i in self._reports if w == worker):
                report = self._reports[(worker, incarnation)]
                for node, offset in report.get("resumed", {}).items():
                    skipped[node] = skipped.get(node, 0) + max(0, offset - reached.get(node, 0))
                    reached[node] = offset
                for node, counters in report.get("nodes", {}).items():
                    reached[node] = reached.get(node, 0) + counters["out"]
        return skipped

    def noted(self) -> dict[str, dict[str, int]]:
        """Per node, records let through despite a problem, by reason (e.g. `late` rows kept)."""
        return {node: totals.noted for node, totals in self.nodes().items() if totals.noted}

    def _homes(self) -> tuple[dict[str, str], dict[str, str]]:
        """(worker -> its process, node -> the first process that hosts it)."""
        process_of: dict[str, str] = {}
        home: dict[str, str] = {}
        for process in self.plan.processes:
            process_of.update(dict.fromkeys(process.workers, process.name))
            for node in process.nodes:
                home.setdefault(node, process.name)
        return process_of, home

    def cpu(self) -> dict[str, float]:
        """CPU seconds each worker used while the run went (all its incarnations)."""
        used: dict[str, float] = {}
        for (worker, _), report in self._reports.items():
            used[worker] = used.get(worker, 0.0) + report.get("cpu_s", 0.0)
        return used

    def refused_connections(self) -> int:
        """tcp connections refused by CURVE (no keys, or other keys) in every worker."""
        return sum(report.get("refused_connections", 0) for report in self._reports.values())

    def edges(self) -> dict[str, EdgeTotals]:
        """Per socket edge, in plan order."""
        totals = {edge.id: EdgeTotals(edge.delivery) for edge in self.plan.edges}
        latest = self._latest_incarnations()
        for worker, incarnation, report in self._counted():
            for edge_id, counters in report.get("edges_out", {}).items():
                total = totals[edge_id]
                total.dropped += counters["dropped"]
                total.retransmitted += counters.get("retransmitted", 0)
                total.refused += counters.get("refused", 0)
                total.frames_sent += counters.get("frames", 0)
                total.events_sent += counters.get("events", 0)
                total.missed += counters.get("missed", 0)
                if incarnation == latest[worker]:  # a dead incarnation's window died with it
                    total.unacked += counters.get("unacked", 0)
            for edge_id, counters in report.get("edges_in", {}).items():
                total = totals[edge_id]
                total.duplicates += counters.get("duplicates", 0)
                total.refused += counters.get("refused", 0)
                total.frames_received += counters.get("frames", 0)
                total.events_received += counters.get("events", 0)
        return totals

    def gauges(self) -> dict[str, dict[str, Any]]:
        """Per running worker, how things stood at its counted report (`Worker._report`'s
        `gauges`: the event time each node's output and remote inputs reached, each pattern
        rule's partial matches)."""
        latest = self._latest_incarnations()
        return {worker: report.get("gauges", {}) for worker, incarnation, report in self._counted()
                if incarnation == latest[worker]}

    def checkpoints(self) -> dict[str, dict[str, float]]:
        """Per checkpointing worker, over its incarnations: checkpoints taken, the seconds they took,
        and the size of its checkpoint store now (bytes, with its write-ahead log)."""
        latest = self._latest_incarnations()
        totals: dict[str, dict[str, float]] = {}
        for (worker, incarnation), report in self._reports.items():
            taken = report.get("checkpoints")
            if taken is None:
                continue
            total = totals.setdefault(worker, {"count": 0, "seconds": 0.0, "bytes": 0})
            total["count"] += taken["count"]
            total["seconds"] += taken["seconds"]
            if incarnation == latest[worker]:
                total["bytes"] = taken["bytes"]
        return totals

    def rows(self) -> list[tuple[str, str, NodeTotals, float]]:
        """(node, kind, totals, events out per second) in plan order."""
        elapsed = max(self.elapsed, 1e-9)
        return [(node, self.plan.nodes[node].kind, totals, totals.emitted / elapsed if self.plan.nodes[node].kind != "sink"
                 else totals.received / elapsed)
                for node, totals in self.nodes().items()]

    def dead_letters(self) -> int:
        """What this run sent to the dead-letter file (records, rows, frames), over every node."""
        return sum(totals.dead_lettered for totals in self.nodes().values())

    @property
    def dead_letter_path(self) -> str:
        """Where dead letters go: one file, appended to by every run of the pipeline."""
        return os.path.abspath(self.plan.dead_letter)

    def records_read(self) -> int:
        """Records the sources read: those they emitted and those they dead-lettered."""
        return sum(totals.emitted + totals.dead_lettered for node, totals in self.nodes().items()
                   if self.plan.nodes[node].kind == "source")

    def to_dict(self, stuck_after_s: float = STUCK_AFTER_S) -> dict[str, Any]:
        """The summary as plain data (`cep run --summary-json`): per node, edge and worker."""
        cpu = self.cpu()
        workers = [] if self.inline else self.plan.workers()
        silences = self.silences()
        return {
            "pipeline": self.plan.name,
            "elapsed_s": round(self.elapsed, 3),
            "inline": self.inline,
            "interrupted": self.interrupted,
            "drained": self.drained,
            "records_read": self.records_read(),
            "nodes": {node: {"kind": kind, **asdict(totals), "rate_per_s": round(rate, 1)}
                      for node, kind, totals, rate in self.rows()},
            "edges": {edge_id: asdict(totals) for edge_id, totals in self.edges().items()},
            "workers": {worker: {"pid": self.pids.get(worker), "cpu_s": round(cpu.get(worker, 0.0), 3),
                                 "restarts": self.restarts.get(worker, 0),
                                 "longest_silence_s": silences.get(worker, NO_SILENCE).seconds,
                                 "stuck": silences.get(worker, NO_SILENCE).seconds >= stuck_after_s}
                        for worker in workers},
            "dead_letters": {"path": self.dead_letter_path, "count": self.dead_letters(),
                             **dead_letter_files(self.dead_letter_path).to_dict()},
            "notes": list(self.notes),
        }

    def _interruption(self) -> str:
        """How a stopped run ended, for the summary: a drain is claimed only when it finished."""
        if not self.interrupted:
            return ""
        return " (interrupted, drained)" if self.drained else " (interrupted, not drained)"

    def summary_lines(self, stuck_after_s: float = STUCK_AFTER_S) -> list[str]:
        width = max(len(node) for node in self.plan.nodes)
        lines = [f"{'node':<{width}}  {'kind':<6} {'in':>10} {'out':>10} {'dropped':>8} "
                 f"{'dead':>6} {'gaps':>5} {'rate/s':>10}"]
        rows = self.rows()
        for node, kind, t, rate in rows:
            lines.append(f"{node:<{width}}  {kind:<6} {t.received:>10,} {t.emitted:>10,} {t.dropped:>8,} "
                         f"{t.dead_lettered:>6,} {t.gaps:>5,} {rate:>10,.0f}")
        lines += [f"{node}: {removed}" for node, _, t, _ in rows if (removed := _removed(t))]
        restarts = sum(self.restarts.values())
        where = "inline, 1 process" if self.inline else f"{len(self.plan.workers())} worker processes"
        lines.append(f"elapsed {self.elapsed:.2f}s, {where}, "
                     f"restarts {restarts}" + self._interruption())
        if not self.inline and self.elapsed > 0:
            lines.append("cpu " + ", ".join(f"{worker} {seconds:.2f}s ({seconds / self.elapsed:.0%})"
                                            for worker, seconds in sorted(self.cpu().items())))
        lines += [f"delivery {edge_id} {t.delivery}: unacked {t.unacked:,}, retransmitted "
                  f"{t.retransmitted:,}, duplicates {t.duplicates:,}"
                  + (" (removed)" if t.delivery.removes_duplicates else " (passed on)")
                  for edge_id, t in self.edges().items() if t.delivery.reliable]
        lines += [f"kept {node}: " + ", ".join(f"{count:,} {reason}" for reason, count in sorted(reasons.items()))
                  for node, reasons in self.noted().items()]
        lines += [f"stuck: {worker} {silence.describe()}"
                  for worker, silence in sorted(self.silences().items()) if silence.seconds >= stuck_after_s]
        lines.append(f"dead letters: {self.dead_letters():,} this run, appended to {self.dead_letter_path} "
                     + dead_letter_files(self.dead_letter_path).describe())
        lines += [f"note: {note}" for note in self.notes]
        return lines


def _removed(totals: NodeTotals) -> str:
    """What a node let through less than it took in, and why: `filtered 5,000, dropped 12
    (cooldown 10, late 2)`; empty when nothing was."""
    parts = [f"filtered {totals.filtered:,}"] if totals.filtered else []
    if totals.dropped:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(totals.drops.items()))
        parts.append(f"dropped {totals.dropped:,} ({reasons})")
    return ", ".join(parts)
