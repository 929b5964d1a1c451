"""tcp edges refuse forged frames and acknowledgements; CURVE keeps rogue peers out (README
"Security"). Integration tests run real pipelines on tcp ports with a real forger socket."""
import json
import os
import random
import shutil
import signal
import stat
import threading
import time

import msgpack
import pytest
import zmq
from hypothesis import given, settings, strategies as st

import cep
from cep import codec
from cep.runtime.delivery import ACK, JOIN, SeqRanges, epoch
from cep.runtime.security import SequenceGuard, ack_refusal, is_loopback
from cep.runtime.supervisor import Supervisor
from tests.support import signal_ids
from tests.ports import free_port_range, on_free_ports
from tests.test_cli import cep as run_cli

PIPELINE = """
version: 1
name: sec-{name}
defaults: {{delivery: {delivery}}}
transport: {transport}
{security}
sources:
  ticks: {{type: synthetic, instruments: 2, seed: 5, count: {count}, rate: 3000, speed: realtime}}
rules:
  found:
    from: ticks
    pattern: [{{name: heavy, where: "bid_volume > ask_volume"}}]
    emit: {{action: BUY, trigger_price: "heavy.ask_price", quantity: 1}}
sinks:
  signals: {{type: jsonl, from: [found], path: out/signals.jsonl}}
"""
FORGED = {"signal_id": "forged", "rule": "found", "instrument": "BTCUSDT", "action": "BUY",
          "quantity": 1e9, "trigger_price": 1.0, "timestamp": 1, "confidence": 1.0}
RUN_DEADLINE_S = 30.0
PORTS = 8  # more than the pipeline binds


def write(workdir, name, delivery="at_most_once", host="127.0.0.1", security="", count=4500, base_port=None):
    base_port = free_port_range(PORTS) if base_port is None else base_port
    transport = f"{{kind: tcp, host: '{host}', base_port: {base_port}}}"
    path = workdir / "pipeline.yaml"
    path.write_text(PIPELINE.format(name=name, delivery=delivery, transport=transport, security=security,
                                    count=count))
    return path


def on_tcp(workdir, attempt):
    """`attempt(base_port)`, again from a clean directory on new ports if another process took
    one of them first (tests.ports)."""
    def fresh(base_port):
        for made in ("out", "run"):  # output and checkpoints of an attempt that could not bind
            shutil.rmtree(workdir / made, ignore_errors=True)
        return attempt(base_port)
    return on_free_ports(fresh, PORTS)


def run_until_done(plan, during):
    """Run `plan` calling `during(status)` on every status; stop it (and fail) if it outlives the
    deadline: a hang is a failure, not a stuck test."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    supervisor = None

    def on_status(status):
        during(status)
        if time.monotonic() > deadline:
            supervisor.stop()

    supervisor = Supervisor(plan, on_status=on_status, backoff_s=0.05, drain_timeout_s=5)
    status = supervisor.run()
    assert not status.interrupted, f"the run hung: stopped after {RUN_DEADLINE_S:.0f}s"
    return status


def dead_letters(workdir):
    path = workdir / "out" / "deadletter.jsonl"
    return [json.loads(line) for line in open(path)] if path.exists() else []


class Forger:
    """A peer with no business on the pipeline's ports: pushes what it likes to an endpoint, once
    the sink has received `after` events."""

    def __init__(self, endpoint: str, messages: list[bytes], after: int = 300, curve_keys=None) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve_keys is not None:  # a rogue with keys of its own
            public, secret = zmq.curve_keypair()
            self.socket.curve_secretkey, self.socket.curve_publickey = secret, public
            self.socket.curve_serverkey = curve_keys
        self.endpoint, self.messages, self.after = endpoint, messages, after
        self.sent = False

    def __call__(self, status) -> None:
        if not self.sent and status.nodes()["signals"].received > self.after:
            self.socket.connect(self.endpoint)
            for message in self.messages:
                self.socket.send(message)
            self.sent = True

    def close(self) -> None:
        self.socket.close(0)
        self.context.term()


def forged_frames(plan) -> tuple[str, list[bytes]]:
    """The sink's PULL endpoint and three forged signal frames: from a producer that is not one
    (plausible sequence), and from the real producer name with a sequence number far ahead, and
    from an incarnation of it that cannot exist yet."""
    edge = next(e for e in plan.edges if e.pattern == "push/pull")
    topic = codec.topic_bytes(edge.topic)
    frames = [codec.encode_frame(topic, codec.DATA, "intruder", 2, [FORGED]),
              codec.encode_frame(topic, codec.DATA, edge.producer, 10**9, [FORGED]),
              codec.encode_frame(topic, codec.DATA, edge.producer, epoch(256) + 1, [FORGED])]
    return edge.endpoints[0], frames


# -- forged frames ---------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("delivery", ["at_most_once", "exactly_once"])
def test_forged_frames_are_refused_dead_lettered_and_counted(workdir, delivery):
    def attempt(base_port):
        plan = cep.compile(write(workdir, delivery, delivery, base_port=base_port))
        cep.run(plan, inline=True)
        reference = signal_ids(workdir)
        endpoint, frames = forged_frames(plan)
        forger = Forger(endpoint, frames)
        try:
            return reference, forger, run_until_done(plan, forger)
        finally:
            forger.close()

    reference, forger, status = on_tcp(workdir, attempt)
    assert forger.sent
    assert "forged" not in signal_ids(workdir)
    assert sorted(signal_ids(workdir)) == sorted(reference)
    assert status.edges()["found->sink-signals"].refused == 3
    letters = dead_letters(workdir)
    assert [letter["reason"].split(":")[0] for letter in letters] == ["refused"] * 3
    assert "not a producer" in letters[0]["reason"]
    assert "jumps" in letters[1]["reason"] and "incarnation 256" in letters[2]["reason"]


# -- forged acknowledgements --------------------------------------------------------------------------
class AckFlood(threading.Thread):
    """Sends `messages` to an ack endpoint every millisecond until stopped: acks claiming every
    sequence number keep a producer's window empty, if it believes them."""

    def __init__(self, endpoint: str, messages: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.messages = endpoint, messages
        self.sent = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        context = zmq.Context()
        sender = context.socket(zmq.PUSH)
        sender.setsockopt(zmq.LINGER, 10_000)  # on close, hand every ack to the gateway (or give up)
        sender.connect(self.endpoint)
        while not self.stopped.wait(0.001):
            for message in self.messages:
                sender.send(message)
                self.sent += 1
        sender.close()
        context.term()


@pytest.mark.integration
@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_forged_acks_release_nothing_so_a_crash_loses_nothing_and_nothing_hangs(workdir, delivery):
    """Acks claiming every sequence number, from the real consumer's name and from a stranger,
    flood the gateway's ack port while the strategy is killed: what it had not acknowledged must
    still be in the gateway's window, to be sent again. The flood ends while the gateway still has
    ticks to send, so it reads every forged ack: each one must be refused and counted (a PUSH
    socket queues what its peer has not read, so acks sent as the gateway closed would never
    arrive, and would prove nothing)."""
    count = 9000

    def attempt(base_port):
        plan = cep.compile(write(workdir, f"ack-{delivery}", delivery, count=count, base_port=base_port))
        cep.run(plan, inline=True)
        reference = signal_ids(workdir)
        ticks = next(e for e in plan.edges if e.pattern == "pub/sub")
        everything = [[b"TICK.*", [[0, 2**62]]]]
        acks = [msgpack.packb([ACK, "strategy", 0, everything]), msgpack.packb([ACK, "stranger", 0, everything]),
                msgpack.packb([JOIN, "stranger", 1, []]), b"\xc1garbage"]
        flood = AckFlood(ticks.acks[0], acks)
        seen = {}

        def flood_kill_stop(status):
            """Flood from 200 signals on; kill the strategy under the flood, and let the flood go on
            while its successor starts (the next status, 0.5 s later); then end the flood (its
            socket hands every ack to the gateway's as it closes) and note whether the gateway
            still had ticks to send after that."""
            if "flood_ended" in seen:
                seen.setdefault("ticks_left_after_flood", count - status.nodes()["ticks"].emitted)
            elif not flood.is_alive() and not flood.sent and status.nodes()["signals"].received > 200:
                flood.start()
            elif "pid" in seen:
                flood.stopped.set()
                flood.join()
                seen["flood_ended"] = True
            elif flood.sent:
                seen["pid"] = status.pids["strategy"]
                os.kill(seen["pid"], signal.SIGKILL)

        try:
            return reference, flood, seen, run_until_done(plan, flood_kill_stop)
        finally:
            flood.stopped.set()
            flood.join()

    reference, flood, seen, status = on_tcp(workdir, attempt)
    assert "pid" in seen, "the strategy was never killed"
    assert seen.get("ticks_left_after_flood", 0) > 0, f"the source ended before the flood did: {seen}"
    assert set(signal_ids(workdir)) == set(reference)
    assert status.edges()["ticks->strategy"].refused == flood.sent > 4 * 100, dead_letters(workdir)


# -- CURVE ---------------------------------------------------------------------------------------------
@pytest.fixture
def keys(workdir, capsys):
    code, out, err = run_cli("keys", "generate", workdir / "keys", capsys=capsys)
    assert code == 0, err
    assert "security: {curve: {keys:" in out
    return workdir / "keys"


def test_keys_generate_writes_secrets_only_the_user_can_read_and_never_overwrites(keys, capsys):
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert sorted(p.name for p in keys.iterdir()) == ["client.key", "client.key_secret", "server.key",
                                                       "server.key_secret"]
    for secret in keys.glob("*.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    code, _, err = run_cli("keys", "generate", keys, capsys=capsys)
    assert code == 2 and "already holds keys" in err and "Traceback" not in err


@pytest.mark.integration
@pytest.mark.parametrize("delivery", ["at_most_once", "exactly_once"])
def test_with_curve_rogue_peers_cannot_connect_and_the_output_is_a_fault_free_runs(workdir, keys, delivery):
    server_public = (keys / "server.key").read_text().split('public-key = "')[1][:40].encode()

    def attempt(base_port):
        plan = cep.compile(write(workdir, f"curve-{delivery}", delivery, base_port=base_port,
                                 security="security: {curve: {keys: keys}}"))
        assert plan.curve_keys == str(keys)
        cep.run(plan, inline=True)
        reference = signal_ids(workdir)
        endpoint, frames = forged_frames(plan)
        plausible = codec.encode_frame(b"found", codec.DATA, "strategy", 3, [FORGED])
        without_keys = Forger(endpoint, frames + [plausible])
        other_keys = Forger(endpoint, frames + [plausible], curve_keys=server_public)

        def both(status):
            without_keys(status)
            other_keys(status)

        try:
            return reference, without_keys, other_keys, run_until_done(plan, both)
        finally:
            without_keys.close()
            other_keys.close()

    reference, without_keys, other_keys, status = on_tcp(workdir, attempt)
    assert without_keys.sent and other_keys.sent
    assert sorted(signal_ids(workdir)) == sorted(reference)
    assert status.refused_connections() >= 2
    assert status.edges()["found->sink-signals"].refused == 0  # nothing they sent got as far as a frame
    assert not dead_letters(workdir)


# -- validate and run warn ---------------------------------------------------------------------------
def test_validate_and_run_warn_when_tcp_listens_beyond_loopback_without_curve(workdir, capsys):
    path = write(workdir, "open", host="0.0.0.0", count=10)
    code, _, err = run_cli("validate", path, capsys=capsys)
    assert code == 0
    assert "warning: transport.host 0.0.0.0 accepts connections from other machines without CURVE" in err
    assert "cep keys generate DIR" in err and "security: {curve: {keys: DIR}}" in err
    assert f"{path}:5:" in err  # the line of `transport:`
    code, _, err = run_cli("run", "--inline", "-q", path, capsys=capsys)
    assert code == 0 and "without CURVE" in err


def test_loopback_and_curve_pipelines_get_no_such_warning(workdir, keys, capsys):
    for host, security in [("127.0.0.1", ""), ("0.0.0.0", "security: {curve: {keys: keys}}")]:
        code, _, err = run_cli("validate", write(workdir, "ok", host=host, security=security), capsys=capsys)
        assert code == 0 and "CURVE" not in err


def test_unusable_keys_are_a_mistake_with_its_place_and_the_fix(workdir, keys, capsys):
    (keys / "client.key_secret").chmod(0o644)
    code, _, err = run_cli("validate", write(workdir, "badkeys", security="security: {curve: {keys: keys}}"),
                           capsys=capsys)
    assert code == 2 and "client.key_secret is readable by other users" in err
    assert f"{workdir / 'pipeline.yaml'}:6:" in err  # the line of `security:`
    code, _, err = run_cli("validate", write(workdir, "nokeys", security="security: {curve: {keys: nowhere}}"),
                           capsys=capsys)
    assert code == 2 and "does not exist" in err and "cep keys generate DIR" in err


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True),
                                            ("::1", True), ("0.0.0.0", False), ("*", False),
                                            ("10.0.0.5", False), ("example.com", False)])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


# -- the checks themselves ---------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 50), st.booleans()), min_size=1, max_size=40))
def test_a_real_producers_frames_are_never_refused(runs):
    """Whatever a real producer does (runs of consecutive frames, gaps within the bound, restarts
    into the next incarnations, retransmits of what was seen), its frames pass."""
    guard = SequenceGuard(bound=100)
    era, seq, seen = 0, 0, []
    for restarts, length, retransmit in runs:
        if restarts:
            era, seq = era + restarts, 0
        for _ in range(length):
            seq += 1
            assert guard.refusal("s", epoch(era) + seq) is None
            seen.append(epoch(era) + seq)
        if retransmit:
            assert guard.refusal("s", random.choice(seen)) is None
        seq += random.randrange(0, 100)  # frames dropped at the sender (at_most_once)


@given(st.integers(0, 10**6), st.integers(101, 2**31))
def test_a_jump_past_the_bound_is_refused_and_does_not_move_the_stream(start, jump):
    guard = SequenceGuard(bound=100)
    assert guard.refusal("s", start + 1) is None
    assert "jumps" in guard.refusal("s", start + 1 + jump)
    assert guard.refusal("s", start + 2) is None  # the real producer's next frame still passes


def test_incarnations_that_cannot_exist_are_refused():
    guard = SequenceGuard(bound=100, known=lambda stream: epoch(2) + 500)  # restored from a checkpoint
    assert "incarnation 40" in guard.refusal("s", epoch(40) + 1)          # too many restarts ahead
    assert "incarnation 3" in guard.refusal("s", epoch(3) + 5_000)        # a new incarnation starts near 1
    assert "older than incarnation 2" in guard.refusal("s", epoch(1) + 7)  # never seen, and superseded
    assert guard.refusal("s", epoch(2) + 560) is None                     # within the bound of what it delivered
    assert guard.refusal("s", epoch(3) + 1) is None
    assert guard.refusal("s", epoch(2) + 400) is None                      # a frame it had seen, again
    assert "incarnation 2000" in SequenceGuard(bound=100).refusal("x", epoch(2000) + 1)


def test_acks_for_frames_never_sent_or_from_strangers_are_refused():
    sent = {b"T": 10}.get
    through = lambda consumer, topic: sent(topic, 0)  # noqa: E731
    assert ack_refusal(ACK, "c", {b"T": SeqRanges([(1, 10)])}, {"c"}, through) is None
    assert "never sent" in ack_refusal(ACK, "c", {b"T": SeqRanges([(1, 11)])}, {"c"}, through)
    assert "never sent" in ack_refusal(ACK, "c", {b"U": SeqRanges([(1, 1)])}, {"c"}, through)
    assert "does not consume" in ack_refusal(ACK, "x", {}, {"c"}, through)
    assert "does not consume" in ack_refusal(JOIN, "x", {}, {"c"}, through)
    assert ack_refusal(JOIN, "c", {}, {"c"}, through) is None


def test_a_restored_receiver_lets_through_an_older_incarnations_frames_it_had_delivered():
    """A consumer restored from its checkpoint (which knows incarnation 2 of its producer) is sent
    again, by a restored producer, frames of incarnation 0 it had delivered and acknowledged to a
    producer that then died. They are duplicates to drop and acknowledge again; refused, they were
    never acknowledged and the producer waited for them forever (a hang of the fault soak)."""
    seen = SeqRanges([(epoch(0) + 1, epoch(0) + 900), (epoch(2) + 1, epoch(2) + 500)])
    guard = SequenceGuard(bound=100, known=lambda stream: epoch(2) + 500,
                          delivered=lambda stream, seq: seq in seen)
    assert guard.refusal("s", epoch(0) + 820) is None                     # delivered before: a duplicate
    assert "older than incarnation 2" in guard.refusal("s", epoch(0) + 901)  # never delivered
    assert "older than incarnation 2" in guard.refusal("s", epoch(1) + 7)
