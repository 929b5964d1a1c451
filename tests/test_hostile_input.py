"""Hostile and messy input, one bad record among 40 good ones, through real processes: the 40
are delivered, the bad one is dead-lettered with its reason and counted, and the run ends well."""
import gzip
import json
import math
from decimal import Decimal
import subprocess
import sys
import threading
import time

import msgpack
import pytest
import zmq

import cep
from cep.components.sinks.afresh import Afresh
from cep.components.sinks.jsonl_file import JsonlSink
from cep.components.sinks.stdout import StdoutParams, StdoutSink
from cep.runtime.deadletter import DeadLetters

HEADER = "timestamp,instrument,bid_price,ask_price,bid_volume,ask_volume"
PIPELINE = """
version: 1
name: hostile
sources:
  feed: {{{source}}}
sinks:
  out: {{type: jsonl, from: [feed], path: out/records.jsonl}}
"""


def good_csv_rows(count=40):
    return [f"{1_700_000_000_000 + i},BTCUSDT,{100 + i}.5,{101 + i}.5,1,2" for i in range(count)]


def good_jsonl_lines(count=40):
    return [json.dumps({"timestamp": 1_700_000_000_000 + i, "instrument": "BTCUSDT", "price": 100.5 + i})
            for i in range(count)]


def strict_json(line: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(line, parse_constant=refuse)


def run_with_one_bad(workdir, source: str, name: str, bad: bytes | str, good: list[str], header=""):
    """Write `good` lines with `bad` in the middle to `name`, run `source` -> jsonl sink as
    processes; (status, output records, dead letters)."""
    lines = [line.encode() for line in good]
    lines.insert(len(lines) // 2, bad if isinstance(bad, bytes) else bad.encode())
    data = (header.encode() + b"\n" if header else b"") + b"\n".join(lines) + b"\n"
    if name.endswith(".gz"):
        data = gzip.compress(data)
    (workdir / name).write_bytes(data)
    (workdir / "p.yaml").write_text(PIPELINE.format(source=source))
    status = cep.run(cep.compile(workdir / "p.yaml"))
    with open(workdir / "out" / "records.jsonl") as out:
        records = [strict_json(line) for line in out]
    return status, records, dead_letters(workdir)


def dead_letters(workdir):
    path = workdir / "out" / "deadletter.jsonl"
    return [json.loads(line) for line in open(path)] if path.exists() else []


CSV = "type: csv, path: in.csv"
CSV_MS = "type: csv, path: in.csv, timestamp_unit: ms"


@pytest.mark.integration
@pytest.mark.parametrize("source, bad, reason", [
    (CSV, "18446744073709551616,BTCUSDT,1.5,1.6,1,2", "timestamp"),          # 2^64 ns
    (CSV_MS, "1500000000000000000,BTCUSDT,1.5,1.6,1,2", "timestamp"),        # 1.5e18 ms
    (CSV, "-5,BTCUSDT,1.5,1.6,1,2", "timestamp"),
    (CSV, "1700000000000,BTCUSDT,nan,1.6,1,2", "bid_price"),
    (CSV, "1700000000000,BTCUSDT,1.5,inf,1,2", "ask_price"),
    (CSV, "1700000000000,BTCUSDT,-1.5,1.6,1,2", "bid_price"),
    (CSV, "1700000000000,BTCUSDT,0,1.6,1,2", "bid_price"),
    (CSV, "1700000000000,BTCUSDT,1.5,1.6,-inf,2", "bid_volume"),
    (CSV, "1700000000000,,1.5,1.6,1,2", "instrument"),
    (CSV, b"1700000000000,BTC\xff\xfeUSDT,1.5,1.6,1,2", "instrument"),         # invalid UTF-8
    (CSV, "1700000000000,BTC\0USDT,1.5,1.6,1,2", "NUL"),
    (CSV, "1700000000000,BTCUSDT," + "9" * 400 + ",1.6,1,2", "bid_price"),    # float('999...') = inf
    (CSV, "1700000000000," + "X" * 20_000_000 + ",1.5,1.6,1,2", "field larger than field limit"),
    (CSV, "1700000000000," + "X" * 100_000 + ",1.5,1.6,1,2", "more than max_string_length=65536"),
])
def test_one_bad_csv_row_is_dead_lettered_and_the_40_good_ones_delivered(workdir, source, bad, reason):
    status, records, letters = run_with_one_bad(workdir, source, "in.csv", bad, good_csv_rows(), HEADER)
    assert len(records) == 40
    assert [letter["node"] for letter in letters] == ["feed"]
    assert reason in letters[0]["reason"] and "in.csv line 22" in letters[0]["reason"]
    assert status.nodes()["feed"].dead_lettered == 1 and status.restarts == {}


JSONL = "type: jsonl, path: in.jsonl"


@pytest.mark.integration
@pytest.mark.parametrize("bad, reason", [
    ('{"timestamp": 1700000000000, "size": 12345678901234567890123456}', "out of range"),
    ('{"timestamp": 123456789012345678901234567890}', "invalid timestamp"),
    ('{"timestamp": -5}', "invalid timestamp"),
    ('{"timestamp": 1.5e300}', "invalid timestamp"),
    ('{"timestamp": 1700000000000, "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    ('{"timestamp": 1700000000000, "x": ' + "[" * 200 + "]" * 200 + "}", "nested"),
    ('{"timestamp": 1700000000000, "note": "' + "x" * 20_000_000 + '"}', "string of 20000000"),
    ('{"timestamp": 1700000000000, "price": NaN}', "NaN"),
    ('{"timestamp": 1700000000000, "price": 1e400}', "not finite"),
    ('{"timestamp": 1700000000000, "instrument": "", "bid_price": 1.5}', "instrument"),
    ('{"timestamp": 1700000000000, "instrument": "A", "bid_price": -1.5}', "bid_price"),
])
def test_one_bad_jsonl_line_is_dead_lettered_and_the_40_good_ones_delivered(workdir, bad, reason):
    status, records, letters = run_with_one_bad(workdir, JSONL, "in.jsonl", bad, good_jsonl_lines())
    assert len(records) == 40
    assert [letter["node"] for letter in letters] == ["feed"]
    assert reason in letters[0]["reason"] and "in.jsonl line 21" in letters[0]["reason"]
    assert status.nodes()["feed"].dead_lettered == 1 and status.restarts == {}


@pytest.mark.integration
def test_the_cli_exits_0_after_dead_lettering_a_huge_timestamp(workdir):
    lines = [HEADER] + good_csv_rows(20) + ["18446744073709551616,BTCUSDT,1.5,1.6,1,2"] + good_csv_rows(20)
    (workdir / "in.csv").write_text("\n".join(lines) + "\n")
    (workdir / "p.yaml").write_text(PIPELINE.format(source=CSV))
    done = subprocess.run([sys.executable, "-m", "cep.cli", "run", str(workdir / "p.yaml"), "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len((workdir / "out" / "records.jsonl").read_text().splitlines()) == 40


NON_FINITE = [{"price": math.nan, "low": -math.inf, "nested": {"high": [math.inf, 1.5]}, "d": Decimal("NaN")}]


def test_the_jsonl_sink_writes_nan_and_infinity_as_null_so_every_line_is_json(tmp_path):
    sink = JsonlSink(tmp_path / "out.jsonl", Afresh("truncate"))
    sink.write(NON_FINITE + [{"price": 1.5}])
    sink.close()
    lines = [strict_json(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == [{"price": None, "low": None, "nested": {"high": [None, 1.5]}, "d": None}, {"price": 1.5}]


def test_the_stdout_sink_writes_nan_and_infinity_as_null(capsys):
    StdoutSink(StdoutParams()).write(NON_FINITE)
    assert strict_json(capsys.readouterr().out)["nested"] == {"high": [None, 1.5]}


def test_a_dead_letter_holding_nan_is_still_a_json_line_and_a_huge_one_is_cut(tmp_path):
    letters = DeadLetters(tmp_path / "dead.jsonl", "w")
    letters("n", "why", {"price": math.nan})
    letters("n", "why", "x" * 10_000_000)
    letters.close()
    lines = [strict_json(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert "nan" in lines[0]["raw"]
    assert len(lines[1]["raw"]) < 10_000 and "10000000" in lines[1]["raw"]


@pytest.mark.integration
def test_a_truncated_gz_fails_the_run_with_exit_1_naming_the_row_reached(workdir):
    data = gzip.compress(("\n".join([HEADER] + good_csv_rows(50_000)) + "\n").encode())
    (workdir / "in.csv.gz").write_bytes(data[: len(data) // 2])
    (workdir / "p.yaml").write_text(PIPELINE.format(source="type: csv, path: in.csv.gz"))
    done = subprocess.run([sys.executable, "-m", "cep.cli", "run", str(workdir / "p.yaml"), "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "in.csv.gz is truncated after row " in done.stderr
    assert "restart" not in done.stderr  # the same end would come again


@pytest.mark.integration
def test_late_rows_and_rows_with_extra_cells_are_kept_and_reported_in_the_summary(workdir):
    rows = good_csv_rows(40)
    rows[10] = rows[10] + ",surprise"
    rows[30], rows[31] = rows[31], rows[30]
    (workdir / "in.csv").write_text("\n".join([HEADER] + rows) + "\n")
    (workdir / "p.yaml").write_text(PIPELINE.format(source=CSV))
    status = cep.run(cep.compile(workdir / "p.yaml"))
    assert len((workdir / "out" / "records.jsonl").read_text().splitlines()) == 40
    assert status.noted() == {"feed": {"extra cells": 1, "late": 1}}
    assert "kept feed: 1 extra cells, 1 late" in status.summary_lines()
