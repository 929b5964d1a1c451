"""at_least_once bookkeeping without sockets: the producer's window, the consumer's receipts, the
ack messages. The property test plays a source -> middle -> sink chain through any interleaving of
sends, reads, acks and crashes of the middle or the sink (a crash loses what was in flight to the
dead process, and its new incarnation is resent what it had not acknowledged); another plays the
frames a restarted exactly_once consumer gets, new ones overtaking the resend, through `InOrder`."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cep.errors import CodecError
from cep.runtime.delivery import (ACK, JOIN, InOrder, Receipts, SeqRanges, Window, decode_ack, encode_ack,
                                  encode_join, epoch)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- SeqRanges ------------------------------------------------------------------------------------
def test_consecutive_seqs_stay_one_range():
    ranges = SeqRanges()
    assert all(ranges.add(seq) for seq in range(1, 101))
    assert ranges.pairs() == [(1, 100)]


def test_out_of_order_seqs_merge_and_repeats_are_reported():
    ranges = SeqRanges()
    for seq in (5, 1, 3, 2, 4, 9):
        assert ranges.add(seq)
    assert ranges.pairs() == [(1, 5), (9, 9)]
    assert not ranges.add(3) and not ranges.add(9)
    assert 4 in ranges and 6 not in ranges and 0 not in ranges
    assert list(ranges) == [1, 2, 3, 4, 5, 9]


@given(st.lists(st.integers(0, 60)))
def test_seq_ranges_hold_exactly_the_set_added(seqs):
    ranges = SeqRanges()
    seen = set()
    for seq in seqs:
        assert ranges.add(seq) == (seq not in seen)
        seen.add(seq)
    assert list(ranges) == sorted(seen)
    assert all(low <= high for low, high in ranges.pairs())
    assert all(a[1] + 1 < b[0] for a, b in zip(ranges.pairs(), ranges.pairs()[1:]))


# -- ack messages ---------------------------------------------------------------------------------
def test_ack_and_join_messages_round_trip():
    kind, consumer, _, acked = decode_ack(encode_ack("sink", {b"up5": SeqRanges([(1, 4), (7, 7)])}))
    assert (kind, consumer, acked[b"up5"].pairs()) == (ACK, "sink", [(1, 4), (7, 7)])
    assert decode_ack(encode_join("strategy", 3))[:3] == (JOIN, "strategy", 3)


@pytest.mark.parametrize("garbage", [b"\xc1", b"\x93\x01\x02\x03", b"\x94\x07\xa1w\x00\x90"])
def test_a_malformed_ack_is_a_codec_error(garbage):
    with pytest.raises(CodecError, match="malformed ack"):
        decode_ack(garbage)


# -- Window ---------------------------------------------------------------------------------------
def frame(topic: bytes, seq: int) -> list[bytes]:
    return [topic, str(seq).encode(), b""]


def test_a_window_releases_only_what_a_worker_acknowledged():
    window = Window(["a", "b"], capacity=3)
    for seq in (1, 2, 3):
        window.admit(b"t", seq, frame(b"t", seq))
    assert window.full and window.size("a") == 3
    assert window.ack("a", {b"t": SeqRanges([(1, 2)])}) == 2
    assert window.size("a") == 1 and window.size("b") == 3 and window.full  # b has acked nothing
    assert [seq for _, seq, _ in window.unacked("b")] == [1, 2, 3]
    assert window.low_ordinal() == 0  # b still holds frame 1 (ordinal 0)
    window.ack("b", {b"t": SeqRanges([(1, 3)])})
    window.ack("a", {b"t": SeqRanges([(3, 3)])})
    assert window.empty and window.low_ordinal() == window.next_ordinal == 3


def test_acks_of_another_epoch_unknown_streams_or_workers_release_nothing():
    window = Window(["a"], capacity=10)
    first = epoch(1) + 1
    window.admit(b"t", first, frame(b"t", first))
    assert window.ack("a", {b"t": SeqRanges([(1, 1000)])}) == 0  # the former incarnation's numbers
    assert window.ack("a", {b"other": SeqRanges([(first, first)])}) == 0
    assert window.ack("zz", {b"t": SeqRanges([(first, first)])}) == 0
    assert window.size("a") == 1


def test_a_rejoined_worker_is_owed_what_it_had_not_acknowledged_until_it_is_resent():
    window = Window(["a", "b"], capacity=10)
    for seq in (1, 2, 3):
        window.admit(b"t", seq, frame(b"t", seq))
    window.ack("a", {b"t": SeqRanges([(1, 1)])})
    assert window.owed() == []                # silence alone never makes a worker owed anything
    window.rejoined("a")
    window.admit(b"t", 4, frame(b"t", 4))     # sent to the new incarnation itself
    owed = window.owed_frames("a")
    assert [seq for _, _, seq, _ in owed] == [2, 3]
    window.resent("a", 1, owed[0][0])          # the socket took one frame
    assert window.owed() == ["a"] and [seq for _, _, seq, _ in window.owed_frames("a")] == [3]
    window.ack("a", {b"t": SeqRanges([(3, 3)])})
    window.resent("a", 0, None)                # nothing left: the acked frame is not owed any more
    assert window.owed() == [] and window.retransmitted == 1


def test_unacked_frames_come_back_oldest_first_across_streams():
    window = Window(["a"], capacity=10)
    for topic, seq in [(b"x", 1), (b"y", 1), (b"x", 2), (b"y", 2)]:
        window.admit(topic, seq, frame(topic, seq))
    window.ack("a", {b"y": SeqRanges([(1, 1)])})
    assert [(t, s) for t, s, _ in window.unacked("a")] == [(b"x", 1), (b"x", 2), (b"y", 2)]


# -- Receipts -------------------------------------------------------------------------------------
def test_receipts_ack_only_after_the_outputs_of_the_pass_are_acknowledged_downstream():
    clock = Clock()
    downstream = Window(["sink"], capacity=10)
    flushed = []
    receipts = Receipts(windows=[downstream], flush=lambda: flushed.append(True), clock=clock)
    assert receipts.read("up", b"t", 1) and receipts.read("up", b"t", 2)
    downstream.admit(b"o", 1, frame(b"o", 1))  # what the pass produced
    receipts.end_pass()
    clock.now = 1.0
    assert receipts.due() == {} and flushed and not receipts.settled
    downstream.ack("sink", {b"o": SeqRanges([(1, 1)])})
    clock.now = 2.0
    acks = receipts.due()
    assert acks["up"][b"t"].pairs() == [(1, 2)] and receipts.settled


def test_receipts_report_duplicates_and_wait_for_the_ack_interval():
    clock = Clock()
    receipts = Receipts(clock=clock)
    assert receipts.read("up", b"t", 1)
    assert not receipts.read("up", b"t", 1)
    receipts.end_pass()
    assert receipts.due()["up"][b"t"].pairs() == [(1, 1)]
    receipts.read("up", b"t", 2)
    receipts.end_pass()
    assert receipts.due() == {}  # within the ack interval of the previous ack
    clock.now = 1.0
    assert receipts.due()["up"][b"t"].pairs() == [(2, 2)]


# -- the chain, any interleaving ------------------------------------------------------------------
CAPACITY = 4
STEPS = ["send", "mid_read", "sink_read", "ack_src", "ack_mid", "crash_mid", "crash_sink", "flush_sink"]


class Chain:
    """source -> middle -> sink, each frame of the middle derived from one source frame."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.source = Window(["mid"], CAPACITY)
        self.sent = 0
        self.to_mid: list = []
        self.to_sink: list = []
        self.acks_to_source: list = []
        self.acks_to_mid: list = []
        self.durable: set[int] = set()
        self.incarnation = 0
        self._start_mid()
        self._start_sink()

    def _start_mid(self) -> None:
        self.mid_window = Window(["sink"], CAPACITY)
        self.mid_receipts = Receipts(windows=[self.mid_window], clock=self.clock)
        self.mid_seq = epoch(self.incarnation)
        self.incarnation += 1

    def _start_sink(self) -> None:
        self.buffered: list[int] = []
        self.sink_receipts = Receipts(flush=self._flush, clock=self.clock)

    def _flush(self) -> None:
        self.durable.update(self.buffered)
        self.buffered = []

    def step(self, name: str) -> None:
        self.clock.now += 1
        getattr(self, name)()
        assert self.source.size("mid") <= CAPACITY and self.mid_window.size("sink") <= CAPACITY

    def send(self) -> None:
        if not self.source.full:
            self.sent += 1
            self.source.admit(b"t", self.sent, [b"t", self.sent])
            self.to_mid.append((b"t", self.sent, [b"t", self.sent]))

    def mid_read(self) -> None:
        if self.to_mid and not self.mid_window.full:  # held: a full window stops its input
            topic, seq, (_, origin) = self.to_mid.pop(0)
            self.mid_receipts.read("src", topic, seq)
            self.mid_seq += 1
            output = [b"o", origin]
            self.mid_window.admit(b"o", self.mid_seq, output)
            self.to_sink.append((b"o", self.mid_seq, output))
        self.mid_receipts.end_pass()
        for acked in self.mid_receipts.due().values():
            self.acks_to_source.append(acked)

    def sink_read(self) -> None:
        if self.to_sink:
            topic, seq, (_, origin) = self.to_sink.pop(0)
            self.sink_receipts.read("mid", topic, seq)
            self.buffered.append(origin)
        self.sink_receipts.end_pass()
        for acked in self.sink_receipts.due().values():
            self.acks_to_mid.append(acked)

    def ack_src(self) -> None:
        if self.acks_to_source:
            self.source.ack("mid", self.acks_to_source.pop(0))

    def ack_mid(self) -> None:
        if self.acks_to_mid:
            self.mid_window.ack("sink", self.acks_to_mid.pop(0))

    def retx_src(self) -> None:
        self.to_mid += self.source.unacked("mid")

    def retx_mid(self) -> None:
        self.to_sink += self.mid_window.unacked("sink")

    def crash_mid(self) -> None:
        self.to_mid.clear()          # in flight to the dead process
        self.to_sink.clear()         # its unsent output
        self._start_mid()
        self.retx_src()              # it rejoins: the source resends what it never acknowledged

    def crash_sink(self) -> None:
        self.to_sink.clear()
        self._start_sink()           # what it had not flushed is gone
        self.retx_mid()

    def flush_sink(self) -> None:
        self._flush()

    SETTLING = ("mid_read", "sink_read", "ack_mid", "ack_src")  # the steps that make progress

    @classmethod
    def played(cls, steps: list[str]) -> "Chain":
        """A chain that went through `steps`, then was drained."""
        chain = cls()
        for name in steps:
            chain.step(name)
        chain.drain()
        return chain

    def drain(self) -> None:
        for _ in range(200):
            if self.source.empty and self.mid_window.empty:
                return
            for _ in range(len(self.to_mid) + len(self.to_sink) + 2 * CAPACITY + 4):
                for name in self.SETTLING:
                    self.step(name)
        raise AssertionError("the chain never settled")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(STEPS), max_size=120))
def test_any_interleaving_loses_no_frame_and_never_exceeds_the_window(steps):
    chain = Chain.played(steps)
    assert chain.durable == set(range(1, chain.sent + 1))


# -- exactly_once: checkpoints, dedupe, outbox, any interleaving ----------------------------------
EO_STEPS = ["send", "mid_read", "mid_commit", "sink_read", "sink_commit", "ack_src", "ack_mid", "crash_mid",
            "crash_sink"]


class CheckpointedChain(Chain):
    """The chain with exactly_once: the middle and the sink read (dropping what their streams
    already delivered), checkpoint, and only then let their output go and acknowledge; a crash
    loses everything since the last checkpoint and resumes from it."""

    def __init__(self) -> None:
        self.written: list[int] = []      # the sink's file
        self.mid_saved = ({}, [])         # checkpoints: delivered ranges, outbox
        self.sink_saved = ({}, 0)         # delivered ranges, file length
        super().__init__()

    def _start_mid(self) -> None:
        super()._start_mid()
        self.mid_receipts = Receipts(clock=self.clock)   # acks follow the checkpoint alone
        self.mid_window.journal = []
        self.held_back: list = []
        seen, outbox = self.mid_saved
        self.mid_receipts.restore_seen(seen)
        self.mid_window.restore(outbox)
        self.to_sink += self.mid_window.unacked("sink")  # resume: the outbox goes again

    def _start_sink(self) -> None:
        self.sink_receipts = Receipts(clock=self.clock)
        seen, length = self.sink_saved
        self.sink_receipts.restore_seen(seen)
        del self.written[length:]                        # the jsonl sink cuts back its file

    def mid_read(self) -> None:
        if self.to_mid and not self.mid_window.full:
            topic, seq, (_, origin) = self.to_mid.pop(0)
            if self.mid_receipts.read("src", topic, seq):  # else a duplicate: dropped
                self.mid_seq += 1
                output = [b"o", origin]
                self.mid_window.admit(b"o", self.mid_seq, output)
                self.held_back.append((b"o", self.mid_seq, output))

    def mid_commit(self) -> None:
        outbox = {entry[:3]: entry for entry in self.mid_saved[1]}  # what the store does with the journal
        for change in self.mid_window.journal:
            if len(change) == 5:
                outbox[change[:3]] = change
            else:
                outbox.pop(change, None)
        self.mid_saved = (self.mid_receipts.seen(), list(outbox.values()))
        self.mid_window.journal = []
        self.to_sink += self.held_back
        self.held_back = []
        self.mid_receipts.end_pass()
        self.acks_to_source += list(self.mid_receipts.due().values())

    def sink_read(self) -> None:
        if self.to_sink:
            topic, seq, (_, origin) = self.to_sink.pop(0)
            if self.sink_receipts.read("mid", topic, seq):
                self.written.append(origin)

    def sink_commit(self) -> None:
        self.sink_saved = (self.sink_receipts.seen(), len(self.written))
        self.sink_receipts.end_pass()
        self.acks_to_mid += list(self.sink_receipts.due().values())

    def retx_mid(self) -> None:
        held = {id(entry[2]) for entry in self.held_back}   # not before their checkpoint
        self.to_sink += [entry for entry in self.mid_window.unacked("sink") if id(entry[2]) not in held]

    def crash_mid(self) -> None:
        self.to_mid.clear()
        self._start_mid()
        self.retx_src()

    def crash_sink(self) -> None:
        self.to_sink.clear()
        self._start_sink()
        self.retx_mid()

    SETTLING = ("mid_read", "mid_commit", "sink_read", "sink_commit", "ack_mid", "ack_src")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(EO_STEPS), max_size=120))
def test_with_checkpoints_any_interleaving_writes_every_frame_exactly_once(steps):
    chain = CheckpointedChain.played(steps)
    assert sorted(chain.written) == list(range(1, chain.sent + 1))


# -- InOrder: a restarted consumer processes each stream in sequence order --------------------------
def _in_order_after(last: int | None) -> InOrder:
    receipts = Receipts()
    if last is not None:
        receipts.restore_seen({("edge", b"T"): [(1, last)]})  # what the checkpoint says it processed
    return InOrder(receipts)


def test_a_frame_that_overtook_the_resend_waits_for_it():
    in_order = _in_order_after(3)
    assert in_order.arrive("edge", b"T", 6, "f6") == []
    assert in_order.holds("edge") and not in_order.holds("other")
    assert in_order.arrive("edge", b"T", 4, "f4") == ["f4"]
    assert in_order.arrive("edge", b"T", 6, "f6 again") == []     # waiting already: a duplicate
    assert in_order.arrive("edge", b"T", 5, "f5") == ["f5", "f6"]
    assert not in_order.holds("edge")
    assert in_order.arrive("edge", b"T", 5, "f5 again") == []
    assert in_order.duplicates == 2


def test_a_newer_producer_incarnation_releases_what_waited_for_the_older():
    in_order = _in_order_after(3)
    assert in_order.arrive("edge", b"T", 5, "f5") == []
    assert in_order.arrive("edge", b"T", epoch(1) + 1, "g1") == ["f5", "g1"]
    assert in_order.arrive("edge", b"T", epoch(1) + 2, "g2") == ["g2"]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), last=st.one_of(st.none(), st.integers(0, 5)), resent=st.integers(0, 8),
       new=st.integers(0, 8), later=st.integers(0, 6))
def test_whatever_overtakes_what_each_frame_is_processed_once_in_order(data, last, resent, new, later):
    """A consumer that had processed frames 1..last (None: a first start): its producer resends
    the next `resent` frames while `new` ones overtake them (any order, any repeats); then the
    producer restarts and sends `later` frames of its next incarnation, also in any order and
    repeated (the consumer restarted again meanwhile)."""
    first = 1 if last is None else last + 1
    old = list(range(first, first + resent + new))
    younger = [epoch(1) + n for n in range(1, later + 1)]
    arrivals = []
    for frames in (old, younger):
        shuffled = data.draw(st.permutations(frames))
        repeats = data.draw(st.lists(st.sampled_from(frames), max_size=4)) if frames else []
        arrivals += data.draw(st.permutations(shuffled + repeats))
    in_order = _in_order_after(last)
    processed = [seq for seq in arrivals for seq in in_order.arrive("edge", b"T", seq, seq)]
    assert processed == old + younger
    assert not in_order.holds("edge")
    assert in_order.duplicates == len(arrivals) - len(processed)
