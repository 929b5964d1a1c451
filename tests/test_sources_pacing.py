"""Replay pacing: speed parsing and how paced batches are cut (on a fake clock, no sleeping)."""
import pytest
from pydantic import BaseModel, ValidationError

from cep.components.sources.pacing import Speed, paced_batches, speed_factor


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 9))
        self.now += seconds


def ticks(*seconds: float) -> list[dict]:
    return [{"timestamp": int(s * 1e9), "n": i} for i, s in enumerate(seconds)]


@pytest.mark.parametrize("text, factor", [("max", None), ("realtime", 1.0), ("10x", 10.0),
                                          ("0.5x", 0.5), (" 2X ", 2.0)])
def test_speed_factor_parses_what_users_write(text, factor):
    assert speed_factor(text) == factor


@pytest.mark.parametrize("text", ["fast", "0x", "x", "-2x", "10"])
def test_speed_factor_rejects_anything_else_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="max, realtime or a factor"):
        speed_factor(text)


def test_speed_field_rejects_a_bad_speed_at_load_time():
    class Params(BaseModel):
        speed: Speed = "max"

    assert Params(speed="Realtime").speed == "realtime"
    with pytest.raises(ValidationError, match="speed must be"):
        Params(speed="warp")


def test_max_speed_cuts_full_batches_and_a_short_last_one():
    batches = list(paced_batches(ticks(*range(7)), 3, "max"))
    assert [len(b) for b in batches] == [3, 3, 1]


def test_realtime_sleeps_until_each_record_is_due_and_yields_before_sleeping():
    clock = FakeClock()
    out = []
    for batch in paced_batches(ticks(0, 0, 1, 1.5, 1.5), 10, "realtime", clock, clock.sleep):
        out.append(([r["n"] for r in batch], clock.now))
    assert out == [([0, 1], 100.0), ([2], 101.0), ([3, 4], 101.5)]
    assert clock.slept == [1.0, 0.5]


def test_a_speed_factor_compresses_event_time():
    clock = FakeClock()
    list(paced_batches(ticks(0, 10, 30), 10, "10x", clock, clock.sleep))
    assert clock.slept == [1.0, 2.0]


def test_a_paced_replay_that_fell_behind_catches_up_in_full_batches():
    clock = FakeClock()
    records = ticks(0, 0.1, 0.2, 0.3, 0.4)
    source = paced_batches(records, 2, "realtime", clock, clock.sleep)
    first = next(source)
    clock.now += 10  # the consumer was slow: every remaining record is overdue
    assert [len(first)] + [len(b) for b in source] == [1, 2, 2]
    assert clock.slept == []


def test_skipped_records_are_left_out_before_pacing_so_a_resumed_replay_waits_for_none_of_them():
    clock = FakeClock()
    out = []
    for batch in paced_batches(ticks(0, 1, 2, 3, 3.5), 10, "realtime", clock, clock.sleep, skip=3):
        out.append(([r["n"] for r in batch], clock.now))
    assert out == [([3], 100.0), ([4], 100.5)]  # pacing starts at the first record not skipped
    assert clock.slept == [0.5]
    assert [r["n"] for b in paced_batches(ticks(*range(5)), 2, "max", skip=3) for r in b] == [3, 4]
