"""Pattern-engine throughput on the real Binance file, in one process (prints events/s).

Run: python bench/bench_patterns.py [path.csv.gz]. Reading and parsing the file is not timed; the
timed loop is `Matcher.feed` per event, as a strategy process would run it.
  momentum       N=5 strictly rising mids per instrument (consecutive, skip_past_last_event);
                 equal mids are dropped per instrument first, as the momentum rule does.
  dip_then_rise  a dip (a down-tick: `mid < prev_mid`, the previous mid of the instrument, as an
                 upstream map would add it), then 3 strictly rising mids above it, each after the
                 dip by followedByAny (`any`), within 2s, skip_past_last_event; same event feed.
"""
from __future__ import annotations

import csv
import gzip
import sys
import time
from pathlib import Path

from cep.components.patterns.matcher import Matcher
from cep.components.patterns.model import Pattern, Step

DATA = Path(__file__).resolve().parents[1] / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"


def load(path: Path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as handle:
        rows = list(csv.DictReader(handle))
    events = []
    for row in rows:
        bid, ask = float(row["bid_price"]), float(row["ask_price"])
        events.append({"timestamp": int(row["timestamp"]), "instrument": row["instrument"],
                       "bid_price": bid, "ask_price": ask, "mid": (bid + ask) / 2})
    return events


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


def measure(name: str, pattern: Pattern, events: list[dict]) -> None:
    matcher = Matcher(pattern)
    feed = matcher.feed
    matches = 0
    began = time.perf_counter()
    for event in events:
        matches += len(feed(event["instrument"], event))
    matches += len(matcher.finish())
    elapsed = time.perf_counter() - began
    print(f"{name:14s} {len(events):8d} events {elapsed:6.3f}s {len(events) / elapsed:10,.0f} ev/s"
          f"  matches={matches} counters={matcher.counters}")


def main() -> None:
    events = load(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
    moves = without_equal_mids(events)
    measure("momentum", MOMENTUM, moves)
    measure("dip_then_rise", DIP_THEN_RISE, moves)


if __name__ == "__main__":
    main()
