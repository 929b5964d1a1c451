"""Records in JetStream messages are read once per producer position, however a restarted
writer cut them again and in whatever order the stream stored the copies."""
from hypothesis import given, strategies as st

from cep.jetstream.frames import Positions, message_body, read_message
from cep.rows import as_records


@st.composite
def writes(draw):
    """Messages `(producer, position, records)` of two producers, each producer's records cut
    into messages, some written again cut otherwise, the stream's order shuffled."""
    messages = []
    for producer, size in (("a", draw(st.integers(1, 60))), ("b", draw(st.integers(0, 30)))):
        records = [{"p": producer, "i": i} for i in range(size)]
        for _ in range(draw(st.integers(1, 3))):  # the first write, then resends
            at = 0
            while at < size:
                step = draw(st.integers(1, 12))
                messages.append((producer, at, records[at:at + step]))
                at += step
    return draw(st.permutations(messages))


@given(writes())
def test_every_position_is_read_once(messages):
    positions = Positions()
    read = []
    repeated = 0
    for producer, position, records in messages:
        body = message_body(producer, position, records)
        who, at, count, batch, refused = read_message(body)
        assert (who, at, count, refused) == (producer, position, len(records), [])
        fresh, again = positions.fresh(who, at, count, batch)
        read += as_records(fresh)
        repeated += again
    written = {(r["p"], r["i"]) for _, _, records in messages for r in records}
    assert sorted((r["p"], r["i"]) for r in read) == sorted(written)
    assert repeated == sum(len(records) for _, _, records in messages) - len(written)
