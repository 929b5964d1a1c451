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
