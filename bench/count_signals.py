"""How many signals each built-in rule fires on each real dataset (prints a table).

Run: python bench/count_signals.py [DATA_DIR]  (default ../shared/data/ticks next to the repo).
Each rule is driven directly over the dataset's quotes (partitioned by instrument, batches of
256), as a strategy process would run it:
  momentum            count 5, both directions
  support_resistance  Binance (11 minutes): 10s bars, 2 bps bands, 3 bps bounces, 1m cooldown,
                      as pipelines/support_resistance.yaml; Oanda (two weeks): the library's
                      defaults, 1m bars, 5 bps bands and bounces, 5m cooldown.
"""
from __future__ import annotations

import csv
import gzip
import sys
import time
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import reactivex

from cep.components.base import BuildContext
from cep.components.rules.momentum import MomentumParams, momentum
from cep.components.rules.support_resistance import SupportResistanceParams, support_resistance

DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ticks").resolve()
DATASETS = {"binance": "binance_btcusdt_ethusdt_20240808.csv.gz",
            "oanda": "oanda_eurusd_nzdusd_201405.csv.gz"}
RULES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "momentum": (lambda p, ctx: momentum(MomentumParams(**p), ctx), {"count": 5}),
    "support_resistance": (lambda p, ctx: support_resistance(SupportResistanceParams(**p), ctx), {}),
}
TUNING = {("support_resistance", "binance"): {"period": "10s", "tolerance_bps": 2,
                                               "bounce_bps": 3, "cooldown": "1m"}}


def quotes(path: Path, limit: int | None = None) -> list[dict]:
    """The quotes of a normalised tick file (`timestamp,instrument,bid_price,ask_price,...`)."""
    with gzip.open(path, "rt", newline="") as handle:
        rows: Iterator[dict] = islice(csv.DictReader(handle), limit)
        return [{"timestamp": int(r["timestamp"]), "instrument": r["instrument"],
                 "bid_price": float(r["bid_price"]), "ask_price": float(r["ask_price"])}
                for r in rows]


def signals(rule: str, dataset: str, records: list[dict]) -> tuple[list[dict], BuildContext]:
    """Every signal `rule` emits over `records`, with the context holding its counters."""
    build, defaults = RULES[rule]
    ctx = BuildContext(node=rule, key="instrument")
    out: list[dict] = []
    batches = [records[i:i + 256] for i in range(0, len(records), 256)]
    build({**defaults, **TUNING.get((rule, dataset), {})}, ctx)(
        reactivex.from_iterable(batches)).subscribe(out.extend)
    return out, ctx


def main(data: Path) -> None:
    print(f"{'dataset':9} {'ticks':>9} {'rule':20} {'signals':>8}  {'BUY':>5} {'SELL':>5}  "
          f"{'ev/s':>9}  by kind")
    for dataset, name in DATASETS.items():
        path = data / name
        if not path.exists():
            print(f"{dataset:9} missing: {path}")
            continue
        records = quotes(path)
        for rule in RULES:
            started = time.perf_counter()
            out, _ = signals(rule, dataset, records)
            rate = len(records) / (time.perf_counter() - started)
            actions = Counter(s["action"] for s in out)
            kinds = Counter(s["signal_id"].rsplit(":", 1)[1] for s in out)
            print(f"{dataset:9} {len(records):>9,} {rule:20} {len(out):>8,}  {actions['BUY']:>5} "
                  f"{actions['SELL']:>5}  {rate:>9,.0f}  {dict(kinds)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
