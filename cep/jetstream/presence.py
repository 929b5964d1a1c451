"""Which hosts of a multi-host pipeline take part in the current run of its NATS edges.

A JetStream stream outlives the processes that write it, so a consumer on one host cannot tell
an earlier run's messages from this run's by looking at them. Each host readies its own part
of the stream when its `cep run --host` starts (`cep.jetstream.edges.prepare`: the subjects its
processes publish, the durable consumers its processes read through), and then answers, for as
long as it runs, requests on its presence subject. A consuming worker reads an edge from another
host only once that host answered: its producer's subjects then hold this run's messages only,
whichever host started first. (On one host the supervisor readies the whole stream before any
worker starts, and nobody waits.)

The presence subjects are outside the stream's `cep.<pipeline>.>`, so JetStream never stores a
request or answers one itself.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from cep.jetstream.client import NatsConnection, close, connect, loop
from cep.jetstream.edges import token

ASK_EVERY_S = 0.5
"""How long a consumer waits for an answer before asking again."""


def presence_subject(pipeline: str, host: str) -> str:
    return f"cep_hosts.{token(pipeline)}.{token(host)}"


class Presence:
    """The answering end, in a host's supervisor: from `start()` (after its part of the stream
    is ready) to `close()`."""

    def __init__(self, connection: NatsConnection, pipeline: str, host: str) -> None:
        self.client = connect(connection, f"cep {pipeline}@{host}")
        self.subscription = loop().call(self.client.subscribe(presence_subject(pipeline, host), cb=self._answer))

    async def _answer(self, message: Any) -> None:
        if message.reply:
            await self.client.publish(message.reply, b"here")

    def close(self) -> None:
        close(self.client)


async def wait_for_host(client: Any, pipeline: str, host: str, stopping: Callable[[], bool]) -> bool:
    """Until `host` answers (True), or `stopping()` (False). Asks every `ASK_EVERY_S`; a host
    that is not there yet is no error."""
    from nats.errors import NoRespondersError, TimeoutError as RequestTimeout
    subject = presence_subject(pipeline, host)
    while not stopping():
        try:
            await client.request(subject, b"", timeout=ASK_EVERY_S)
            return True
        except NoRespondersError:
            await _pause(ASK_EVERY_S, stopping)
        except (RequestTimeout, asyncio.TimeoutError):
            continue
    return False


async def _pause(seconds: float, stopping: Callable[[], bool]) -> None:
    """Sleep `seconds`, in short steps, so a closing worker does not wait it out."""
    for _ in range(int(seconds / 0.05)):
        if stopping():
            return
        await asyncio.sleep(0.05)

