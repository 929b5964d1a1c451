"""The dead-letter queue: what could not be decoded or processed, with why and where.

One JSON line per dead letter: time, node, reason and the raw input (text, or base64 for bytes;
a record holding NaN or infinities as its repr, so the line stays JSON). Raw input beyond
`MAX_RAW_CHARS` is cut, saying how long it was: a 20 MB field costs no 20 MB line. Every process
appends to the same file with one `write` per line in append mode, so lines from different
processes never interleave. The count lives in the node's counters.
"""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any


MAX_RAW_CHARS = 4096


def _cut(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else f"{text[:MAX_RAW_CHARS]}... ({len(text)} characters)"


def _bounded(raw: Any) -> Any:
    """Raw input as a dead letter keeps it: bytes as base64, text and long records cut."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
        kept = {"base64": base64.b64encode(data[:MAX_RAW_CHARS]).decode()}
        return kept if len(data) <= MAX_RAW_CHARS else {**kept, "bytes": len(data)}
    if isinstance(raw, str):
        return _cut(raw)
    if isinstance(raw, (dict, list, tuple)) and len(text := repr(raw)) > MAX_RAW_CHARS:
        return _cut(text)
    return raw


class DeadLetters:
    def __init__(self, path: str | Path, worker: str) -> None:
        self.path = Path(path)
        self.worker = worker
        self._file = None

    def __call__(self, node: str, reason: str, raw: Any) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1, encoding="utf-8", opener=_owner_only)
        letter = {"time": time.time(), "worker": self.worker, "node": node, "reason": _cut(reason),
                  "raw": _bounded(raw)}
        try:
            line = json.dumps(letter, default=repr, allow_nan=False)
        except ValueError:  # NaN or an infinity in a record: not JSON, so the record as text
            letter["raw"] = _cut(repr(raw))
            line = json.dumps(letter, default=repr)
        self._file.write(line + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _owner_only(path: str, flags: int) -> int:
    """A new dead-letter file is 0600: it holds raw input, which may not be everyone's to read."""
    return os.open(path, flags, 0o600)
