"""The `zmq` sink: publish records for external consumers (the mirror of the `zmq` source)."""
from __future__ import annotations

import zmq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cep.components.base import BuildContext
from cep.components.sinks.endpoints import DEFAULT_ENDPOINT, Endpoint, attach
from cep.components.sinks.encoding import WireFormat, encode_payload
from cep.durations import parse_duration
from cep.events import Batch
from cep.plugins.markers import sink

class ZmqSinkParams(BaseModel):
    """Publish each record as a `[topic, payload]` message on a ZeroMQ PUB-compatible socket."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: Endpoint = Field(DEFAULT_ENDPOINT, description="where to publish; loopback unless "
                                                        "another host is written explicitly")
    bind: bool = Field(True, description="bind the endpoint (true) or connect to it (false)")
    topic_field: str = Field("instrument", description="record field whose value is the topic")
    format: WireFormat = Field("msgpack", description="payload encoding: msgpack | json")
    sndhwm: int = Field(10_000, ge=1, description="messages queued per subscriber before drops")
    linger: str = Field("1s", description="how long close() may wait to deliver queued messages")
    wait_for_subscriber: str | None = Field(
        None, description="before the first record, wait up to this long for a subscription")

    @field_validator("linger", "wait_for_subscriber")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

class ZmqSink:
    """Publishes one message per record; never blocks the pipeline.

    Delivery: at-most-once. A subscriber that falls `sndhwm` messages behind makes the publisher
    drop (counted under `subscriber_full`) instead of stalling; a subscriber that joins late misses
    what came before (`wait_for_subscriber` lets the first one join before anything is sent).
    """

    def __init__(self, params: ZmqSinkParams, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx
        self._socket = zmq.Context.instance().socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, params.sndhwm)
        self._socket.setsockopt(zmq.LINGER, parse_duration(params.linger) // 1_000_000)
        self._socket.setsockopt(zmq.XPUB_NODROP, 1)  # a full peer raises Again: drops get counted
        attach(self._socket, params.endpoint, params.bind)
        self._awaiting = params.wait_for_subscriber is not None

    @property
    def endpoint(self) -> str:
        """The endpoint actually bound or connected (a `tcp://HOST:*` wildcard resolved)."""
        return self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def write(self, batch: Batch) -> None:
        sock = self._socket
        if self._awaiting:
            self._awaiting = False
            sock.poll(parse_duration(self._params.wait_for_subscriber) // 1_000_000, zmq.POLLIN)
        self._drain_subscriptions()
        field = self._params.topic_field
        fmt = self._params.format
        send = sock.send_multipart
        dropped = 0
        for record in batch:
            topic = record.get(field)
            try:
                send([b"" if topic is None else str(topic).encode(), encode_payload(record, fmt)],
                     zmq.NOBLOCK)
            except zmq.Again:
                dropped += 1
        if dropped:
            self._ctx.counters.drop("subscriber_full", dropped)

    def _drain_subscriptions(self) -> None:
        """Subscription messages queue up on an XPUB socket; read them so they never fill it."""
        while True:
            try:
                self._socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close()

@sink("zmq", params=ZmqSinkParams)
def zmq_sink(params: ZmqSinkParams, ctx: BuildContext) -> ZmqSink:
    """Publish records over ZeroMQ as [topic, msgpack|json] messages for external consumers.

    At-most-once: a slow subscriber's excess is dropped and counted, never stalls the pipeline.
    """
    return ZmqSink(params, ctx)
