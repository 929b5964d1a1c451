"""In one process: what each operator costs per event, the inline runner, and the momentum
rule's cost and memory as the number of keys grows.

Operators are built from the registry exactly as a worker builds them and driven through a Rx
`Subject` in batches of 256 records (a frame's worth), so the figure includes the Rx hop per batch.
"""
from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

from cep_chain import MOMENTUM_PIPELINE
from reactivex.subject import Subject
from ticks import load_ticks

import cep
from cep.components.base import BuildContext
from cep.plugins import default_registry

FIELDS = ("timestamp", "instrument", "bid_price", "ask_price", "bid_volume", "ask_volume")
BATCH = 256


def _operator(kind: str, name: str, args, key: str | None = "instrument"):
    component = default_registry().get(kind, name)
    return component.factory(component.configure(args, Path.cwd()), BuildContext(node=name, key=key))


def _drive(operator, batches: list[list[dict]]) -> float:
    """Seconds to push `batches` through `operator` (a fresh subject each time)."""
    subject = Subject()
    operator(subject).subscribe(lambda _: None)
    started = time.perf_counter()
    for batch in batches:
        subject.on_next(batch)
    return time.perf_counter() - started


def operator_costs(count: int, repeats: int = 3) -> dict[str, float]:
    """ns per event of filter, map (mid) and the momentum rule on real ticks (best of `repeats`)."""
    records = [dict(zip(FIELDS, tick)) for tick in load_ticks(count)]
    with_mid = [{**r, "mid": (r["bid_price"] + r["ask_price"]) / 2} for r in records]
    cases = {
        "filter": (lambda: _operator("operator", "filter", "ask_price > bid_price"), records),
        "map": (lambda: _operator("operator", "map", {"mid": "(bid_price + ask_price) / 2"}), records),
        "momentum": (lambda: _operator("rule", "momentum", {"count": 5}), with_mid),
    }
    costs = {}
    for name, (build, data) in cases.items():
        batches = [data[i:i + BATCH] for i in range(0, len(data), BATCH)]
        costs[name] = min(_drive(build(), batches) for _ in range(repeats)) / len(data) * 1e9
    return costs


def inline_in_memory(count: int, repeats: int = 3, batch_size: int | None = None) -> dict:
    """The whole engine in one process, `cep.run(plan, inline=True)`, on ticks already in memory
    (`memory_plugin.py`): the benchmark topology with a null sink, as the Bytewax peer is run.
    `batch_size` (the pipeline's `defaults.batch_size`, 256 if None): ticks per batch, to compare
    with Bytewax fed items of as many ticks."""
    import tempfile

    from cep_chain import pipeline, run_document
    document = pipeline({"type": "memory_ticks", "count": count}, {"type": "null"},
                        plugins=(str(Path(__file__).resolve().parent / "memory_plugin.py"),))
    if batch_size is not None:
        document["defaults"]["batch_size"] = batch_size
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        return max((run_document(document, Path(tmp), inline=True) for _ in range(repeats)),
                   key=lambda run: run["ticks_per_s"])


def inline_real_data(repeats: int = 3) -> dict:
    """`cep.run(plan, inline=True)` on pipelines/momentum.yaml (csv parsing included)."""
    best = None
    for _ in range(repeats):
        status = cep.run(cep.compile(MOMENTUM_PIPELINE), inline=True)
        ticks = status.nodes()["ticks"].emitted
        if best is None or status.elapsed < best["seconds"]:
            best = {"ticks": ticks, "seconds": status.elapsed, "ticks_per_s": ticks / status.elapsed}
    return best


def _keyed_batches(keys: int, rounds: int, names: list[str]):
    """Records cycling over `keys` keys, `rounds` ticks per key, mids rising then falling."""
    batch = []
    for round_ in range(rounds):
        mid = 100.0 + (round_ % 7) - (round_ % 3)
        for index in range(keys):
            batch.append({"timestamp": round_ * keys + index, "instrument": names[index],
                          "bid_price": mid - 0.01, "ask_price": mid + 0.01, "mid": mid})
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def keys_scaling(key_counts=(10, 1_000, 100_000), ticks: int = 300_000) -> list[dict]:
    """Per key count: ns per tick of the momentum rule, and bytes of state per key.

    Memory: tracemalloc around feeding each key its first two ticks, with records (and their key
    strings) built inside the traced region and dropped after, so what remains is the rule's
    state: dict slot, streak tuple, floats and the key string it keeps alive.
    """
    rows = []
    for keys in key_counts:
        operator = _operator("rule", "momentum", {"count": 5})
        subject = Subject()
        operator(subject).subscribe(lambda _: None)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        names = [f"KEY{index:07d}" for index in range(keys)]
        for batch in _keyed_batches(keys, 2, names):
            subject.on_next(batch)
        del names, batch
        state = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        names = [f"KEY{index:07d}" for index in range(keys)]
        batches = list(_keyed_batches(keys, max(2, ticks // keys), names))
        events = sum(len(b) for b in batches)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for batch in batches:
                subject.on_next(batch)
            best = min(best, time.perf_counter() - started)
        rows.append({"keys": keys, "ns_per_tick": best / events * 1e9, "bytes_per_key": state / keys})
    return rows
