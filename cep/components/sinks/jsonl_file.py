"""The `jsonl` sink: records appended to a JSON Lines file, one object per line."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cep.components.base import BuildContext
from cep.components.sinks.encoding import to_json
from cep.events import Batch
from cep.plugins.markers import sink


class JsonlSinkParams(BaseModel):
    """Write each record as one line of JSON to a file (parent directories are created)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="output file, relative to the pipeline file")
    mode: Literal["truncate", "append"] = Field(
        "truncate", description="truncate: start the file afresh each run (a worker restarted "
                                "after a crash appends); append: add to it")


class JsonlSink:
    """Buffers lines and writes them in batches; everything is on disk after `close()`.

    Delivery: at-least-once on a reliable edge (the runtime calls `flush()` before it acknowledges
    the input, so a crash of this process loses nothing acknowledged; lines written again after a
    retransmit are duplicates). A file keyed by signal id is what a reader dedupes on; this sink
    does not dedupe.
    """

    def __init__(self, path: Path, mode: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a" if mode == "append" else "w", encoding="utf-8")

    def write(self, batch: Batch) -> None:
        self._file.write("".join(to_json(record) + "\n" for record in batch))

    def flush(self) -> None:
        """Hand what was written to the operating system (reliable delivery acks after this)."""
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


@sink("jsonl", params=JsonlSinkParams)
def jsonl_sink(params: JsonlSinkParams, ctx: BuildContext) -> JsonlSink:
    """Write records to a JSON Lines file (mode truncate|append). At-most-once; flushed on close."""
    restarted = ctx.incarnation > 0  # after a crash: keep what the former incarnation wrote
    return JsonlSink(ctx.resolve(params.path), "append" if restarted else params.mode)
