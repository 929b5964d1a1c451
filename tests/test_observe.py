"""What the supervisor publishes about a run (cep/observe): the snapshot made from the workers'
reports, the status file `cep top` reads, the Prometheus exposition, and `cep top`'s verdicts on
a run directory; no processes (tests/test_observe_run.py runs real ones)."""
from __future__ import annotations

import json
import weakref
import re
import os
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import cep
from cep.components.patterns.matcher import Matcher
from cep.components.patterns.params import PatternParams
from cep.observe.gauges import event_time
from cep.observe.prometheus import METRICS, SnapshotCollector
from cep.observe.snapshot import ProcessSampler, snapshot
from cep.observe.statusfile import StatusFile, Untrusted, read_status
from cep.observe.top import NothingRunning, current_status, render, run_dir_of
from cep.rows import Rows
from cep.runtime.hub import Hub
from cep.runtime.metrics import RunStatus

WATCHED = """
version: 1
name: watched
sources:
  ticks: {type: synthetic, instruments: 4, seed: 3, count: 1000000, rate: 2000, speed: realtime}
streams:
  quotes: {from: ticks, ops: [{map: {mid: "(bid_price + ask_price) / 2"}}]}
rules:
  rises:
    from: quotes
    partition_by: instrument
    within: 1s
    pattern:
      - {name: first}
      - {name: up, where: "mid > first.mid", times: 3}
sinks:
  signals: {type: jsonl, from: [rises], path: out/signals.jsonl}
deploy:
  rises: {parallelism: 2}
"""
EDGE_IN, EDGE_OUT = "ticks->strategy-x2-instrument", "rises->sink-signals"
STRATEGIES = ("strategy-x2-instrument.0", "strategy-x2-instrument.1")
SECOND = 1_000_000_000


def node(received: int, emitted: int, dropped: dict | None = None) -> dict:
    return {"in": received, "out": emitted, "dropped": dropped or {}, "dead_lettered": 0}


def edge(frames: int, events: int) -> dict:
    return {"frames": frames, "events": events, "dropped": 0, "gaps": 0}


@pytest.fixture
def status(workdir) -> RunStatus:
    path = workdir / "watched.yaml"
    path.write_text(WATCHED)
    status = RunStatus(cep.compile(path))
    status.started = 0.0
    return status


def report(status: RunStatus, worker: str, **parts) -> None:
    status.update(worker, {"t": "metrics", "incarnation": 0, "round": 1, **parts})


def running(status: RunStatus, sent: int = 1000, received: int = 900) -> None:
    """Reports of one round: the gateway sent `sent` ticks, the strategies read `received`."""
    report(status, "gateway-ticks", nodes={"ticks": node(0, sent)}, edges_out={EDGE_IN: edge(sent // 10, sent)},
           gauges={"times_out": {"ticks": 100 * SECOND}})
    for index, worker in enumerate(STRATEGIES):
        report(status, worker, nodes={"quotes": node(received // 2, received // 2),
                                      "rises": node(received // 2, 3, {"partial_match_within": 5 + index})},
               edges_in={EDGE_IN: edge(received // 20, received // 2)}, edges_out={EDGE_OUT: edge(3, 3)},
               gauges={"times_in": {"ticks": (97 + index) * SECOND}, "times_out": {"quotes": 98 * SECOND},
                       "nodes": {"rises": {"alive": 10 + index, "top_keys": [[f"I{index}", 6], [f"J{index}", 4 - index]]}}})


def test_a_snapshot_adds_up_pattern_rules_over_workers_and_keeps_the_keys_holding_most(status):
    running(status)
    rises = snapshot(status, ProcessSampler())["patterns"]["rises"]
    assert rises["alive"] == 21
    assert rises["top_keys"] == [["I0", 6], ["I1", 6], ["J0", 4], ["J1", 3]]
    assert rises["pruned"] == 11 and rises["discarded"] == 0


def test_an_edge_shows_what_is_queued_on_it_and_its_lag_in_event_time(status):
    running(status, sent=1000, received=900)
    ticks = snapshot(status, ProcessSampler())["edges"][EDGE_IN]
    assert (ticks["events_sent"], ticks["events_received"], ticks["queued"]) == (1000, 900, 100)
    assert ticks["lag_s"] == 2.0  # the gateway is at 100 s, the furthest strategy at 98 s


def test_rates_are_over_the_time_since_the_previous_snapshot(status):
    sampler = ProcessSampler()
    running(status, sent=1000)
    first = snapshot(status, sampler, now=10.0)
    running(status, sent=3000)
    second = snapshot(status, sampler, previous=first, now=12.0)
    assert second["nodes"]["ticks"]["out_per_s"] == 1000.0


def test_the_snapshot_is_json_and_samples_live_processes(status):
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        status.pids["gateway-ticks"] = child.pid
        running(status)
        sampler = ProcessSampler()
        snapshot(status, sampler, now=1.0)
        data = json.loads(json.dumps(snapshot(status, sampler, now=2.0)))
    finally:
        child.communicate(b"")
    gateway = data["workers"]["gateway-ticks"]
    assert gateway["rss_bytes"] > 0 and gateway["cpu_share"] is not None
    assert data["workers"]["sink-signals"]["rss_bytes"] is None  # no pid yet


def test_the_exposition_parses_and_every_family_is_documented(status):
    running(status)
    collector = SnapshotCollector()
    collector.latest = snapshot(status, ProcessSampler())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert set(families) <= {name.removesuffix("_total") for name in METRICS}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    assert samples[("cep_node_events_total", (("direction", "out"), ("kind", "source"), ("node", "ticks"),
                                              ("pipeline", "watched")))] == 1000
    assert samples[("cep_pattern_partial_matches", (("node", "rises"), ("pipeline", "watched")))] == 21
    assert samples[("cep_edge_frame_events_count", (("delivery", "at_most_once"), ("direction", "sent"),
                                                    ("edge", EDGE_IN), ("node", "ticks"),
                                                    ("pipeline", "watched")))] == 100


def test_event_time_is_the_last_record_s_of_rows_or_records():
    rows, records = Hub(), Hub()
    rows.on_next(Rows(("instrument", "timestamp"), [("A", 5), ("B", 7)]))
    records.on_next([{"timestamp": 3}, {"timestamp": 9}])
    assert event_time(rows.last, rows.last_fields) == 7
    assert event_time(records.last, records.last_fields) == 9
    assert event_time({"mid": 1.0}) is None and event_time(None) is None
    assert event_time(("A", 1.0), ("instrument", "mid")) is None


def test_a_hub_keeps_no_batch_alive_past_its_pass():
    """Keeping the latest batch (for its event time) kept its rows past the young GC generation
    and cost 10-15% of at_most_once throughput; only the last record may stay."""
    class Batch(list):
        pass

    hub = Hub()
    batch = Batch([("A", 5), ("B", 7)])
    gone = weakref.ref(batch)
    hub.on_next(Rows(("instrument", "timestamp"), batch))
    del batch
    assert gone() is None
    assert hub.last == ("B", 7)


def test_a_matcher_reports_its_partial_matches_and_the_keys_holding_most():
    params = PatternParams.model_validate({"pattern": [{"name": "a"}, {"name": "b", "where": "x > a.x"}]})
    matcher = Matcher(params.compile(), 100)
    for key, count in (("A", 3), ("B", 1), ("C", 2)):
        for index in range(count):
            matcher.feed(key, {"timestamp": index, "x": -index})  # each event starts a run, none ends
    assert matcher.partials(2) == (6, [("A", 3), ("C", 2)])


# -- the status file ----------------------------------------------------------------------------
def test_the_status_file_is_private_and_read_back(tmp_path):
    writer = StatusFile(tmp_path)
    writer.write({"format": 1, "pipeline": "p"})
    assert oct(writer.path.stat().st_mode & 0o777) == "0o600"
    assert read_status(tmp_path) == {"format": 1, "pipeline": "p"}
    writer.remove()
    assert read_status(tmp_path) is None


@pytest.mark.parametrize("tamper", ["group_writable_file", "symlink", "open_directory"])
def test_a_status_file_someone_else_could_have_written_is_not_read(tmp_path, tamper):
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    StatusFile(run_dir).write({"format": 1})
    path = run_dir / "status.json"
    if tamper == "group_writable_file":
        path.chmod(0o620)
    elif tamper == "symlink":
        (tmp_path / "elsewhere.json").write_text('{"format": 1}')
        path.unlink()
        path.symlink_to(tmp_path / "elsewhere.json")
    else:
        run_dir.chmod(0o777)
    with pytest.raises(Untrusted):
        read_status(run_dir)


def test_a_status_file_of_another_format_is_refused(tmp_path):
    (tmp_path / "status.json").write_text('{"format": 99}')
    (tmp_path / "status.json").chmod(0o600)
    with pytest.raises(Exception, match="not a status snapshot this cep can read"):
        read_status(tmp_path)


# -- cep top's verdicts -------------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_top_says_nothing_runs_in_a_run_directory_that_does_not_exist(tmp_path):
    with pytest.raises(NothingRunning, match="does not exist"):
        current_status(tmp_path / "missing")


def test_top_says_nothing_runs_where_no_run_is_in_progress(tmp_path):
    with pytest.raises(NothingRunning, match="no run is in progress"):
        current_status(tmp_path)


def test_top_says_a_run_whose_supervisor_died_is_not_running(tmp_path):
    (tmp_path / "running").write_text(json.dumps({"pid": dead_pid(), "started": 0, "plan": "", "incarnations": {}}))
    with pytest.raises(NothingRunning, match=r"supervisor \(pid \d+\) is gone"):
        current_status(tmp_path)


def test_top_without_a_target_passes_over_runs_whose_supervisor_died(tmp_path, monkeypatch):
    monkeypatch.setenv("CEP_RUN_DIR", str(tmp_path))
    (tmp_path / "dead").mkdir(mode=0o700)
    (tmp_path / "dead" / "running").write_text(json.dumps({"pid": dead_pid()}))
    with pytest.raises(NothingRunning, match=f"no pipeline is running under {tmp_path}"):
        run_dir_of(None)


def test_top_says_a_status_left_by_a_killed_supervisor_is_not_a_run(status, tmp_path):
    running(status)
    left = snapshot(status, ProcessSampler())
    left["supervisor"]["pid"] = dead_pid()
    StatusFile(tmp_path).write(left)
    with pytest.raises(NothingRunning, match="is gone"):
        current_status(tmp_path)


def test_top_says_when_a_live_supervisor_stopped_publishing(status, tmp_path):
    running(status)
    old = snapshot(status, ProcessSampler())
    old["time"] -= 60
    StatusFile(tmp_path).write(old)
    with pytest.raises(NothingRunning, match="no status for 60s"):
        current_status(tmp_path)


def test_top_renders_every_process_node_edge_and_pattern_rule(status, tmp_path):
    from rich.console import Console
    running(status)
    console = Console(width=200, record=True, file=open(os.devnull, "w"))
    console.print(render(snapshot(status, ProcessSampler()), tmp_path))
    text = console.export_text()
    for name in ("supervisor", *STRATEGIES, "ticks", "quotes", "rises", "signals", EDGE_IN, "I0 6", "2.0 s"):
        assert name in text


@pytest.mark.parametrize("written, message", [
    ("{port: 70000}", "metrics: port: input should be less than or equal to 65535 (got 70000)"),
    ("{prt: 9464}", "metrics: unknown key 'prt' (did you mean 'port'?"),
    ("9464", "metrics: input should be a valid dictionary"),
])
def test_a_malformed_metrics_section_is_a_mistake_with_its_place(workdir, written, message):
    path = workdir / "watched.yaml"
    path.write_text(WATCHED + f"metrics: {written}\n")
    line = WATCHED.count("\n") + 1
    with pytest.raises(cep.UserError) as raised:
        cep.compile(path)
    assert any(str(problem).startswith(f"{path}:{line}:") and message in str(problem)
               for problem in raised.value.problems), raised.value.problems


def test_the_metrics_port_reaches_the_plan(workdir):
    path = workdir / "watched.yaml"
    path.write_text(WATCHED + "metrics: {port: 9464}\n")
    assert cep.compile(path).metrics_port == 9464


def test_without_prometheus_client_a_metrics_port_fails_saying_what_to_install(monkeypatch):
    from cep.errors import RuntimeFailure
    from cep.observe.prometheus import Exporter
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # an environment made before the dependency
    with pytest.raises(RuntimeFailure, match="pip install 'prometheus_client>=0.17'"):
        Exporter(9464)


def test_the_readme_shows_the_captured_view_and_only_metrics_the_exporter_has():
    from tests.support import ROOT
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Watching a running pipeline", 1)[1].split("\n## ", 1)[0]
    assert "```text\n" + (ROOT / "docs" / "cep-top.txt").read_text() + "```" in section
    named = set(re.findall(r"\bcep_[a-z_]+\b", section)) - {"cep_top"}
    served = set(METRICS) | {f"{name}_count" for name in METRICS} | {f"{name}_sum" for name in METRICS}
    assert named and named <= served, named - served


def test_a_status_file_that_cannot_be_written_does_not_stop_the_run(tmp_path):
    writer = StatusFile(tmp_path / "removed under the run")
    assert writer.write({"format": 1}) is False
    writer = StatusFile(tmp_path)
    assert writer.write({"format": 1}) is True


def test_a_pattern_rule_reports_its_partial_matches_with_keys_cut_short():
    from reactivex.subject import Subject

    from cep.components.base import BuildContext
    from cep.components.patterns.rule import KEY_CHARS, pattern
    params = PatternParams.model_validate({"pattern": [{"name": "a"}, {"name": "b", "where": "x > a.x"}]})
    ctx = BuildContext(node="rises", key="instrument")
    inputs = Subject()
    inputs.pipe(pattern(params, ctx)).subscribe(lambda batch: None)
    long_key = "K" * 1000
    inputs.on_next([{"instrument": long_key, "timestamp": 1, "x": 0}, {"instrument": "B", "timestamp": 2, "x": 0}])
    gauges = ctx.counters.gauges()
    assert gauges["alive"] == 2
    assert sorted(gauges["top_keys"]) == [["B", 1], ["K" * KEY_CHARS, 1]]


def test_the_schema_of_pipelines_takes_the_metrics_section_and_refuses_a_bad_port():
    import jsonschema

    from cep.config.schema import pipeline_schema
    from cep.config.yamlsafe import parse_yaml
    from cep.plugins import default_registry
    validator = jsonschema.Draft202012Validator(pipeline_schema(default_registry()))
    good = parse_yaml(WATCHED + "metrics: {port: 9464}\n").data
    assert list(validator.iter_errors(good)) == []
    bad = parse_yaml(WATCHED + "metrics: {port: 70000}\n").data
    assert [list(error.absolute_path) for error in validator.iter_errors(bad)] == [["metrics", "port"]]


def test_top_finds_one_host_s_run_of_a_pipeline_on_several_hosts(workdir):
    from cep.errors import UserError
    path = workdir / "hosted.yaml"
    path.write_text(WATCHED + "hosts:\n  edge: {address: 127.0.0.1, port: 20000}\n  core: {address: 127.0.0.1, port: "
                    "20100}\ndeploy:\n  ticks: {host: edge}\n  rises: {host: core, parallelism: 2}\n"
                    "  signals: {host: core}\n")
    path.write_text(path.read_text().replace("deploy:\n  rises: {parallelism: 2}\n", ""))
    assert run_dir_of(path, "core") == workdir / "run" / "watched@core"
    assert run_dir_of(path) == workdir / "run" / "watched"
    with pytest.raises(UserError, match="no such host"):
        run_dir_of(path, "cor")


def test_an_inline_run_with_a_metrics_port_says_it_serves_none(workdir):
    path = workdir / "watched.yaml"
    path.write_text(WATCHED.replace("count: 1000000, rate: 2000, speed: realtime", "count: 200"))
    result = subprocess.run([sys.executable, "-m", "cep.cli", "run", str(path), "--inline", "-q", "--metrics-port",
                             "9464"], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no metrics are served with --inline" in result.stderr
