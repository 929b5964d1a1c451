"""Operating several hosts: what a host waits for shows in its status and `cep top`, hosts refuse
a peer that runs another pipeline (a digest of the plan in the host link's hello), and each
host holds a CURVE keypair of its own. Real `cep run --host` processes on 127.0.0.2/127.0.0.3,
as in tests/test_multihost.py, whose helpers these reuse."""
from __future__ import annotations

import json
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import msgpack
import pytest
import zmq
from click.testing import CliRunner

import cep
from cep.cli import cli
from cep.runtime.hostlink import HostLink, digest
from tests.test_multihost import cep_run, finished, needs_aliases, two_hosts, wait_for

DIFFERENT = "host {peer} runs a different pipeline (digest {theirs}, ours {ours}): deploy the same file to every host"


def status_of(run_dir: Path) -> dict | None:
    """The run's status file, None before the first one (or between two replacements)."""
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def link_state(run_dir: Path, peer: str) -> str | None:
    status = status_of(run_dir)
    return status["links"][peer]["state"] if status and peer in status.get("links", {}) else None


def top_once(run_dir: Path) -> str:
    result = CliRunner().invoke(cli, ["top", str(run_dir), "--once"])
    assert result.exit_code == 0, result.output
    return result.output


def stop(process, timeout_s: float = 30.0) -> int:
    """SIGTERM a `cep run` (it drains) and its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except Exception:
        process.kill()
        raise


def other_pipeline(path: Path) -> Path:
    """The same hosts and ports, another rule: what a host given the wrong file runs."""
    other = path.with_name("other.yaml")
    other.write_text(path.read_text().replace("count: 6", "count: 7"))
    return other


# -- the digest ----------------------------------------------------------------------------------
def test_the_digest_covers_what_hosts_share_and_not_where_each_keeps_its_files(workdir):
    path = two_hosts(workdir)
    plan = cep.compile(path)
    assert digest(plan) == digest(cep.compile(path, run_dir=workdir / "elsewhere"))
    assert digest(plan) != digest(cep.compile(other_pipeline(path)))
    moved = path.with_name("moved.yaml")
    moved.write_text(path.read_text().replace("127.0.0.3", "127.0.0.4"))
    assert digest(plan) != digest(cep.compile(moved))


def settle(links: list[HostLink], done, timeout_s: float = 10.0) -> None:
    """Turn the links' loops (what each supervisor does) until `done()`."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, [link.states() for link in links]
        for link in links:
            link.inbox.poll(20)
            link.receive()


@contextmanager
def host_links(workdir: Path, edge_plan, core_plan, notices: list[str] | None = None) -> Iterator[tuple]:
    """The links of hosts edge and core, each in a context of its own (as in two supervisors)."""
    contexts = [zmq.Context(), zmq.Context()]
    on_notice = None if notices is None else notices.append
    links = (HostLink(contexts[0], edge_plan, "edge", on_notice=on_notice),
             HostLink(contexts[1], core_plan, "core", on_notice=on_notice))
    try:
        yield links
    finally:
        for link in links:
            link.close()
        for context in contexts:
            context.term()


@needs_aliases
def test_host_links_of_different_pipelines_refuse_each_other(workdir):
    path = two_hosts(workdir, delivery="at_most_once")
    plan, other = cep.compile(path), cep.compile(other_pipeline(path))
    notices: list[str] = []
    with host_links(workdir, plan, other, notices) as (edge, core):
        assert edge.states()["core"]["state"] == "waiting" and edge.states()["core"]["address"] == plan.hosts["core"]
        settle([edge, core], lambda: edge.different and core.different)
        ours, theirs = digest(plan), digest(other)
        assert DIFFERENT.format(peer="core", theirs=theirs, ours=ours) in notices
        assert DIFFERENT.format(peer="edge", theirs=ours, ours=theirs) in notices
        assert edge.states()["core"]["state"] == "different pipeline" and not edge.agreed()
        # an END acknowledgement from the other pipeline is refused too: nothing of its run mixes in
        core.peers["edge"].send(msgpack.packb(
            {"t": "eos", "host": "core", "digest": theirs, "edge": "quotes->strategy",
             "producer": "gateway-quotes", "consumer": "strategy"}))
        refused = edge.refused
        settle([edge, core], lambda: edge.refused > refused)


@needs_aliases
def test_host_links_of_one_pipeline_agree_and_say_since_when(workdir):
    plan = cep.compile(two_hosts(workdir, delivery="at_most_once"))
    before = time.time()
    with host_links(workdir, plan, plan) as (edge, core):
        settle([edge, core], lambda: edge.agreed() and core.agreed())
        state = edge.states()["core"]
        assert state["state"] == "connected" and before <= state["since"] <= time.time()
        assert edge.different == core.different == 0


@needs_aliases
def test_a_peer_that_agreed_and_went_away_is_shown_waiting_and_still_agreed(workdir):
    """A host's workers may become ready after its peer's whole run is over (a gateway's part
    can take 60 ms): the peer's word that it runs this pipeline still holds."""
    plan = cep.compile(two_hosts(workdir, delivery="at_most_once"))
    with host_links(workdir, plan, plan) as (edge, core):
        settle([edge, core], lambda: edge.agreed() and core.agreed())
        edge.close()
        settle([core], lambda: core.states()["edge"]["state"] == "waiting")
        assert core.agreed()


@needs_aliases
def test_a_host_that_agreed_and_ended_before_its_own_link_connected_still_lets_its_peer_start(workdir):
    """edge started first, so its link to core failed and retries only after ZeroMQ's reconnect
    interval. core's link reaches edge at once; edge hears core's hello, agrees, runs its short
    part and ends before its own link ever connected. core must not wait for a hello that edge
    will never send (it did, and never started its workers: issue 19's hang over NATS)."""
    plan = cep.compile(two_hosts(workdir, delivery="at_most_once"))
    with host_links(workdir, plan, plan) as (edge, core):  # edge's link tried core before core bound
        settle([core, edge], edge.agreed)
        assert not edge.monitors["core"].poll(0), "edge's own link connected already: nothing tested"
        edge.close()
        settle([core], core.agreed)


# -- real hosts ----------------------------------------------------------------------------------
@needs_aliases
@pytest.mark.integration
def test_top_shows_a_host_waiting_for_its_peer_then_connected(workdir):
    path = two_hosts(workdir, delivery="at_most_once", count=4000, speed="realtime")  # 4 s of ticks
    logs = {host: workdir / f"{host}.log" for host in ("edge", "core")}
    run_dir = workdir / "run-edge" / "twohost@edge"
    edge = cep_run(path, "edge", logs["edge"])
    core = None
    try:
        wait_for(lambda: link_state(run_dir, "core") == "waiting", "edge's status to say it waits for core")
        wait_for(lambda: (status_of(run_dir) or {}).get("workers", {}).get("gateway-quotes", {}).get("waiting_for"),
                 "the gateway's wait in the status")
        view = top_once(run_dir)
        core_link = cep.compile(path).hosts["core"]
        assert f"waiting for core ({core_link}) since" in view, view
        assert "waiting for strategy to subscribe at tcp://127.0.0.2:" in view, view
        core = cep_run(path, "core", logs["core"])
        wait_for(lambda: link_state(run_dir, "core") == "connected" and not any(
            w.get("waiting_for") for w in status_of(run_dir)["workers"].values()), "edge's status to say core joined")
        view = top_once(run_dir)
        assert f"connected to core ({core_link}) since" in view, view
        assert "waiting for" not in view, view
        for host, process in (("edge", edge), ("core", core)):  # and the run goes on to its end
            finished(process, logs[host])
    finally:
        for process in (edge, core):
            if process is not None and process.poll() is None:
                process.kill()


@needs_aliases
@pytest.mark.integration
def test_a_host_stopped_while_it_waits_for_its_peer_stops_at_once(workdir):
    """Its workers were never told to start: there is nothing to drain, so Ctrl-C ends the run
    at once instead of waiting out the drain timeout (10 s) and killing them."""
    path = two_hosts(workdir, delivery="at_most_once", count=2000, speed="max")
    log = workdir / "edge.log"
    edge = cep_run(path, "edge", log)
    try:
        wait_for(lambda: link_state(workdir / "run-edge" / "twohost@edge", "core") == "waiting",
                 "edge to wait for core")
        edge.send_signal(signal.SIGINT)
        asked = time.monotonic()
        code = edge.wait(30)
        took = time.monotonic() - asked
    finally:
        if edge.poll() is None:
            edge.kill()
    assert code == 130 and took < 5, (code, took, log.read_text())
    assert "workers killed" not in log.read_text(), log.read_text()


@needs_aliases
@pytest.mark.integration
def test_hosts_given_different_files_refuse_each_other_and_mix_nothing(workdir):
    path = two_hosts(workdir, delivery="at_most_once", count=2000, speed="max")
    other = other_pipeline(path)
    ours, theirs = digest(cep.compile(path)), digest(cep.compile(other))
    logs = {host: workdir / f"{host}.log" for host in ("edge", "core")}
    edge = cep_run(path, "edge", logs["edge"])
    core = cep_run(other, "core", logs["core"])
    try:
        wait_for(lambda: DIFFERENT.format(peer="core", theirs=theirs, ours=ours) in logs["edge"].read_text(),
                 "edge to refuse core's pipeline")
        wait_for(lambda: DIFFERENT.format(peer="edge", theirs=ours, ours=theirs) in logs["core"].read_text(),
                 "core to refuse edge's pipeline")
        run_dir = workdir / "run-core" / "twohost@core"
        wait_for(lambda: link_state(run_dir, "edge") == "different pipeline", "core's status to show the refusal")
        assert "runs a different pipeline" in top_once(run_dir)
        assert edge.poll() is None and core.poll() is None  # both wait for a host of their own pipeline
    finally:
        codes = [stop(edge), stop(core)]
    assert codes == [143, 143], [log.read_text() for log in logs.values()]
    assert not (workdir / "out.jsonl").exists() or not (workdir / "out.jsonl").read_text()
    for log in logs.values():
        assert "from a host running a different pipeline" in log.read_text(), log.read_text()
