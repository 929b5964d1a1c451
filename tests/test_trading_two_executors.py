"""Two order executors and one venue: refused at the second executor's `venue:` line. A venue
matches each request at the event time its executor has reached; executors in processes of their
own reach different times (measured: the busier one fell 10,000 quotes behind the other, and the
paper venue rejected 416 of its orders as STALE_REQUEST), and the run never ended (both DEALERs
went to one ROUTER). Each executor gets a venue of its own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import cep
from tests.test_trading_run import write_trading

SECOND_EXECUTOR = """orders:
  exec2:
    from: [levels10s]
    venue: {venue}
    risk: {{max_quantity: 1, max_notional: 5000, max_position: 0.05, max_open_orders: 10}}
  exec:
    from: [momentum5]"""


def write_two(directory: Path, venue: str) -> Path:
    path = write_trading(directory)
    text = path.read_text().replace("orders:\n  exec:\n    from: [momentum5, levels10s]",
                                    SECOND_EXECUTOR.format(venue=venue))
    text = text.replace("from: [exec]\n", "from: [exec, exec2]\n").replace("from: [exec, quotes]",
                                                                        "from: [exec, exec2, quotes]")
    text = text.replace("venues:\n", "venues:\n  paper2: {type: paper, quotes: quotes, latency: 2ms, seed: 8}\n")
    assert "venue: " + venue in text and "from: [exec, exec2, quotes]" in text
    path.write_text(text)
    return path


def test_a_second_executor_on_a_venue_is_refused_at_its_venue_line(workdir, problems_of):
    path = write_two(workdir, "paper")
    (problem,) = problems_of(path)
    first, second = [n for n, text in enumerate(path.read_text().splitlines(), 1) if text.strip() == "venue: paper"]
    assert f"trading.yaml:{second}:" in problem  # the second in the file: exec2 is written first
    assert 'order executor "exec": venue "paper" serves order executor "exec2" already' in problem
    assert "give each executor a venue of its own" in problem


@pytest.mark.integration
def test_two_executors_with_a_venue_each_trade_as_processes_as_they_do_inline(workdir):
    plan = cep.compile(write_two(workdir, "paper2"))
    assert sorted(edge.id for edge in plan.edges if edge.pattern == "dealer/router") == [
        "exec->venue-paper", "exec2->venue-paper2"]
    cep.run(plan, inline=True)
    inline = orders_of(workdir)
    assert {event["signal_id"].split(":")[0] for event in inline} == {"momentum5", "levels10s"}
    cep.run(plan)
    assert orders_of(workdir) == inline


def orders_of(directory: Path) -> list[dict]:
    """The order log's events in a stable order (two executors' events interleave as they come)."""
    with open(directory / "out" / "trading-orders.jsonl") as file:
        events = [json.loads(line) for line in file]
    return sorted(events, key=lambda event: (event["signal_id"], event["sequence"]))
