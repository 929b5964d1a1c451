"""The `zmq` source: records from an external ZeroMQ publisher (the mirror of the `zmq` sink)."""
from __future__ import annotations

import time
from typing import Iterator

import zmq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cep.components.base import BuildContext
from cep.components.sinks.encoding import WireFormat, decode_payload
from cep.components.sinks.endpoints import DEFAULT_ENDPOINT, Endpoint, attach
from cep.durations import parse_duration
from cep.events import Batch
from cep.plugins.markers import source


class ZmqSourceParams(BaseModel):
    """Subscribe to `[topic, payload]` messages, payload a msgpack or JSON map: one record each."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: Endpoint = Field(DEFAULT_ENDPOINT, description="the publisher's endpoint")
    bind: bool = Field(False, description="bind the endpoint (true) or connect to it (false)")
    topics: list[str] = Field(default_factory=list,
                              description="topic prefixes to subscribe to (default: everything)")
    format: WireFormat = Field("msgpack", description="payload encoding: msgpack | json")
    count: int | None = Field(None, ge=1, description="end after this many records")
    idle_timeout: str | None = Field(None, description="end after no message for this long")
    max_message_bytes: int = Field(1 << 20, ge=64, description="larger payloads are dead-lettered "
                                                               "undecoded")
    rcvhwm: int = Field(10_000, ge=1, description="messages queued before the publisher drops")
    poll_interval: str = Field("100ms", description="while idle, hand control back this often")

    @field_validator("idle_timeout", "poll_interval")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError("must be a positive duration such as 100ms or 5s")
        return value


class ZmqSource:
    """Live: yields what has arrived without waiting to fill a batch, and never stalls the feed.

    Delivery: at-most-once and not replayable: what the publisher sent while no one listened, or
    beyond `rcvhwm`, is lost (PUB/SUB drops on the publisher's side). A message that is not a
    two-frame `[topic, payload]` or whose payload is not a map is dead-lettered. While idle it
    yields an empty batch every `poll_interval` so its host can flush timers and honour a stop.
    It ends after `count` records or `idle_timeout` without a message, if given; else when closed.
    """

    live = True
    replayable = False

    def __init__(self, params: ZmqSourceParams, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, params.rcvhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        for topic in params.topics or [""]:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        attach(self._socket, params.endpoint, params.bind)

    def batches(self) -> Iterator[Batch]:
        params = self._params
        sock = self._socket
        poll_ms = parse_duration(params.poll_interval) // 1_000_000 or 1
        idle_s = parse_duration(params.idle_timeout) / 1e9 if params.idle_timeout else None
        remaining = params.count
        last_message = time.monotonic()
        while remaining is None or remaining > 0:
            wait_ms = poll_ms
            if idle_s is not None:
                idle_left = idle_s - (time.monotonic() - last_message)
                if idle_left <= 0:
                    return
                wait_ms = max(1, min(poll_ms, int(idle_left * 1000) + 1))
            if not sock.poll(wait_ms, zmq.POLLIN):
                yield []
                continue
            last_message = time.monotonic()
            batch = self._drain(self._ctx.batch_size if remaining is None
                                else min(remaining, self._ctx.batch_size))
            if remaining is not None:
                remaining -= len(batch)
            if batch:
                yield batch

    def _drain(self, most: int) -> Batch:
        """Up to `most` records from the messages already queued, without waiting."""
        fmt, limit = self._params.format, self._params.max_message_bytes
        recv = self._socket.recv_multipart
        batch: Batch = []
        while len(batch) < most:
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                if len(frames) != 2:
                    raise ValueError(f"{len(frames)} frames, expected [topic, payload]")
                batch.append(decode_payload(frames[1], fmt, limit))
            except ValueError as exc:
                self._ctx.dead_letter(str(exc), b"".join(frames)[:limit])
        return batch

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.close(linger=0)


@source("zmq", params=ZmqSourceParams, live=True)
def zmq_source(params: ZmqSourceParams, ctx: BuildContext) -> ZmqSource:
    """Subscribe to an external ZeroMQ publisher ([topic, msgpack|json map] messages).

    Live and at-most-once; undecodable messages are dead-lettered.
    """
    return ZmqSource(params, ctx)
