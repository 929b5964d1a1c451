"""What watching a pipeline costs it: end-to-end throughput with and without publishing.

    python bench/metrics_overhead.py [--pairs 5] [--count 400000] [--delivery at_most_once]

The benchmark topology of `cep_chain.py` (synthetic -> quotes -> momentum -> null, three
processes) runs in interleaved pairs (which side runs first alternates):
  quiet    the supervisor publishes nothing (its `Publisher.publish` replaced by a no-op)
  watched  it publishes its snapshot twice a second to the status file and to a Prometheus
           exporter, while a thread here scrapes the exporter and reads the status file as
           `cep top` does, each twice a second (Prometheus usually scrapes every 15 s)
What both sides share is not in the difference: the workers' gauges in their reports (read twice
a second) and a Hub's reference to its latest batch; compare `bench/run.py --only e2e` on two
commits for those. Prints each side's median ticks/s, the workers' CPU per tick and the CPU this
process (the supervisor, the exporter's thread and the watcher) used per second of run: on a
shared machine throughput swings by tens of percent from run to run, CPU per tick much less.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cep
from cep.observe.publisher import Publisher
from cep.observe.statusfile import read_status
from cep_chain import pipeline
from tests.ports import free_port_range


def watcher(port: int, run_dir: Path, stop: threading.Event) -> threading.Thread:
    """Scrape the exporter and read the status file twice a second until `stop`."""
    def watch() -> None:
        while not stop.wait(0.5):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                read_status(run_dir)
            except OSError:
                pass  # not serving yet, or already done
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(count: int, delivery: str, watched: bool) -> dict[str, float]:
    """Ticks per second of one run, the workers' CPU ns per tick, this process's CPU ms per second."""
    source = {"type": "synthetic", "instruments": 2, "seed": 1, "count": count, "rate": 1_000_000,
              "speed": "max"}
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(json.dumps(pipeline(source, {"type": "null"}, delivery=delivery)))
        plan = cep.compile(path, run_dir=Path(tmp) / "run")
        began = cpu_seconds()
        if not watched:
            publish, Publisher.publish = Publisher.publish, lambda self, status: None
            try:
                status = cep.run(plan)
            finally:
                Publisher.publish = publish
        else:
            port, stop = free_port_range(1), threading.Event()
            thread = watcher(port, Path(plan.run_dir), stop)
            try:
                status = cep.run(plan, metrics_port=port)
            finally:
                stop.set()
                thread.join()
    ticks = status.nodes()["ticks"].emitted
    return {"ticks_per_s": ticks / status.elapsed, "worker_ns_per_tick": sum(status.cpu().values()) / ticks * 1e9,
            "supervisor_ms_per_s": (cpu_seconds() - began) / status.elapsed * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--count", type=int, default=400_000)
    parser.add_argument("--delivery", default="at_most_once")
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for pair in range(args.pairs):
        for watched in ((False, True) if pair % 2 == 0 else (True, False)):
            runs[watched].append(one_run(args.count, args.delivery, watched))
        print(f"pair {pair + 1}: quiet {runs[False][-1]['ticks_per_s']:,.0f}  "
              f"watched {runs[True][-1]['ticks_per_s']:,.0f} ticks/s", flush=True)
    print(f"medians of {args.pairs} pairs, {args.delivery}, {args.count:,} ticks:")
    for figure in ("ticks_per_s", "worker_ns_per_tick", "supervisor_ms_per_s"):
        quiet, watched = (statistics.median(run[figure] for run in runs[side]) for side in (False, True))
        print(f"  {figure:<20} quiet {quiet:>12,.1f}  watched {watched:>12,.1f}  ({watched / quiet - 1:+.1%})")


if __name__ == "__main__":
    main()
