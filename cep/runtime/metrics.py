"""What a run did, per node and per edge, summed over workers and their incarnations.

Workers report cumulative counters; a restarted worker starts from zero, so the status keeps the
last report of every (worker, incarnation) and sums them: counts survive a crash up to the crashed
incarnation's last report.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cep.compiler.plan import Plan


@dataclass
class NodeTotals:
    received: int = 0
    emitted: int = 0
    dropped: int = 0
    dead_lettered: int = 0
    gaps: int = 0


@dataclass
class EdgeTotals:
    """One socket edge, summed over its workers: what reliable delivery did on it."""

    delivery: str
    dropped: int = 0
    unacked: int = 0         # frames waiting for acknowledgement now (current incarnations only)
    retransmitted: int = 0
    duplicates: int = 0
    refused: int = 0         # frames and acks refused as implausible (cep.runtime.security)


@dataclass
class RunStatus:
    plan: Plan
    started: float | None = None
    finished: float | None = None
    interrupted: bool = False
    signal: int | None = None  # SIGINT or SIGTERM, when one stopped the run
    pids: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    inline: bool = False
    _reports: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def update(self, worker: str, report: dict[str, Any]) -> None:
        self._reports[(worker, report.get("incarnation", 0))] = report

    def record_inline(self, report: dict[str, Any]) -> None:
        self._reports[("inline", 0)] = report
        self.inline = True

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def nodes(self) -> dict[str, NodeTotals]:
        """Per pipeline node. A replicated stream is summed over its processes."""
        totals = {node: NodeTotals() for node in self.plan.nodes}
        edge_node = {edge.id: edge.node for edge in self.plan.edges}
        for report in self._reports.values():
            for node, counters in report.get("nodes", {}).items():
                total = totals.setdefault(node, NodeTotals())
                total.received += counters["in"]
                total.emitted += counters["out"]
                total.dropped += sum(counters["dropped"].values())
                total.dead_lettered += counters["dead_lettered"]
            for edge_id, counters in report.get("edges_out", {}).items():
                totals[edge_node[edge_id]].dropped += counters["dropped"]
            for edge_id, counters in report.get("edges_in", {}).items():
                totals[edge_node[edge_id]].gaps += counters["gaps"]
        return totals

    def noted(self) -> dict[str, dict[str, int]]:
        """Per node, records let through despite a problem, by reason (e.g. `late` rows kept)."""
        noted: dict[str, dict[str, int]] = {}
        for report in self._reports.values():
            for node, counters in report.get("nodes", {}).items():
                for reason, count in counters.get("noted", {}).items():
                    reasons = noted.setdefault(node, {})
                    reasons[reason] = reasons.get(reason, 0) + count
        return noted

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
        latest: dict[str, int] = {}
        for worker, incarnation in self._reports:
            latest[worker] = max(incarnation, latest.get(worker, 0))
        for (worker, incarnation), report in self._reports.items():
            for edge_id, counters in report.get("edges_out", {}).items():
                total = totals[edge_id]
                total.dropped += counters["dropped"]
                total.retransmitted += counters.get("retransmitted", 0)
                total.refused += counters.get("refused", 0)
                if incarnation == latest[worker]:  # a dead incarnation's window died with it
                    total.unacked += counters.get("unacked", 0)
            for edge_id, counters in report.get("edges_in", {}).items():
                totals[edge_id].duplicates += counters.get("duplicates", 0)
                totals[edge_id].refused += counters.get("refused", 0)
        return totals

    def rows(self) -> list[tuple[str, str, NodeTotals, float]]:
        """(node, kind, totals, events out per second) in plan order."""
        elapsed = max(self.elapsed, 1e-9)
        return [(node, self.plan.nodes[node].kind, totals, totals.emitted / elapsed if self.plan.nodes[node].kind != "sink"
                 else totals.received / elapsed)
                for node, totals in self.nodes().items()]

    def summary_lines(self) -> list[str]:
        width = max(len(node) for node in self.plan.nodes)
        lines = [f"{'node':<{width}}  {'kind':<6} {'in':>10} {'out':>10} {'dropped':>8} "
                 f"{'dead':>6} {'gaps':>5} {'rate/s':>10}"]
        for node, kind, t, rate in self.rows():
            lines.append(f"{node:<{width}}  {kind:<6} {t.received:>10,} {t.emitted:>10,} {t.dropped:>8,} "
                         f"{t.dead_lettered:>6,} {t.gaps:>5,} {rate:>10,.0f}")
        restarts = sum(self.restarts.values())
        where = "inline, 1 process" if self.inline else f"{len(self.plan.workers())} worker processes"
        lines.append(f"elapsed {self.elapsed:.2f}s, {where}, "
                     f"restarts {restarts}" + (" (interrupted, drained)" if self.interrupted else ""))
        if not self.inline and self.elapsed > 0:
            lines.append("cpu " + ", ".join(f"{worker} {seconds:.2f}s ({seconds / self.elapsed:.0%})"
                                            for worker, seconds in sorted(self.cpu().items())))
        lines += [f"delivery {edge_id} {t.delivery}: unacked {t.unacked:,}, retransmitted "
                  f"{t.retransmitted:,}, duplicates {t.duplicates:,}"
                  + (" (removed)" if t.delivery == "exactly_once" else " (passed on)")
                  for edge_id, t in self.edges().items() if t.delivery != "at_most_once"]
        lines += [f"kept {node}: " + ", ".join(f"{count:,} {reason}" for reason, count in sorted(reasons.items()))
                  for node, reasons in self.noted().items()]
        lines += [f"note: {note}" for note in self.notes]
        return lines
