"""Who may talk to a pipeline's sockets, and what its receivers refuse (README "Security").

Two layers:

- **CURVE on tcp** (`security: {curve: {keys: DIR}}`, keys made by `cep keys generate DIR`).
  Every tcp socket a worker binds is a CURVE server with the pipeline's server keypair; every tcp
  socket it connects is a CURVE client with the client keypair, and checks that its peer holds
  the server's secret key. A ZAP handler (a `zmq.auth` thread per worker: it sleeps in a poll and
  wakes only for a handshake, so the data path never meets it) admits only the client public
  key. A peer without keys, or with other keys, never completes a handshake: nothing it sends
  reaches cep, and each refused handshake is counted from the socket's monitor events
  (`refused_connections`). A pipeline on several hosts gives each host a keypair of its own
  (`cep keys generate DIR --host NAME`: `host-NAME.key` and `host-NAME.key_secret`): a host's
  sockets serve and connect with its own pair, check the server key of the host that binds
  the endpoint they connect to, and admit the public keys of the pipeline's hosts only; so a
  host holds no secret but its own, and one host's key cannot speak for another. The process installs this once (`install`); `transport.bind` and
  `transport.connect` then apply it to every tcp socket (ipc sockets are guarded by the run
  directory's permissions).
- **Plausibility checks**, with or without CURVE: a receiver refuses a data frame whose sequence
  number jumps implausibly far or whose producer incarnation cannot be (`SequenceGuard`), and a
  producer ignores acknowledgements from a worker that does not consume its edge or for frames
  it never sent (`ack_refusal`). Both are counted as `refused`. A forger that knows the stream
  still gets plausible frames through without CURVE; these checks bound the damage (no jump of
  the sequence that silences the real producer, no release of frames never sent).
"""
from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Iterable, Mapping

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from cep.errors import ConfigError, Problem
from cep.runtime.delivery import ACK, EPOCH_BITS, SeqRanges, epoch

SERVER, CLIENT = "server", "client"
HOST_PREFIX = "host-"
KEYS_HINT = "run `cep keys generate DIR` and add `security: {curve: {keys: DIR}}` to the pipeline"


def host_keys_hint(hosts: Iterable[str]) -> str:
    return (f"run `cep keys generate DIR {' '.join(f'--host {h}' for h in sorted(hosts))}`, then copy "
            "DIR/host-*.key to every host and DIR/host-NAME.key_secret to host NAME only (README Several hosts)")
HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                      | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


# -- keys -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveKeys:
    """What one process's CURVE uses (keys in Z85): its bound sockets serve with the server pair,
    its connecting sockets present the client pair and expect `server_key(endpoint)`, and its ZAP
    handler admits the client keys in `allowed`. One host: the pipeline's server and client
    pairs. One host of several: the host's own pair for both, every host's public key allowed."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes
    allowed: frozenset[bytes] = frozenset()
    hosts: tuple[tuple[str, str, int, bytes], ...] = ()  # (host, address, link port, public key)

    def server_key(self, endpoint: str) -> bytes:
        """The public key of the server bound at tcp `endpoint`: on several hosts, that of the host
        whose ports it is on (each host's ports count up from its link port, `compiler.hosts`)."""
        if not self.hosts:
            return self.server_public
        address, _, port = endpoint.removeprefix("tcp://").rpartition(":")
        owners = [(link, key) for _, at, link, key in self.hosts if at == address and link <= int(port)]
        if not owners:
            raise ConfigError(Problem(f"security.curve.keys: no host of the pipeline binds {endpoint}"))
        return max(owners)[1]

    def host_of(self, public: bytes) -> str | None:
        """The host whose public key this is (None: no host's)."""
        return next((host for host, _, _, key in self.hosts if key == public), None)


def generate_keys(directory: Path, hosts: Iterable[str] = ()) -> list[Path]:
    """Write a keypair per host in `hosts` (`host-NAME.key`, `host-NAME.key_secret`), or without
    hosts a server and a client keypair, into `directory` (made 0700; secret files 0600).
    Refuses to overwrite keys: a running pipeline would stop trusting its peers."""
    names = [f"{HOST_PREFIX}{host}" for host in hosts] or [SERVER, CLIENT]
    existing = [directory / f"{name}{suffix}" for name in names for suffix in (".key", ".key_secret")
                if (directory / f"{name}{suffix}").exists()]
    if existing:
        raise ConfigError(Problem(f"{directory} already holds keys ({', '.join(p.name for p in existing)})",
                                  hint="remove them first to make new ones, or use another directory"))
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # before any secret is written into it, whatever the umask
    written = []
    for name in names:
        public, secret = zmq.auth.create_certificates(directory, name)
        os.chmod(secret, 0o600)
        os.chmod(public, 0o644)
        written += [Path(public), Path(secret)]
    return written


def secret_file_problems(secret: Path) -> list[str]:
    """What makes `secret` (a private key, a seed) unfit to use: missing, another user's, or
    open to other users (a secret they may have read already; ssh refuses such a key too)."""
    if not secret.is_file():
        return [f"{secret} is missing"]
    info = secret.stat()
    problems = []
    if info.st_uid != os.getuid():
        problems.append(f"{secret} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        problems.append(f"{secret} is readable by other users (chmod 600 it, or make new keys)")
    return problems


def key_problems(directory: Path) -> list[str]:
    """What is wrong with a one-host pipeline's keys directory for use by this user (empty: nothing)."""
    if not directory.is_dir():
        return [f"keys directory {directory} does not exist"]
    return [problem for name in (SERVER, CLIENT) for problem in secret_file_problems(directory / f"{name}.key_secret")]


def host_key_problems(directory: Path, hosts: Iterable[str], host: str | None = None) -> list[str]:
    """What is wrong with the keys directory of a pipeline on `hosts`, on the machine of `host`
    (None, as `cep validate` sees it: whichever host's secret keys it holds)."""
    hosts = list(hosts)
    if not directory.is_dir():
        return [f"keys directory {directory} does not exist"]
    if not any(directory.glob(f"{HOST_PREFIX}*.key")) and (directory / f"{SERVER}.key_secret").exists():
        return [f"{directory} holds one keypair for the whole pipeline (server, client), and a pipeline on "
                "several hosts gives each host its own"]
    problems = [f"{directory / f'{HOST_PREFIX}{name}.key'} (host {name}'s public key) is missing"
                for name in hosts if not (directory / f"{HOST_PREFIX}{name}.key").is_file()]
    if host is not None:
        return problems + secret_file_problems(directory / f"{HOST_PREFIX}{host}.key_secret")
    secrets = [directory / f"{HOST_PREFIX}{name}.key_secret" for name in hosts]
    held = [secret for secret in secrets if secret.exists()]
    if not held:
        problems.append(f"{directory} holds no host's secret key (host-NAME.key_secret, on host NAME)")
    return problems + [problem for secret in held for problem in secret_file_problems(secret)]


def host_keypair(directory: Path, host: str) -> tuple[bytes, bytes | None]:
    """Host `host`'s public key, and its secret key where this directory holds it."""
    secret = directory / f"{HOST_PREFIX}{host}.key_secret"
    return zmq.auth.load_certificate(secret if secret.exists() else directory / f"{HOST_PREFIX}{host}.key")


def load_keys(directory: Path, host: str | None = None, hosts: Mapping[str, str] | None = None) -> CurveKeys:
    """The keys one process uses: a one-host pipeline's (no `hosts`), or those of `host` of a
    pipeline on `hosts` (host -> its link endpoint, `Plan.hosts`): its own secret key and every
    host's public key, nothing else read."""
    if hosts:
        return _host_keys(directory, host, hosts)
    problems = key_problems(directory)
    if problems:
        raise ConfigError([Problem(f"security.curve.keys: {p}", hint=KEYS_HINT) for p in problems])
    server_public, server_secret = zmq.auth.load_certificate(directory / f"{SERVER}.key_secret")
    client_public, client_secret = zmq.auth.load_certificate(directory / f"{CLIENT}.key_secret")
    if server_secret is None or client_secret is None:
        raise ConfigError(Problem(f"security.curve.keys: {directory} holds no secret keys", hint=KEYS_HINT))
    return CurveKeys(server_public, server_secret, client_public, client_secret, frozenset([client_public]))


def _host_keys(directory: Path, host: str | None, hosts: Mapping[str, str]) -> CurveKeys:
    problems = host_key_problems(directory, hosts, host) if host is not None else [
        f"the keys of a pipeline on several hosts are loaded for one host ({', '.join(hosts)})"]
    if problems:
        raise ConfigError([Problem(f"security.curve.keys: {p}", hint=host_keys_hint(hosts)) for p in problems])
    public, secret = host_keypair(directory, host)
    if secret is None:
        raise ConfigError(Problem(f"security.curve.keys: {directory / f'{HOST_PREFIX}{host}.key_secret'} holds "
                                  "no secret key", hint=host_keys_hint(hosts)))
    known = []
    for name, link in hosts.items():
        address, _, port = link.removeprefix("tcp://").rpartition(":")
        known.append((name, address, int(port), host_keypair(directory, name)[0]))
    return CurveKeys(public, secret, public, secret, frozenset(key for *_, key in known), tuple(known))


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (`localhost`, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name or `*`: reachable from elsewhere as far as cep can tell
        return False


# -- one worker process's CURVE ---------------------------------------------------------------------
class _ClientKeys:
    """The ZAP handler's question: is this a client key the process admits?"""

    def __init__(self, allowed: frozenset[bytes]) -> None:
        self.allowed = allowed

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.allowed


class Gate:
    """CURVE for the tcp sockets of one process: keys, the ZAP handler, the refusal count."""

    def __init__(self, context: zmq.Context, keys: CurveKeys) -> None:
        self.keys = keys
        self.authenticator = ThreadAuthenticator(context)
        self.authenticator.start()
        self.authenticator.configure_curve_callback("*", _ClientKeys(keys.allowed))
        self.monitors: list[zmq.Socket] = []
        self.refused = 0

    def serve(self, socket: zmq.Socket) -> None:
        socket.curve_secretkey = self.keys.server_secret
        socket.curve_publickey = self.keys.server_public
        socket.curve_server = True
        self.monitors.append(socket.get_monitor_socket(HANDSHAKE_FAILURES))

    def dial(self, socket: zmq.Socket, endpoint: str) -> None:
        socket.curve_secretkey = self.keys.client_secret
        socket.curve_publickey = self.keys.client_public
        socket.curve_serverkey = self.keys.server_key(endpoint)

    def count_refusals(self) -> int:
        """Handshakes refused so far (reads the monitors' events that came since the last call)."""
        for monitor in self.monitors:
            while monitor.poll(0):
                monitor.recv_multipart()
                self.refused += 1
        return self.refused

    def close(self) -> None:
        for monitor in self.monitors:
            monitor.close(0)
        self.authenticator.stop()


_gate: Gate | None = None
"""This process's CURVE, once `install`ed: a worker process serves one pipeline."""


def gate_for(context: zmq.Context, plan, host: str | None) -> Gate | None:
    """CURVE for a process of `plan` on `host` (None: a one-host plan), or None without keys."""
    return Gate(context, load_keys(Path(plan.curve_keys), host, plan.hosts)) if plan.curve_keys else None


def install(context: zmq.Context, plan, host: str | None) -> Gate | None:
    """Make every tcp socket this process binds or connects from now on use CURVE with the plan's
    keys (none: plain tcp), those of `host` on several hosts. Returns the gate to `close` before
    the context terminates."""
    global _gate
    _gate = gate_for(context, plan, host)
    return _gate


def as_server(socket: zmq.Socket, endpoint: str) -> None:
    """Before binding `endpoint`: CURVE server options, if installed and tcp."""
    if _gate is not None and endpoint.startswith("tcp://"):
        _gate.serve(socket)


def as_client(socket: zmq.Socket, endpoint: str) -> None:
    """Before connecting to `endpoint`: CURVE client options, if installed and tcp."""
    if _gate is not None and endpoint.startswith("tcp://"):
        _gate.dial(socket, endpoint)


def refused_connections() -> int:
    """Handshakes this process refused (0 without CURVE)."""
    return _gate.count_refusals() if _gate is not None else 0


# -- what receivers refuse --------------------------------------------------------------------------
MAX_INCARNATION = 1 << 10
"""No producer restarts this often in one run: a first frame from a later incarnation is forged."""
MAX_INCARNATION_STEP = 16
"""A producer's next frames come from at most this many incarnations later (restarts in a row
that sent nothing)."""


class SequenceGuard:
    """One receiver's check of the sequence numbers of its data frames, per stream (producer,
    topic). A frame is let through when it follows the last one let through by at most `bound`
    frames (the steady state: one subtraction and comparison per frame), repeats an earlier one
    (a retransmit, or an at_most_once producer that restarted its count), or opens the next
    incarnation of its producer near that incarnation's first sequence number (sequence numbers
    carry the incarnation in their high bits, `delivery.epoch`). It is refused when it jumps
    further (a forger's high number would otherwise make the real frames look old), comes from an
    incarnation implausibly far ahead, or claims a number an earlier incarnation never reached
    once a later one has spoken.

    `known(stream)` gives what the receiver delivered before this guard existed (a worker restored
    from its checkpoint), consulted once per stream. `delivered(stream, seq)` says whether the
    receiver (or a checkpointed predecessor) already delivered that number: a frame of an older
    incarnation that it did is a duplicate, let through to be dropped and acknowledged again (a
    restored producer resends what its predecessor's checkpoint still held, though the receiver
    had acknowledged it to an incarnation that died; refused, it would never be acknowledged).
    """

    __slots__ = ("bound", "known", "delivered", "highest", "ended")

    def __init__(self, bound: int, known: Callable[[Hashable], int | None] = lambda stream: None,
                 delivered: Callable[[Hashable, int], bool] = lambda stream, seq: False) -> None:
        self.bound = bound
        self.known = known
        self.delivered = delivered
        self.highest: dict[Hashable, int] = {}
        self.ended: dict[tuple[Hashable, int], int] = {}  # (stream, incarnation) -> its highest seq

    def refusal(self, stream: Hashable, seq: int) -> str | None:
        """None to let the frame through, else why it is refused."""
        highest = self.highest.get(stream)
        if highest is not None and 0 < seq - highest <= self.bound:
            self.highest[stream] = seq
            return None
        return self._judge(stream, seq, highest)

    def _judge(self, stream: Hashable, seq: int, highest: int | None) -> str | None:
        era = seq >> EPOCH_BITS
        if highest is None:
            highest = self.known(stream)
            if highest is None:
                if era > MAX_INCARNATION:
                    return f"sequence number {seq} claims producer incarnation {era}"
                self.highest[stream] = seq
                return None
            self.highest[stream] = highest
            if 0 < seq - highest <= self.bound:
                self.highest[stream] = seq
                return None
        last_era = highest >> EPOCH_BITS
        if era == last_era:
            if seq <= highest:
                return None
            return f"sequence number {seq} jumps {seq - highest:,} frames past the last one (at most {self.bound:,})"
        if era > last_era:
            if era - last_era > MAX_INCARNATION_STEP or seq - epoch(era) > self.bound:
                return (f"sequence number {seq} opens producer incarnation {era} at frame {seq - epoch(era):,} "
                        f"after incarnation {last_era}")
            self.ended[(stream, last_era)] = highest
            self.highest[stream] = seq
            return None
        if seq <= self.ended.get((stream, era), -1) or self.delivered(stream, seq):
            return None  # an older incarnation's frame this receiver already saw: a duplicate at most
        return f"sequence number {seq} of producer incarnation {era}, older than incarnation {last_era}"


def ack_refusal(kind: int, consumer: str, acked: dict[bytes, SeqRanges], consumers: Iterable[str],
                sent_through: Callable[[str, bytes], int]) -> str | None:
    """Why a producer ignores an ack or join message (None: it may act on it). `sent_through(
    consumer, topic)` is the highest sequence number it sent that consumer on that topic."""
    if consumer not in consumers:
        return f"ack from {consumer!r}, which does not consume this edge"
    if kind != ACK:
        return None
    for topic, ranges in acked.items():
        if ranges.ranges and ranges.ranges[-1][1] > sent_through(consumer, topic):
            return f"ack from {consumer!r} for frames never sent on {topic!r}"
    return None


# -- what validate and run say ------------------------------------------------------------------------
def check_pipeline(pipeline) -> tuple[list[Problem], list[Problem]]:
    """`(errors, warnings)` about a pipeline's socket security: unusable keys are errors; tcp
    reachable from other hosts without CURVE, and CURVE keys on ipc (which they do not guard),
    are warnings."""
    transport, curve = pipeline.transport, pipeline.security.curve
    errors, warnings = [], []
    if curve is not None:
        if not pipeline.hosts and ("hosts",) in pipeline._locations:
            return errors, warnings  # every host was left out for a mistake of its own: keys wait for the fix
        where = pipeline.locate("security", "curve", "keys")
        if pipeline.hosts:
            errors += host_problems(pipeline)
        else:
            errors += [Problem(f"security.curve.keys: {problem}", where, KEYS_HINT)
                       for problem in key_problems(keys_directory(pipeline))]
        if transport.kind != "tcp" and not pipeline.hosts:  # with hosts every edge is tcp
            warnings.append(Problem("security.curve applies to tcp sockets; this pipeline uses ipc, guarded by "
                                    "its run directory's permissions", where, "remove security.curve, or use "
                                    "transport: {kind: tcp}", severity="warning"))
    elif transport.kind == "tcp" and not is_loopback(transport.host):
        warnings.append(Problem(
            f"transport.host {transport.host} accepts connections from other machines without CURVE: anyone "
            "who reaches its ports can inject frames and acknowledgements",
            pipeline.locate("transport", "host"), KEYS_HINT, severity="warning"))
    return errors, warnings


def host_problems(pipeline, host: str | None = None) -> list[Problem]:
    """The keys of a pipeline on several hosts, as the machine of `host` holds them (None, as
    `cep validate` sees them: whichever host's secret keys the directory holds), each problem at
    the pipeline's `security.curve.keys`."""
    if pipeline.security.curve is None or not pipeline.hosts:
        return []
    where = pipeline.locate("security", "curve", "keys")
    return [Problem(f"security.curve.keys: {problem}", where, host_keys_hint(pipeline.hosts))
            for problem in host_key_problems(keys_directory(pipeline), pipeline.hosts, host)]


def keys_directory(pipeline) -> Path:
    """The pipeline's CURVE keys directory, resolved against the pipeline file's folder."""
    return (pipeline.base_dir / pipeline.security.curve.keys).resolve()
