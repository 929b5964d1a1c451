"""`transport: {kind: nats}`: the NATS settings checked and carried on the plan, and every edge
turned into a JetStream subject (`cep.jetstream.edges`).

A NATS edge keeps its place in the plan; its `subject` says what carries it, and its endpoints
become inproc addresses inside the consuming worker, where a bridge hands the messages to the
same inlets ZeroMQ edges use (`cep.runtime.transport.jetstream`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from cep.config.models import Pipeline
from cep.errors import Problem
from cep.jetstream.client import NatsConnection
from cep.jetstream.edges import CONNECTION_KEYS, LIMIT_KEYS, subject
from cep.jetstream.streams import StreamLimits
from cep.plan import EdgePlan, ProcessPlan

NATS_KEYS = CONNECTION_KEYS + LIMIT_KEYS


def nats_settings(pipeline: Pipeline) -> tuple[dict[str, Any] | None, list[Problem]]:
    """`(settings, problems)`: the NATS keys of `transport:` checked (TLS files resolved against
    the pipeline file), None when the transport is not NATS."""
    transport = pipeline.transport
    given = {key: getattr(transport, key) for key in NATS_KEYS if getattr(transport, key) is not None}
    if transport.kind != "nats":
        return None, [Problem(f"transport: {key} is a setting of kind: nats, not of kind: {transport.kind}",
                              pipeline.locate("transport", key), "write kind: nats, or remove it")
                      for key in given]
    settings: dict[str, Any] = {}
    problems: list[Problem] = []
    try:
        settings.update(NatsConnection.model_validate(
            {k: v for k, v in given.items() if k in CONNECTION_KEYS},
            context={"base_dir": pipeline.base_dir}).model_dump(exclude_none=True))
    except ValidationError as exc:
        problems += _problems(exc, pipeline)
    try:
        StreamLimits.model_validate({k: v for k, v in given.items() if k in LIMIT_KEYS})
        settings.update({k: v for k, v in given.items() if k in LIMIT_KEYS})
    except ValidationError as exc:
        problems += _problems(exc, pipeline)
    return settings, problems


def _problems(exc: ValidationError, pipeline: Pipeline) -> list[Problem]:
    found = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else None
        message = error["msg"].removeprefix("Value error, ")
        found.append(Problem(f"transport: {key + ': ' if key else ''}{message}",
                             pipeline.locate("transport", *([key] if key else []))))
    return found


def over_nats(pipeline: Pipeline, edges: list[EdgePlan], processes: list[ProcessPlan]) -> tuple[list[EdgePlan], list[Problem]]:
    """Every edge on its subject; a consuming process with several workers is a problem (NATS
    edges take one worker per consuming process)."""
    parallel = {process.name: process for process in processes if process.parallelism > 1}
    producers = {process.name: process for process in processes}
    problems, moved = [], []
    for edge in edges:
        if edge.pattern not in ("pub/sub", "push/pull"):  # request/reply stays on ZeroMQ (ipc)
            moved.append(edge)
            continue
        if edge.consumer in parallel:
            process = parallel[edge.consumer]
            node = process.nodes[0]
            problems.append(Problem(
                f"transport nats: process {process.name} has {process.parallelism} workers; a NATS edge "
                f"feeds one worker per consuming process", pipeline.locate("deploy", node),
                "drop its parallelism, or run it over ipc or tcp"))
            continue
        address = f"inproc://cep-nats/{edge.id}"
        acks = tuple(f"{address}.ack.{worker}" for worker in producers[edge.producer].workers)
        moved.append(replace(edge, subject=subject(pipeline.name, edge.node,
                                                   None if edge.pattern == "pub/sub" else edge.consumer),
                             endpoints=(address,), acks=acks if edge.delivery.reliable else ()))
    return moved, problems
