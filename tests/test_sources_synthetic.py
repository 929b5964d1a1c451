"""The synthetic source: deterministic per seed, count/duration/rate, instruments, speed."""
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from cep.components.base import BuildContext
from cep.components.sources.synthetic import SyntheticParams, synthetic_source
from cep.events import TickEvent
from cep.rows import as_records


def ticks(batch_size: int = 256, **params) -> list[dict]:
    src = synthetic_source(SyntheticParams(**params), BuildContext(node="syn", batch_size=batch_size))
    return [r for batch in src.batches() for r in as_records(batch)]


def test_the_same_seed_gives_the_same_ticks_and_another_seed_others():
    assert ticks(seed=7, count=500, instruments=3) == ticks(seed=7, count=500, instruments=3)
    assert ticks(seed=7, count=50) != ticks(seed=8, count=50)


def test_ticks_do_not_depend_on_the_batch_size():
    assert ticks(batch_size=7, count=100, instruments=2) == ticks(batch_size=256, count=100,
                                                                  instruments=2)


def test_another_process_generates_the_same_ticks():
    code = ("from cep.components.sources.synthetic import SyntheticParams, synthetic_source;"
            "from cep.components.base import BuildContext;"
            "s = synthetic_source(SyntheticParams(seed=3, count=20, instruments=2), BuildContext(node='s'));"
            "from cep.rows import as_records;"
            "print(repr([r for b in s.batches() for r in as_records(b)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == repr(ticks(seed=3, count=20, instruments=2))


def test_ticks_are_valid_quotes_evenly_spaced_at_the_rate():
    records = ticks(count=1000, rate=200, instruments=4, spread=5, start_time=10**18)
    assert [r["timestamp"] for r in records[:3]] == [10**18, 10**18 + 5_000_000, 10**18 + 10_000_000]
    assert {r["instrument"] for r in records} == {"SYN000", "SYN001", "SYN002", "SYN003"}
    for record in records:
        tick = TickEvent.from_record(record)
        mid = (tick.bid_price + tick.ask_price) / 2
        assert tick.spread() == pytest.approx(mid * 5e-4)
        assert tick.bid_volume > 0 and tick.ask_volume > 0
        assert set(record) == set(TickEvent.FIELDS)


def test_the_walk_moves_by_about_the_volatility():
    records = ticks(count=4000, volatility=10, spread=0)
    mids = [r["bid_price"] for r in records]
    moves = [abs(b / a - 1) * 1e4 for a, b in zip(mids, mids[1:])]
    assert 5 < sum(moves) / len(moves) < 12  # E|N(0, 10 bps)| = 8 bps


def test_named_instruments_and_an_iso_start_time():
    records = ticks(count=10, instruments=["AAA", "BBB"], start_time="2024-08-09T00:00:00Z")
    assert {r["instrument"] for r in records} <= {"AAA", "BBB"}
    start = datetime(2024, 8, 9, tzinfo=timezone.utc).timestamp()
    assert records[0]["timestamp"] == int(start) * 1_000_000_000


def test_duration_bounds_event_time_and_lifts_the_default_count():
    records = ticks(duration="2s", rate=3000)
    assert len(records) == 6000
    assert records[-1]["timestamp"] - records[0]["timestamp"] < 2_000_000_000
    assert len(ticks(duration="1s", rate=100, count=30)) == 30  # whichever ends first


def test_without_count_or_duration_it_stops_after_the_default_count():
    assert len(ticks()) == 10_000


def test_count_null_without_duration_never_ends():
    src = synthetic_source(SyntheticParams(count=None), BuildContext(node="s", batch_size=100))
    batches = src.batches()
    assert sum(len(next(batches)) for _ in range(300)) == 30_000


def test_realtime_speed_paces_by_event_time():
    started = time.monotonic()
    records = ticks(count=5, rate=100, speed="realtime")  # 40 ms of event time
    assert len(records) == 5
    assert time.monotonic() - started >= 0.039


@pytest.mark.parametrize("bad", [{"instruments": 0}, {"instruments": []}, {"instruments": ["A", "A"]},
                                 {"rate": 0}, {"duration": "soon"}, {"speed": "fast"},
                                 {"seeds": 1}])
def test_bad_params_are_rejected(bad):
    with pytest.raises(ValidationError):
        SyntheticParams(**bad)


@pytest.mark.parametrize("speed", ["max", "1000x"])
def test_a_resumed_source_gives_the_ticks_after_those_it_had_emitted(speed):
    params = SyntheticParams(seed=5, count=300, instruments=2, rate=100_000, speed=speed)
    resumed = synthetic_source(params, BuildContext(node="syn", batch_size=64))
    resumed.resume(170)
    assert [r for b in resumed.batches() for r in as_records(b)] == ticks(count=300, seed=5, instruments=2,
                                                                         rate=100_000)[170:]
