"""Which worker of a parallel node owns a key.

The hash must agree across processes and runs, so Python's salted `hash()` is out: CRC-32 of the
key's text is stable, fast, and spreads instrument names well enough for a handful of workers.
"""
from __future__ import annotations

import zlib
from typing import Any


def partition_of(key: Any, partitions: int) -> int:
    """The worker index (0-based) that owns `key` among `partitions` workers."""
    if partitions == 1:
        return 0
    return zlib.crc32(str(key).encode()) % partitions


class Partitioner:
    """`partition_of` with a cache: a stream has few distinct keys and many events per key."""

    __slots__ = ("partitions", "_cache")

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._cache: dict[Any, int] = {}

    def __call__(self, key: Any) -> int:
        index = self._cache.get(key)
        if index is None:
            index = self._cache[key] = partition_of(key, self.partitions)
        return index
