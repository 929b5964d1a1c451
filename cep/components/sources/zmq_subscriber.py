"""The `zmq` source: records from an external ZeroMQ publisher (the mirror of the `zmq` sink)."""
from __future__ import annotations

import time
from typing import Iterator

import zmq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cep.codec import MAX_FRAME_BYTES
from cep.components.base import BuildContext
from cep.components.sources.checks import (
    DEFAULT_MAX_STRING, INVALID_HELP, MAX_STRING_HELP, InvalidPolicy, Screen, record_problem)
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
    max_message_bytes: int = Field(
        1 << 20, ge=64, le=MAX_FRAME_BYTES,
        description="largest message frame taken in; ZeroMQ refuses a larger one before it is "
                    "read into memory (MAXMSGSIZE) by dropping the publisher's connection: "
                    "counted as 'disconnected', and the source connects again")
    invalid: InvalidPolicy = Field("deadletter", description=INVALID_HELP)
    max_string_length: int = Field(DEFAULT_MAX_STRING, ge=1, description=MAX_STRING_HELP)
    rcvhwm: int = Field(10_000, ge=1, description="messages queued before the publisher drops")
    poll_interval: str = Field("100ms", description="while idle, hand control back this often")

    @field_validator("idle_timeout", "poll_interval")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError("must be a positive duration such as 100ms or 5s")
        return value


_BATCH_BYTES = MAX_FRAME_BYTES // 4
"""A batch is cut once its payloads reach this many bytes, so the frame it travels in (at most
about twice as large as JSON payloads, as large as msgpack ones) stays below `MAX_FRAME_BYTES`."""


class ZmqSource:
    """Live: yields what has arrived without waiting to fill a batch, and never stalls the feed.

    Delivery: at-most-once and not replayable: what the publisher sent while no one listened, or
    beyond `rcvhwm`, is lost (PUB/SUB drops on the publisher's side). A message that is not a
    two-frame `[topic, payload]`, whose payload is not a map, or whose record holds what no frame
    can carry (`checks`: an ext type or msgpack Timestamp, a NaN, a string over
    `max_string_length`, deep nesting) is dead-lettered alone; invalid tick fields are handled per
    `invalid`. A frame over `max_message_bytes` never enters memory: ZeroMQ (MAXMSGSIZE) drops
    the publisher's connection instead, which is counted ('disconnected') and connected again.
    While idle it yields an empty batch every `poll_interval` so its host can flush timers and
    honour a stop. It ends after `count` records or `idle_timeout` without a message, if given;
    else when closed.
    """

    def __init__(self, params: ZmqSourceParams, ctx: BuildContext) -> None:
        self._params = params
        self._ctx = ctx
        self._screen = Screen(ctx, params.invalid)
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, params.rcvhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, params.max_message_bytes)
        for topic in params.topics or [""]:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._reconnect = False
        attach(self._socket, params.endpoint, params.bind)

    def batches(self) -> Iterator[Batch]:
        params = self._params
        sock = self._socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
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
            ready = dict(poller.poll(wait_ms))
            if self._monitor in ready:
                self._count_disconnects()
            batch: Batch = []
            if sock in ready:
                last_message = time.monotonic()
                batch = self._drain(self._ctx.batch_size if remaining is None
                                    else min(remaining, self._ctx.batch_size))
            if self._reconnect and not sock.poll(0, zmq.POLLIN):
                self._connect_again()
            if remaining is not None:
                remaining -= len(batch)
            if batch or sock not in ready:
                yield batch

    def _count_disconnects(self) -> None:
        """The publisher's connection dropped (after a message over MAXMSGSIZE, or the publisher
        went away): counted, since what it sent meanwhile is lost. ZeroMQ does not connect again
        by itself after an oversize message, so a connecting source does, once it has read what
        had arrived before (a bound one is the publisher's to reconnect to)."""
        while True:
            try:
                self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._ctx.counters.drop("disconnected")
            self._reconnect = not self._params.bind

    def _connect_again(self) -> None:
        """Connect anew. Only with nothing left to read: libzmq 4.3 aborts the process if a
        disconnected pipe still held part of a message (fq.cpp: `!_more`)."""
        self._reconnect = False
        try:
            self._socket.disconnect(self._params.endpoint)
        except zmq.ZMQError:
            pass  # ZeroMQ had already forgotten the endpoint
        self._socket.connect(self._params.endpoint)

    def _drain(self, most: int) -> Batch:
        """Up to `most` records from the messages already queued, without waiting (and fewer
        once their payloads reach `_BATCH_BYTES`)."""
        fmt, limit = self._params.format, self._params.max_message_bytes
        recv = self._socket.recv_multipart
        batch: Batch = []
        size = 0
        while len(batch) < most and size < _BATCH_BYTES:
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                if len(frames) != 2:
                    raise ValueError(f"{len(frames)} frames, expected [topic, payload]")
                record = decode_payload(frames[1], fmt, limit)
            except ValueError as exc:
                self._ctx.dead_letter(str(exc), b"".join(frames)[:limit])
                continue
            size += len(frames[1])
            if self._fit(record, frames[1]):
                batch.append(record)
        return batch

    def _fit(self, record: dict, payload: bytes) -> bool:
        """Whether a decoded record goes on (`Screen.judge`)."""
        problem = record_problem(record, self._params.max_string_length)
        return problem is None or self._screen.judge(problem, payload)

    def close(self) -> None:
        if not self._socket.closed:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._socket.close(linger=0)


@source("zmq", params=ZmqSourceParams, live=True)
def zmq_source(params: ZmqSourceParams, ctx: BuildContext) -> ZmqSource:
    """Subscribe to an external ZeroMQ publisher ([topic, msgpack|json map] messages).

    Live and at-most-once; undecodable messages are dead-lettered.
    """
    return ZmqSource(params, ctx)
