"""The trading half as a pipeline: real data through the gateway, the strategy, the executor and
the paper venue as processes (and inline), OrderEvents to the log and the positions journal."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import cep
from cep.orders import positions_report, read_events
from tests.support import SHIPPED_TICKS

REPO = Path(__file__).resolve().parents[1]
TRADING = (REPO / "pipelines" / "trading.yaml").read_text()
SHIPPED_REQUEST = "request: {timeout: 250ms, retries: 3}"
PATIENT = "{timeout: 2s, retries: 5}"
"""The executor's venue requests in a test whose orders must not depend on the host's load: a
venue that does not answer within `timeout` times `retries + 1` is a venue failure, which leaves
an order's acceptance to its fill and, repeated, opens the breaker, so the orders differ. The
shipped 250 ms times 4 is a second; a loaded 2-core host (the tests run at nice 19) starves a
process that long. 2 s times 6 lets only a venue stalled for 12 s fail."""


def write_trading(directory: Path, delivery: str = "at_most_once", extra: str = "", request: str | None = None) -> Path:
    """pipelines/trading.yaml in `directory`, on the shipped ticks, under `delivery`, with `extra`
    appended and the executor's `request:` settings replaced by `request` if given."""
    text = TRADING.replace("../data/binance_btcusdt_ethusdt_20240808.csv.gz", str(SHIPPED_TICKS))
    text = text.replace("../out/", "out/").replace("{delivery: at_most_once}", f"{{delivery: {delivery}}}")
    if request is not None:
        assert SHIPPED_REQUEST in text, f"pipelines/trading.yaml no longer says {SHIPPED_REQUEST!r}"
        text = text.replace(SHIPPED_REQUEST, f"request: {request}")
    path = directory / "trading.yaml"
    path.write_text(text + extra)
    return path


def outcome(directory: Path) -> tuple[list[dict], list[dict]]:
    """Every OrderEvent the log holds, and the positions the journal adds up to."""
    with open(directory / "out" / "trading-orders.jsonl") as file:
        events = [json.loads(line) for line in file]
    return events, positions_report(directory / "out" / "trading-journal.db")


@pytest.mark.integration
def test_the_trading_pipeline_gives_the_same_orders_and_positions_inline_as_processes_and_on_a_rerun(workdir):
    plan = cep.compile(write_trading(workdir, request=PATIENT))
    assert {process.role for process in plan.processes} >= {"executor", "venue"}
    cep.run(plan, inline=True)
    inline = outcome(workdir)
    status = cep.run(plan)
    processes = outcome(workdir)
    cep.run(plan)
    rerun = outcome(workdir)
    events, positions = inline
    statuses = {event["status"] for event in events}
    assert {"NEW", "SUBMITTED", "ACCEPTED", "FILLED", "DENIED"} <= statuses and positions
    assert processes == inline and rerun == inline
    journal = list(read_events(workdir / "out" / "trading-journal.db"))
    assert [event.to_record() for event in journal] == events  # the journal holds what the log does
    totals = status.nodes()
    signals = totals["momentum5"].emitted + totals["levels10s"].emitted
    assert signals == 647 and len({event["signal_id"] for event in events}) == signals - sum(
        count for reason, count in totals["exec"].drops.items() if reason == "DUPLICATE_SIGNAL")


@pytest.mark.integration
def test_cep_run_ends_with_signals_orders_fills_denials_and_pnl_per_instrument(workdir):
    path = write_trading(workdir)
    result = subprocess.run([sys.executable, "-m", "cep.cli", "run", "-q", str(path)], capture_output=True,
                            text=True, cwd=REPO, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                                                    "CEP_RUN_DIR": str(workdir / "run")})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("trading exec: 647 signals, ") and "denied (" in line for line in lines)
    book = next(line for line in lines if line.startswith("positions book"))
    assert " orders sent, " in book and " fills, " in book
    assert any(line.strip().startswith("BTCUSDT") and "realized PnL" in line for line in lines)
    assert any(line.strip().startswith("ETHUSDT") and "realized PnL" in line for line in lines)
    assert any(line.strip().startswith("total realized PnL") for line in lines)


def test_cep_graph_shows_the_executor_the_venue_and_the_request_reply_edge(tmp_path):
    plan = cep.compile(write_trading(tmp_path))
    from cep.compiler.render import to_dot, to_text

    text = to_text(plan)
    assert "process executor-exec [executor]" in text and "process venue-paper [venue]" in text
    assert "exec: executor-exec -> venue-paper  dealer/router" in text
    assert '"executor-exec/exec" -> "venue-paper/paper" [label="dealer/router' in to_dot(plan)
    (edge,) = [edge for edge in plan.edges if edge.pattern == "dealer/router"]
    assert edge.endpoints[0].endswith("paper.router")


SLOW_VENUE = '''
import time
from pydantic import BaseModel, ConfigDict
from cep.orders.paper import PaperVenue
from cep.plugins import venue


class SlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calls: str


class Slow(PaperVenue):
    """The paper venue, answering each order after the executor stopped waiting."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def place(self, request):
        with open(self.calls, "a") as file:
            file.write(request.client_order_id + "\\n")
        time.sleep(1.0)
        return super().place(request)


@venue("slow", params=SlowParams)
def slow(params, ctx):
    """A venue too slow for its executor."""
    return Slow(params.calls)
'''


@pytest.mark.integration
def test_a_slow_venue_opens_the_breaker_and_no_order_reaches_it_while_open(workdir):
    (workdir / "slow.py").write_text(SLOW_VENUE)
    calls = workdir / "calls.txt"
    path = write_trading(workdir)
    text = "plugins: [slow.py]\n" + path.read_text()
    text = text.replace("type: paper, quotes: quotes, latency: 2ms, seed: 7", f"type: slow, quotes: quotes, calls: {calls}")
    text = text.replace("breaker: {failures: 5, reset_after: 10s}", "breaker: {failures: 2, reset_after: 1h}")
    text = text.replace("request: {timeout: 250ms, retries: 3}", "request: {timeout: 50ms, retries: 1}")
    text = text.split("\ntests:")[0]
    path.write_text(text)
    status = cep.run(cep.compile(path))
    placed = calls.read_text().split()
    denied = status.nodes()["exec"].drops
    # the first order times out, and so does the request for its fills (the venue still sleeps):
    # two failures open the breaker; no order reaches the venue after that
    assert len(placed) == 1, placed
    assert denied.get("CIRCUIT_OPEN", 0) > 100
    events, _ = outcome(workdir)
    assert sum(e["status"] == "SUBMITTED" for e in events) == 1
    assert not any(e["status"] in ("ACCEPTED", "FILLED") for e in events)
