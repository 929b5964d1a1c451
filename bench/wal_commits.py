"""Commit latency of a hot-path SQLite log (as the executor's order log writes it: a small
transaction per pass) with SQLite's automatic WAL checkpoint against the background one
(`cep.runtime.wal.WalCheckpointer`), in interleaved rounds.

    PYTHONPATH=$PWD python bench/wal_commits.py [--commits 5000] [--bytes 2000] [--rounds 3]

Each commit inserts one row of `--bytes` and replaces a standing row of the same size; the
commits are paced at 2,500 a second (an executor's passes at 1,000 orders/s). Printed per mode:
commit p50 / p99 / p99.9 / max in microseconds, and the commits slower than 1 ms.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cep.runtime.rundir import private_database
from cep.runtime.wal import WalCheckpointer

PACE_S = 1 / 2_500


def commits(directory: Path, n: int, size: int, background: bool) -> list[float]:
    path = directory / f"log-{background}-{time.monotonic_ns()}.sqlite"
    db = private_database(path, fresh=True)
    wal = WalCheckpointer(db, path) if background else None
    db.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, event BLOB)")
    db.execute("CREATE TABLE standing (id INTEGER PRIMARY KEY, state BLOB)")
    row = b"x" * size
    took = []
    next_at = time.perf_counter()
    for _ in range(n):
        next_at += PACE_S
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events (event) VALUES (?)", (row,))
        db.execute("INSERT OR REPLACE INTO standing VALUES (0, ?)", (row,))
        db.execute("COMMIT")
        took.append((time.perf_counter() - start) * 1e6)
        if (wait := next_at - time.perf_counter()) > 0:
            time.sleep(wait)
    if wal is not None:
        wal.close()
    db.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=5_000)
    parser.add_argument("--bytes", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"automatic": [], "background": []}
    with tempfile.TemporaryDirectory(prefix="cep-wal-") as tmp:
        for round_ in range(args.rounds):
            for mode in (("automatic", "background") if round_ % 2 == 0 else ("background", "automatic")):
                results[mode] += commits(Path(tmp), args.commits, args.bytes, mode == "background")
    for mode, took in results.items():
        took.sort()
        q = statistics.quantiles(took, n=1000)
        print(f"{mode:10s} commit p50 {q[499]:7.1f} us  p99 {q[989]:7.1f}  p99.9 {q[998]:8.1f}  max {took[-1]:8.1f}  "
              f"over 1 ms: {sum(t > 1000 for t in took)} of {len(took)}")


if __name__ == "__main__":
    main()
