"""The momentum rule in Bytewax, run by the Python of a separate venv that has bytewax installed.

Prints one JSON object: ticks/s one tick per item (keyed by instrument, `stateful_map`) and with
items that are lists of `--batch` ticks, per batch size (one keyed state holding every
instrument's streak): Bytewax's best case is a large item, where its loop is plain Python.
Both do the filter, the mid and the momentum check of the other contenders; best of `--repeats`.
Never imported by cep: `run.py` starts it as a subprocess.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from ticks import Momentum, load_ticks


def one_by_one(ticks: list) -> tuple[float, int]:
    flow = Dataflow("momentum")
    quotes = op.filter("quotes", op.input("ticks", flow, TestingSource(ticks, batch_size=256)),
                       lambda t: t[3] > t[2])
    keyed = op.key_on("key", quotes, lambda t: t[1])

    def step(state, tick):
        momentum = state or Momentum(5)
        return momentum, momentum(tick[1], (tick[2] + tick[3]) / 2)

    signals = op.filter("fired", op.stateful_map("momentum", keyed, step), lambda kv: kv[1] is not None)
    out: list = []
    op.output("out", signals, TestingSink(out))
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started, len(out)


def batched(ticks: list, size: int) -> tuple[float, int]:
    frames = [ticks[i:i + size] for i in range(0, len(ticks), size)]
    flow = Dataflow("momentum_batched")
    keyed = op.key_on("key", op.input("frames", flow, TestingSource(frames)), lambda _: "all")

    def step(state, frame):
        momentum = state or Momentum(5)
        return momentum, [(t[0], t[1], action) for t in frame if t[3] > t[2]
                          for action in (momentum(t[1], (t[2] + t[3]) / 2),) if action]

    signals = op.flat_map("signals", op.stateful_map("momentum", keyed, step), lambda kv: kv[1])
    out: list = []
    op.output("out", signals, TestingSink(out))
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started, len(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--batch", default="100,1000", help="ticks per item, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ticks = load_ticks(args.ticks)
    single = min(one_by_one(ticks)[0] for _ in range(args.repeats))
    grouped = {size: len(ticks) / min(batched(ticks, size)[0] for _ in range(args.repeats))
               for size in map(int, args.batch.split(","))}
    import importlib.metadata
    print(json.dumps({"version": importlib.metadata.version("bytewax"), "ticks": len(ticks),
                      "one_by_one_ticks_per_s": len(ticks) / single, "batched_ticks_per_s": grouped}))


if __name__ == "__main__":
    main()
