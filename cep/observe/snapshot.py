"""What the supervisor publishes about its run: one snapshot of plain data (JSON as it is), made
about twice a second from `RunStatus` (the workers' reports) and /proc (the workers' CPU and
memory), and read by the status file (`cep top`) and the Prometheus exporter. One snapshot
serves both, so a scrape or a `cep top` costs the pipeline nothing more than the snapshot did.

Counts are since the run started, over every incarnation of a worker (as in the summary); rates
are over the time since the previous snapshot; `event_time_ns` and lag are the event time of the
latest batch a node passed on, as the workers last reported it. Each order executor's view
(breaker, trading state, venue failures, its book) is `cep.orders.gauges`'.
"""
from __future__ import annotations

import os
import time
from typing import Any

from cep.components.patterns.rule import DROP_REASONS, TOP_KEYS
from cep.orders.gauges import executors
from cep.runtime.metrics import RunStatus, process_usage

FORMAT = 1
"""Version of the snapshot's layout; a reader refuses another."""
PRUNED, DISCARDED = DROP_REASONS["timed_out"], DROP_REASONS["discarded"]


class ProcessSampler:
    """CPU and resident memory of processes by pid, from /proc/PID/stat; CPU as a share of one
    core since the previous sample of the same pid."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (monotonic time, cpu seconds)

    def sample(self, pid: int | None, now: float) -> dict[str, Any]:
        """{"cpu_share": share of a core or None, "rss_bytes": int or None} of `pid` now."""
        usage = process_usage(pid)
        if usage is None:
            return {"cpu_share": None, "rss_bytes": None}
        cpu_s, rss = usage
        before = self._last.get(pid)
        self._last[pid] = (now, cpu_s)
        share = (cpu_s - before[1]) / (now - before[0]) if before and now > before[0] else None
        return {"cpu_share": None if share is None else round(share, 3), "rss_bytes": rss}


def snapshot(status: RunStatus, sampler: ProcessSampler, previous: dict[str, Any] | None = None,
             now: float | None = None) -> dict[str, Any]:
    """The run as it stands: per node, edge, pattern rule, worker and checkpointing worker."""
    now = time.monotonic() if now is None else now
    gauges = status.gauges()
    nodes = _nodes(status, gauges)
    since = None if previous is None else now - previous["monotonic"]
    _rates(nodes, previous["nodes"] if previous and since else None, since, status.elapsed)
    return {
        "format": FORMAT,
        "pipeline": status.plan.name,
        "time": time.time(),
        "monotonic": now,
        "elapsed_s": round(status.elapsed, 3),
        "started": status.started is not None,
        "supervisor": {"pid": os.getpid(), **sampler.sample(os.getpid(), now)},
        "workers": _workers(status, sampler, now),
        "nodes": nodes,
        "edges": _edges(status, gauges),
        "patterns": _patterns(status, gauges, nodes),
        "executors": executors(status),
        "checkpoints": status.checkpoints(),
        "dead_letters": {"path": status.dead_letter_path, "count": status.dead_letters()},
        "links": status.links,  # one host of several: its link to each other host
    }


def _nodes(status: RunStatus, gauges: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    times: dict[str, int] = {}
    for report in gauges.values():
        for node, ns in report.get("times_out", {}).items():
            times[node] = max(ns, times.get(node, ns))
    return {node: {"kind": status.plan.nodes[node].kind, "in": t.received, "out": t.emitted,
                   "filtered": t.filtered, "dropped": dict(t.drops), "dead_lettered": t.dead_lettered,
                   "gaps": t.gaps, "event_time_ns": times.get(node)}
            for node, t in status.nodes().items() if node in status.plan.nodes}


def _rates(nodes: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]] | None, since: float | None,
           elapsed: float) -> None:
    """Events in and out per second: since the previous snapshot, else since the start."""
    for node, now in nodes.items():
        earlier = before.get(node) if before else None
        for count, rate in (("in", "in_per_s"), ("out", "out_per_s")):
            if earlier is not None and since:
                now[rate] = round(max(0, now[count] - earlier[count]) / since, 1)
            else:
                now[rate] = round(now[count] / elapsed, 1) if elapsed > 0 else 0.0


def _edges(status: RunStatus, gauges: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    plan = status.plan
    workers_of = {process.name: process.workers for process in plan.processes}  # one host's, with hosts
    edges = {}
    for edge_id, t in status.edges().items():
        edge = next(e for e in plan.edges if e.id == edge_id)
        sent = _latest(gauges, workers_of.get(edge.producer, ()), "times_out", edge.node)
        read = _latest(gauges, workers_of.get(edge.consumer, ()), "times_in", edge.node)
        edges[edge_id] = {
            "node": edge.node, "from": edge.producer, "to": edge.consumer, "pattern": edge.pattern,
            "delivery": t.delivery, "frames_sent": t.frames_sent, "events_sent": t.events_sent,
            "frames_received": t.frames_received, "events_received": t.events_received,
            "queued": t.queued, "unacked": t.unacked, "retransmitted": t.retransmitted,
            "duplicates": t.duplicates, "refused": t.refused, "dropped": t.dropped,
            "lag_s": None if sent is None or read is None else round(max(0, sent - read) / 1e9, 6)}
    return edges


def _latest(gauges: dict[str, dict[str, Any]], workers: list[str], part: str, node: str) -> int | None:
    """The latest event time `node`'s batches reached in `part` of `workers`' reports."""
    times = [gauges[w][part][node] for w in workers if node in gauges.get(w, {}).get(part, {})]
    return max(times) if times else None


def _patterns(status: RunStatus, gauges: dict[str, dict[str, Any]],
              nodes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per pattern rule: partial matches alive now (over its workers), the keys holding the most,
    and those discarded past `max_partials` or pruned by `within` so far."""
    patterns: dict[str, dict[str, Any]] = {}
    for report in gauges.values():
        for node, reported in report.get("nodes", {}).items():
            if "alive" not in reported:
                continue
            pattern = patterns.setdefault(node, {"alive": 0, "top_keys": []})
            pattern["alive"] += reported["alive"]
            pattern["top_keys"] += reported.get("top_keys", [])
    for node, pattern in patterns.items():
        pattern["top_keys"] = sorted(pattern["top_keys"], key=lambda item: -item[1])[:TOP_KEYS]
        dropped = nodes.get(node, {}).get("dropped", {})
        pattern["discarded"] = dropped.get(DISCARDED, 0)
        pattern["pruned"] = dropped.get(PRUNED, 0)
    return patterns


def _workers(status: RunStatus, sampler: ProcessSampler, now: float) -> dict[str, dict[str, Any]]:
    cpu = status.cpu()
    silent = status.stuck(0.0)
    workers = {}
    for worker in status.plan.workers():
        pid = status.pids.get(worker)
        silence = silent.get(worker)
        workers[worker] = {"pid": pid, "process": status.plan.process_of_worker(worker)[0].name,
                           "cpu_s": round(cpu.get(worker, 0.0), 3), **sampler.sample(pid, now),
                           "restarts": status.restarts.get(worker, 0),
                           "silent_s": None if silence is None else silence.seconds,
                           **_waiting(status.waiting.get(worker))}
    return workers


def _waiting(waiting: dict[str, Any] | None) -> dict[str, Any]:
    """A worker of one host of several that waits for peers on other hosts: for whom, since when."""
    return {"waiting_for": waiting["for"], "waiting_since": waiting["since"]} if waiting else {}
