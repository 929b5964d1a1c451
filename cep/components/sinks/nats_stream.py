"""The `nats` sink: records any stream into a NATS JetStream stream, which the `nats` source
replays (a backtest and a live strategy then read the same log)."""
from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field, NonNegativeInt, field_validator

from cep.components.base import BuildContext
from cep.components.state import restorer
from cep.jetstream.client import NatsConnection, close, connect, loop
from cep.jetstream.frames import message_body
from cep.jetstream.publish import Publisher
from cep.jetstream.streams import StreamLimits, ensure_stream
from cep.jetstream.subjects import StreamName, check_subject
from cep.plugins.markers import sink
from cep.rows import AnyBatch, as_records, items, like


class NatsSinkParams(NatsConnection, StreamLimits):
    """Publish batches of records to a subject of a JetStream stream (created if missing)."""

    stream: StreamName = Field(description="the JetStream stream (created with the limits below "
                                           "if missing, else checked against the ones written)")
    subject: str | None = Field(None, description="subject to publish to (default cep.<stream>)")

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        return value if value is None else check_subject(value)

    @property
    def target(self) -> str:
        return self.subject or f"cep.{self.stream}"


class NatsSink:
    """Publishes each batch it is given as one message (several if the server's max_payload is
    smaller), the frame body cep's edges carry (`cep.jetstream.frames`).

    Delivery: at-most-once to at-least-once: `flush()` returns once JetStream stored everything
    written, and the runtime acknowledges the sink's input only after it (a restart sends again
    what was not acknowledged: duplicates possible). Exactly-once: its checkpoint is how many
    records it published under which producer id, all stored before the checkpoint is taken; a
    restarted sink publishes what comes again at the same positions (and message ids), so
    JetStream drops an identical message and the `nats` source reads a record it holds twice
    once. Each message waits for no other: a batch is published as soon as it is written.
    """

    def __init__(self, params: NatsSinkParams, ctx: BuildContext) -> None:
        self._ctx = ctx
        self._subject = params.target
        self._client = connect(params, f"cep {ctx.node}")
        loop().call(ensure_stream(self._client.jetstream(), params.stream, self._subject, params,
                                  params.model_fields_set, f"cep: records of {ctx.node}"))
        self._publisher = Publisher(self._client)
        self.producer = f"{ctx.node}.{uuid.uuid4().hex[:12]}"
        self.position = 0  # records published under `producer`

    def write(self, batch: AnyBatch) -> None:
        refused: list[Any] = []

        def refuse(reason: str, record: Any) -> None:
            refused.append(record)
            self._ctx.dead_letter(reason, record)

        body = message_body(self.producer, self.position, batch, refuse)
        if len(body) > self._publisher.max_payload:
            self._split(batch, len(body))
            return
        count = len(batch) - len(refused)
        # the id names the records, not only where they start: a resend cut differently is no
        # duplicate to JetStream (the reader leaves out what it holds twice)
        self._publisher.publish(self._subject, body, f"{self.producer}:{self.position}:{count}")
        self.position += count

    def _split(self, batch: AnyBatch, size: int) -> None:
        """A batch too large for one message goes in halves; a single record that is alone too
        large is dead-lettered."""
        records = items(batch)
        if len(records) == 1:
            self._ctx.dead_letter(f"a record of {size} bytes exceeds the NATS server's max_payload "
                                  f"({self._publisher.max_payload} bytes)", as_records(batch)[0])
            return
        half = len(records) // 2
        self.write(like(batch, records[:half]))
        self.write(like(batch, records[half:]))

    def flush(self) -> None:
        """Return once JetStream stored everything written (reliable delivery acks after this)."""
        self._publisher.wait()

    def state(self) -> list:
        """The checkpoint: the producer id and how many records it published, all stored."""
        self.flush()
        return [self.producer, self.position]

    def restore(self, state: tuple[str, int]) -> None:
        self.producer, self.position = state

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._publisher.close()
            close(self._client)


@sink("nats", params=NatsSinkParams, rows=True, checkpoint=True)
def nats_sink(params: NatsSinkParams, ctx: BuildContext) -> NatsSink:
    """Record records into a NATS JetStream stream (created or checked), for the `nats` source.

    Any delivery mode: stored before its input is acknowledged; under exactly_once each record
    is read back once. Needs nats-py (pip install 'cep[nats]').
    """
    nats_sink = NatsSink(params, ctx)
    ctx.keep_state(nats_sink.state, restorer(tuple[str, NonNegativeInt], nats_sink.restore))
    return nats_sink

