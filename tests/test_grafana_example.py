"""examples/grafana: the dashboard and the scrape config parse, and every metric the dashboard
queries is one the exporter serves."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cep.observe.prometheus import SnapshotCollector
from cep.observe.snapshot import ProcessSampler, snapshot
from tests.test_observe import EDGE_IN, STRATEGIES, running, status  # noqa: F401 - a fixture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "grafana"


EXECUTOR = {"signals": 5, "denied": 1, "denials": {"CIRCUIT_OPEN": 1},
            "venue": {"failures": 2, "timeouts": 2, "unparseable_replies": 0, "retries": 2},
            "state": "ACTIVE", "breaker": "OPEN", "breaker_since": 1.7e9, "breaker_opened": 1, "working": 1,
            "risk": {"equity": 1.0, "peak_equity": 2.0, "drawdown": 1.0, "realized": 0.5, "unrealized": 0.5,
                     "exposure": 100.0},
            "positions": []}
"""An order executor's view (`cep.orders.gauges.executors`), as a trading run's snapshot has it."""


def served_names(status) -> set[str]:
    """Every sample name the exporter serves for a run with every kind of metric: a reliable edge,
    a checkpointing worker and an order executor besides the plain ones."""
    running(status)
    data = snapshot(status, ProcessSampler())
    data["edges"][EDGE_IN]["delivery"] = "exactly_once"
    data["checkpoints"] = {STRATEGIES[0]: {"count": 3, "seconds": 0.02, "bytes": 4096}}
    data["workers"][STRATEGIES[0]].update(cpu_share=0.5, rss_bytes=2 ** 26)
    data["executors"] = {"exec": EXECUTOR}
    collector = SnapshotCollector()
    collector.latest = data
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def queried_names(dashboard: dict) -> set[str]:
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    exprs += [variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable]
    return {name for expr in exprs for name in re.findall(r"\bcep_[a-z_]+\b", expr)}


def test_every_metric_the_dashboard_queries_is_served(status):  # noqa: F811 - the fixture
    dashboard = json.loads((EXAMPLES / "cep-dashboard.json").read_text())
    queried = queried_names(dashboard)
    assert len(queried) >= 15
    assert queried - served_names(status) == set()


def test_the_scrape_config_targets_the_default_metrics_port():
    config = yaml.safe_load((EXAMPLES / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9464"]
