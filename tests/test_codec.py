"""Frames on the wire: every record survives the round trip; garbage is a CodecError."""
import msgpack
import pytest
from hypothesis import given, strategies as st

from cep import codec
from cep.errors import CodecError
from cep.rows import Rows, as_records

values = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False),
                   st.text(max_size=20))
records = st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=6)


@given(st.lists(records, max_size=30))
def test_batch_round_trip_keeps_every_record_in_order(batch):
    assert as_records(codec.decode_batch(codec.encode_batch(batch))) == batch


@given(st.lists(st.tuples(st.integers(0, 2**63), values, values), max_size=30))
def test_records_of_one_layout_keep_their_field_order(rows):
    batch = [{"timestamp": t, "y": y, "x": x} for t, y, x in rows]
    assert [list(r) for r in as_records(codec.decode_batch(codec.encode_batch(batch)))] == [list(r) for r in batch]


@given(st.text(max_size=30), st.integers(0, 2**63), st.integers(0, 10_000), st.sampled_from([codec.DATA, codec.END]))
def test_header_round_trip(producer, seq, count, kind):
    assert codec.decode_header(codec.encode_header(kind, producer, seq, count)) == (kind, producer, seq, count)


def test_batch_of_one_layout_is_one_group_of_arrays():
    batch = [{"timestamp": i, "instrument": "X", "bid_price": 1.0} for i in range(3)]
    assert msgpack.unpackb(codec.encode_batch(batch)) == [[["timestamp", "instrument", "bid_price"],
                                                           [[0, "X", 1.0], [1, "X", 1.0], [2, "X", 1.0]]]]


@pytest.mark.parametrize("garbage", [b"", b"\xc1", b"\x92\x01", msgpack.packb({"a": 1}), msgpack.packb([[1, 2]]),
                                     msgpack.packb([[["a"], [[1, 2]]]]), b"\xdd\xff\xff\xff\xff"])
def test_garbage_payload_is_a_codec_error(garbage):
    with pytest.raises(CodecError):
        codec.decode_batch(garbage)


@pytest.mark.parametrize("garbage", [b"", b"\xff", msgpack.packb([9, 0, "p", 1, 1]), msgpack.packb([1, 7, "p", 1, 1]),
                                     msgpack.packb("hello")])
def test_garbage_header_is_a_codec_error(garbage):
    with pytest.raises(CodecError):
        codec.decode_header(garbage)


def test_oversized_frame_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(codec, "MAX_FRAME_BYTES", 100)
    with pytest.raises(CodecError, match="exceeds"):
        codec.decode_batch(codec.encode_batch([{"x": "y" * 200}]))


@pytest.mark.parametrize("fields", [["a", "b"], ["not an identifier", "b"], ["x"] * 1 + [f"f{i}" for i in range(70)]])
def test_rows_of_the_wrong_width_are_a_codec_error_for_every_layout(fields):
    good = msgpack.packb([[fields, [list(range(len(fields)))]]])
    assert list(as_records(codec.decode_batch(good))[0]) == fields
    with pytest.raises(CodecError):
        codec.decode_batch(msgpack.packb([[fields, [list(range(len(fields) + 1))]]]))


def test_field_names_never_become_code():
    nasty = ["a'}); __import__('os').system('true'); ({'", "b"]
    assert as_records(codec.decode_batch(msgpack.packb([[nasty, [[1, 2]]]]))) == [{nasty[0]: 1, "b": 2}]


def test_one_layout_decodes_to_rows_without_a_dict_per_record():
    batch = [{"timestamp": i, "instrument": "X"} for i in range(3)]
    decoded = codec.decode_batch(codec.encode_batch(batch))
    assert type(decoded) is Rows and decoded.fields == ("timestamp", "instrument")
    assert [list(row) for row in decoded.rows] == [[0, "X"], [1, "X"], [2, "X"]]


@given(st.lists(st.tuples(st.integers(0, 2**63), values), max_size=30))
def test_rows_round_trip_as_the_records_they_stand_for(rows):
    batch = Rows(("timestamp", "x"), rows)
    assert as_records(codec.decode_batch(codec.encode_batch(batch))) == batch.records()


@pytest.mark.parametrize("payload", [[[["a", "a"], [[1, 2]]]], [[["a", "b"], ["xy"]]], [[["a"], {"k": 1}]],
                                     [[["a", 1], [[1, 2]]]]])
def test_rows_that_cannot_stand_for_records_are_a_codec_error(payload):
    with pytest.raises(CodecError):
        codec.decode_batch(msgpack.packb(payload))
