"""The `jsonl` sink: records appended to a JSON Lines file, one object per line."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from cep.components.base import BuildContext
from cep.components.sinks.afresh import MODE, Afresh, OutputMode
from cep.components.sinks.encoding import to_json
from cep.components.state import restorer
from cep.events import Batch
from cep.plugins.markers import sink


class JsonlSinkParams(BaseModel):
    """Write each record as one line of JSON to a file (parent directories are created)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="output file, relative to the pipeline file")
    mode: OutputMode = MODE


class JsonlSink:
    """Buffers lines and writes them in batches; everything is on disk after `close()`.

    A file in `truncate` mode is started afresh when the first record comes (or at the end of a
    run that had none), never when the sink is built (`cep.components.sinks.afresh`).

    Delivery: at-least-once on a reliable edge (the runtime calls `flush()` before it acknowledges
    the input, so a crash of this process loses nothing acknowledged; lines written again after a
    retransmit are duplicates). Exactly-once: its checkpointed state is the file offset, and a
    restarted sink cuts the file back to it before the lost tail comes again.
    """

    def __init__(self, path: Path, afresh: Afresh) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._afresh = afresh
        self._file = open(path, "a", encoding="utf-8")  # appending cuts nothing; fails now if it must

    def _start_afresh(self) -> None:
        """Empty the file the first time this run writes to it (or closes it)."""
        if self._afresh.pending:
            self._cut(0)
            self._afresh.done()

    def write(self, batch: Batch) -> None:
        self._start_afresh()
        self._file.write("".join(to_json(record) + "\n" for record in batch))

    def flush(self) -> None:
        """Hand what was written to the operating system (reliable delivery acks after this)."""
        if not self._file.closed:
            self._file.flush()

    def offset(self) -> int:
        """Where this run's output ends once everything written so far is flushed (the sink's
        state)."""
        if self._file.closed:
            return self._closed_at
        if self._afresh.pending:
            return 0
        self.flush()
        return self._file.tell()

    def rewind(self, offset: int) -> None:
        """Drop what was written after `offset` (lines a crashed incarnation wrote past its last
        checkpoint; they come again)."""
        self._start_afresh()
        self._cut(offset)

    def _cut(self, offset: int) -> None:
        self._file.flush()
        self._file.truncate(offset)
        self._file.seek(offset)

    def close(self) -> None:
        if not self._file.closed:
            self._start_afresh()  # a run without records still leaves its file empty
            self._closed_at = self.offset()
            self._file.close()


@sink("jsonl", params=JsonlSinkParams, checkpoint=True)
def jsonl_sink(params: JsonlSinkParams, ctx: BuildContext) -> JsonlSink:
    """Write records to a JSON Lines file (mode truncate|append); any delivery mode.

    Flushed when its input is acknowledged (at_least_once) and on close; under exactly_once a
    restart cuts the file back to its checkpointed length, so no line is written twice.
    """
    sink = JsonlSink(ctx.resolve(params.path), Afresh.of(params.mode, ctx))
    ctx.keep_state(sink.offset, restorer(NonNegativeInt, sink.rewind))
    return sink
