"""The dead-letter queue: what could not be decoded or processed, with why and where.

One JSON line per dead letter: time, node, reason and the raw input (text, or base64 for bytes).
Every process appends to the same file with one `write` per line in append mode, so lines from
different processes never interleave. The count lives in the node's counters.
"""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any


class DeadLetters:
    def __init__(self, path: str | Path, worker: str) -> None:
        self.path = Path(path)
        self.worker = worker
        self._file = None

    def __call__(self, node: str, reason: str, raw: Any) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1, encoding="utf-8", opener=_owner_only)
        if isinstance(raw, (bytes, bytearray, memoryview)):
            raw = {"base64": base64.b64encode(bytes(raw)).decode()}
        line = json.dumps({"time": time.time(), "worker": self.worker, "node": node,
                           "reason": reason, "raw": raw}, default=repr)
        self._file.write(line + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _owner_only(path: str, flags: int) -> int:
    """A new dead-letter file is 0600: it holds raw input, which may not be everyone's to read."""
    return os.open(path, flags, 0o600)
