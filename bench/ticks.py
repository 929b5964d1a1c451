"""The benchmark payload: real Binance quotes, and the momentum check every contender runs.

Shared by the raw chain and the Bytewax peer (which imports this file from its own venv), so it
depends on the standard library only.
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"

Tick = tuple  # (timestamp ns, instrument, bid_price, ask_price, bid_volume, ask_volume)


def load_ticks(count: int | None = None, path: Path = DATA) -> list[Tick]:
    """The file's ticks, repeated end to end (timestamps shifted forward) up to `count` if given."""
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        ticks = [(int(ts), inst, float(bid), float(ask), float(bv), float(av))
                 for ts, inst, bid, ask, bv, av in reader]
    if count is None or count <= len(ticks):
        return ticks if count is None else ticks[:count]
    span = ticks[-1][0] - ticks[0][0] + 1
    repeated: list[Tick] = []
    shift = 0
    while len(repeated) < count:
        repeated += [(ts + shift, *rest) for ts, *rest in ticks[:count - len(repeated)]]
        shift += span
    return repeated


class Momentum:
    """cep's momentum rule by hand: a signal when a key's mid moves the same way `count` times
    running (equal mids neither extend nor break a streak). Returns the action or None."""

    __slots__ = ("count", "streaks")

    def __init__(self, count: int = 5) -> None:
        self.count = count
        self.streaks: dict = {}

    def __call__(self, key, mid: float) -> str | None:
        streak = self.streaks.get(key)
        if streak is None:
            self.streaks[key] = (mid, 0)
            return None
        last, run = streak
        if mid > last:
            run = run + 1 if run > 0 else 1
        elif mid < last:
            run = run - 1 if run < 0 else -1
        else:
            return None
        self.streaks[key] = (mid, run)
        if run == self.count:
            return "BUY"
        if run == -self.count:
            return "SELL"
        return None


def random_walk(count: int, instruments: int = 2, seed: int = 1) -> list[Tick]:
    """Quotes whose mids move on every tick (as cep's `synthetic` source makes them): real ticks
    often repeat the mid, so a latency run on them would give few signals to time."""
    import random
    rng = random.Random(seed)
    mids = [100.0] * instruments
    ticks = []
    for index in range(count):
        k = rng.randrange(instruments)
        mids[k] *= 1.0 + rng.gauss(0.0, 1e-4)
        ticks.append((index, f"SYN{k:03d}", mids[k] * 0.9999, mids[k] * 1.0001, 1.0, 1.0))
    return ticks
