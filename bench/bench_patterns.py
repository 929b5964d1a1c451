"""Pattern-engine costs on the real Binance file, in one process (ns/event and events/s, best of 3).

Run: python bench/bench_patterns.py [path.csv.gz]; `python bench/run.py --only inproc` reports the
same cases. Reading and parsing the file is not timed. Two levels are measured:

engine  `Matcher.feed` per event with hand-written Python conditions, as a library user runs it:
  momentum       N=5 strictly rising mids per instrument (consecutive, skip_past_last_event);
                 equal mids are dropped per instrument first.
  dip_then_rise  a down-tick, then 3 strictly rising mids above it, each after the dip by
                 followedByAny (`any`), within 2s, skip_past_last_event; same event feed.
rule    the YAML `pattern` rule as a pipeline runs it in-process (`cep.testing.run_inline`: list
        source, batches of 1000 ticks, the rule, a collecting sink), over every tick with `mid`:
  momentum       the library template `rules/momentum.yaml` (count 5, BUY);
  dip_then_rise  the inline rule of `pipelines/dip_then_rise.yaml`, and the same with its `up`
                 step after the dip by `any` contiguity.
"""
from __future__ import annotations

import csv
import gzip
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

from cep.components.patterns.matcher import Matcher
from cep.components.patterns.model import Pattern, Step
from cep.testing import run_inline

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"
BATCH = 1000
ROUNDS = 3


def load(path: Path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    events = []
    for row in rows:
        bid, ask = float(row["bid_price"]), float(row["ask_price"])
        events.append({"timestamp": int(row["timestamp"]), "instrument": row["instrument"],
                       "bid_price": bid, "ask_price": ask, "bid_volume": float(row["bid_volume"]),
                       "ask_volume": float(row["ask_volume"]), "mid": (bid + ask) / 2})
    return events


# -- the engine alone ------------------------------------------------------------------------------
def without_equal_mids(events: list[dict]) -> list[dict]:
    """Events whose mid differs from the instrument's previous mid, with that `prev_mid`."""
    last: dict[str, float] = {}
    kept = []
    for event in events:
        prev_mid = last.get(event["instrument"])
        if prev_mid != event["mid"]:
            last[event["instrument"]] = event["mid"]
            kept.append({**event, "prev_mid": event["mid"] if prev_mid is None else prev_mid})
    return kept


def rising(event, view):
    prev = view.prev
    return prev is None or event["mid"] > prev["mid"]


def above_dip_and_rising(event, view):
    prev, dip = view.bind(("prev", "dip"))
    return event["mid"] > dip["mid"] and (prev is None or event["mid"] > prev["mid"])


MOMENTUM = Pattern((Step("up", rising, times=5, consecutive=True),),
                   skip="skip_past_last_event")
DIP_THEN_RISE = Pattern((Step("dip", lambda event, view: event["mid"] < event["prev_mid"]),
                         Step("up", above_dip_and_rising, times=3, consecutive=True,
                              contiguity="any")),
                        within_ns=2_000_000_000, skip="skip_past_last_event")


def engine(pattern: Pattern, events: list[dict]) -> Callable[[], int]:
    def once() -> int:
        matcher = Matcher(pattern)
        feed = matcher.feed
        matches = 0
        for event in events:
            matches += len(feed(event["instrument"], event))
        return matches + len(matcher.finish())
    return once


# -- the YAML rule, in-process ---------------------------------------------------------------------
def pipeline(rule: dict) -> str:
    return yaml.safe_dump({
        "version": 1, "name": "bench-patterns", "imports": [str(ROOT / "rules" / "momentum.yaml")],
        "sources": {"ticks": {"type": "list"}},
        "rules": {"rule": {"from": "ticks", "partition_by": "instrument", **rule}},
        "sinks": {"out": {"type": "collect", "from": ["rule"]}},
    }, sort_keys=False)


def dip_then_rise_rule(contiguity: str) -> dict:
    document = yaml.safe_load((ROOT / "pipelines" / "dip_then_rise.yaml").read_text())
    rule = {key: value for key, value in document["rules"]["dip_then_rise"].items()
            if key not in ("from", "partition_by")}
    rule["pattern"] = [{**step, "contiguity": contiguity} if step["name"] == "up" else step
                       for step in rule["pattern"]]
    return rule


def rule(text: str, events: list[dict]) -> Callable[[], int]:
    def once() -> int:
        return len(run_inline(text, inputs={"ticks": events}, batch_size=BATCH)["out"])
    return once


def best_seconds(once: Callable[[], int], repeats: int) -> tuple[float, int]:
    """The best time of `repeats` runs of `once`, and what the last run output."""
    best, outputs = float("inf"), 0
    for _ in range(repeats):
        began = time.perf_counter()
        outputs = once()
        best = min(best, time.perf_counter() - began)
    return best, outputs


def pattern_costs(path: Path = DATA, repeats: int = ROUNDS) -> dict[str, dict]:
    """Per case: events fed, ns per event (best of `repeats`) and matches (engine) or signals
    (rule). `bench/run.py` reports these in its in-process section."""
    events = load(path)
    moves = without_equal_mids(events)
    momentum = pipeline({"use": "momentum_pattern", "with": {"count": 5, "action": "BUY", "quantity": 100}})
    cases = {"engine momentum": (engine(MOMENTUM, moves), len(moves)),
             "engine dip_then_rise (any)": (engine(DIP_THEN_RISE, moves), len(moves)),
             "rule momentum (template)": (rule(momentum, events), len(events))}
    for contiguity in ("relaxed", "any"):
        cases[f"rule dip_then_rise (up {contiguity})"] = (
            rule(pipeline(dip_then_rise_rule(contiguity)), events), len(events))
    costs = {}
    for name, (once, count) in cases.items():
        seconds, outputs = best_seconds(once, repeats)
        costs[name] = {"events": count, "ns_per_event": seconds / count * 1e9, "outputs": outputs}
    return costs


def main() -> None:
    costs = pattern_costs(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
    for name, cost in costs.items():
        print(f"{name:34s} {cost['events']:8d} events {cost['ns_per_event']:8,.0f} ns/event "
              f"{1e9 / cost['ns_per_event']:10,.0f} ev/s  outputs={cost['outputs']}")


if __name__ == "__main__":
    main()
