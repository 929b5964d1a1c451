"""Publishing from a synchronous thread: in order, acknowledged by JetStream, bounded.

`Publisher.publish` hands a message to the event-loop thread and returns at once. One task on
the loop hands the messages to nats-py one after the other (`publish_async` returns once the
message is in the connection's outgoing buffer, with a future of its acknowledgement), so the
stream stores them in the order they were published, except that a message published again (no
acknowledgement in time: a failover) is stored after the ones published meanwhile. `wait()`
returns once JetStream acknowledged every message published so far, which is when their records
are safe; at most `in_flight` messages wait for an acknowledgement, after which `publish` blocks
(back-pressure, never an unbounded buffer). Only nats-py's public API is used.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from dataclasses import dataclass
from typing import Any, Callable

from cep.errors import RuntimeFailure
from cep.jetstream.client import loop

MSG_ID = "Nats-Msg-Id"
RETRY_FOR_S = 30.0
"""How long a message is published again before the publisher gives up (the worker fails)."""
RETRY_PAUSE_S = 0.25


class PublishFailed(RuntimeFailure):
    """JetStream did not store a message (no stream, limits, timeout): what waited for it must
    be sent again, so the worker is restarted."""


@dataclass
class _Message:
    subject: str
    body: bytes
    headers: dict | None
    done: concurrent.futures.Future
    deadline: float | None = None  # on the loop's clock, set at the first attempt


class Publisher:
    """Ordered JetStream publishes with acknowledgements collected by `wait()`."""

    def __init__(self, client: Any, in_flight: int = 512, ack_timeout_s: float = 5.0,
                 notify: Callable[[], None] | None = None) -> None:
        self._js = client.jetstream()
        self._loop = loop()
        self._slots = threading.BoundedSemaphore(in_flight)
        self._unacked: list[concurrent.futures.Future] = []
        self._ack_timeout_s = ack_timeout_s
        self.max_payload: int = client.max_payload
        self._notify = notify
        """Called on the event-loop thread each time a publish is settled (stored or failed)."""
        self._outgoing: asyncio.Queue[_Message] = asyncio.Queue()  # used on the loop only
        self._sender = self._loop.submit(self._send())

    def publish(self, subject: str, body: bytes, msg_id: str | None = None) -> concurrent.futures.Future:
        """Send one message (`msg_id`: JetStream drops a second message with the same id within
        the stream's duplicate window); its future is done once it is stored, or failed."""
        self._slots.acquire()
        self._settle()
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._unacked.append(done)
        headers = {MSG_ID: msg_id} if msg_id is not None else None
        self._loop.post(self._outgoing.put_nowait, _Message(subject, body, headers, done))
        return done

    async def _send(self) -> None:
        """The one task that hands messages to nats-py: each is in the connection's buffer before
        the next is handed over, so they go in order."""
        while True:
            message = await self._outgoing.get()
            if message.deadline is None:
                message.deadline = asyncio.get_running_loop().time() + RETRY_FOR_S
            try:
                ack = await self._js.publish_async(message.subject, message.body, headers=message.headers)
            except Exception as exc:  # closed or draining connection, a full reconnect buffer
                self._again(message, exc)
                continue
            asyncio.ensure_future(self._acknowledged(message, ack))

    async def _acknowledged(self, message: _Message, ack: asyncio.Future) -> None:
        """Settle `message` once JetStream acknowledged it; publish it again when it did not
        answer in time or refused (a cluster electing a stream leader, a client reconnecting to
        another server answers nothing for a while). Publishing again is safe: a message with an
        id is stored once."""
        try:
            stored = await asyncio.wait_for(ack, self._ack_timeout_s)
        except Exception as exc:  # anything nats-py raises: no responders, timeouts, API errors
            self._again(message, exc)
            return
        self._settled(message, lambda: message.done.set_result(stored))

    def _again(self, message: _Message, exc: Exception) -> None:
        """Publish `message` again after a pause, or fail it past its deadline."""
        if asyncio.get_running_loop().time() > message.deadline:
            self._settled(message, lambda: message.done.set_exception(exc))
        else:
            asyncio.get_running_loop().call_later(RETRY_PAUSE_S, self._outgoing.put_nowait, message)

    def _settled(self, message: _Message, settle: Callable[[], None]) -> None:
        settle()
        self._slots.release()
        if self._notify is not None:
            self._notify()

    def _settle(self) -> None:
        """Forget the acknowledged messages at the front (a publisher nobody `wait`s for stays
        bounded); PublishFailed for one that failed."""
        unacked = self._unacked
        settled = 0
        while settled < len(unacked) and unacked[settled].done():
            _stored(unacked[settled], 0)
            settled += 1
        del unacked[:settled]

    def wait(self) -> None:
        """Return once every message published so far is stored; PublishFailed if one is not."""
        unacked, self._unacked = self._unacked, []
        for done in unacked:
            _stored(done, RETRY_FOR_S + self._ack_timeout_s + 5)

    @property
    def pending(self) -> int:
        return len(self._unacked)

    def close(self) -> None:
        """Stop the sending task (before its client closes)."""
        self._sender.cancel()


def _stored(done: concurrent.futures.Future, timeout: float) -> None:
    try:
        done.result(timeout)
    except Exception as exc:
        raise PublishFailed(f"JetStream did not store a message: {type(exc).__name__}: "
                            f"{exc or 'no acknowledgement'}") from None
