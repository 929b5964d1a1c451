"""Source offsets kept across restarts under at_most_once and at_least_once, without processes:
the file, the at_most_once reservation (always ahead of what was sent), the at_least_once
acknowledged offset (never ahead of what was acknowledged)."""
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cep.errors import RuntimeFailure
from cep.runtime.delivery import SeqRanges, Window
from cep.runtime.offsets import Acknowledged, OffsetFile, Reservation


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_file_round_trips_is_private_and_a_first_start_forgets_it(tmp_path):
    file = OffsetFile(tmp_path, "gateway-ticks", fresh=True)
    assert file.load() == {}
    file.save({"ticks": 12})
    assert OffsetFile(tmp_path, "gateway-ticks", fresh=False).load() == {"ticks": 12}
    assert stat.S_IMODE(os.stat(file.path).st_mode) == 0o600
    assert OffsetFile(tmp_path, "gateway-ticks", fresh=True).load() == {}


@pytest.mark.parametrize("content", [b"\xc1", b"\x81\xa5ticks\xa1x", b"\x81\xa5ticks\xff", b"\x91\x01"])
def test_a_file_that_is_not_offsets_is_refused(tmp_path, content):
    file = OffsetFile(tmp_path, "w", fresh=True)
    file.path.write_bytes(content)
    with pytest.raises(RuntimeFailure, match="remove the file"):
        file.load()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 500), st.floats(0, 1)), min_size=1, max_size=60))
def test_a_reservation_is_on_file_before_any_batch_leaves(tmp_path_factory, batches):
    file = OffsetFile(tmp_path_factory.mktemp("r"), "w", fresh=True)
    clock = Clock()
    reservation = Reservation(file, {}, clock)
    emitted = 0
    for size, pause in batches:
        clock.now += pause
        emitted += size
        reservation.cover("ticks", emitted)
        assert file.load()["ticks"] >= emitted  # a crash now skips everything sent


def test_reservations_come_a_few_times_a_second_at_any_rate(tmp_path):
    file = OffsetFile(tmp_path, "w", fresh=True)
    clock = Clock()
    reservation = Reservation(file, {}, clock)
    saves = []
    file.save = lambda offsets: saves.append(dict(offsets))
    for batch in range(1, 40001):  # 256-record batches at about 1M records a second, for 10 s
        clock.now = batch * 256e-6
        reservation.cover("ticks", batch * 256)
    assert 10 < len(saves) < 200
    assert saves[-1]["ticks"] - 40000 * 256 < 600_000  # a restart skips well under a second of it


def test_an_acknowledged_offset_is_saved_only_once_every_frame_up_to_it_was_acknowledged(tmp_path):
    file = OffsetFile(tmp_path, "w", fresh=True)
    window = Window(["strategy"], capacity=10)
    emitted = {"ticks": 0}
    offsets = Acknowledged(file, emitted, [window])
    emitted["ticks"] = 256
    window.admit(b"T", 1, b"frame1")
    offsets.note()                           # marks 256 behind frame 1
    emitted["ticks"] = 512
    window.admit(b"T", 2, b"frame2")
    offsets.note()
    assert file.load() == {}                 # nothing acknowledged yet
    window.ack("strategy", {b"T": SeqRanges([(1, 1)])})
    offsets.note()
    assert file.load() == {"ticks": 256}     # frame 2 is not acknowledged: 512 is not safe
    window.ack("strategy", {b"T": SeqRanges([(2, 2)])})
    offsets.note()
    assert file.load() == {"ticks": 512}
