"""cep end to end, as a user runs it: a YAML pipeline in a temp dir, `cep.run(cep.compile(path))`.

The topology is `synthetic -> quotes (filter, map mid) -> momentum -> sink`, which cep places in
three processes (gateway, strategy, sink). Rates come from the run status: ticks the source
emitted over the run's elapsed time (from `start` to the last worker done, spawning excluded).
"""
from __future__ import annotations

import json
import tempfile
from array import array
from pathlib import Path

import cep

BENCH = Path(__file__).resolve().parent
MOMENTUM_PIPELINE = BENCH.parent / "pipelines" / "momentum.yaml"


def pipeline(source: dict, sink: dict, streak: int = 5, delivery: str = "at_most_once",
             parallelism: int = 1, plugins: tuple[str, ...] = ()) -> dict:
    """The benchmark topology as a pipeline document (JSON is YAML)."""
    document = {
        "version": 1, "name": "bench", "plugins": list(plugins),
        "defaults": {"delivery": delivery},
        "sources": {"ticks": source},
        "streams": {"quotes": {"from": "ticks", "ops": [
            {"filter": "ask_price > bid_price"}, {"map": {"mid": "(bid_price + ask_price) / 2"}}]}},
        "rules": {"momentum": {"use": "momentum", "from": "quotes", "partition_by": "instrument",
                               "with": {"count": streak, "direction": "both", "quantity": 1}}},
        "sinks": {"out": {**sink, "from": ["momentum"]}},
    }
    if parallelism > 1:
        document["deploy"] = {"momentum": {"parallelism": parallelism}}
    return document


def run_document(document: dict, directory: Path, inline: bool = False) -> dict:
    """Run the pipeline `document` from `directory` (in one process if `inline`): its rates."""
    path = directory / "pipeline.yaml"
    path.write_text(json.dumps(document, indent=1))
    status = cep.run(cep.compile(path, run_dir=directory / "run"), inline=inline)
    nodes = status.nodes()
    ticks = nodes["ticks"].emitted
    lost = sum(t.dropped + t.gaps for t in nodes.values())
    return {"ticks": ticks, "seconds": status.elapsed, "ticks_per_s": ticks / status.elapsed,
            "signals": nodes["out"].received, "lost": lost,
            "cpu_ns_per_tick": {worker: round(seconds / ticks * 1e9) for worker, seconds in status.cpu().items()}}


def throughput(count: int, delivery: str = "at_most_once", parallelism: int = 1,
               instruments: int = 2) -> dict:
    """Synthetic ticks as fast as cep takes them, to a null sink."""
    source = {"type": "synthetic", "instruments": instruments, "seed": 1, "count": count,
              "rate": 1_000_000, "speed": "max"}
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        return run_document(pipeline(source, {"type": "null"}, delivery=delivery,
                                     parallelism=parallelism), Path(tmp))


def latency(rate: float, seconds: float, streak: int = 1) -> dict:
    """Paced at `rate` (realtime) for `seconds`; latency of every signal, source to sink."""
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        samples_path = Path(tmp) / "latency.bin"
        source = {"type": "wall_synthetic", "instruments": 2, "seed": 1,
                  "count": int(rate * seconds), "rate": rate, "speed": "realtime"}
        result = run_document(pipeline(source, {"type": "latency", "path": str(samples_path)}, streak,
                                       plugins=(str(BENCH / "latency_plugin.py"),)), Path(tmp))
        samples = array("q")
        samples.frombytes(samples_path.read_bytes())
    return {**result, "latencies_ns": list(samples)}


def real_data() -> dict:
    """`pipelines/momentum.yaml` (131,932 Binance ticks from csv) to completion."""
    status = cep.run(cep.compile(MOMENTUM_PIPELINE))
    ticks = status.nodes()["ticks"].emitted
    return {"ticks": ticks, "seconds": status.elapsed, "ticks_per_s": ticks / status.elapsed}
