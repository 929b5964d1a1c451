"""What names a pipeline's NATS edges, shared by the compiler, the supervisor and the workers.

With `transport: {kind: nats}` every edge of pipeline P travels on a subject of P's stream
`CEP_<P>` (subjects `cep.<P>.>`): `cep.<P>.<node>` for market data, which every consuming
process reads, `cep.<P>.<node>.<consumer process>` for what rules emit. Each consuming worker
reads through a durable consumer named after the node and the worker (`durable`). `prepare`
readies the stream before any worker starts.
"""
from __future__ import annotations

import re
import uuid
from typing import Any

from cep.jetstream.client import NatsConnection, close, connect, loop
from cep.jetstream.streams import StreamLimits, ensure_stream

CONNECTION_KEYS = ("url", "token", "user", "password", "nkey", "creds", "tls_ca", "tls_cert", "tls_key")
LIMIT_KEYS = ("replicas", "max_age", "max_bytes")
RUN_KEY = "cep.run"
"""Stream metadata: the token of the run whose frames the stream holds."""


def token(name: str) -> str:
    """`name` as one subject token or part of a stream name (what would split or widen a
    subject, or is not allowed in a stream name, becomes `_`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name) or "_"


def stream_name(pipeline: str) -> str:
    return f"CEP_{token(pipeline)}"


def stream_subjects(pipeline: str) -> str:
    return f"cep.{token(pipeline)}.>"


def subject(pipeline: str, node: str, consumer: str | None = None) -> str:
    """The subject of a node's edges: one for market data (`consumer` None), else one per
    consuming process."""
    base = f"cep.{token(pipeline)}.{token(node)}"
    return base if consumer is None else f"{base}.{token(consumer)}"


def durable(node: str, worker: str) -> str:
    """The durable consumer through which consumer `worker` reads `node`'s edge (a process of
    one worker: the process's name)."""
    return token(f"{node}--{worker}")


def connection(settings: dict[str, Any]) -> NatsConnection:
    return NatsConnection.model_validate({k: v for k, v in settings.items() if k in CONNECTION_KEYS})


def limits(settings: dict[str, Any]) -> StreamLimits:
    return StreamLimits.model_validate({k: v for k, v in settings.items() if k in LIMIT_KEYS})


def prepare(pipeline: str, settings: dict[str, Any], consumers: list[tuple[str, str]], fresh: bool,
            host: str | None = None, subjects: list[str] | None = None) -> str:
    """Before any worker starts: the pipeline's stream exists (created, or checked against the
    limits the pipeline states), and for a `fresh` run (one that does not resume from
    checkpoints) holds no earlier run's messages, nor durable consumers (`(node, consumer worker)`).
    Returns the run's token, which message ids carry so that JetStream's deduplication never
    takes a frame of this run for one of an earlier run (a resumed run goes on with its own).
    One `host` of several readies only its part: the `subjects` its processes publish on and the
    consumers they read through, with a token of its own (`cep.jetstream.presence`)."""
    client = connect(connection(settings), f"cep {pipeline}")
    try:
        return loop().call(_prepare(client.jetstream(), pipeline, settings, consumers, fresh, host, subjects))
    finally:
        close(client)


async def _prepare(js: Any, pipeline: str, settings: dict[str, Any], consumers: list[tuple[str, str]],
                   fresh: bool, host: str | None, subjects: list[str] | None) -> str:
    from nats.js.errors import NotFoundError
    name = stream_name(pipeline)
    stated = {key for key in LIMIT_KEYS if key in settings}
    await ensure_stream(js, name, stream_subjects(pipeline), limits(settings), stated,
                        f"cep: the edges of pipeline {pipeline}")
    config = (await js.stream_info(name)).config
    run_key = RUN_KEY if host is None else f"{RUN_KEY}.{token(host)}"
    run = (config.metadata or {}).get(run_key)
    if not fresh and (run or host):  # hosts write the metadata concurrently: one's token may be lost
        return run or await _new_run(js, config, run_key)
    for subject in [None] if subjects is None else subjects:
        await js.purge_stream(name, subject=subject)
    for node, worker in consumers:
        try:
            await js.delete_consumer(name, durable(node, worker))
        except NotFoundError:
            pass
    return await _new_run(js, config, run_key)


async def _new_run(js: Any, config: Any, run_key: str) -> str:
    run = uuid.uuid4().hex[:12]
    config.metadata = {key: value for key, value in (config.metadata or {}).items()
                       if not key.startswith("_nats")} | {run_key: run}
    await js.update_stream(config)
    return run
