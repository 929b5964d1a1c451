"""Frames on the wire: every record survives the round trip; garbage is a CodecError."""
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cep import codec
from cep.errors import CodecError
from cep.rows import Rows, as_records
from tests.support import through_the_wire

values = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False),
                   st.text(max_size=20))
records = st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=6)


def body(groups, count=1, header=(codec.VERSION, codec.DATA, "p", 1)):
    """A frame body as a sender could write it, right or wrong."""
    return msgpack.packb([*header, count, groups])


@given(st.lists(records, max_size=30))
def test_batch_round_trip_keeps_every_record_in_order(batch):
    assert as_records(through_the_wire(batch)) == batch


@given(st.lists(st.tuples(st.integers(0, 2**63), values, values), max_size=30))
def test_records_of_one_layout_keep_their_field_order(rows):
    batch = [{"timestamp": t, "y": y, "x": x} for t, y, x in rows]
    assert [list(r) for r in as_records(through_the_wire(batch))] == [list(r) for r in batch]


@given(st.binary(max_size=30).filter(lambda b: b"\0" not in b), st.text(max_size=30), st.integers(0, 2**63),
       st.sampled_from([codec.DATA, codec.END]))
def test_header_through_the_wire(topic, producer, seq, kind):
    frame = codec.encode_frame(topic, kind, producer, seq, None)
    split_topic, split_body = codec.split_frame(frame)
    assert split_topic == topic
    assert codec.decode_body(split_body) == (kind, producer, seq, [])


def test_a_frame_is_the_topic_then_one_msgpack_array_of_header_and_groups():
    batch = [{"timestamp": i, "instrument": "X", "bid_price": 1.0} for i in range(3)]
    frame = codec.encode_frame(b"TICK.X", codec.DATA, "gateway", 7, batch)
    topic, _, rest = frame.partition(b"\0")
    assert topic == b"TICK.X"
    assert msgpack.unpackb(rest) == [codec.VERSION, codec.DATA, "gateway", 7, 3,
                                     [[["timestamp", "instrument", "bid_price"],
                                       [[0, "X", 1.0], [1, "X", 1.0], [2, "X", 1.0]]]]]


def test_a_nul_in_a_topic_cannot_end_it_early():
    assert codec.topic_bytes("TICK.a\0b") == b"TICK.a?b"
    topic, _ = codec.split_frame(codec.encode_frame(codec.topic_bytes("TICK.a\0b"), codec.END, "p", 1, None))
    assert topic == b"TICK.a?b"


def test_a_frame_without_its_nul_is_a_codec_error():
    with pytest.raises(CodecError, match="no NUL"):
        codec.split_frame(b"TICK.X, and no separator after it")


@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"\x92\x01", msgpack.packb({"a": 1}), body([[1, 2]]),
                                     body([[["a"], [[1, 2]]]]), b"\xdd\xff\xff\xff\xff"])
def test_garbage_payload_is_a_codec_error(garbage):
    with pytest.raises(CodecError):
        codec.decode_body(garbage)


@pytest.mark.parametrize("garbage", [b"", b"\xff", msgpack.packb([9, 0, "p", 1, 0, []]), body([], 0, (1, 7, "p", 1)),
                                     body([], 0, (1, 0, 5, 1)), msgpack.packb([1, 0, "p", 1, 0]), msgpack.packb("hello")])
@pytest.mark.parametrize("decode", [codec.decode_body, codec.decode_header])
def test_garbage_header_is_a_codec_error(garbage, decode):
    with pytest.raises(CodecError):
        decode(garbage)


def test_the_header_alone_is_read_without_the_events():
    frame = codec.encode_frame(b"TICK.X", codec.DATA, "gateway", 9, [{"x": 1}, {"x": 2}])
    assert codec.decode_header(codec.split_frame(frame)[1]) == (codec.DATA, "gateway", 9, 2)


def test_a_count_that_disagrees_with_the_events_is_a_codec_error():
    with pytest.raises(CodecError, match="says 5 events, the payload holds 1"):
        codec.decode_body(body([[["x"], [[1]]]], count=5))


def test_oversized_frame_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(codec, "MAX_FRAME_BYTES", 100)
    with pytest.raises(CodecError, match="exceeds"):
        through_the_wire([{"x": "y" * 200}])


@pytest.mark.parametrize("fields", [["a", "b"], ["not an identifier", "b"], ["x"] * 1 + [f"f{i}" for i in range(70)]])
def test_rows_of_the_wrong_width_are_a_codec_error_for_every_layout(fields):
    good = body([[fields, [list(range(len(fields)))]]])
    assert list(as_records(codec.decode_body(good)[3])[0]) == fields
    with pytest.raises(CodecError):
        codec.decode_body(body([[fields, [list(range(len(fields) + 1))]]]))


def test_field_names_never_become_code():
    nasty = ["a'}); __import__('os').system('true'); ({'", "b"]
    assert as_records(codec.decode_body(body([[nasty, [[1, 2]]]]))[3]) == [{nasty[0]: 1, "b": 2}]


def test_one_layout_decodes_to_rows_without_a_dict_per_record():
    batch = [{"timestamp": i, "instrument": "X"} for i in range(3)]
    decoded = through_the_wire(batch)
    assert type(decoded) is Rows and decoded.fields == ("timestamp", "instrument")
    assert [list(row) for row in decoded.rows] == [[0, "X"], [1, "X"], [2, "X"]]


@given(st.lists(st.tuples(st.integers(0, 2**63), values), max_size=30))
def test_rows_round_trip_as_the_records_they_stand_for(rows):
    batch = Rows(("timestamp", "x"), rows)
    assert as_records(through_the_wire(batch)) == batch.records()


@pytest.mark.parametrize("groups", [[[["a", "a"], [[1, 2]]]], [[["a", "b"], ["xy"]]], [[["a"], {"k": 1}]],
                                    [[["a", 1], [[1, 2]]]]])
def test_rows_that_cannot_stand_for_records_are_a_codec_error(groups):
    with pytest.raises(CodecError):
        codec.decode_body(body(groups))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12)


@given(msgpack_values, st.integers(0, 3))
def test_any_groups_either_decode_or_are_a_codec_error(groups, count):
    """Whatever a peer puts where the groups go, the receiver gets a batch or a CodecError (which
    it dead-letters), never another exception that would end the worker."""
    try:
        batch = codec.decode_body(body(groups, count))[3]
    except CodecError:
        return
    assert len(batch) == count


def test_a_record_msgpack_cannot_pack_is_refused_alone_and_the_frame_carries_the_others():
    refused = []
    batch = [{"v": 1}, {"v": 2 ** 70}, {"v": "\ud800"}, {"v": 4}]
    frame = codec.encode_frame(b"T", codec.DATA, "p", 1, batch, lambda reason, record: refused.append(record))
    assert codec.decode_body(codec.split_frame(frame)[1])[3].records() == [{"v": 1}, {"v": 4}]
    assert refused == batch[1:3]
    with pytest.raises(CodecError, match="cannot be encoded"):
        codec.encode_frame(b"T", codec.DATA, "p", 1, batch)
