"""Multi-host placement: `hosts:` and `deploy.host` compile into tcp edges on each binding
process's host, `cep graph` groups by host, and separate `cep run --host` invocations (real
processes, their own run directories, distinct loopback addresses, CURVE on) run one pipeline
whose output equals the one-host run, in either start order and across a SIGKILLed host."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgpack
import pytest

from tests import support
import zmq
from click.testing import CliRunner

import cep
from cep.cli import cli
from cep.runtime import security
from cep.runtime.hostlink import HostLink, digest, host_plan
from tests.ports import free_port_range
from tests.test_lifecycle import alive, descendants

EDGE, CORE = "127.0.0.2", "127.0.0.3"

PIPELINE = """\
version: 1
name: twohost
defaults: {{delivery: {delivery}}}
sources:
  quotes: {{type: synthetic, instruments: 4, seed: {seed}, count: {count}, rate: 1000, speed: {speed}}}
streams:
  mids:
    from: quotes
    ops:
      - map: {{mid: "(bid_price + ask_price) / 2", spread: "ask_price - bid_price"}}
      - filter: "spread > 0"
rules:
  rising: {{use: momentum, from: mids, with: {{count: 6, direction: up, quantity: 10}}}}
sinks:
  out: {{type: jsonl, from: rising, path: out.jsonl, mode: {mode}}}
"""

SMALL = PIPELINE.format(delivery="at_most_once", count=10, speed="max", mode="truncate", seed=7)

HOSTS = """\
security: {{curve: {{keys: keys}}}}
hosts:
  edge: {{address: {edge}, port: {edge_port}}}
  core: {{address: {core}, port: {core_port}}}
deploy:
  quotes: {{host: edge}}
  rising: {{host: core}}
  out: {{host: core}}
"""


def _loopback_aliases_work() -> bool:
    import socket
    try:
        with socket.socket() as probe:
            probe.bind((CORE, 0))
        return True
    except OSError:
        return False


needs_aliases = pytest.mark.skipif(not _loopback_aliases_work(), reason=f"cannot bind {CORE} on this machine")


def two_hosts(workdir: Path, delivery: str = "at_least_once", count: int = 20_000, speed: str = "max",
              hosted: bool = True, mode: str = "truncate", seed: int = 7) -> Path:
    """The pipeline in `workdir`: gateway on host edge, strategy and sink on host core (CURVE keys
    in workdir/keys), or, `hosted=False`, the same pipeline on one host."""
    text = PIPELINE.format(delivery=delivery, count=count, speed=speed, mode=mode, seed=seed)
    if hosted:
        if not (workdir / "keys").exists():
            security.generate_keys(workdir / "keys", hosts=("edge", "core"))
        text += HOSTS.format(edge=EDGE, core=CORE, edge_port=free_port_range(8, EDGE),
                             core_port=free_port_range(8, CORE))
    path = workdir / ("hosts.yaml" if hosted else "one.yaml")
    path.write_text(text)
    return path


# -- compiling ---------------------------------------------------------------------------------------
def test_an_unknown_host_names_file_line_and_the_known_hosts(pipeline_file, problems_of):
    path = pipeline_file(SMALL + textwrap.dedent("""\
        hosts:
          edge: {address: 127.0.0.2, port: 17000}
          core: {address: 127.0.0.3, port: 17100}
        deploy:
          quotes: {host: edge}
          rising: {host: cor}
        """))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:21:")
    assert 'deploy "rising": no host "cor"' in problem and "did you mean 'core'? known hosts: core, edge" in problem


def test_a_process_cannot_span_hosts(pipeline_file, problems_of):
    path = pipeline_file(SMALL + textwrap.dedent("""\
        hosts:
          a: {address: 127.0.0.2}
          b: {address: 127.0.0.3}
        deploy:
          rising: {host: a, process: shared}
          out: {host: b, process: shared}
        """))
    (problem,) = problems_of(path)
    assert 'process "shared" has nodes deployed on different hosts (rising on a, out on b)' in problem
    assert problem.startswith(f"{path}:21:")


def test_a_host_other_machines_reach_needs_curve(pipeline_file, problems_of):
    path = pipeline_file(SMALL + textwrap.dedent("""\
        hosts:
          a: {address: 10.1.2.3}
        """))
    (problem,) = problems_of(path)
    assert 'host "a": 10.1.2.3 is reachable from other machines' in problem and "cep keys generate" in problem


def test_a_host_address_must_be_an_ip_address_its_processes_can_bind(pipeline_file, problems_of):
    path = pipeline_file(SMALL + textwrap.dedent("""\
        hosts:
          a: {address: feed.example.com}
        """))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:17:")
    assert "host \"a\": address 'feed.example.com' is not an IP address" in problem


def test_endpoints_live_on_the_binding_process_host_and_every_invocation_agrees(workdir):
    path = two_hosts(workdir)
    plan = cep.compile(path, run_dir=workdir / "one")
    again = cep.compile(path, run_dir=workdir / "other")
    def between_hosts(plan):  # what hosts must agree on; an ipc endpoint is one host's own
        return [[point for point in e.endpoints + e.acks if point.startswith("tcp://")] for e in plan.edges]
    assert between_hosts(plan) == between_hosts(again) and between_hosts(plan)[0]
    assert plan.hosts == again.hosts
    edges = {edge.node: edge for edge in plan.edges}
    assert {p.name: p.host for p in plan.processes} == {"gateway-quotes": "edge", "strategy": "core",
                                                         "sink-out": "core"}
    # across hosts, tcp where the binder lives: pub/sub, the producer binds (edge), and its acks
    assert edges["quotes"].endpoints[0].startswith(f"tcp://{EDGE}:") and edges["quotes"].acks[0].startswith(f"tcp://{EDGE}:")
    # strategy -> sink, both on core: ipc, as on one host, in the host's own run directory
    assert edges["rising"].endpoints + edges["rising"].acks == (f"ipc://{workdir}/one/sink-out.rising.pull",
                                                                f"ipc://{workdir}/one/strategy.rising.sink-out.ack")
    # the hosts agree on the plan though each keeps its ipc endpoints in a directory of its own
    assert digest(host_plan(plan, "edge", run_dir_given=False)) == digest(host_plan(again, "core", run_dir_given=False))
    moved = host_plan(plan, "core", run_dir_given=False)
    assert moved.run_dir == f"{workdir}/one@core" and moved.control == f"ipc://{workdir}/one@core/control"
    assert {e.node: e.endpoints[0] for e in moved.edges} == {"quotes": edges["quotes"].endpoints[0],
                                                            "rising": f"ipc://{workdir}/one@core/sink-out.rising.pull"}
    ports = [int(endpoint.rsplit(":", 1)[1]) for edge in plan.edges for endpoint in edge.endpoints + edge.acks
             if endpoint.startswith("tcp://")]
    links = [int(link.rsplit(":", 1)[1]) for link in plan.hosts.values()]
    assert len(set(ports + links)) == len(ports + links)


def test_a_host_without_a_port_takes_one_derived_from_the_pipeline_name(pipeline_file):
    text = SMALL + "hosts:\n  a: {address: 127.0.0.2}\n"
    plan = cep.compile(pipeline_file(text))
    renamed = cep.compile(pipeline_file(text.replace("name: twohost", "name: other"), "other.yaml"))
    assert plan.hosts["a"] != renamed.hosts["a"]
    assert plan.hosts == cep.compile(pipeline_file(text, "copy.yaml")).hosts


def test_graph_groups_processes_by_host(workdir):
    path = two_hosts(workdir)
    runner = CliRunner()
    text = runner.invoke(cli, ["graph", str(path)]).output
    edge_at, core_at = text.index("  host edge (link tcp://127.0.0.2:"), text.index("  host core (link tcp://127.0.0.3:")
    assert edge_at < text.index("    process gateway-quotes") < core_at < text.index("    process strategy")
    across = text.index("    quotes: gateway-quotes -> strategy  pub/sub")  # edge -> core: tcp
    assert text[across:].splitlines()[1].startswith("      tcp://127.0.0.2:")
    within = text.index("    rising: strategy -> sink-out  push/pull")  # core -> core: ipc
    assert text[within:].splitlines()[1] == f"      ipc://{workdir}/run/twohost/sink-out.rising.pull"
    dot = runner.invoke(cli, ["graph", str(path), "-f", "dot"]).output
    assert 'subgraph "cluster_host_core" {' in dot and 'label="host core";' in dot
    mermaid = runner.invoke(cli, ["graph", str(path), "-f", "mermaid"]).output
    assert 'subgraph h_edge["host edge"]' in mermaid


def test_run_host_must_be_one_of_the_hosts(workdir):
    def run(path: Path, host: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cep.cli", "run", str(path), "--host", host],
                              capture_output=True, text=True, timeout=60)
    result = run(two_hosts(workdir), "cor")
    assert result.returncode == 2
    assert "no such host" in result.stderr and "did you mean 'core'? known hosts: core, edge" in result.stderr
    result = run(two_hosts(workdir, hosted=False), "core")
    assert result.returncode == 2 and "lists no hosts" in result.stderr


def client_socket(context: zmq.Context, workdir: Path) -> zmq.Socket:
    """A DEALER holding host core's keys: what another host's supervisor connects with."""
    sender = context.socket(zmq.DEALER)
    sender.curve_publickey, sender.curve_secretkey = security.host_keypair(workdir / "keys", "core")
    sender.curve_serverkey = security.host_keypair(workdir / "keys", "edge")[0]
    return sender


def send_to_link(workdir: Path, endpoint: str, message: dict) -> None:
    context = zmq.Context()
    sender = client_socket(context, workdir)
    sender.setsockopt(zmq.LINGER, 5000)  # delivered before close returns
    sender.connect(endpoint)
    sender.send(msgpack.packb(message))
    sender.close()
    context.term()


def test_the_host_link_refuses_what_cannot_come_from_a_consumer_on_another_host(workdir):
    plan = cep.compile(two_hosts(workdir, delivery="at_most_once"))
    context = zmq.Context()
    link = HostLink(context, plan, "edge")
    peer = zmq.Context()  # another host's supervisor
    sender = client_socket(peer, workdir)
    sender.connect(plan.hosts["edge"])
    try:
        good = {"t": "eos", "host": "core", "digest": digest(plan), "edge": "quotes->strategy",
                "producer": "gateway-quotes", "consumer": "strategy"}
        for message in [dict(good, producer="strategy"), dict(good, consumer="gateway-quotes"), dict(good, digest="x"),
                        dict(good, edge="nope"), {"t": "stop"}]:
            sender.send(msgpack.packb(message))
        sender.send(b"\xc1 not msgpack")
        sender.send(msgpack.packb(good))
        accepted: list = []
        deadline = time.monotonic() + 10
        while not accepted and time.monotonic() < deadline:
            link.inbox.poll(100)
            accepted += link.receive()
        assert accepted == [good]
        assert link.refused == 6
    finally:
        sender.close(0)
        peer.term()
        link.close()
        context.term()


# -- running on two "hosts" -------------------------------------------------------------------------
def cep_run(path: Path, host: str | None, log: Path) -> subprocess.Popen:
    """`cep run PATH --host HOST` as its own process, its own run directory, stderr to `log`."""
    env = dict(os.environ, CEP_RUN_DIR=str(path.parent / f"run-{host or 'one'}"))
    command = [sys.executable, "-m", "cep.cli", "run", str(path), "-q"] + (["--host", host] if host else [])
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=path.parent, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    support.STARTED.append(process)
    return process


def wait_for(condition, what: str, timeout_s: float = 60.0) -> None:
    support.wait_for(condition, timeout_s, what, every_s=0.05)


def finished(process: subprocess.Popen, log: Path, timeout_s: float = 90.0) -> str:
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"still running after {timeout_s}s: {log.read_text()}")
    assert process.returncode == 0, log.read_text()
    return log.read_text()


def reference_output(workdir: Path, **pipeline) -> list[str]:
    """The signals of the same pipeline on one host (ipc), in order."""
    one = two_hosts(workdir, hosted=False, **pipeline)
    finished(cep_run(one, None, workdir / "one.log"), workdir / "one.log")
    lines = (workdir / "out.jsonl").read_text().splitlines()
    (workdir / "out.jsonl").unlink()
    assert lines
    return lines


def lines_of(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@needs_aliases
@pytest.mark.integration
@pytest.mark.parametrize("first", ["edge", "core"])
def test_two_hosts_started_in_either_order_equal_one_host(workdir, first):
    expected = reference_output(workdir)
    path = two_hosts(workdir)
    second = "core" if first == "edge" else "edge"
    logs = {host: workdir / f"{host}.log" for host in ("edge", "core")}
    runs = {first: cep_run(path, first, logs[first])}
    if first == "edge":  # the gateway waits for its subscriber on the other host, and says so
        wait_for(lambda: "gateway-quotes: waiting for strategy to subscribe at tcp://127.0.0.2:"
                 in logs["edge"].read_text(), "the gateway to say it waits for the strategy")
        send_to_link(workdir, cep.compile(path).hosts["edge"], {"t": "eos", "edge": "forged"})
    else:  # the strategy runs, and says it has had nothing from the gateway on the other host yet
        wait_for(lambda: "strategy: waiting for gateway-quotes at tcp://127.0.0.2:" in logs["core"].read_text(),
                 "the strategy to say it waits for the gateway")
    runs[second] = cep_run(path, second, logs[second])
    summaries = {host: finished(runs[host], logs[host]) for host in runs}
    assert (workdir / "out.jsonl").read_text().splitlines() == expected
    assert "1 worker processes" in summaries["edge"] and "2 worker processes" in summaries["core"]
    if first == "edge":  # the forged acknowledgement was refused, and counted
        assert "refused 1 messages that cannot come from another host's consumers" in summaries["edge"]
    assert (workdir / "run-edge" / "twohost@edge").is_dir() and (workdir / "run-core" / "twohost@core").is_dir()


@needs_aliases
@pytest.mark.integration
@pytest.mark.parametrize("delivery, killed", [("exactly_once", "core"), ("exactly_once", "edge"),
                                               ("at_least_once", "core"), ("at_least_once", "edge")])
def test_a_killed_host_rejoins(workdir, delivery, killed):
    """One host's `cep run` is SIGKILLed midway and started again in its run directory.
    exactly_once: the output equals the one-host run's, whichever host died. at_least_once,
    whichever host died: nothing is missing (a restarted host starts afresh, so the sink
    appends; a momentum streak in progress when the host died may be lost, as a rule's state is
    on one host too: at most one signal per instrument)."""
    pipeline = {"delivery": delivery, "count": 200_000, "speed": "50x", "mode": "append"}  # about 4 s of ticks
    expected = reference_output(workdir, **pipeline)
    kill_and_rejoin(two_hosts(workdir, **pipeline), expected, delivery, killed)


def kill_and_rejoin(path: Path, expected: list[str], delivery: str, killed: str) -> str:
    """Run both hosts of `path`, SIGKILL the `killed` one's `cep run` midway, start it again in
    its run directory, and compare the output with `expected` (the one-host run's): equal under
    exactly_once, at most a momentum streak per instrument missing otherwise. Returns the
    restarted host's summary."""
    workdir = path.parent
    survivor = "edge" if killed == "core" else "core"
    logs = {name: workdir / f"{name}.log" for name in ("edge", "core", "again")}
    runs = {host: cep_run(path, host, logs[host]) for host in ("edge", "core")}
    out = workdir / "out.jsonl"
    wait_for(lambda: lines_of(out) >= len(expected) // 4, "a quarter of the signals")
    workers = descendants(runs[killed].pid)
    os.kill(runs[killed].pid, signal.SIGKILL)
    runs[killed].wait(10)
    wait_for(lambda: not alive(workers), f"the {killed} host's workers to die with their supervisor", 10)
    assert lines_of(out) < len(expected), f"the {killed} host was not killed midway"
    assert runs[survivor].poll() is None  # the other host waits for it
    rejoined = finished(cep_run(path, killed, logs["again"]), logs["again"])
    finished(runs[survivor], logs[survivor])
    if delivery == "exactly_once":
        assert "resuming from its checkpoints" in rejoined
        assert out.read_text().splitlines() == expected
    else:
        assert "starting afresh" in rejoined
        missing = set(expected) - set(out.read_text().splitlines())
        assert len(missing) <= 4, missing
    return rejoined
