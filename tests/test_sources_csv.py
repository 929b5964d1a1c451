"""The csv source: header mapping, units, gz, bad rows dead-lettered, load-time file checks."""
import csv
import gzip
import zlib
import io
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from cep.components.base import BuildContext
from cep.components.sources import csv_file
from cep.components.sources.csv_file import CsvParams, csv_source, split_rows
from cep.errors import UnreadableFile
from cep.events import TickEvent
from cep.rows import as_records

REPO = Path(__file__).resolve().parents[1]
BINANCE = REPO / "data" / "binance_btcusdt_ethusdt_20240808.csv.gz"
SHARED = (Path(__file__).parents[1] / "../shared/data").resolve()
OANDA = SHARED / "ticks" / "oanda_eurusd_nzdusd_201405.csv.gz"
HEADER = "timestamp,instrument,bid_price,ask_price,bid_volume,ask_volume\n"


def load(params: dict, base_dir: Path) -> CsvParams:
    return CsvParams.model_validate(params, context={"base_dir": base_dir})


def replay(params: CsvParams, batch_size: int = 256):
    letters: list[tuple[str, str]] = []
    ctx = BuildContext(node="ticks", batch_size=batch_size,
                       dead_letter_fn=lambda node, reason, raw: letters.append((reason, raw)))
    src = csv_source(params, ctx)
    try:
        records = [r for batch in src.batches() for r in as_records(batch)]
    finally:
        src.close()
    return records, letters, ctx.counters


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_rows_become_tick_records_with_int_ns_timestamps(tmp_path):
    write(tmp_path / "t.csv", HEADER + "1000,EURUSD,1.1,1.2,3,4.5\n2000,EURUSD,1.15,1.25,,\n")
    records, letters, _ = replay(load({"path": "t.csv"}, tmp_path))
    assert records == [
        {"timestamp": 1000, "instrument": "EURUSD", "bid_price": 1.1, "ask_price": 1.2,
         "bid_volume": 3.0, "ask_volume": 4.5},
        {"timestamp": 2000, "instrument": "EURUSD", "bid_price": 1.15, "ask_price": 1.25,
         "bid_volume": None, "ask_volume": None}]
    assert TickEvent.from_record(records[1]).spread() == pytest.approx(0.1)
    assert letters == []


def test_columns_map_other_headers_and_a_constant_instrument_fills_a_missing_column(tmp_path):
    write(tmp_path / "q.csv", "t;b;a\n1.5;10;11\n")
    params = load({"path": "q.csv", "columns": {"timestamp": "t", "bid_price": "b", "ask_price": "a"},
                   "instrument": "X", "timestamp_unit": "s", "delimiter": ";"}, tmp_path)
    records, _, _ = replay(params)
    assert records == [{"timestamp": 1_500_000_000, "instrument": "X", "bid_price": 10.0,
                        "ask_price": 11.0, "bid_volume": None, "ask_volume": None}]


@pytest.mark.parametrize("unit, cell, expected", [("ms", "1723161254024", 1723161254024000000),
                                                  ("us", "5", 5000), ("ns", "7", 7),
                                                  ("s", "1723161254.024619568", 1723161254024619520)])
def test_timestamp_unit_scales_to_nanoseconds(tmp_path, unit, cell, expected):
    write(tmp_path / "t.csv", HEADER + f"{cell},A,1,2,,\n")
    records, _, _ = replay(load({"path": "t.csv", "timestamp_unit": unit}, tmp_path))
    assert records[0]["timestamp"] == pytest.approx(expected, abs=1000)
    if unit != "s":
        assert records[0]["timestamp"] == expected


def test_gzip_files_are_read_by_suffix(tmp_path):
    with gzip.open(tmp_path / "t.csv.gz", "wt") as f:
        f.write(HEADER + "1,A,1,2,0.5,0.25\n")
    records, _, _ = replay(load({"path": "t.csv.gz"}, tmp_path))
    assert records[0]["ask_volume"] == 0.25


def test_malformed_rows_are_dead_lettered_with_line_and_text_and_the_replay_goes_on(tmp_path):
    write(tmp_path / "t.csv", HEADER + "1,A,1,2,,\n"
          "2,A,abc,2,,\n"        # bad number
          "3,A,1\n"              # missing cells
          "\n"                   # blank: not a row
          "x,A,1,2,,\n"          # bad timestamp
          "4,A,1,2,\x00,\n"      # a NUL byte the csv reader itself rejects
          "5,A,1,2,,\n")
    records, letters, counters = replay(load({"path": "t.csv"}, tmp_path))
    assert [r["timestamp"] for r in records] == [1, 5]
    assert [reason.split(":")[0] for reason, _ in letters] == ["t.csv line 3", "t.csv line 4",
                                                              "t.csv line 6", "t.csv line 7"]
    assert "abc" in letters[0][0] and letters[0][1] == "2,A,abc,2,,"
    assert "3 cells" in letters[1][0] and letters[1][1] == "3,A,1"
    assert counters.dead_lettered == 4


def test_bad_rows_in_plain_text_are_dead_lettered_alone_with_their_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_file, "_BLOCK_CHARS", 16)  # blocks of a line or two
    write(tmp_path / "t.csv", HEADER + "1,A,1,2,,\n2,A,abc,2,,\n3,A,1\n\n4,A,1,2,,\n"
          'x,A,1,2,,\n5,"A,B",1,2,,\n6,A,1,2,,\n')
    records, letters, _ = replay(load({"path": "t.csv"}, tmp_path))
    assert [(r["timestamp"], r["instrument"]) for r in records] == [(1, "A"), (4, "A"), (5, "A,B"), (6, "A")]
    assert [reason.split(":")[0] for reason, _ in letters] == ["t.csv line 3", "t.csv line 4", "t.csv line 7"]


def test_a_plain_file_is_split_without_the_csv_module_and_crlf_line_ends_stay_plain(tmp_path, monkeypatch):
    write(tmp_path / "t.csv", "")
    (tmp_path / "t.csv").write_bytes((HEADER + "1,A,1,2,3,4\n2,B,1,2,,\n").replace("\n", "\r\n").encode())
    params = load({"path": "t.csv"}, tmp_path)
    monkeypatch.setattr(csv_file.csv, "reader", _header_only_reader)
    records, letters, _ = replay(params)
    assert [(r["timestamp"], r["instrument"], r["ask_volume"]) for r in records] == [(1, "A", 4.0), (2, "B", None)]
    assert letters == []


_csv_reader = csv.reader


def _header_only_reader(lines, **kwargs):
    lines = list(lines)
    assert len(lines) == 1, "csv.reader read data rows of a plain file"
    return _csv_reader(lines, **kwargs)


_TEXT = st.text(alphabet=st.sampled_from(list('ab1,"\r\n\x00\x0b\u2028 ')), max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, block=st.integers(1, 24))
def test_split_rows_gives_the_rows_and_line_numbers_csv_reader_gives(text, block):
    """Whatever the text and wherever the blocks end: the row strict csv.reader reads from each
    line alone (a blank line being one empty cell) with its line number, or its rejection: a
    quote left open never reaches into the next line."""
    expected = []
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        try:
            expected += [(number, row or [""]) for row in csv.reader([line], strict=True)] or [(number, [""])]
        except csv.Error:
            expected.append((number, "rejected"))
    got: list = []

    def reject(line: int, why: str, row: list[str]) -> None:
        got.append((line, "rejected"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_file, "_BLOCK_CHARS", block)
        for block_rows, lines in split_rows(io.StringIO(text, newline=""), ",", reject):
            got += [(line, row or [""]) for row, line in zip(block_rows, lines)]
    assert sorted(got, key=lambda item: item[0]) == expected


def test_a_byte_order_mark_from_a_spreadsheet_is_not_part_of_the_first_column(tmp_path):
    (tmp_path / "t.csv").write_bytes("\ufeff".encode() + (HEADER + "1,A,1,2,,\r\n").encode())
    records, letters, _ = replay(load({"path": "t.csv"}, tmp_path))
    assert [(r["timestamp"], r["instrument"]) for r in records] == [(1, "A")] and letters == []


def test_a_missing_file_is_a_load_time_error_naming_the_resolved_path(tmp_path):
    with pytest.raises(ValidationError) as err:
        load({"path": "nope/ticks.csv"}, tmp_path)
    message = str(err.value)
    assert "no such CSV file" in message and str(tmp_path / "nope" / "ticks.csv") in message
    assert "resolve against the pipeline file's directory" in message


def test_a_csv_without_the_mapped_columns_is_a_load_time_error_listing_the_header(tmp_path):
    write(tmp_path / "t.csv", "time,sym,bid,ask\n1,A,1,2\n")
    with pytest.raises(ValidationError) as err:
        load({"path": "t.csv", "columns": {"bid_price": "bid"}}, tmp_path)
    message = str(err.value)
    assert "timestamp (column 'timestamp')" in message and "ask_price (column 'ask_price')" in message
    assert "bid_price" not in message.split("lacks")[1].split(": it is")[0]
    assert "['time', 'sym', 'bid', 'ask']" in message and "columns:" in message


def test_an_explicitly_mapped_optional_column_must_exist(tmp_path):
    write(tmp_path / "t.csv", HEADER)
    with pytest.raises(ValidationError, match="bid_volume \\(column 'bsize'\\)"):
        load({"path": "t.csv", "columns": {"bid_volume": "bsize"}}, tmp_path)


def test_columns_naming_an_unknown_field_and_unknown_params_are_rejected(tmp_path):
    write(tmp_path / "t.csv", HEADER)
    with pytest.raises(ValidationError, match="unknown TickEvent fields \\['price'\\]"):
        load({"path": "t.csv", "columns": {"price": "p"}}, tmp_path)
    with pytest.raises(ValidationError, match="extra"):
        load({"path": "t.csv", "sped": "max"}, tmp_path)


def test_the_shipped_binance_file_replays_every_tick():
    params = load({"path": str(BINANCE)}, REPO)
    records, letters, _ = replay(params)
    assert len(records) == 131_932 and letters == []
    assert {r["instrument"] for r in records} == {"BTCUSDT", "ETHUSDT"}
    assert all(a["timestamp"] <= b["timestamp"] for a, b in zip(records, records[1:]))
    assert records[0] == {"timestamp": 1723161254024619568, "instrument": "ETHUSDT",
                          "bid_price": 2683.8, "ask_price": 2683.81, "bid_volume": 3.0292,
                          "ask_volume": 31.4395}


@pytest.mark.skipif(not OANDA.is_file(), reason=f"shared Oanda data not found at {OANDA}")
def test_real_fx_quotes_without_sizes_have_no_volumes():
    src = csv_source(load({"path": str(OANDA)}, REPO), BuildContext(node="fx"))
    try:
        records = [r for batch in islice(src.batches(), 4) for r in as_records(batch)]
    finally:
        src.close()
    assert len(records) == 4 * 256
    assert all(r["bid_volume"] is None and r["ask_volume"] is None for r in records)
    assert all(r["ask_price"] >= r["bid_price"] for r in records)


def test_a_resumed_replay_gives_the_rows_after_those_it_had_emitted():
    params = load({"path": str(BINANCE), "speed": "max"}, REPO)
    everything, _, _ = replay(params)
    src = csv_source(params, BuildContext(node="ticks", batch_size=256))
    src.resume(1000)
    try:
        assert [r for batch in src.batches() for r in as_records(batch)] == everything[1000:]
    finally:
        src.close()


# -- messy files: each bad line costs that line, and nothing is let through uncounted ------------
def ticks(count: int, start: int = 1000) -> list[str]:
    return [f"{start + i},A,1.5,1.6,1,2" for i in range(count)]


@pytest.mark.parametrize("block_chars", [16, 1 << 16])
def test_an_unterminated_quote_costs_its_own_row_only(tmp_path, monkeypatch, block_chars):
    monkeypatch.setattr(csv_file, "_BLOCK_CHARS", block_chars)
    write(tmp_path / "t.csv", HEADER + "\n".join(ticks(5) + ['1005,"A,1.5,1.6,1,2'] + ticks(200, 2000)) + "\n")
    records, letters, counters = replay(load({"path": "t.csv"}, tmp_path))
    assert len(records) == 205
    assert [reason for reason, _ in letters] == ["t.csv line 7: unreadable row: unexpected end of data"]
    assert letters[0][1] == '1005,"A,1.5,1.6,1,2' and counters.dead_lettered == 1


@pytest.mark.parametrize("policy, kept, dropped, dead", [("keep", 3, {}, 0), ("drop", 2, {"late": 1}, 0),
                                                         ("deadletter", 2, {}, 1)])
def test_an_out_of_order_row_is_handled_per_on_late_and_counted_either_way(tmp_path, policy, kept, dropped, dead):
    write(tmp_path / "t.csv", HEADER + "1000,A,1.5,1.6,1,2\n3000,A,1.5,1.6,1,2\n2000,A,1.5,1.6,1,2\n")
    records, letters, counters = replay(load({"path": "t.csv", "on_late": policy}, tmp_path))
    assert len(records) == kept and counters.dropped == dropped and counters.dead_lettered == dead
    assert counters.noted == ({"late": 1} if policy == "keep" else {})
    if dead:
        assert letters[0][0] == "t.csv line 4: late: 2000 ns is before 3000 ns"


def test_rows_with_extra_cells_are_kept_and_counted(tmp_path):
    write(tmp_path / "t.csv", HEADER + "\n".join(ticks(3) + ["1003,A,1.5,1.6,1,2,surprise"] + ticks(3, 2000)) + "\n")
    records, letters, counters = replay(load({"path": "t.csv"}, tmp_path))
    assert len(records) == 7 and letters == [] and counters.noted == {"extra cells": 1}


@pytest.mark.parametrize("policy", ["drop", "keep"])
def test_invalid_ticks_are_dropped_or_kept_per_policy_and_counted_by_reason(tmp_path, policy):
    write(tmp_path / "t.csv", HEADER + "\n".join(ticks(3) + ["1003,A,nan,1.6,1,2", "1004,,1.5,1.6,1,2",
                                                             "1005,A,1.5,0,1,2"] + ticks(3, 2000)) + "\n")
    records, letters, counters = replay(load({"path": "t.csv", "invalid": policy}, tmp_path))
    reasons = {"invalid bid_price": 1, "invalid instrument": 1, "invalid ask_price": 1}
    assert letters == [] and len(records) == (9 if policy == "keep" else 6)
    assert (counters.noted if policy == "keep" else counters.dropped) == reasons


def test_an_invalid_timestamp_is_dead_lettered_whatever_the_policy(tmp_path):
    write(tmp_path / "t.csv", HEADER + "\n".join(ticks(2) + ["-5,A,1.5,1.6,1,2"] + ticks(2, 2000)) + "\n")
    records, letters, _ = replay(load({"path": "t.csv", "invalid": "keep"}, tmp_path))
    assert len(records) == 4 and letters[0][0].startswith("t.csv line 4: invalid timestamp: -5 ns")


def test_a_truncated_gz_is_an_error_naming_the_row_reached(tmp_path):
    data = gzip.compress((HEADER + "\n".join(ticks(50_000)) + "\n").encode())
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFile, match=r"t.csv.gz is truncated after row \d+"):
        replay(load({"path": "t.csv.gz"}, tmp_path))


def test_a_corrupt_gz_is_an_error_naming_the_row_reached_not_a_crash(tmp_path):
    data = bytearray(gzip.compress((HEADER + "\n".join(ticks(50_000)) + "\n").encode()))
    data[len(data) // 2: len(data) // 2 + 4] = b"\xfe" * 4  # deflate data no decoder accepts
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(data))
    (tmp_path / "t.csv.gz").write_bytes(bytes(data))
    with pytest.raises(UnreadableFile, match=r"t.csv.gz is (corrupt|truncated) after row \d+"):
        replay(load({"path": "t.csv.gz"}, tmp_path))


def test_a_gz_corrupt_from_its_start_is_a_load_time_error_not_a_traceback(tmp_path):
    data = bytearray(gzip.compress((HEADER + "\n".join(ticks(100)) + "\n").encode()))
    data[20:24] = b"\xff" * 4
    (tmp_path / "t.csv.gz").write_bytes(bytes(data))
    with pytest.raises(ValidationError, match="cannot read the header of CSV file"):
        load({"path": "t.csv.gz"}, tmp_path)
