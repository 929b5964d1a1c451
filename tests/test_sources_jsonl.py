"""The jsonl source: generic records, configurable event-time field and unit, bad lines."""
import gzip
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from cep.components.base import BuildContext
from cep.components.sources.jsonl_file import JsonlParams, jsonl_source


def replay(path: Path, **params):
    letters: list[tuple[str, str]] = []
    ctx = BuildContext(node="events", batch_size=2,
                       dead_letter_fn=lambda node, reason, raw: letters.append((reason, raw)))
    src = jsonl_source(JsonlParams.model_validate({"path": path.name, **params},
                                                  context={"base_dir": path.parent}), ctx)
    try:
        batches = list(src.batches())
    finally:
        src.close()
    return batches, letters


def test_objects_become_records_with_their_event_time_in_ns(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in
                            [{"ts": 1.5, "kind": "a"}, {"ts": 2, "kind": "b", "n": [1]},
                             {"ts": "3", "kind": "c"}]))
    batches, letters = replay(path, time_field="ts", time_unit="s")
    assert [len(b) for b in batches] == [2, 1]
    assert [r["timestamp"] for b in batches for r in b] == [1_500_000_000, 2_000_000_000,
                                                             3_000_000_000]
    assert batches[0][1] == {"ts": 2, "kind": "b", "n": [1], "timestamp": 2_000_000_000}
    assert letters == []


def test_gzip_jsonl_by_suffix(tmp_path):
    path = tmp_path / "e.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write('{"timestamp": 5}\n')
    batches, _ = replay(path)
    assert batches == [[{"timestamp": 5}]]


def test_malformed_lines_are_dead_lettered_and_the_replay_goes_on(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"timestamp": 1}\n{not json\n[1, 2]\n{"other": 1}\n'
                    '{"timestamp": "soon"}\n\n{"timestamp": 2}\n')
    batches, letters = replay(path)
    assert [r["timestamp"] for b in batches for r in b] == [1, 2]
    assert [reason.split(":")[0] for reason, _ in letters] == [f"e.jsonl line {n}" for n in (2, 3, 4, 5)]
    assert "expected a JSON object" in letters[1][0]
    assert "no event time field 'timestamp'" in letters[2][0]
    assert letters[0][1] == "{not json"


def test_a_missing_file_is_a_load_time_error(tmp_path):
    with pytest.raises(ValidationError, match="no such JSONL file: .*gone.jsonl"):
        JsonlParams.model_validate({"path": "gone.jsonl"}, context={"base_dir": tmp_path})


@pytest.mark.parametrize("policy, kept, dropped, dead", [("keep", 3, {}, 0), ("drop", 2, {"late": 1}, 0),
                                                         ("deadletter", 2, {}, 1)])
def test_an_out_of_order_line_is_handled_per_on_late_and_counted_either_way(tmp_path, policy, kept, dropped, dead):
    (tmp_path / "e.jsonl").write_text('{"timestamp": 1000}\n{"timestamp": 3000}\n{"timestamp": 2000}\n')
    letters: list = []
    ctx = BuildContext(node="events", dead_letter_fn=lambda node, reason, raw: letters.append(reason))
    src = jsonl_source(JsonlParams.model_validate({"path": "e.jsonl", "on_late": policy},
                                                  context={"base_dir": tmp_path}), ctx)
    try:
        records = [r for batch in src.batches() for r in batch]
    finally:
        src.close()
    assert len(records) == kept and ctx.counters.dropped == dropped and ctx.counters.dead_lettered == dead
    assert ctx.counters.noted == ({"late": 1} if policy == "keep" else {})
    assert letters == (["e.jsonl line 3: late: 2000 ns is before 3000 ns"] if dead else [])


def test_a_line_with_bytes_that_are_not_utf8_is_dead_lettered_and_a_real_replacement_character_is_not(tmp_path):
    (tmp_path / "e.jsonl").write_bytes(b'{"timestamp": 1, "s": "ok"}\n{"timestamp": 2, "s": "bad\xff\xfe"}\n'
                                       + '{"timestamp": 3, "s": "caf\u00e9 \ufffd"}\n'.encode())
    batches, letters = replay(tmp_path / "e.jsonl")
    assert [r["timestamp"] for batch in batches for r in batch] == [1, 3]
    assert [reason for reason, _ in letters] == ["e.jsonl line 2: bytes that are not UTF-8"]
