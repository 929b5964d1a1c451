"""The trading half through real processes: signal -> order acknowledged latency at a paced rate
of signals, and orders per second through the executor with every pre-trade check on.

    PYTHONPATH=$PWD python bench/orders_pipeline.py [--signals-per-s 1000] [--seconds 10]
        [--quotes-per-signal 5] [--venue-latency 0ms] [--max]

The pipeline: a synthetic source paced in real time (5 quotes per signal) -> a strategy process
whose rule makes a signal of every 5th quote (stamped with the wall clock) -> the executor
process (every check on) -> the paper venue process over DEALER/ROUTER -> a sink process that
takes, for each ACCEPTED event, the wall time since its signal was made. So the latency covers
strategy -> executor (pub/sub), the checks, the request/reply to the venue and the hop to the
sink (push/pull). The venue's latency is 0 (an order fills as it arrives), so no fill is pending
between signals; `--venue-latency 2ms` shows the cost of fills that wait (the executor then asks
the venue for fills at each quote while an order works). A signal is decided right before the
first quote after it (event-time order), so it waits for that quote: 200 us at 5,000 quotes/s.
Throughput: the same pipeline with the source at full speed (`--max`), orders per second of
wall time between the first and the last acknowledgement.
Also printed: the percentiles after the first second, the load average of the host before and after (this machine is shared: read the
latency with it), each worker's CPU seconds and CPU per order acknowledged (steadier than wall
time on a busy host), and the requests the venue served.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cep

ROOT = Path(__file__).resolve().parent
WARM_UP_NS = 1_000_000_000
"""The percentiles are also given without the signals of the first second: the processes' first
passes (cold code, the first requests) make a backlog there that would otherwise set the p99 of
a 10 s run by itself."""

PIPELINE = """
version: 1
name: bench-orders
plugins: [{plugins}]
sources:
  ticks: {{type: synthetic, instruments: [A, B], rate: {rate}, count: {count}, speed: {speed}, seed: 7,
          start_time: {start}, volatility: 0.5}}
streams:
  quotes: {{from: ticks, ops: [{{filter: "ask_price > bid_price"}}]}}
rules:
  nth: {{use: every_nth, from: quotes, with: {{every: {every}, quantity: 0.01}}}}
venues:
  paper: {{type: paper, quotes: quotes, latency: {venue_latency}}}
orders:
  exec:
    from: [nth]
    venue: paper
    risk: {{min_quantity: 0.001, max_quantity: 10, lot_size: 0.001, max_notional: 1000000, max_position: 50,
           max_open_orders: 50, price_band: 1%, max_spread: 1%, orders_per_second: 100000,
           max_signal_age: 10s, max_quote_age: 10s, daily_loss_limit: 1000000000, max_drawdown: 1000000000,
           instruments: [A, B]}}
sinks:
  acks: {{type: ack_latency, from: [exec], path: {out}}}
"""


def run(signals_per_s: float, seconds: float, speed: str, venue_latency: str, quotes_per_signal: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        out = Path(tmp) / "acks.json"
        path = Path(tmp) / "bench.yaml"
        rate = signals_per_s * quotes_per_signal
        path.write_text(PIPELINE.format(plugins=ROOT / "orders_plugins.py", rate=rate, count=int(rate * seconds),
                                        speed=speed, start=time.time_ns() + 2_000_000_000, out=out,
                                        venue_latency=venue_latency, every=quotes_per_signal))
        load = os.getloadavg()[0]
        plan = cep.compile(path)
        status = cep.run(plan)
        result = json.loads(out.read_text())
    latencies = sorted(result["latencies_ns"])
    q = statistics.quantiles(latencies, n=1000) if len(latencies) > 1 else [0.0] * 999
    first = min(result["made_ns"], default=0)
    steady = sorted(latency for made, latency in zip(result["made_ns"], result["latencies_ns"])
                    if made >= first + WARM_UP_NS)
    s = statistics.quantiles(steady, n=1000) if len(steady) > 1 else []
    cpu = status.cpu()
    (requests,) = [status.edges()[edge.id].events_received for edge in plan.edges if edge.pattern == "dealer/router"]
    return {"acknowledged": len(latencies), "statuses": result["statuses"], "elapsed_s": status.elapsed,
            "load_average": [load, os.getloadavg()[0]], "venue_requests": requests,
            "cpu_s": {worker: round(seconds, 2) for worker, seconds in sorted(cpu.items())},
            "cpu_ms_per_order": {worker: round(seconds * 1e3 / max(1, len(latencies)), 3)
                                 for worker, seconds in sorted(cpu.items())},
            "p50_ms": q[499] / 1e6, "p99_ms": q[989] / 1e6, "max_ms": latencies[-1] / 1e6 if latencies else 0.0,
            "after_first_second": {"p50_ms": s[499] / 1e6, "p99_ms": s[989] / 1e6,
                                   "max_ms": steady[-1] / 1e6} if len(steady) > 1 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals-per-s", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--venue-latency", default="0ms")
    parser.add_argument("--quotes-per-signal", type=int, default=5)
    parser.add_argument("--max", action="store_true", help="the source at full speed: orders/s")
    args = parser.parse_args()
    result = run(args.signals_per_s, args.seconds, "max" if args.max else "realtime", args.venue_latency,
                 args.quotes_per_signal)
    if args.max:
        result["orders_per_s"] = result["acknowledged"] / result["elapsed_s"]
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
