"""NATS credentials and TLS from the pipeline, against a nats-server that requires them; the
secrets come from the environment and never show in `cep graph`, errors or logs."""
import json
import subprocess
from pathlib import Path

import pytest

import cep
from cep.components.base import BuildContext
from cep.components.sinks.nats_stream import NatsSink, NatsSinkParams
from cep.jetstream.client import NatsUnavailable
from tests.natsserver import NatsServer, require_server, running
from tests.test_cli import cep as cep_cli

TOKEN = "tok-8c1f2e55d0"
PASSWORD = "pw-5a9b0c77e1"

PIPELINE = """version: 1
name: secured
sources:
  ticks: {{type: synthetic, instruments: 2, count: 500, seed: 3}}
streams:
  quotes: {{from: ticks, ops: [{{map: {{mid: "(bid_price + ask_price) / 2"}}}}]}}
sinks:
  log: {{type: nats, from: quotes, url: "{url}", stream: SECURED{auth}}}
"""


@pytest.fixture
def secured_server(tmp_path):
    """A server that takes user `cep` with PASSWORD, or TOKEN (two accounts of authorization)."""
    with running(NatsServer(require_server(), tmp_path, config=(
            "authorization { users: [{user: cep, password: %s}, {user: other, password: other}] }" % PASSWORD))) as server:
        yield server


@pytest.fixture
def token_server(tmp_path):
    with running(NatsServer(require_server(), tmp_path, config="authorization { token: %s }" % TOKEN)) as server:
        yield server


def _write(workdir: Path, url: str, auth: str) -> Path:
    path = workdir / "secured.yaml"
    path.write_text(PIPELINE.format(url=url, auth=auth))
    return path


@pytest.mark.integration
def test_a_pipeline_logs_in_with_a_token_from_the_environment_and_graph_never_shows_it(
        workdir, token_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_TEST_TOKEN", TOKEN)
    path = _write(workdir, token_server.url, ", token: \"${NATS_TEST_TOKEN}\"")
    status = cep.run(cep.compile(path))
    assert status.nodes()["log"].received == 500
    for fmt in ("text", "json", "dot", "mermaid"):
        code, out, err = cep_cli("graph", path, "-f", fmt, capsys=capsys)
        assert code == 0, err
        assert TOKEN not in out + err
    code, out, _ = cep_cli("graph", path, "-f", "json", capsys=capsys)
    log = next(node for node in json.loads(out)["nodes"] if node["id"] == "log")
    assert log["params"]["token"] == "***"


@pytest.mark.integration
def test_a_wrong_password_fails_the_run_without_showing_it(workdir, secured_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_TEST_PASSWORD", PASSWORD + "x")
    path = _write(workdir, secured_server.url, ", user: cep, password: \"${NATS_TEST_PASSWORD}\"")
    code, out, err = cep_cli("run", path, "-q", capsys=capsys)
    assert code == 1
    assert "cannot connect to NATS" in err
    # the refusal itself, or (when the server's close overtook it) the pointer to the credentials
    assert "Authorization" in err or "check the credentials" in err
    assert PASSWORD not in out + err


@pytest.mark.integration
def test_user_and_password_log_in(secured_server):
    sink = NatsSink(NatsSinkParams(url=secured_server.url, stream="SECURED", user="cep", password=PASSWORD),
                    BuildContext(node="log"))
    sink.write([{"timestamp": 1, "x": 1}])
    sink.close()
    with pytest.raises(NatsUnavailable, match="Authorization|require credentials"):
        NatsSink(NatsSinkParams(url=secured_server.url, stream="SECURED"), BuildContext(node="log"))


@pytest.fixture
def tls_server(tmp_path):
    """A server that speaks TLS only, with a self-signed certificate for 127.0.0.1."""
    binary = require_server()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                           "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                           "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"needs openssl to make a test certificate: {made.stderr.decode()[-200:]}")
    server = NatsServer(binary, tmp_path, config=(
        f"tls {{ cert_file: {str(cert)!r}, key_file: {str(key)!r} }}\n"
        f"authorization {{ token: {TOKEN} }}"))
    server.cert = cert
    with running(server):
        yield server


@pytest.mark.integration
def test_tls_with_the_servers_ca_connects_and_without_it_is_refused(tls_server):
    url = f"tls://127.0.0.1:{tls_server.port}"
    sink = NatsSink(NatsSinkParams(url=url, stream="TLS", token=TOKEN, tls_ca=str(tls_server.cert)),
                    BuildContext(node="log"))
    sink.write([{"timestamp": 1, "x": 1}])
    sink.close()
    with pytest.raises(NatsUnavailable, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        NatsSink(NatsSinkParams(url=url, stream="TLS", token=TOKEN), BuildContext(node="log"))


# -- nkeys and .creds ------------------------------------------------------------------------------
def _seed_file(path: Path, pair) -> Path:
    path.write_bytes(pair.seed + b"\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def nkey_server(tmp_path):
    """A server that knows one nkey user; `server.seed` is the file with its seed."""
    pytest.importorskip("nkeys", reason="nkey logins need the nkeys package: pip install -e '.[dev]'")
    from tests.natsserver import nkey_pair
    user = nkey_pair()
    server = NatsServer(require_server(), tmp_path, config=(
        "authorization { users: [{nkey: %s}] }" % user.public_key.decode()))
    server.seed = _seed_file(tmp_path / "user.nk", user)
    with running(server):
        yield server


@pytest.mark.integration
def test_an_nkey_seed_file_from_the_environment_logs_in_and_graph_never_shows_it(
        workdir, nkey_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_TEST_NKEY", str(nkey_server.seed))
    path = _write(workdir, nkey_server.url, ", nkey: \"${NATS_TEST_NKEY}\"")
    status = cep.run(cep.compile(path))
    assert status.nodes()["log"].received == 500
    seed = nkey_server.seed.read_text().strip()
    for fmt in ("text", "json", "dot", "mermaid"):
        code, out, err = cep_cli("graph", path, "-f", fmt, capsys=capsys)
        assert code == 0, err
        assert seed not in out + err and str(nkey_server.seed) not in out + err
    code, out, _ = cep_cli("graph", path, "-f", "json", capsys=capsys)
    log = next(node for node in json.loads(out)["nodes"] if node["id"] == "log")
    assert log["params"]["nkey"] == "***"


@pytest.mark.integration
def test_a_wrong_nkey_is_refused_with_exit_1_and_no_traceback(workdir, nkey_server, tmp_path, capsys):
    from tests.natsserver import nkey_pair
    other = _seed_file(tmp_path / "other.nk", nkey_pair())
    code, out, err = cep_cli("run", _write(workdir, nkey_server.url, f", nkey: {other}"), "-q", capsys=capsys)
    assert code == 1
    assert "cannot connect to NATS" in err and "Traceback" not in err
    assert "Authorization" in err or "check the credentials" in err
    assert other.read_text().strip() not in out + err


@pytest.mark.parametrize("content, message", [
    (b"not a seed\n", "holds no nkey seed (one line starting with SU"),
    (None, "holds the seed of an operator, account or server, not of a user"),
])
def test_an_nkey_file_that_holds_no_user_seed_is_named(workdir, tmp_path, capsys, content, message):
    pytest.importorskip("nkeys", reason="nkey logins need the nkeys package: pip install -e '.[dev]'")
    from tests.natsserver import nkey_pair
    seed = tmp_path / "bad.nk"
    seed.write_bytes(content if content is not None else nkey_pair("account").seed)
    seed.chmod(0o600)
    code, out, err = cep_cli("run", _write(workdir, "nats://127.0.0.1:4222", f", nkey: {seed}"), "-q",
                             capsys=capsys)
    assert code == 1
    assert f"the nkey seed file {seed} {message}" in err and "Traceback" not in err
    if content is None:
        assert seed.read_text() not in out + err


@pytest.mark.parametrize("kind", ["nkey", "creds"])
def test_a_key_file_other_users_may_read_is_refused_before_it_is_used(workdir, tmp_path, capsys, kind):
    """As ssh does with a private key: a seed or .creds file open to other users is a leaked
    secret; the run fails naming the file and the fix, and nothing of it is printed."""
    pytest.importorskip("nkeys", reason="nkey logins need the nkeys package: pip install -e '.[dev]'")
    from tests.natsserver import nkey_pair
    secret = tmp_path / f"open.{kind}"
    secret.write_bytes(nkey_pair().seed + b"\n")
    secret.chmod(0o644)
    code, out, err = cep_cli("run", _write(workdir, "nats://127.0.0.1:4222", f", {kind}: {secret}"), "-q",
                             capsys=capsys)
    assert code == 1 and "Traceback" not in err
    assert f"{secret} is readable by other users (chmod 600 it" in err
    assert secret.read_text().strip() not in out + err


def test_nkey_and_creds_together_or_a_missing_file_are_mistakes_with_their_place(workdir, tmp_path, capsys):
    seed = tmp_path / "user.nk"
    seed.write_text("SU...\n")
    code, _, err = cep_cli("validate", _write(workdir, "nats://127.0.0.1:4222",
                                              f", nkey: {seed}, creds: {seed}"), capsys=capsys)
    assert code == 2 and "secured.yaml:" in err and "nkey and creds are two ways to log in" in err
    code, _, err = cep_cli("validate", _write(workdir, "nats://127.0.0.1:4222", ", creds: missing.creds"),
                           capsys=capsys)
    assert code == 2 and "no such credentials file" in err


@pytest.fixture
def operator_server(tmp_path):
    """A server in operator mode (JWT accounts, as `nsc` sets them up); `server.operator` makes
    .creds files of its users."""
    pytest.importorskip("nkeys", reason=".creds logins need the nkeys package: pip install -e '.[dev]'")
    from tests.natsserver import Operator
    operator = Operator()
    server = NatsServer(require_server(), tmp_path, config=operator.config())
    server.operator = operator
    with running(server):
        yield server


@pytest.mark.integration
def test_a_creds_file_logs_in_and_one_of_an_unknown_account_is_refused(workdir, operator_server, tmp_path,
                                                                       monkeypatch, capsys):
    from tests.natsserver import nkey_pair
    monkeypatch.setenv("NATS_TEST_CREDS", str(operator_server.operator.creds(tmp_path / "user.creds")))
    status = cep.run(cep.compile(_write(workdir, operator_server.url, ", creds: \"${NATS_TEST_CREDS}\"")))
    assert status.nodes()["log"].received == 500
    stranger = operator_server.operator.creds(tmp_path / "stranger.creds", account=nkey_pair("account"))
    code, out, err = cep_cli("run", _write(workdir, operator_server.url, f", creds: {stranger}"), "-q",
                             capsys=capsys)
    assert code == 1
    assert "cannot connect to NATS" in err and "Traceback" not in err
    assert "Authorization" in err or "check the credentials" in err
    assert "USER NKEY SEED" not in out + err


EDGES = """version: 1
name: secured-edges
transport: {{kind: nats, url: "{url}", nkey: "${{NATS_TEST_NKEY}}"}}
sources:
  ticks: {{type: synthetic, instruments: 2, count: 500, seed: 3}}
streams:
  quotes: {{from: ticks, ops: [{{map: {{mid: "(bid_price + ask_price) / 2"}}}}]}}
sinks:
  log: {{type: "null", from: quotes}}
"""


@pytest.mark.integration
def test_edges_over_nats_log_in_with_the_transports_nkey(workdir, nkey_server, monkeypatch, capsys):
    monkeypatch.setenv("NATS_TEST_NKEY", str(nkey_server.seed))
    path = workdir / "edges.yaml"
    path.write_text(EDGES.format(url=nkey_server.url))
    status = cep.run(cep.compile(path))
    assert status.nodes()["log"].received == 500
    code, out, err = cep_cli("graph", path, "-f", "json", capsys=capsys)
    assert code == 0 and json.loads(out)["nats"]["nkey"] == "***" and str(nkey_server.seed) not in out
