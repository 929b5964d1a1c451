"""What a trader sees of the order half: each executor's breaker, trading state, venue failures
and denials in `cep top`, the metrics and the live status; its positions marked at the last
quote, equity, peak and drawdown in the run summary."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import cep
from cep.events import TickEvent
from cep.orders import PaperDesk, PaperVenue, RiskLimits
from cep.orders.breaker import CircuitBreaker
from cep.orders.gauges import executor_gauges, executors, line
from cep.orders.journal import Journal, read_marks
from cep.orders.queries import positions_report
from cep.orders.summary import trading_summary
from cep.components.base import BuildContext
from cep.components.sinks.positions import PositionsSinkParams, positions_sink
from cep.rows import Rows
from tests.test_orders_cli import cep as cli
from tests.test_orders_journal import issue_example_events
from cep.runtime.metrics import RunStatus
from tests.ports import free_port_range
from tests.support import SHIPPED_TICKS, wait_for
from tests.test_observe_run import scrape
from tests.test_trading_run import SLOW_VENUE, write_trading

CEP = [sys.executable, "-m", "cep.cli"]
ROOT = Path(__file__).resolve().parents[1]


def slow_venue_pipeline(workdir: Path, speed: str = "max") -> Path:
    """pipelines/trading.yaml with a venue too slow for its executor: the first order times out
    (50 ms, one retry), so does the request for its fills, and the breaker (2 failures) opens
    for an hour."""
    (workdir / "slow.py").write_text(SLOW_VENUE)
    path = write_trading(workdir)
    text = "plugins: [slow.py]\n" + path.read_text()
    text = text.replace("type: paper, quotes: quotes, latency: 2ms, seed: 7",
                        f"type: slow, quotes: quotes, calls: {workdir / 'calls.txt'}")
    text = text.replace("breaker: {failures: 5, reset_after: 10s}", "breaker: {failures: 2, reset_after: 1h}")
    text = text.replace("request: {timeout: 250ms, retries: 3}", "request: {timeout: 50ms, retries: 1}")
    text = text.replace("speed: max", f"speed: {speed}")
    path.write_text(text.split("\ntests:")[0])
    return path


def sample(samples: dict, name: str, **labels: str) -> float | None:
    wanted = tuple(sorted({"pipeline": "trading", **labels}.items()))
    return samples.get((name, wanted))


@pytest.mark.integration
def test_a_slow_venue_s_open_breaker_shows_in_top_and_the_metrics_while_the_executor_runs_on(workdir):
    port = free_port_range(1)
    path = slow_venue_pipeline(workdir, speed="5x")  # about two minutes of quotes: stopped below
    process = subprocess.Popen(CEP + ["run", str(path), "--metrics-port", str(port)], cwd=workdir,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (workdir / "run" / "trading" / "status.json").exists() or process.poll() is not None,
                 60, "no status file")

        def breaker_open():
            samples = scrape(port)
            denied = sample(samples, "cep_node_dropped_total", node="exec", reason="CIRCUIT_OPEN") or 0
            return samples if sample(samples, "cep_executor_breaker_state", node="exec", state="open") == 1 \
                and denied > 0 else None

        samples = wait_for(lambda: process.poll() is None and breaker_open(), 90, "the breaker never showed open")
        assert sample(samples, "cep_executor_breaker_state", node="exec", state="closed") == 0
        assert sample(samples, "cep_executor_breaker_opened_total", node="exec") == 1
        assert sample(samples, "cep_executor_venue_timeouts_total", node="exec") >= 2  # the order, then its fills
        assert sample(samples, "cep_executor_venue_retries_total", node="exec") >= 2   # one retry each
        assert sample(samples, "cep_executor_venue_failures_total", node="exec") >= 2
        assert sample(samples, "cep_executor_trading_state", node="exec", state="ACTIVE") == 1
        assert sample(samples, "cep_executor_working_orders", node="exec") == 1  # sent, never answered
        top = subprocess.run(CEP + ["top", str(workdir / "run" / "trading"), "--once"], cwd=workdir,
                             capture_output=True, text=True, timeout=60)
        assert top.returncode == 0, top.stderr
        row = next(text for text in top.stdout.splitlines() if text.strip().startswith("exec ")
                   and "ACTIVE" in text)
        cells = row.split()
        assert cells[:4] == ["exec", "ACTIVE", "OPEN", "for"], row
        assert "CIRCUIT_OPEN" in row
        assert process.poll() is None  # the executor keeps running with its breaker open
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    placed = (workdir / "calls.txt").read_text().split()
    assert len(placed) == 1  # nothing reached the venue while the breaker was open
    trading = next(text for text in stderr.splitlines() if text.startswith("trading exec: "))
    assert "breaker OPEN for " in trading and "CIRCUIT_OPEN" in trading


def test_the_live_line_of_an_executor_says_its_state_breaker_venue_failures_and_denials(workdir):
    status = RunStatus(cep.compile(write_trading(workdir)))
    status.started = 0.0
    status.update("executor-exec", {"t": "metrics", "incarnation": 0, "round": 1, "nodes": {
        "exec": {"in": 10, "out": 4, "dead_lettered": 3, "dropped": {"CIRCUIT_OPEN": 3, "MAX_POSITION": 1},
                 "noted": {"venue failure": 2, "venue timeout": 2, "venue retry": 4}}},
        "gauges": {"nodes": {"exec": {"trading": {
            "state": "REDUCING", "breaker": "OPEN", "breaker_since": 1000.0, "breaker_opened": 1, "working": 1,
            "risk": None, "positions": []}}}}})
    view = executors(status)["exec"]
    assert view["venue"] == {"failures": 2, "timeouts": 2, "unparseable_replies": 0, "retries": 4}
    assert line("exec", view, now=1075.0) == (
        "exec: REDUCING, breaker OPEN for 1m15s, 1 working, venue 2 failures (2 timeouts, 0 unparseable), "
        "4 retries, 4 denied (CIRCUIT_OPEN 3, MAX_POSITION 1)")


def test_a_breaker_knows_since_when_it_is_in_its_state():
    now = [100.0]
    breaker = CircuitBreaker(failures=2, reset_after=10.0, clock=lambda: now[0])
    assert breaker.changed_at == 100.0
    now[0] = 105.0
    breaker.record_failure()
    assert breaker.changed_at == 100.0  # still closed
    now[0] = 107.0
    breaker.record_failure()
    assert (breaker.state.value, breaker.changed_at) == ("OPEN", 107.0)
    now[0] = 130.0
    assert breaker.allow() and (breaker.state.value, breaker.changed_at) == ("HALF_OPEN", 117.0)
    now[0] = 131.0
    breaker.record_success()
    assert (breaker.state.value, breaker.changed_at) == ("CLOSED", 131.0)
    now[0] = 140.0
    breaker.record_success()
    assert breaker.changed_at == 131.0  # was closed already


def a_desk_long_100_at_50():
    """BUY 100 filled at the ask 50, then the quote moves to bid 51 / ask 52."""
    desk = PaperDesk(RiskLimits(), venue=PaperVenue(), journal=None)
    desk.on_quote(TickEvent(1_000, "X", 49.0, 50.0, 1_000.0, 1_000.0))
    decision = desk.on_signal({"signal_id": "s1", "timestamp": 1_000, "action": "BUY", "instrument": "X",
                               "trigger_price": 50.0, "quantity": 100.0, "strategy_name": "t", "confidence": 0.9})
    assert decision.events[-1].status.value == "FILLED" and decision.events[-1].fill_price == 50.0
    desk.on_quote(TickEvent(2_000, "X", 51.0, 52.0, 1_000.0, 1_000.0))
    return desk


def test_a_long_position_is_marked_at_the_bid_in_the_executor_s_view_and_the_summary():
    gauges = executor_gauges(a_desk_long_100_at_50())["trading"]
    (position,) = gauges["positions"]
    assert position == {"instrument": "X", "quantity": 100.0, "average_cost": 50.0, "realized": 0.0,
                        "unrealized": 100.0, "exposure": 5_100.0, "mark": 51.0, "marked_at": 2_000}
    assert gauges["risk"] == {"equity": 100.0, "peak_equity": 100.0, "drawdown": 0.0, "realized": 0.0,
                              "unrealized": 100.0, "exposure": 5_100.0}
    view = {"signals": 1, "denied": 0, "denials": {},
            "venue": {"failures": 0, "timeouts": 0, "unparseable_replies": 0, "retries": 0}, **gauges}
    lines = trading_summary({"executors": {"exec": view}, "journals": {}})
    assert lines[1].split() == ["X", "position", "100", "at", "50.0000,", "realized", "PnL", "0.0000,",
                                "unrealized", "PnL", "100.0000", "at", "the", "bid", "51", "(as", "of",
                                "1970-01-01T00:00:00.000002000Z),", "exposure", "5,100.00"]
    assert lines[2] == ("  total equity 100.0000 (realized 0.0000, unrealized 100.0000), peak 100.0000, "
                        "drawdown 0.0000, exposure 5,100.00")


def last_quotes(path: Path) -> dict[str, tuple[float, float]]:
    """The last (bid, ask) of each instrument in a csv.gz of ticks."""
    import csv
    import gzip
    with gzip.open(path, "rt") as file:
        return {row["instrument"]: (float(row["bid_price"]), float(row["ask_price"])) for row in csv.DictReader(file)}


@pytest.mark.integration
def test_the_trading_summary_marks_each_position_at_its_last_quote_and_realized_plus_unrealized_is_equity(workdir):
    path = write_trading(workdir)
    summary = workdir / "summary.json"
    result = subprocess.run(CEP + ["run", "-q", str(path), "--summary-json", str(summary)], cwd=workdir,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    trading = json.loads(summary.read_text())["trading"]
    executor = trading["executors"]["exec"]
    risk, positions = executor["risk"], executor["positions"]
    quotes = last_quotes(SHIPPED_TICKS)
    assert {p["instrument"] for p in positions} == set(quotes) and all(p["quantity"] for p in positions)
    for p in positions:
        bid, ask = quotes[p["instrument"]]
        mark = bid if p["quantity"] > 0 else ask
        assert p["mark"] == mark
        assert p["unrealized"] == pytest.approx((mark - p["average_cost"]) * p["quantity"])
        assert p["exposure"] == pytest.approx(abs(p["quantity"]) * mark)
    assert risk["realized"] == pytest.approx(sum(p["realized"] for p in positions))
    assert risk["unrealized"] == pytest.approx(sum(p["unrealized"] for p in positions))
    assert risk["equity"] == pytest.approx(risk["realized"] + risk["unrealized"])
    assert risk["peak_equity"] >= risk["equity"] and risk["drawdown"] == pytest.approx(
        risk["peak_equity"] - risk["equity"])
    journal = trading["journals"]["book"]
    assert journal["realized"] == pytest.approx(risk["realized"])  # another process, the same fills
    assert journal["realized"] + journal["unrealized"] == pytest.approx(risk["equity"])  # and the same marks
    lines = result.stderr.splitlines()
    total = next(text for text in lines if text.startswith("  total equity "))
    assert f"peak {risk['peak_equity']:,.4f}, drawdown {risk['drawdown']:,.4f}" in total
    for p in positions:
        row = next(text for text in lines if text.strip().startswith(p["instrument"]))
        assert f"unrealized PnL {p['unrealized']:,.4f} at the " in row


def a_journal_long_100_at_50(path: Path, marks: list[TickEvent]) -> Path:
    """A journal of BUY 100 filled at 50 (event time 12), keeping `marks`."""
    with Journal(path) as journal:
        journal.append(issue_example_events()[:4])
        journal.mark(marks)
    return path


def test_cep_positions_marks_a_long_position_at_the_journal_s_latest_bid_as_of_its_time(tmp_path):
    journal = a_journal_long_100_at_50(tmp_path / "j.db", [TickEvent(2_000, "X", 51.0, 52.0)])
    code, out, err = cli("positions", journal, "--json")
    assert code == 0, err
    assert [json.loads(text) for text in out.splitlines()] == [
        {"instrument": "X", "quantity": 100.0, "average_cost": 50.0, "realized": 0.0, "unrealized": 100.0,
         "exposure": 5_100.0, "mark": 51.0, "marked_at": 2_000}]
    code, out, _ = cli("positions", journal)
    header, row, total = out.splitlines()
    assert header.split() == ["instrument", "quantity", "average_cost", "realized", "unrealized", "mark", "as", "of"]
    assert row.split() == ["X", "100", "50", "0.000000", "100.000000", "51", "1970-01-01T00:00:00.000002000Z"]
    assert total.split() == ["total", "0.000000", "100.000000"]
    code, out, _ = cli("positions", journal, "--at", "1999", "--json")  # the mark is later: not the quote then
    assert [json.loads(text) for text in out.splitlines()] == [
        {"instrument": "X", "quantity": 100.0, "average_cost": 50.0, "realized": 0.0}]


def test_the_journal_keeps_each_instrument_s_latest_quote_and_never_an_older_one(tmp_path):
    journal = a_journal_long_100_at_50(tmp_path / "j.db", [TickEvent(2_000, "X", 51.0, 52.0),
                                                           TickEvent(1_500, "Y", 9.0, 10.0)])
    with Journal(journal) as again:  # a replay after a restart brings an older quote again
        again.mark([TickEvent(1_000, "X", 40.0, 41.0), TickEvent(1_600, "Y", 9.5, 10.5)])
    assert {name: (q.bid_price, q.ask_price, q.timestamp) for name, q in read_marks(journal).items()} == {
        "X": (51.0, 52.0, 2_000), "Y": (9.5, 10.5, 1_600)}


def test_the_positions_sink_marks_at_the_last_quote_of_each_instrument_in_rows_or_records(tmp_path):
    ctx = BuildContext(node="book")
    sink = positions_sink(PositionsSinkParams(journal=tmp_path / "j.db"), ctx)
    sink.write([event.to_record() for event in issue_example_events()[:4]])
    fields = ("timestamp", "instrument", "bid_price", "ask_price")
    sink.write(Rows(fields, [(1_000, "X", 49.0, 50.0), (2_000, "X", 51.0, 52.0), (1_500, "Y", 9.0, 10.0)]))
    sink.write([{"timestamp": 3_000, "instrument": "Y", "bid_price": float("nan"), "ask_price": 10.0}])
    sink.close()
    assert {name: q.bid_price for name, q in read_marks(tmp_path / "j.db").items()} == {"X": 51.0, "Y": 9.0}
    assert ctx.counters.dropped == {"bad quote": 1} and ctx.counters.dead_lettered == 0
    assert positions_report(tmp_path / "j.db")[0]["unrealized"] == 100.0


ON_TWO_HOSTS = """
hosts:
  feed: {address: 127.0.0.2}
  trade: {address: 127.0.0.3}
deploy:
  ticks: {host: feed}
  momentum5: {host: feed}
  levels10s: {host: feed}
  exec: {host: trade}
  paper: {host: trade}
  orders: {host: trade}
  book: {host: trade}
"""


def test_a_host_summarizes_only_the_journals_its_own_processes_write(workdir):
    """`cep run --host feed` ran no positions sink: the journal is trade's (on another machine
    it is not there at all), so feed's summary says nothing of it."""
    from cep.orders.summary import trading_report
    from cep.runtime.hostlink import local_view
    plan = cep.compile(write_trading(workdir, extra=ON_TWO_HOSTS))
    (workdir / "out").mkdir(exist_ok=True)
    with Journal(workdir / "out" / "trading-journal.db") as journal:
        journal.append(issue_example_events())
    feed, trade = (RunStatus(local_view(plan, host)) for host in ("feed", "trade"))  # as each host counts
    assert trading_report(plan, feed, "feed")["journals"] == {}
    assert trading_summary(trading_report(plan, feed, "feed")) == []
    assert trading_report(plan, trade, "trade")["journals"]["book"]["fills"] == 3
    assert trading_report(plan, RunStatus(plan))["journals"]["book"]["fills"] == 3  # one host: every journal


def test_a_host_summarizes_the_executors_it_runs_with_the_signals_they_took(workdir):
    """On trade (the executor's host) the signals come from the executor's own count: the rules
    that make them run on feed, whose counts trade never sees; feed says nothing of exec."""
    from cep.orders.summary import trading_report
    from cep.runtime.hostlink import local_view
    plan = cep.compile(write_trading(workdir, extra=ON_TWO_HOSTS))
    feed, trade = (RunStatus(local_view(plan, host)) for host in ("feed", "trade"))
    from tests.test_trading_executor_node import T0, node_with, paper, quote, run, signal as a_signal
    service, channel = paper()
    node, _, _ = node_with(channel)
    run(node, service, [[a_signal(1, T0), quote(T0)], [a_signal(2, T0 + 1_000_000), quote(T0 + 2_000_000)]])
    worker = plan.process("executor-exec").workers[0]
    trade.update(worker, {"incarnation": 0, "nodes": {"exec": {"in": 4, "out": 0, "dropped": {}, "dead_lettered": 0}},
                          "gauges": {"nodes": {"exec": executor_gauges(node)}}})
    assert trading_report(plan, trade, "trade")["executors"]["exec"]["signals"] == 2
    assert trading_report(plan, feed, "feed")["executors"] == {}
