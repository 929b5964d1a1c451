"""Per-host CURVE identities (README "Several hosts", Keys): `cep keys generate DIR --host NAME`
gives each host a keypair of its own; a host loads only its own secret key and the others'
public keys, and admits only the pipeline's hosts. The one-keypair form stays for one-host
pipelines, and a multi-host pipeline given it is told how to move on."""
from __future__ import annotations

import shutil
import stat
from pathlib import Path

import msgpack
import pytest
import zmq

import cep
from cep.errors import ConfigError
from cep.runtime import security
from cep.runtime.hostlink import HostLink, digest
from tests.test_cli import cep as run_cli
from tests.test_multihost import (SMALL, cep_run, finished, lines_of, needs_aliases, reference_output, two_hosts,
                                  wait_for)
from tests.test_multihost_ops import host_links, settle

HOSTS = ("edge", "core")


def as_shipped_to(keys: Path, host: str, into: Path) -> Path:
    """The keys directory as README says to copy it to `host`: every public key, its own secret."""
    into.mkdir(mode=0o700, parents=True)
    for public in keys.glob("host-*.key"):
        shutil.copy(public, into)
    shutil.copy(keys / f"host-{host}.key_secret", into)
    return into


# -- generating and loading ----------------------------------------------------------------------
def test_keys_generate_per_host_writes_one_keypair_each_and_says_what_goes_where(workdir, capsys):
    keys = workdir / "keys"
    code, out, err = run_cli("keys", "generate", keys, "--host", "edge", "--host", "core", capsys=capsys)
    assert code == 0, err
    assert sorted(p.name for p in keys.iterdir()) == ["host-core.key", "host-core.key_secret", "host-edge.key",
                                                      "host-edge.key_secret"]
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for secret in keys.glob("*.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert f"to every host: {keys}/host-core.key, {keys}/host-edge.key" in out
    assert f"to host edge only: {keys}/host-edge.key_secret" in out
    code, _, err = run_cli("keys", "generate", keys, "--host", "edge", capsys=capsys)
    assert code == 2 and "already holds keys (host-edge.key, host-edge.key_secret)" in err
    code, _, err = run_cli("keys", "generate", keys, "--host", "feed", capsys=capsys)  # a host added later
    assert code == 0 and (keys / "host-feed.key_secret").exists()


def test_a_host_loads_its_own_secret_and_the_others_public_keys_only(workdir):
    plan = cep.compile(two_hosts(workdir))  # with keys for both hosts in workdir/keys
    shipped = as_shipped_to(workdir / "keys", "edge", workdir / "edge-keys")
    keys = security.load_keys(shipped, "edge", plan.hosts)
    edge_public, edge_secret = security.host_keypair(shipped, "edge")
    core_public, _ = security.host_keypair(shipped, "core")
    assert (keys.server_public, keys.server_secret) == (keys.client_public, keys.client_secret) == (edge_public,
                                                                                                     edge_secret)
    assert keys.allowed == {edge_public, core_public}
    edge_endpoint = next(e for e in plan.edges if e.node == "quotes").endpoints[0]  # edge's XPUB
    assert edge_endpoint.startswith("tcp://") and keys.server_key(edge_endpoint) == edge_public
    assert keys.server_key(plan.hosts["core"]) == core_public and keys.server_key(plan.hosts["edge"]) == edge_public
    with pytest.raises(ConfigError) as info:  # core's secret never went to edge
        security.load_keys(shipped, "core", plan.hosts)
    assert "host-core.key_secret is missing" in str(info.value)


def test_a_multi_host_pipeline_with_the_one_pipeline_keypair_is_told_how_to_migrate(workdir, problems_of):
    path = two_hosts(workdir)  # the keys made for it are per host; make the old form instead
    shutil.rmtree(workdir / "keys")
    security.generate_keys(workdir / "keys")
    (problem,) = problems_of(path)
    assert "holds one keypair for the whole pipeline (server, client)" in problem
    assert "cep keys generate" in problem and "--host core --host edge" in problem
    assert "host-NAME.key_secret to host NAME only" in problem


def test_hosts_without_curve_are_told_the_command_that_makes_their_keys(pipeline_file, problems_of):
    """The fix for hosts other machines reach is a keypair per host, not the one-host keypair
    that would then be refused as the wrong form."""
    path = pipeline_file(SMALL + "hosts:\n  feed: {address: 10.1.2.3}\n  trade: {address: 10.1.2.4}\n")
    problems = problems_of(path)
    assert len(problems) == 2 and all("is reachable from other machines" in p for p in problems)
    for problem in problems:
        assert "`cep keys generate DIR --host feed --host trade`" in problem, problem
        assert "security: {curve: {keys: DIR}}" in problem, problem


def test_a_mistake_in_one_host_is_named_once_and_not_taken_for_a_missing_host(workdir, problems_of):
    """A host entry with a mistake is left out, not the whole `hosts:` section: the pipeline is
    still on several hosts (no one-host keypair asked for) and the nodes deployed there are not
    told to list a host that is listed."""
    path = two_hosts(workdir)
    path.write_text(path.read_text().replace("edge: {address:", "edge: {adress:"))
    problems = problems_of(path)
    assert problems and all(": host \"edge\": " in problem for problem in problems), problems
    assert any("unknown key 'adress' (did you mean 'address'?" in problem for problem in problems), problems


def test_validate_names_a_host_whose_public_key_is_missing(workdir, problems_of):
    path = two_hosts(workdir)
    (workdir / "keys" / "host-core.key").unlink()
    (problem,) = problems_of(path)
    assert "host-core.key (host core's public key) is missing" in problem


def test_one_host_pipelines_keep_the_one_keypair(workdir):
    from tests.test_security_tcp import write
    security.generate_keys(workdir / "keys")
    plan = cep.compile(write(workdir, "single", security="security: {curve: {keys: keys}}"))
    keys = security.load_keys(Path(plan.curve_keys))
    assert keys.allowed == {keys.client_public} and keys.server_key("tcp://127.0.0.1:1") == keys.server_public


# -- who the link admits -------------------------------------------------------------------------
def dealer_with(context: zmq.Context, public: bytes, secret: bytes, server: bytes, endpoint: str) -> zmq.Socket:
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.curve_publickey, socket.curve_secretkey, socket.curve_serverkey = public, secret, server
    socket.connect(endpoint)
    return socket


@needs_aliases
def test_a_peer_whose_key_is_not_a_hosts_is_refused_and_counted(workdir):
    plan = cep.compile(two_hosts(workdir, delivery="at_most_once"))
    edge_public, _ = security.host_keypair(workdir / "keys", "edge")
    with host_links(workdir, plan, plan) as (edge, _core):
        rogue = zmq.Context()
        public, secret = zmq.curve_keypair()
        sender = dealer_with(rogue, public, secret, edge_public, plan.hosts["edge"])
        try:
            sender.send(msgpack.packb({"t": "hello", "host": "core", "digest": digest(plan)}))
            wait_for(lambda: edge.gate.count_refusals() >= 1, "edge's link to refuse the rogue's handshake", 10)
            edge.receive()
            assert "refused 1 tcp handshakes from peers without a host's key" in " ".join(edge.notes())
        finally:
            sender.close(0)
            rogue.term()


@needs_aliases
def test_a_host_cannot_say_hello_in_another_hosts_name(workdir):
    """Host core's key signs core's hellos only: with it, a hello claiming to be host `third`
    is refused."""
    text = two_hosts(workdir, delivery="at_most_once").read_text()
    path = workdir / "three.yaml"
    path.write_text(text.replace("hosts:\n", "hosts:\n  third: {address: 127.0.0.3, port: 9}\n"))
    security.generate_keys(workdir / "keys", hosts=("third",))
    plan = cep.compile(path)
    with host_links(workdir, plan, plan) as (edge, core):
        settle([edge, core], lambda: edge.agreed() and core.agreed())
        refused = edge.refused
        core.peers["edge"].send(msgpack.packb({"t": "hello", "host": "third", "digest": digest(plan)}))
        settle([edge, core], lambda: edge.refused > refused)
        assert edge.states()["third"]["state"] == "waiting"


def test_run_on_a_host_whose_secret_key_is_not_on_its_machine_names_the_file_and_line(workdir, capsys):
    """`cep validate` accepts a keys directory holding some host's secret (it cannot know which
    machine it is on); `cep run --host core` knows, and says where the keys are set."""
    path = two_hosts(workdir)
    home = workdir / "edge-machine"
    home.mkdir()
    as_shipped_to(workdir / "keys", "edge", home / "keys")
    shipped = home / "hosts.yaml"
    shipped.write_text(path.read_text())
    line = next(n for n, text in enumerate(shipped.read_text().splitlines(), 1) if "keys:" in text)
    code, _, err = run_cli("validate", shipped, capsys=capsys)
    assert code == 0, err
    code, _, err = run_cli("run", shipped, "--host", "core", capsys=capsys)
    assert code == 2, err
    assert f"{shipped}:{line}:" in err and "host-core.key_secret is missing" in err, err
    assert "Traceback" not in err


# -- two real hosts ------------------------------------------------------------------------------
@needs_aliases
@pytest.mark.integration
def test_two_hosts_each_holding_only_its_own_secret_run_the_pipeline_and_refuse_a_rogue(workdir):
    expected = reference_output(workdir)
    path = two_hosts(workdir)
    homes = {}
    for host in HOSTS:  # each machine: its own copy of the pipeline and of the keys README ships to it
        home = workdir / host
        home.mkdir()
        as_shipped_to(workdir / "keys", host, home / "keys")
        homes[host] = home / "hosts.yaml"
        homes[host].write_text(path.read_text().replace("path: out.jsonl", f"path: {workdir / 'out.jsonl'}"))
    logs = {host: workdir / f"{host}.log" for host in HOSTS}
    runs = {"edge": cep_run(homes["edge"], "edge", logs["edge"])}
    wait_for(lambda: "waiting for strategy" in logs["edge"].read_text(), "the edge host to wait for core")
    rogue = zmq.Context()
    public, secret = zmq.curve_keypair()
    edge_public, _ = security.host_keypair(workdir / "keys", "edge")
    sender = dealer_with(rogue, public, secret, edge_public, cep.compile(path).hosts["edge"])
    try:
        runs["core"] = cep_run(homes["core"], "core", logs["core"])
        summaries = {host: finished(runs[host], logs[host]) for host in HOSTS}
    finally:
        sender.close(0)
        rogue.term()
    assert (workdir / "out.jsonl").read_text().splitlines() == expected
    assert lines_of(workdir / "out.jsonl") > 0
    assert "tcp handshakes from peers without a host's key" in summaries["edge"], summaries["edge"]
