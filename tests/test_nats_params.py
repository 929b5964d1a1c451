"""What a pipeline writes for the `nats` source and sink is checked at load time, with the place
and the fix; without nats-py, using NATS says how to install it."""
import sys

import pytest

from cep.jetstream.client import NatsUnavailable, connect, NatsConnection, redact
from cep.jetstream.subjects import subject_matches
from tests.test_cli import cep

PIPELINE = """version: 1
name: p
sources:
  log: {{type: nats, stream: {stream}{extra}}}
sinks:
  out: {{type: nats, from: log, stream: COPY{sink}}}
"""


@pytest.mark.parametrize("stream, extra, sink, message", [
    ("TICKS", ', from: "yesterday"', "", "expected first, a sequence number or an ISO 8601 time"),
    ("TICKS", ", from: 0", "", "a stream sequence number starts at 1"),
    ("TICKS", ", follow: true, speed: 10x", "", "a followed stream delivers records as they come"),
    ("TI.CKS", "", "", "is not a JetStream stream name"),
    ("TICKS", "", ", subject: cep.*", "is not a NATS subject to publish to"),
    ("TICKS", "", ", max_bytes: lots", "expected a size such as 500MB"),
    ("TICKS", "", ", max_age: 0s", "must be a positive duration"),
    ("TICKS", ', url: "http://x:4222"', "", "is not a NATS URL"),
    ("TICKS", ", tls_ca: missing.pem", "", "no such TLS file"),
    ("TICKS", ", tls_key: p.yaml", "", "tls_cert and tls_key go together"),
])
def test_mistakes_in_nats_params_name_the_line_and_the_fix(tmp_path, capsys, stream, extra, sink, message):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(stream=stream, extra=extra, sink=sink))
    code, _, err = cep("validate", path, capsys=capsys)
    assert code == 2
    assert f"{path}:" in err and message in err


def test_valid_nats_params_validate(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE.format(stream="TICKS", extra=', from: "2024-08-08T10:00Z", speed: 10x',
                                    sink=", max_age: 7d, max_bytes: 10GB, subject: cep.copy"))
    code, out, err = cep("validate", path, capsys=capsys)
    assert code == 0, err


def test_without_nats_py_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "nats", None)  # import nats raises ImportError
    with pytest.raises(NatsUnavailable, match=r"pip install 'cep\[nats\]'"):
        connect(NatsConnection(), "test")


def test_credentials_in_a_url_never_show():
    assert redact("nats://me:secret@10.0.0.5:4222") == "nats://***@10.0.0.5:4222"
    assert redact("nats://tok@h:1") == "nats://***@h:1"
    assert NatsConnection(url="nats://a:b@h1:1, nats://h2:2").describe() == "nats://***@h1:1, nats://h2:2"


@pytest.mark.parametrize("pattern, subject, matches", [
    ("cep.>", "cep.a.b", True), ("cep.>", "cep", False), ("cep.*", "cep.a", True),
    ("cep.*", "cep.a.b", False), ("cep.a", "cep.a", True), ("cep.a", "cep.b", False),
    ("*.a", "x.a", True)])
def test_subject_wildcards(pattern, subject, matches):
    assert subject_matches(pattern, subject) is matches


def test_a_refused_login_is_the_reason_given_even_when_a_reset_connection_came_after_it():
    """The server answers a wrong password with 'Authorization Violation' and closes; the
    client's next attempt may then see the connection reset. The refusal is the cause."""
    errors = pytest.importorskip("nats.errors", reason="needs nats-py (pip install 'cep[nats]')")
    from cep.jetstream.client import connection_failure
    refused = errors.AuthorizationError()
    assert connection_failure([refused, ConnectionResetError("reset by peer")], RuntimeError("no servers")) is refused
    reset = ConnectionResetError("reset by peer")
    assert connection_failure([reset], RuntimeError("no servers")) is reset
    last = RuntimeError("no servers")
    assert connection_failure([], last) is last


def test_a_connection_reset_during_login_with_credentials_points_at_them():
    """The refusal can be lost when the server's close overtakes it: the reset is then named, and
    with credentials given, the message says to check them."""
    from cep.jetstream.client import login_hint
    reset = ConnectionResetError("reset by peer")
    assert "check the credentials" in login_hint(NatsConnection(user="cep", password="p"), reset)
    assert "check the credentials" in login_hint(NatsConnection(token="t"), reset)
    assert "require credentials" in login_hint(NatsConnection(), reset)
    assert login_hint(NatsConnection(user="cep", password="p"), OSError("refused")) == ""
