"""What CURVE costs on tcp: the end-to-end benchmark topology (`cep_chain`), synthetic ticks as
fast as cep takes them to a null sink, over loopback tcp with and without
`security: {curve: {keys: DIR}}`, in interleaved pairs: ticks/s (best and median of each side)
and the CPU the three workers spent per tick (median; libzmq's I/O threads, where CURVE
encrypts, included), which a host shared with other work disturbs less than the rate.

`--two-hosts` runs the same topology as a pipeline on two hosts, as a user deploys one: the
gateway on host `feed` (127.0.0.2), strategy and sink on host `trade` (127.0.0.3), each started
by its own `cep run FILE --host NAME` process with its own run directory, CURVE with a keypair
per host; ticks/s is the ticks over the longer of the two hosts' elapsed times, the CPU per tick
that of the three workers on both hosts.

    PYTHONPATH=$PWD python bench/tcp_curve.py [--ticks 200000] [--pairs 3] [--delivery at_most_once] [--two-hosts]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cep.runtime.security import generate_keys
from tests.ports import free_port_range, on_free_ports

from cep_chain import pipeline, run_document

HOSTS = {"feed": "127.0.0.2", "trade": "127.0.0.3"}


def source_of(ticks: int) -> dict:
    return {"type": "synthetic", "instruments": 2, "seed": 1, "count": ticks, "rate": 1_000_000, "speed": "max"}


def measure(ticks: int, delivery: str, keys: Path | None) -> tuple[float, int]:
    """(ticks/s, CPU ns per tick summed over the workers) of one run."""
    document = pipeline(source_of(ticks), {"type": "null"}, delivery=delivery)
    if keys is not None:
        document["security"] = {"curve": {"keys": str(keys)}}

    def run_on(base_port: int) -> dict:
        document["transport"] = {"kind": "tcp", "base_port": base_port}
        with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
            return run_document(document, Path(tmp))

    result = on_free_ports(run_on, count=8)
    assert result["ticks"] == ticks and result["lost"] == 0, result
    return result["ticks_per_s"], sum(result["cpu_ns_per_tick"].values())


def measure_two_hosts(ticks: int, delivery: str, curve: bool) -> tuple[float, int]:
    """(ticks/s, CPU ns per tick over both hosts' workers) of one run on two `cep run --host`s."""
    document = pipeline(source_of(ticks), {"type": "null"}, delivery=delivery)
    document["hosts"] = {name: {"address": address, "port": free_port_range(8, address)}
                         for name, address in HOSTS.items()}
    document["deploy"] = {"ticks": {"host": "feed"}, "momentum": {"host": "trade"}, "out": {"host": "trade"}}
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        directory = Path(tmp)
        if curve:
            generate_keys(directory / "keys", hosts=HOSTS)
            document["security"] = {"curve": {"keys": "keys"}}
        path = directory / "pipeline.yaml"
        path.write_text(json.dumps(document, indent=1))
        runs = {host: subprocess.Popen(
            [sys.executable, "-m", "cep.cli", "run", str(path), "--host", host, "-q",
             "--summary-json", str(directory / f"{host}.json")],
            env=dict(os.environ, CEP_RUN_DIR=str(directory / f"run-{host}")), cwd=directory,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for host in HOSTS}
        for host, run in runs.items():
            _, err = run.communicate(timeout=600)
            assert run.returncode == 0, f"{host}: {err}"
        summaries = [json.loads((directory / f"{host}.json").read_text()) for host in HOSTS]
    emitted = summaries[0]["nodes"]["ticks"]["emitted"]
    arrived = summaries[1]["nodes"]["quotes"]["received"]
    assert emitted == arrived == ticks, (emitted, arrived)
    seconds = max(summary["elapsed_s"] for summary in summaries)
    cpu_s = sum(w["cpu_s"] for summary in summaries for w in summary["workers"].values())
    return ticks / seconds, round(cpu_s / ticks * 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--delivery", default="at_most_once")
    parser.add_argument("--two-hosts", action="store_true", help="two cep run --host processes on 127.0.0.2 and "
                        "127.0.0.3 (CURVE with a keypair per host)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cep-keys-") as tmp:
        keys = Path(tmp) / "keys"
        generate_keys(keys)
        rates: dict[str, list[float]] = {"plain tcp": [], "CURVE": []}
        cpu: dict[str, list[int]] = {"plain tcp": [], "CURVE": []}
        for pair in range(args.pairs):
            order = [("plain tcp", None), ("CURVE", keys)]
            for name, keys_dir in order if pair % 2 == 0 else reversed(order):
                if args.two_hosts:
                    rate, ns = measure_two_hosts(args.ticks, args.delivery, curve=keys_dir is not None)
                else:
                    rate, ns = measure(args.ticks, args.delivery, keys_dir)
                rates[name].append(rate)
                cpu[name].append(ns)
    for name, values in rates.items():
        print(f"{name:>9}: best {max(values):,.0f} ticks/s, median {statistics.median(values):,.0f} "
              f"({', '.join(f'{v:,.0f}' for v in values)}); CPU {statistics.median(cpu[name]):,.0f} ns/tick")
    plain, curve = max(rates["plain tcp"]), max(rates["CURVE"])
    extra = statistics.median(cpu["CURVE"]) / statistics.median(cpu["plain tcp"])
    where = "two hosts" if args.two_hosts else "one host"
    print(f"CURVE / plain tcp: rate {curve / plain:.2f} (best of each), CPU per tick {extra:.2f} "
          f"(medians; {args.ticks:,} ticks, {args.delivery}, {where}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")


if __name__ == "__main__":
    main()
