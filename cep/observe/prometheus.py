"""Prometheus metrics of a running pipeline (`metrics: {port: N}` or `cep run --metrics-port N`).

The supervisor serves them on 127.0.0.1 with `prometheus_client`'s HTTP server (a thread). One
collector turns the latest snapshot (`snapshot.py`) into metric families when a scrape comes:
the workers report to the supervisor as they always do, nothing is counted twice, and a scrape
reads what the last snapshot (at most 0.5 s old) already holds.

Every metric has a `pipeline` label; names and units follow Prometheus' conventions (counters end
in `_total`, time in seconds, sizes in bytes). `METRICS` lists them with their help text (the
Grafana dashboard in examples/grafana and the README are tested against what is served).
"""
from __future__ import annotations

import threading
from typing import Any, Iterator

from cep.errors import RuntimeFailure
from cep.plan import Delivery

HOST = "127.0.0.1"

METRICS: dict[str, tuple[str, str]] = {
    # name: (type, help)
    "cep_node_events_total": ("counter", "Events a node received (direction=in) or emitted (out)."),
    "cep_node_dropped_total": ("counter", "Events a node dropped, by reason."),
    "cep_node_filtered_total": ("counter", "Events a filter let through no further (not lost)."),
    "cep_node_dead_lettered_total": ("counter", "Records, rows or frames a node sent to the dead-letter file."),
    "cep_node_gaps_total": ("counter", "Frames lost in transit before a node (sequence gaps)."),
    "cep_node_event_time_seconds": ("gauge", "Event time of the latest batch a node emitted."),
    "cep_edge_frame_events": ("summary", "Events per frame on a socket edge, as sent or received "
                                         "(_count: frames, _sum: events)."),
    "cep_edge_queued_events": ("gauge", "Events sent on an edge and not read by its consumers yet."),
    "cep_edge_unacked_frames": ("gauge", "Frames a reliable edge's producers keep until acknowledged."),
    "cep_edge_retransmitted_frames_total": ("counter", "Frames a reliable edge sent again."),
    "cep_edge_duplicate_frames_total": ("counter", "Frames received twice on a reliable edge "
                                                   "(removed under exactly_once)."),
    "cep_edge_refused_total": ("counter", "Frames and acknowledgements refused as implausible."),
    "cep_edge_lag_seconds": ("gauge", "Event time an edge's producers reached less what its consumers read."),
    "cep_pattern_partial_matches": ("gauge", "Partial matches a pattern rule holds now."),
    "cep_pattern_partial_matches_discarded_total": ("counter", "Partial matches discarded past max_partials."),
    "cep_pattern_partial_matches_pruned_total": ("counter", "Partial matches pruned by within."),
    "cep_worker_cpu_seconds_total": ("counter", "CPU seconds a worker used, over its incarnations."),
    "cep_worker_cpu_ratio": ("gauge", "Share of a core a worker's process used since the previous snapshot."),
    "cep_worker_resident_memory_bytes": ("gauge", "Resident memory of a worker's process."),
    "cep_worker_restarts_total": ("counter", "Restarts of a worker after a crash."),
    "cep_checkpoint_duration_seconds": ("summary", "Checkpoints a worker took and the seconds they took."),
    "cep_checkpoint_size_bytes": ("gauge", "Size of a worker's checkpoint store on disk."),
    "cep_run_elapsed_seconds": ("gauge", "Seconds since the run started."),
    "cep_executor_breaker_state": ("gauge", "1 for the state an order executor's circuit breaker is in "
                                            "(closed, open, half_open), 0 for the others."),
    "cep_executor_breaker_changed_timestamp_seconds": ("gauge", "Unix time the breaker took its present state."),
    "cep_executor_breaker_opened_total": ("counter", "Times the breaker opened."),
    "cep_executor_trading_state": ("gauge", "1 for an executor's trading state (ACTIVE, REDUCING, HALTED), "
                                            "0 for the others."),
    "cep_executor_working_orders": ("gauge", "Orders sent and not final yet (may still fill)."),
    "cep_executor_venue_failures_total": ("counter", "Venue calls that failed (no reply in time after every "
                                                     "retry, an unparseable reply, an adapter error)."),
    "cep_executor_venue_timeouts_total": ("counter", "Venue requests given up after every retry."),
    "cep_executor_venue_unparseable_replies_total": ("counter", "Venue replies that did not parse."),
    "cep_executor_venue_retries_total": ("counter", "Venue requests sent again after their timeout."),
    "cep_executor_equity": ("gauge", "Realized plus unrealized PnL (positions marked at the bid when long, "
                                     "the ask when short)."),
    "cep_executor_peak_equity": ("gauge", "Highest equity so far."),
    "cep_executor_drawdown": ("gauge", "Peak equity less equity."),
    "cep_executor_realized_pnl": ("gauge", "Realized PnL over every instrument."),
    "cep_executor_unrealized_pnl": ("gauge", "Unrealized PnL over every instrument, at the latest quotes."),
    "cep_executor_exposure": ("gauge", "Sum over instruments of |position| times its mark."),
}
BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")
RISK = {"equity": "cep_executor_equity", "peak_equity": "cep_executor_peak_equity",
        "drawdown": "cep_executor_drawdown", "realized": "cep_executor_realized_pnl",
        "unrealized": "cep_executor_unrealized_pnl", "exposure": "cep_executor_exposure"}
VENUE = {"failures": "cep_executor_venue_failures_total", "timeouts": "cep_executor_venue_timeouts_total",
         "unparseable_replies": "cep_executor_venue_unparseable_replies_total",
         "retries": "cep_executor_venue_retries_total"}


class SnapshotCollector:
    """A prometheus_client collector of the latest snapshot (`latest`, replaced whole by the
    supervisor; a scrape in between sees the one before)."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None

    def collect(self) -> Iterator[Any]:
        snapshot = self.latest
        if snapshot is None:
            return iter(())
        families = _Families(snapshot["pipeline"])
        _node_metrics(families, snapshot)
        _edge_metrics(families, snapshot)
        _worker_metrics(families, snapshot)
        _executor_metrics(families, snapshot)
        families.add("cep_run_elapsed_seconds", {}, snapshot["elapsed_s"])
        return iter(families.done())


class _Families:
    """Metric families by name, each sample labelled with the pipeline first."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.families: dict[str, Any] = {}

    def add(self, name: str, labels: dict[str, str], value: float | None) -> None:
        if value is None:
            return
        family = self._family(name, labels)
        family.add_metric([self.pipeline, *labels.values()], value)

    def add_summary(self, name: str, labels: dict[str, str], count: float, total: float) -> None:
        self._family(name, labels).add_metric([self.pipeline, *labels.values()], count_value=count,
                                              sum_value=total)

    def _family(self, name: str, labels: dict[str, str]) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
        family = self.families.get(name)
        if family is None:
            kind, text = METRICS[name]
            cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "summary": SummaryMetricFamily}[kind]
            family = self.families[name] = cls(name, text, labels=["pipeline", *labels])
        return family

    def done(self) -> list[Any]:
        return list(self.families.values())


def _node_metrics(families: _Families, snapshot: dict[str, Any]) -> None:
    for node, n in snapshot["nodes"].items():
        families.add("cep_node_events_total", {"node": node, "kind": n["kind"], "direction": "in"}, n["in"])
        families.add("cep_node_events_total", {"node": node, "kind": n["kind"], "direction": "out"}, n["out"])
        for reason, count in n["dropped"].items():
            families.add("cep_node_dropped_total", {"node": node, "reason": reason}, count)
        families.add("cep_node_filtered_total", {"node": node}, n["filtered"])
        families.add("cep_node_dead_lettered_total", {"node": node}, n["dead_lettered"])
        families.add("cep_node_gaps_total", {"node": node}, n["gaps"])
        time_ns = n.get("event_time_ns")
        families.add("cep_node_event_time_seconds", {"node": node}, None if time_ns is None else time_ns / 1e9)
    for node, p in snapshot["patterns"].items():
        families.add("cep_pattern_partial_matches", {"node": node}, p["alive"])
        families.add("cep_pattern_partial_matches_discarded_total", {"node": node}, p["discarded"])
        families.add("cep_pattern_partial_matches_pruned_total", {"node": node}, p["pruned"])


def _edge_metrics(families: _Families, snapshot: dict[str, Any]) -> None:
    for edge_id, e in snapshot["edges"].items():
        labels = {"edge": edge_id, "node": e["node"], "delivery": e["delivery"]}
        families.add_summary("cep_edge_frame_events", {**labels, "direction": "sent"},
                             e["frames_sent"], e["events_sent"])
        families.add_summary("cep_edge_frame_events", {**labels, "direction": "received"},
                             e["frames_received"], e["events_received"])
        families.add("cep_edge_queued_events", labels, e["queued"])
        families.add("cep_edge_lag_seconds", labels, e["lag_s"])
        families.add("cep_edge_refused_total", labels, e["refused"])
        if Delivery(e["delivery"]).reliable:
            families.add("cep_edge_unacked_frames", labels, e["unacked"])
            families.add("cep_edge_retransmitted_frames_total", labels, e["retransmitted"])
            families.add("cep_edge_duplicate_frames_total", labels, e["duplicates"])


def _worker_metrics(families: _Families, snapshot: dict[str, Any]) -> None:
    for worker, w in snapshot["workers"].items():
        labels = {"worker": worker}
        families.add("cep_worker_cpu_seconds_total", labels, w["cpu_s"])
        families.add("cep_worker_cpu_ratio", labels, w["cpu_share"])
        families.add("cep_worker_resident_memory_bytes", labels, w["rss_bytes"])
        families.add("cep_worker_restarts_total", labels, w["restarts"])
    for worker, c in snapshot["checkpoints"].items():
        families.add_summary("cep_checkpoint_duration_seconds", {"worker": worker}, c["count"], c["seconds"])
        families.add("cep_checkpoint_size_bytes", {"worker": worker}, c["bytes"])


class Exporter:
    """The HTTP server of one run's metrics on 127.0.0.1:`port` (a daemon thread)."""

    def __init__(self, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise RuntimeFailure("serving metrics needs prometheus_client, a dependency of cep installed after "
                                 "this environment was: pip install 'prometheus_client>=0.17'") from None
        self.collector = SnapshotCollector()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        try:
            self._server, self._thread = start_http_server(port, addr=HOST, registry=registry)
        except OSError as exc:
            raise RuntimeFailure(f"cannot serve metrics on {HOST}:{port}: {exc.strerror or exc} (another "
                                 "process has the port? choose another with metrics.port or --metrics-port)") from None
        self.port = self._server.server_address[1]

    def publish(self, snapshot: dict[str, Any]) -> None:
        self.collector.latest = snapshot

    def close(self) -> None:
        """Stop serving without waiting: the server notices within its poll interval (0.5 s),
        which the run's end should not wait for; then its port is free."""
        def stop() -> None:
            self._server.shutdown()
            self._server.server_close()

        threading.Thread(target=stop, name="cep-metrics-close", daemon=True).start()


def _executor_metrics(families: _Families, snapshot: dict[str, Any]) -> None:
    """Per order executor (`cep.orders.gauges`); its denials are `cep_node_dropped_total` of its
    node, by reason code. Totals only: instruments are data, like a pattern's keys."""
    for node, x in snapshot.get("executors", {}).items():
        labels = {"node": node}
        for key, name in VENUE.items():
            families.add(name, labels, x["venue"][key])
        if x["breaker"] is None:  # not reported yet
            continue
        for state in BREAKER_STATES:
            families.add("cep_executor_breaker_state", {**labels, "state": state.lower()},
                         int(x["breaker"] == state))
        families.add("cep_executor_breaker_changed_timestamp_seconds", labels, x["breaker_since"])
        families.add("cep_executor_breaker_opened_total", labels, x["breaker_opened"])
        for state in TRADING_STATES:
            families.add("cep_executor_trading_state", {**labels, "state": state}, int(x["state"] == state))
        families.add("cep_executor_working_orders", labels, x["working"])
        for key, name in RISK.items():
            families.add(name, labels, x["risk"][key])
