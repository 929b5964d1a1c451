"""Publishing from a synchronous thread: in order, acknowledged by JetStream, bounded.

`Publisher.publish` hands a message to the event-loop thread and returns at once; the loop
publishes messages in the order they were handed over (each starts with a callback queued in
order, and nats-py appends a message to its outgoing buffer before it first yields), and the
stream stores them in that order, except that a message published again (no acknowledgement in
time: a failover) may be stored after later ones. `wait()` returns once JetStream acknowledged
every message published so far, which is when their records are safe; at most `in_flight`
messages wait for an acknowledgement, after which `publish` blocks (back-pressure, never an
unbounded buffer).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
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
        self.retries = 0
        self._notify = notify
        """Called on the event-loop thread each time a publish is settled (stored or failed)."""
        if not self._js._async_reply_prefix:  # set up before the first publish, or the first
            self._loop.call(self._js._init_async_reply())  # two would race to (nats-py 2.7+)

    def publish(self, subject: str, body: bytes, msg_id: str | None = None) -> concurrent.futures.Future:
        """Send one message (`msg_id`: JetStream drops a second message with the same id within
        the stream's duplicate window); its future is done once it is stored, or failed."""
        self._slots.acquire()
        self._settle()
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._unacked.append(done)
        headers = {MSG_ID: msg_id} if msg_id is not None else None
        self._loop.loop.call_soon_threadsafe(self._start, subject, body, headers, done)
        return done

    def _start(self, subject: str, body: bytes, headers: dict | None,
               done: concurrent.futures.Future) -> None:
        asyncio.ensure_future(self._publish(subject, body, headers, done))

    async def _publish(self, subject: str, body: bytes, headers: dict | None,
                       done: concurrent.futures.Future) -> None:
        """Publish until JetStream acknowledges, for up to `RETRY_FOR_S`: a cluster electing a
        stream leader, or a client reconnecting to another server, answers nothing for a while.
        Publishing again is safe: a message with an id is stored once."""
        deadline = asyncio.get_running_loop().time() + RETRY_FOR_S
        try:
            while True:
                try:
                    ack = await self._js.publish_async(subject, body, headers=headers)
                    done.set_result(await asyncio.wait_for(ack, self._ack_timeout_s))
                    return
                except Exception as exc:  # anything nats-py raises: no responders, timeouts, API errors
                    if asyncio.get_running_loop().time() > deadline:
                        done.set_exception(exc)
                        return
                    self.retries += 1
                    await asyncio.sleep(RETRY_PAUSE_S)
        finally:
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


def _stored(done: concurrent.futures.Future, timeout: float) -> None:
    try:
        done.result(timeout)
    except Exception as exc:
        raise PublishFailed(f"JetStream did not store a message: {type(exc).__name__}: "
                            f"{exc or 'no acknowledgement'}") from None
