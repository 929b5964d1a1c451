"""A 3-node NATS cluster on loopback, one server SIGKILLed while a pipeline records into a
replicated stream (R3): nothing is lost under at_least_once and exactly_once, and exactly_once
repeats nothing. CI runs one kill per mode; `CEP_NATS_SOAK=N` runs N kills per mode, each of a
server chosen at random, at a random moment."""
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest

import cep
from cep.jetstream.client import NatsConnection, close, connect, loop
from tests.natsserver import NatsServer, require_server
from tests.ports import free_port_range

SOAK = int(os.environ.get("CEP_NATS_SOAK", "0"))

RECORD = """version: 1
name: record
defaults: {{delivery: {delivery}, batch_size: 64}}
sources:
  ticks: {{type: synthetic, instruments: 3, count: {count}, rate: 10000, seed: 11, speed: realtime}}
sinks:
  log: {{type: nats, from: ticks, url: "{urls}", stream: CLUSTERED, replicas: 3}}
"""

REPLAY = """version: 1
name: replay
sources:
  log: {{type: nats, url: "{urls}", stream: CLUSTERED}}
sinks:
  out: {{type: jsonl, from: log, path: out/replayed.jsonl}}
"""

REFERENCE = """version: 1
name: reference
sources:
  ticks: {{type: synthetic, instruments: 3, count: {count}, rate: 10000, seed: 11}}
sinks:
  out: {{type: jsonl, from: ticks, path: out/reference.jsonl}}
"""


class Cluster:
    """Three servers routed to each other on loopback, JetStream on, each with its own store."""

    def __init__(self, binary: str, directory: Path) -> None:
        routes = free_port_range(3)
        block = ("cluster {{ name: cep, listen: 127.0.0.1:{port}, routes: [{routes}] }}")
        urls = ", ".join(f"nats-route://127.0.0.1:{routes + i}" for i in range(3))
        self.servers = [NatsServer(binary, directory, block.format(port=routes + i, routes=urls), name=f"n{i + 1}")
                        for i in range(3)]

    def start(self) -> "Cluster":
        for server in self.servers:
            server.start()
        self._wait_for_jetstream()
        return self

    @property
    def urls(self) -> str:
        return ",".join(server.url for server in self.servers)

    def _wait_for_jetstream(self, within_s: float = 20.0) -> None:
        """Servers say ready before the cluster elected its JetStream leader: ask until it has."""
        client = connect(NatsConnection(url=self.urls), "test")
        deadline = time.monotonic() + within_s
        try:
            while True:
                try:
                    loop().call(client.jetstream().account_info(), timeout=5)
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            close(client)

    def leader(self, stream: str) -> int:
        """The index of the server that leads `stream` now."""
        client = connect(NatsConnection(url=self.urls), "test")
        try:
            name = loop().call(client.jetstream().stream_info(stream)).cluster.leader
        finally:
            close(client)
        return [server.name for server in self.servers].index(name)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def cluster():
    directory = Path(tempfile.mkdtemp(prefix="cep-nats-cluster-"))
    cluster = Cluster(require_server(), directory).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _lines(path: Path) -> list[str]:
    return [json.dumps(json.loads(line), sort_keys=True) for line in path.read_text().splitlines()]


def _record_with_a_kill(workdir: Path, cluster: Cluster, delivery: str, count: int, victim: int | None,
                        after: int) -> int:
    """Record while server `victim` (None: the stream's leader) is SIGKILLed once the sink has
    received `after` records; the index of the server killed."""
    path = workdir / "record.yaml"
    path.write_text(RECORD.format(delivery=delivery, count=count, urls=cluster.urls))
    killed = []

    def kill(status) -> None:
        if not killed and status.nodes()["log"].received > after:
            killed.append(cluster.leader("CLUSTERED") if victim is None else victim)
            cluster.servers[killed[0]].kill()

    status = cep.run(cep.compile(path), on_status=kill, backoff_s=0.05)
    assert killed and status.nodes()["log"].received == count  # killed mid-run, and all came
    return killed[0]


def _check(workdir: Path, cluster: Cluster, delivery: str, count: int) -> None:
    (workdir / "replay.yaml").write_text(REPLAY.format(urls=cluster.urls))
    cep.run(cep.compile(workdir / "replay.yaml"))
    (workdir / "reference.yaml").write_text(REFERENCE.format(count=count))
    cep.run(cep.compile(workdir / "reference.yaml"), inline=True)
    replayed = _lines(workdir / "out" / "replayed.jsonl")
    reference = _lines(workdir / "out" / "reference.jsonl")
    assert set(replayed) == set(reference)  # nothing lost
    if delivery == "exactly_once":
        assert sorted(replayed) == sorted(reference)  # nothing twice


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.integration
def test_a_server_killed_while_a_pipeline_records_into_a_replicated_stream_loses_nothing(
        workdir, cluster, delivery):
    _record_with_a_kill(workdir, cluster, delivery, count=20_000, victim=None, after=4000)
    _check(workdir, cluster, delivery, count=20_000)


@pytest.mark.skipif(not SOAK, reason="soak: CEP_NATS_SOAK=N runs N kills per mode")
@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
@pytest.mark.integration
def test_soak_server_kills(delivery, monkeypatch):
    binary = require_server()
    for run in range(SOAK):
        rng = random.Random()
        directory = Path(tempfile.mkdtemp(prefix="cep-nats-soak-"))
        workdir = directory / "w"
        workdir.mkdir()
        monkeypatch.setenv("CEP_RUN_DIR", str(workdir / "run"))
        cluster = Cluster(binary, directory).start()
        try:
            victim, after = rng.randrange(3), rng.randrange(1000, 15_000)
            _record_with_a_kill(workdir, cluster, delivery, count=20_000, victim=victim, after=after)
            _check(workdir, cluster, delivery, count=20_000)
        except BaseException:
            print(f"soak run {run} failed: server n{victim + 1} killed after {after} records")
            raise
        finally:
            cluster.stop()
            shutil.rmtree(directory, ignore_errors=True)


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
def test_edges_over_a_cluster_whose_stream_leader_is_killed_lose_nothing(workdir, cluster, delivery):
    """Every edge over an R3 stream; its leader SIGKILLed mid-run: every tick reaches the sink
    (at_least_once: some twice), exactly once each under exactly_once."""
    path = workdir / "edges.yaml"
    path.write_text(EDGES.format(urls=cluster.urls, delivery=delivery))
    plan = cep.compile(path)
    cep.run(plan, inline=True)
    inline = _lines(workdir / "out" / "quotes.jsonl")
    killed = []

    def kill(status) -> None:
        if not killed and status.nodes()["seen"].received > 3000:
            killed.append(cluster.leader("CEP_clustered-edges"))
            cluster.servers[killed[0]].kill()

    status = cep.run(plan, on_status=kill, backoff_s=0.05)
    assert killed and status.nodes()["ticks"].emitted == 12000
    seen = _lines(workdir / "out" / "quotes.jsonl")
    assert set(seen) == set(inline)
    if delivery == "exactly_once":
        assert sorted(seen) == sorted(inline)
