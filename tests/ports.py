"""Loopback tcp ports for pipelines that tests and benchmarks run on tcp (`transport.base_port`).

A pipeline binds a range of consecutive ports, so the kernel cannot hand out the range (binding
port 0 gives one port). The range is drawn below the kernel's ephemeral range, where no socket
gets a port without asking for it (the connecting sockets of concurrent pipelines take theirs from
the ephemeral range), and every port of it is probed just before use. Another process may still
take a port between the probe and the run, so `on_free_ports` runs again on a new range when,
and only when, a bind failed because a port was already in use."""
from __future__ import annotations

import random
import re
import socket
from pathlib import Path
from typing import Callable, TypeVar

from cep.errors import RuntimeFailure

T = TypeVar("T")
LOWEST = 10_000
IN_USE = re.compile(r"tcp://\S+ is already in use by another process")  # transport.bind's error


def ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    """The first port the kernel hands out on its own (32768 when it does not say)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port_range(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive tcp ports on `host` that are free now."""
    highest = ephemeral_low() - count
    for _ in range(200):
        base = random.randrange(LOWEST, highest)
        probes = [socket.socket() for _ in range(count)]
        try:
            for offset, probe in enumerate(probes):
                probe.bind((host, base + offset))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports on {host} in {LOWEST}-{highest + count}")


def on_free_ports(attempt: Callable[[int], T], count: int, tries: int = 5) -> T:
    """`attempt(base_port)` on a range free just before it; once more on a new range if it fails
    because another process bound one of the ports first. Any other failure is raised."""
    for _ in range(tries - 1):
        try:
            return attempt(free_port_range(count))
        except RuntimeFailure as failure:
            if not IN_USE.search(str(failure)):
                raise
    return attempt(free_port_range(count))
