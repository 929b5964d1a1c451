"""A 3-node NATS cluster on loopback, one server SIGKILLed while a pipeline records into a
replicated stream (R3), or while a pipeline's edges travel over one: nothing is lost under
at_least_once and exactly_once, and exactly_once repeats nothing. CI runs one kill per mode;
`CEP_NATS_SOAK=N` runs N kills per mode and pipeline, at a random moment (of a server chosen at
random while recording, of the stream's leader for edges)."""
import json
import os
import random
from pathlib import Path

import pytest

import cep
from tests.natsserver import (Cluster, nats_cluster, records, reference, replayed,  # noqa: F401 (fixture)
                              require_server, running, store)

SOAK = int(os.environ.get("CEP_NATS_SOAK", "0"))

RECORD = """version: 1
name: record
defaults: {{delivery: {delivery}, batch_size: 64}}
sources:
  ticks: {{type: synthetic, {ticks}, speed: realtime}}
sinks:
  log: {{type: nats, from: ticks, url: "{urls}", stream: CLUSTERED, replicas: 3}}
"""
TICKS = "instruments: 3, count: 20000, rate: 10000, seed: 11"


def _keys(found: list[dict]) -> list[str]:
    """Records as comparable strings, sorted."""
    return sorted(json.dumps(record, sort_keys=True) for record in found)


def _record_with_a_kill(workdir: Path, cluster: Cluster, delivery: str, victim: int | None, after: int) -> int:
    """Record TICKS while server `victim` (None: the stream's leader) is SIGKILLed once the sink
    has received `after` records; the index of the server killed."""
    path = workdir / "record.yaml"
    path.write_text(RECORD.format(delivery=delivery, ticks=TICKS, urls=cluster.urls))
    killed = []

    def kill(status) -> None:
        if not killed and status.nodes()["log"].received > after:
            killed.append(cluster.leader("CLUSTERED") if victim is None else victim)
            cluster.servers[killed[0]].kill()

    status = cep.run(cep.compile(path), on_status=kill, backoff_s=0.05)
    assert killed and status.nodes()["log"].received == 20_000  # killed mid-run, and all came
    return killed[0]


def _check(workdir: Path, cluster: Cluster, delivery: str) -> None:
    _compare(replayed(workdir, cluster.urls, "CLUSTERED"), reference(workdir, TICKS), delivery)


def _compare(found: list[dict], expected: list[dict], delivery: str) -> None:
    assert set(_keys(found)) == set(_keys(expected))  # nothing lost
    if delivery == "exactly_once":
        assert _keys(found) == _keys(expected)  # nothing twice


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.integration
def test_a_server_killed_while_a_pipeline_records_into_a_replicated_stream_loses_nothing(
        workdir, nats_cluster, delivery):
    _record_with_a_kill(workdir, nats_cluster, delivery, victim=None, after=4000)
    _check(workdir, nats_cluster, delivery)


@pytest.mark.skipif(not SOAK, reason="soak: CEP_NATS_SOAK=N runs N kills per mode")
@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("pipeline", ["recording", "edges"])
@pytest.mark.integration
def test_soak_server_kills(delivery, pipeline, monkeypatch):
    """A recording pipeline loses a random server, or a pipeline whose edges are NATS its
    stream's leader, at a random moment, N times per mode."""
    binary = require_server()
    for run in range(SOAK):
        rng = random.Random()
        victim, after = rng.randrange(3), rng.randrange(500, 9_000)
        with store("cep-nats-soak-") as directory, running(Cluster(binary, directory)) as cluster:
            workdir = directory / "w"
            workdir.mkdir()
            monkeypatch.setenv("CEP_RUN_DIR", str(workdir / "run"))
            try:
                if pipeline == "recording":
                    _record_with_a_kill(workdir, cluster, delivery, victim=victim, after=after)
                    _check(workdir, cluster, delivery)
                else:
                    _edges_with_a_leader_kill(workdir, cluster, delivery, after)
            except BaseException:
                print(f"soak run {run} failed: server n{victim + 1} (edges: the leader) killed after {after} records")
                raise


EDGES = """version: 1
name: clustered-edges
transport: {{kind: nats, url: "{urls}", replicas: 3}}
defaults: {{delivery: {delivery}}}
sources:
  ticks: {{type: synthetic, instruments: 2, seed: 8, count: 12000, rate: 4000, speed: realtime}}
streams:
  quotes: {{from: ticks, ops: [{{map: {{mid: "(bid_price + ask_price) / 2"}}}}]}}
rules:
  up3: {{use: momentum, from: quotes, with: {{count: 3, direction: both, quantity: 1}}}}
sinks:
  seen: {{type: jsonl, from: quotes, path: out/quotes.jsonl}}
  signals: {{type: "null", from: up3}}
"""


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.integration
def test_edges_over_a_cluster_whose_stream_leader_is_killed_lose_nothing(workdir, nats_cluster, delivery):
    """Every edge over an R3 stream; its leader SIGKILLed mid-run: every tick reaches the sink
    (at_least_once: some twice), exactly once each under exactly_once."""
    _edges_with_a_leader_kill(workdir, nats_cluster, delivery, after=3000)


def _edges_with_a_leader_kill(workdir: Path, cluster: Cluster, delivery: str, after: int) -> None:
    path = workdir / "edges.yaml"
    path.write_text(EDGES.format(urls=cluster.urls, delivery=delivery))
    plan = cep.compile(path)
    cep.run(plan, inline=True)
    inline = records(workdir / "out" / "quotes.jsonl")
    killed = []

    def kill(status) -> None:
        if not killed and status.nodes()["seen"].received > after:
            killed.append(cluster.leader("CEP_clustered-edges"))
            cluster.servers[killed[0]].kill()

    status = cep.run(plan, on_status=kill, backoff_s=0.05)
    assert killed and status.nodes()["ticks"].emitted == 12000
    _compare(records(workdir / "out" / "quotes.jsonl"), inline, delivery)
