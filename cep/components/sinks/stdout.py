"""The `stdout` sink: one line per record on standard output, for looking at a stream."""
from __future__ import annotations

import sys
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field

from cep.components.base import BuildContext
from cep.components.sinks.encoding import to_json
from cep.events import Batch, Record
from cep.plugins.markers import sink


class StdoutParams(BaseModel):
    """Print each record as one line: JSON, or `field=value` pairs for reading by eye."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["json", "text"] = Field("json", description="json | text (field=value pairs)")


def to_text(record: Record) -> str:
    """`field=value` pairs separated by spaces, in the record's field order."""
    return " ".join(f"{name}={value}" for name, value in record.items())


class StdoutSink:
    """Writes each batch as lines and flushes, so a pipe sees records as they come.

    Delivery: at-most-once (a closed pipe loses what was not yet written).
    """

    def __init__(self, params: StdoutParams, stream: TextIO | None = None) -> None:
        self._line = to_json if params.format == "json" else to_text
        self._stream = stream

    def write(self, batch: Batch) -> None:
        stream = self._stream or sys.stdout  # looked up late: tests and the CLI may swap stdout
        line = self._line
        stream.write("".join(line(record) + "\n" for record in batch))
        stream.flush()

    def close(self) -> None:
        (self._stream or sys.stdout).flush()


@sink("stdout", params=StdoutParams)
def stdout_sink(params: StdoutParams, ctx: BuildContext) -> StdoutSink:
    """Print records to standard output, one line each (format json|text). At-most-once."""
    return StdoutSink(params)
