"""What CURVE costs on tcp: the end-to-end benchmark topology (`cep_chain`), synthetic ticks as
fast as cep takes them to a null sink, over loopback tcp with and without
`security: {curve: {keys: DIR}}`, in interleaved pairs: ticks/s (best and median of each side)
and the CPU the three workers spent per tick (median; libzmq's I/O threads, where CURVE
encrypts, included), which a host shared with other work disturbs less than the rate.

    PYTHONPATH=$PWD python bench/tcp_curve.py [--ticks 200000] [--pairs 3] [--delivery at_most_once]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from cep.runtime.security import generate_keys
from tests.ports import on_free_ports

from cep_chain import pipeline, run_document


def measure(ticks: int, delivery: str, keys: Path | None) -> tuple[float, int]:
    """(ticks/s, CPU ns per tick summed over the workers) of one run."""
    source = {"type": "synthetic", "instruments": 2, "seed": 1, "count": ticks, "rate": 1_000_000, "speed": "max"}
    document = pipeline(source, {"type": "null"}, delivery=delivery)
    if keys is not None:
        document["security"] = {"curve": {"keys": str(keys)}}

    def run_on(base_port: int) -> dict:
        document["transport"] = {"kind": "tcp", "base_port": base_port}
        with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
            return run_document(document, Path(tmp))

    result = on_free_ports(run_on, count=8)
    assert result["ticks"] == ticks and result["lost"] == 0, result
    return result["ticks_per_s"], sum(result["cpu_ns_per_tick"].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--delivery", default="at_most_once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cep-keys-") as tmp:
        keys = Path(tmp) / "keys"
        generate_keys(keys)
        rates: dict[str, list[float]] = {"plain tcp": [], "CURVE": []}
        cpu: dict[str, list[int]] = {"plain tcp": [], "CURVE": []}
        for pair in range(args.pairs):
            order = [("plain tcp", None), ("CURVE", keys)]
            for name, keys_dir in order if pair % 2 == 0 else reversed(order):
                rate, ns = measure(args.ticks, args.delivery, keys_dir)
                rates[name].append(rate)
                cpu[name].append(ns)
    for name, values in rates.items():
        print(f"{name:>9}: best {max(values):,.0f} ticks/s, median {statistics.median(values):,.0f} "
              f"({', '.join(f'{v:,.0f}' for v in values)}); CPU {statistics.median(cpu[name]):,.0f} ns/tick")
    plain, curve = max(rates["plain tcp"]), max(rates["CURVE"])
    extra = statistics.median(cpu["CURVE"]) / statistics.median(cpu["plain tcp"])
    print(f"CURVE / plain tcp: rate {curve / plain:.2f} (best of each), CPU per tick {extra:.2f} "
          f"(medians; {args.ticks:,} ticks, {args.delivery})")


if __name__ == "__main__":
    main()
