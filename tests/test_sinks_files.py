"""The stdout, jsonl and null sinks, and the one JSON convention they share."""
import io
import json
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum

import pytest
from pydantic import ValidationError

from cep.components.base import BuildContext
from cep.components.sinks.encoding import decode_payload, encode_payload, to_json
from cep.components.sinks.jsonl_file import JsonlSinkParams, jsonl_sink
from cep.components.sinks.null import null_sink
from cep.components.sinks.stdout import StdoutParams, StdoutSink, stdout_sink
from cep.events import Action, TradingSignal
from cep.plugins.markers import NoParams

SIGNAL = TradingSignal("s:1", 1723161254024619568, Action.BUY, "ETHUSDT", 2683.81, 1.0, "up5",
                       0.5).to_record()


def test_json_is_compact_utf8_and_converts_what_json_cannot_hold():
    class Side(Enum):
        BID = "bid"

    record = {"name": "café", "side": Side.BID, "px": Decimal("1.25"), "raw": b"\xff\x00",
              "at": datetime(2024, 1, 1, tzinfo=timezone.utc), "tags": {"b", "a"}, "none": None}
    assert to_json(record) == ('{"name":"café","side":"bid","px":1.25,"raw":"\\\\xff\\u0000",'
                               '"at":"2024-01-01T00:00:00+00:00","tags":["a","b"],"none":null}')


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_payloads_round_trip_and_keep_integer_nanoseconds(fmt):
    assert decode_payload(encode_payload(SIGNAL, fmt), fmt, 1 << 20) == SIGNAL


@pytest.mark.parametrize("fmt, payload, why", [("msgpack", b"\xc1garbage", "undecodable msgpack"),
                                               ("json", b"{nope", "undecodable json"),
                                               ("json", b"[1, 2]", "payload is a list"),
                                               ("msgpack", b"\x93\x01\x02\x03", "payload is a list"),
                                               ("json", b"{}" + b" " * 100, "exceeds")])
def test_bad_payloads_raise_value_error_saying_why(fmt, payload, why):
    with pytest.raises(ValueError, match=why):
        decode_payload(payload, fmt, 64)


def test_stdout_json_writes_one_line_per_record():
    stream = io.StringIO()
    sink = StdoutSink(StdoutParams(format="json"), stream)
    sink.write([SIGNAL, {"a": 1}])
    sink.close()
    lines = stream.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [SIGNAL, {"a": 1}]


def test_stdout_text_writes_field_value_pairs(capsys):
    sink = stdout_sink(StdoutParams(format="text"), BuildContext(node="out"))
    sink.write([{"action": "BUY", "instrument": "ETHUSDT", "confidence": 0.5}])
    sink.close()
    assert capsys.readouterr().out == "action=BUY instrument=ETHUSDT confidence=0.5\n"


def test_stdout_rejects_an_unknown_format():
    with pytest.raises(ValidationError):
        StdoutParams(format="xml")


def test_jsonl_creates_parent_dirs_relative_to_base_dir_and_truncates_by_default(tmp_path):
    ctx = BuildContext(node="log", base_dir=tmp_path)
    for _ in range(2):
        sink = jsonl_sink(JsonlSinkParams(path="out/deep/signals.jsonl"), ctx)
        sink.write([SIGNAL])
        sink.write([{"b": 2}])
        sink.close()
    lines = (tmp_path / "out/deep/signals.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [SIGNAL, {"b": 2}]
    assert lines[0] == to_json(SIGNAL)


def test_jsonl_append_mode_keeps_what_was_there(tmp_path):
    ctx = BuildContext(node="log", base_dir=tmp_path)
    for n in range(3):
        sink = jsonl_sink(JsonlSinkParams(path="s.jsonl", mode="append"), ctx)
        sink.write([{"n": n}])
        sink.close()
    assert (tmp_path / "s.jsonl").read_text() == '{"n":0}\n{"n":1}\n{"n":2}\n'


def test_null_sink_counts_and_keeps_nothing():
    sink = null_sink(NoParams(), BuildContext(node="void"))
    sink.write([{"a": 1}] * 3)
    sink.write([{"a": 2}])
    sink.close()
    assert sink.count == 4
