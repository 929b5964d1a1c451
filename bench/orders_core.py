"""The order half's core in one process (`cep.orders.PaperDesk`): how long one signal takes from
arrival to the venue's acknowledgement with every pre-trade check on, and how many orders per
second the executor core takes. Signals arrive at 1,000/s of event time on a synthetic two-sided
market (a quote every 100 us between them), through the paper venue with 1 ms latency; with and
without the journal (a SQLite transaction per call that produced events).

    PYTHONPATH=$PWD python bench/orders_core.py [--signals 20000] [--no-journal]

This is the in-process cost only: the wiring into pipeline processes adds a request/reply hop.
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from cep.events import TickEvent
from cep.orders import Journal, PaperDesk, PaperVenue, RiskLimits, RiskManager

MS = 1_000_000


def limits() -> RiskLimits:
    """Every check on, loose enough that most signals become orders."""
    return RiskLimits(min_quantity=0.001, max_quantity=10, lot_size=0.001, max_signal_age_ns=100 * MS,
                      max_quote_age_ns=100 * MS, max_spread=0.01, price_band=0.01, max_notional=1_000_000,
                      max_position=50, max_open_orders=50, max_orders=5_000, daily_loss_limit=1e9,
                      instruments=frozenset({"A", "B"}))


def run(signals: int, journal: Path | None) -> dict:
    rng = random.Random(7)
    desk = PaperDesk(limits(), venue=PaperVenue(latency_ns=MS, seed=7), manager=RiskManager(),
                     journal=Journal(journal) if journal else None)
    mids = {"A": 100.0, "B": 50.0}
    latencies, now = [], 0
    started = time.perf_counter()
    for number in range(signals):
        for _ in range(10):                        # a quote every 100 us, alternating instruments
            now += MS // 10
            name = "AB"[rng.randrange(2)]
            mids[name] *= 1 + rng.gauss(0, 1e-4)
            desk.on_quote(TickEvent(now, name, mids[name] - 0.01, mids[name] + 0.01, 5.0, 5.0))
        name = "AB"[number % 2]
        record = {"signal_id": f"s{number}", "timestamp": now, "action": "BUY" if rng.random() < 0.5 else "SELL",
                  "instrument": name, "trigger_price": mids[name], "quantity": 0.1, "strategy_name": "bench",
                  "confidence": 0.9}
        begin = time.perf_counter_ns()
        decision = desk.on_signal(record)
        latencies.append(time.perf_counter_ns() - begin)
        assert decision.events, decision.denial
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"orders": signals - sum(desk.executor.denials.values()),
            "p50_us": latencies[len(latencies) // 2] / 1e3, "p99_us": latencies[int(len(latencies) * 0.99)] / 1e3,
            "signals_per_s": signals / (sum(latencies) / 1e9), "wall_s": elapsed,
            "quotes_per_s_incl_signals": signals * 11 / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=20_000)
    parser.add_argument("--no-journal", action="store_true")
    args = parser.parse_args()
    journal = None if args.no_journal else Path(tempfile.mkdtemp()) / "journal.db"
    result = run(args.signals, journal)
    print(f"journal: {'off' if journal is None else 'on'}; {result['orders']:,} orders of {args.signals:,} signals")
    print(f"signal -> venue ack (in process): p50 {result['p50_us']:.1f} us, p99 {result['p99_us']:.1f} us")
    print(f"executor core: {result['signals_per_s']:,.0f} signals/s; desk with quotes: "
          f"{result['quotes_per_s_incl_signals']:,.0f} events/s ({result['wall_s']:.1f} s)")


if __name__ == "__main__":
    main()
