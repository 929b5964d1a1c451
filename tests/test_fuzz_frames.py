"""Hostile frames and records thrown at every edge and source: nothing but a dead letter comes of
them. No exception escapes a decoder or a source, every good record is delivered in order, and
each bad one is dead-lettered with a reason.

Unit-level properties (hypothesis) give breadth: the frame decoders on arbitrary bytes, cut-off
frames, wrong msgpack shapes and frames with a few poisoned records; the csv, jsonl and zmq
sources on good rows mixed with hostile ones. Real processes check the same end to end: a `zmq`
source fed good and hostile messages (a 100 MB one among them) in a running pipeline, and a plugin
source whose records the receiving worker must sort out one by one.
"""
import gzip
import json
import math
import threading
import time

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings, strategies as st

import cep
from cep import codec
from cep.components.base import BuildContext
from cep.components.sources.csv_file import CsvParams, csv_source
from cep.components.sources.jsonl_file import JsonlParams, jsonl_source
from cep.components.sources.zmq_subscriber import ZmqSourceParams, zmq_source
from cep.errors import CodecError
from cep.rows import as_records

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the frame decoders --------------------------------------------------------------------------
def decode_anyhow(frame: bytes):
    """What a receiver does with a frame: split, decode strictly, else salvage. Only CodecError
    may come out; the result is `(batch, refused)`."""
    _, body = codec.split_frame(frame)
    try:
        return codec.decode_body(body)[3], []
    except CodecError:
        *_, batch, refused = codec.salvage_body(body)
        return batch, refused


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_codec_error_or_decode(data):
    for frame in (data, b"TICK.X\0" + data):
        try:
            codec.decode_header(codec.split_frame(frame)[1])
        except CodecError:
            pass
        try:
            decode_anyhow(frame)
        except CodecError:
            pass


PLAIN = st.recursive(st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1)
                     | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)
RECORDS = st.lists(st.fixed_dictionaries({"timestamp": st.integers(0, 1 << 62), "v": PLAIN}),
                   min_size=1, max_size=20)


@FUZZ
@given(RECORDS, st.data())
def test_a_cut_off_or_corrupted_frame_is_a_codec_error_never_a_crash(records, data):
    frame = codec.encode_frame(b"TICK.X", codec.DATA, "p", 1, records)
    cut = data.draw(st.integers(0, len(frame) - 1))
    flip = data.draw(st.integers(0, len(frame) - 1))
    for broken in (frame[:cut], frame[:flip] + bytes([frame[flip] ^ 0xFF]) + frame[flip + 1:]):
        try:
            decode_anyhow(broken)
        except CodecError:
            pass


WRONG_SHAPES = st.one_of(
    st.builds(lambda v: [codec.VERSION, codec.DATA, "p", 1, 1, v], PLAIN),
    st.builds(lambda head: head + [[]], st.lists(PLAIN, max_size=5)),
    st.builds(lambda f, r: [codec.VERSION, codec.DATA, "p", 1, len(r), [[f, r]]], PLAIN,
              st.lists(PLAIN, max_size=4)),
    PLAIN)


@FUZZ
@given(WRONG_SHAPES)
def test_wrong_msgpack_shapes_are_codec_errors(message):
    try:
        batch, refused = decode_anyhow(b"TICK.X\0" + msgpack.packb(message))
    except CodecError:
        return
    assert len(as_records(batch)) + len(refused) == message[4]  # only frames that add up decode


POISON = st.sampled_from([msgpack.ExtType(5, b"ab"), msgpack.Timestamp(1, 2), {1: "int key"}])


@FUZZ
@given(RECORDS, st.lists(st.tuples(st.integers(0, 20), POISON), min_size=1, max_size=5))
def test_a_frame_with_poisoned_records_keeps_every_good_one_in_order(records, poison):
    """What a plugin source or a hostile peer could send: the receiver loses only the poisoned
    records, each with its reason."""
    rows = [[r["timestamp"], r["v"]] for r in records]
    for at, value in sorted(poison, key=lambda p: p[0], reverse=True):
        rows.insert(min(at, len(rows)), [-1, value])
    message = [codec.VERSION, codec.DATA, "p", 1, len(rows), [[["timestamp", "v"], rows]]]
    batch, refused = decode_anyhow(b"TICK.X\0" + msgpack.packb(message, strict_types=False))
    assert as_records(batch) == records
    assert len(refused) == len(poison)
    assert all(reason.startswith("record refused in a frame from 'p': ") for reason, _ in refused)


# -- the sources -----------------------------------------------------------------------------
HEADER = "timestamp,instrument,bid_price,ask_price,bid_volume,ask_volume"
BAD_CSV_ROWS = ["{t},A,nan,1.6,1,2", "{t},A,1.5,inf,1,2", "{t},A,-1,1.6,1,2", "{t},A,0,1.6,1,2",
                "18446744073709551616,A,1.5,1.6,1,2", "-5,A,1.5,1.6,1,2", "{t},,1.5,1.6,1,2",
                "{t},A\0B,1.5,1.6,1,2", '{t},"A,1.5,1.6,1,2', "{t},A,1.5", "{t},A,x,1.6,1,2",
                "{t},A,1.5,1.6,-inf,2", "{t},A," + "9" * 400 + ",1.6,1,2", "{t},A,1e999,1.6,1,2"]
BAD_CSV_BYTES = [b"{t},A\xff\xfe,1.5,1.6,1,2", b"{t},\xc3(,1.5,1.6,1,2"]


def replay(source_factory, params):
    letters = []
    ctx = BuildContext(node="n", batch_size=7,
                       dead_letter_fn=lambda node, reason, raw: letters.append(reason))
    src = source_factory(params, ctx)
    try:
        records = [r for batch in src.batches() for r in as_records(batch)]
    finally:
        src.close()
    return records, letters, ctx.counters


@FUZZ
@given(st.lists(st.one_of(st.none(), st.sampled_from(BAD_CSV_ROWS + BAD_CSV_BYTES)), min_size=1, max_size=40),
       st.booleans())
def test_the_csv_source_delivers_every_good_row_and_dead_letters_each_bad_one(tmp_path_factory, lines, gz):
    """None is a good row; timestamps rise, so nothing is late."""
    directory = tmp_path_factory.mktemp("csv")
    text, good = [HEADER.encode()], []
    for i, line in enumerate(lines):
        t = 1_000 + i
        if line is None:
            text.append(f"{t},A,1.5,1.6,1,2".encode())
            good.append(t)
        else:
            text.append(line.format(t=t) if isinstance(line, str) else line.replace(b"{t}", str(t).encode()))
    data = b"\n".join(t if isinstance(t, bytes) else t.encode() for t in text) + b"\n"
    name = "t.csv.gz" if gz else "t.csv"
    (directory / name).write_bytes(gzip.compress(data) if gz else data)
    params = CsvParams.model_validate({"path": name}, context={"base_dir": directory})
    records, letters, counters = replay(csv_source, params)
    assert [r["timestamp"] for r in records] == good
    assert len(letters) == counters.dead_lettered == len(lines) - len(good)
    assert sorted(int(letter.split(" line ")[1].split(":")[0]) for letter in letters) == \
        [i + 2 for i, line in enumerate(lines) if line is not None]  # (unreadable rows come first)


BAD_JSONL = ['{"timestamp": {t}, "x": 12345678901234567890123456}', '{"timestamp": {t}, "x": NaN}',
             '{"timestamp": {t}, "x": 1e400}', '{"timestamp": {t}, "x": ' + "[" * 3000 + "]" * 3000 + "}",
             '{"timestamp": {t}, "x": ' + "[" * 40 + "]" * 40 + "}", '{"timestamp": {t}, "x": "' + "y" * 300 + '"}',
             '{"timestamp": -{t}}', '{"timestamp": "soon"}', '[1, 2]', '{"timestamp": {t}', "garbage",
             '{"timestamp": {t}, "instrument": ""}', '{"timestamp": {t}, "bid_price": -1}',
             '{"timestamp": 1e300}', '{"x": 1}', '{"timestamp": {t}, "s": "\\ud800"}']


@FUZZ
@given(st.lists(st.one_of(st.none(), st.sampled_from(BAD_JSONL)), min_size=1, max_size=30))
def test_the_jsonl_source_delivers_every_good_line_and_dead_letters_each_bad_one(tmp_path_factory, lines):
    directory = tmp_path_factory.mktemp("jsonl")
    text, good = [], []
    for i, line in enumerate(lines):
        t = 1_000 + i
        text.append(json.dumps({"timestamp": t, "x": [i]}) if line is None else line.replace("{t}", str(t)))
        if line is None:
            good.append(t)
    (directory / "t.jsonl").write_text("\n".join(text) + "\n")
    params = JsonlParams.model_validate({"path": "t.jsonl", "max_string_length": 100},
                                        context={"base_dir": directory})
    records, letters, counters = replay(jsonl_source, params)
    assert [r["timestamp"] for r in records] == good
    assert len(letters) == counters.dead_lettered == len(lines) - len(good)
    for record in records:
        assert codec.decode_body(codec.split_frame(codec.encode_frame(b"T", codec.DATA, "p", 1, [record]))[1])


BAD_PAYLOADS = [msgpack.packb({"x": msgpack.ExtType(1, b"z")}), msgpack.packb({"x": msgpack.Timestamp(5)}),
                msgpack.packb({"x": math.nan}), msgpack.packb({"bid_price": 0}), msgpack.packb([1]),
                msgpack.packb({"x": "y" * 300}), b"\xc1", b"\x91" * 5000 + b"\xc0", msgpack.packb({1: 2}),
                msgpack.packb({"x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(BAD_PAYLOADS)), min_size=1, max_size=30))
def test_the_zmq_source_delivers_every_good_message_and_dead_letters_each_bad_one(tmp_path_factory, payloads):
    endpoint = f"ipc://{tmp_path_factory.mktemp('zmq')}/f.sock"
    publisher = zmq.Context.instance().socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.setsockopt(zmq.RCVTIMEO, 5000)
    publisher.bind(endpoint)
    good = [{"n": i} for i, payload in enumerate(payloads) if payload is None]
    letters = []
    ctx = BuildContext(node="n", batch_size=4, dead_letter_fn=lambda node, reason, raw: letters.append(reason))
    src = zmq_source(ZmqSourceParams(endpoint=endpoint, count=len(good) + 1, idle_timeout="5s",
                                     max_string_length=100), ctx)
    try:
        assert publisher.recv() == b"\x01"
        for i, payload in enumerate(payloads):
            publisher.send_multipart([b"t", msgpack.packb({"n": i}) if payload is None else payload])
        publisher.send_multipart([b"t", msgpack.packb({"last": True})])  # bounds the wait
        records = [r for batch in src.batches() for r in batch]
    finally:
        src.close()
        publisher.close(0)
    assert records == good + [{"last": True}]
    assert len(letters) == ctx.counters.dead_lettered == len(payloads) - len(good)


# -- real processes ------------------------------------------------------------------------------
HOSTILE_MESSAGES = [[b"t", msgpack.packb({"x": msgpack.ExtType(5, b"ab")})],
                    [b"t", msgpack.packb({"at": msgpack.Timestamp(1, 2)})],
                    [b"t", msgpack.packb({"price": math.nan})],
                    [b"t", msgpack.packb({"note": "x" * 70_000})],
                    [b"t", b"\x91" * 100_000 + b"\xc0"],
                    [b"t", b"\xc1 not msgpack"],
                    [b"only one frame"],
                    [b"t", b"three", b"frames"]]


@pytest.mark.integration
def test_a_zmq_source_in_a_running_pipeline_survives_hostile_frames_and_a_100_mb_one(workdir):
    publisher = zmq.Context.instance().socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.setsockopt(zmq.XPUB_VERBOSE, 1)
    endpoint = f"ipc://{workdir}/feed.sock"
    publisher.bind(endpoint)
    (workdir / "p.yaml").write_text(f"""
version: 1
name: fuzz
sources:
  feed: {{type: zmq, endpoint: "{endpoint}", count: 40, idle_timeout: 20s, max_message_bytes: 1000000}}
sinks:
  out: {{type: jsonl, from: [feed], path: out/records.jsonl}}
""")
    seen: dict = {}

    def publish():
        def subscribed(deadline=time.monotonic() + 20):
            while time.monotonic() < deadline:
                if publisher.poll(50) and publisher.recv() == b"\x01":
                    return True
            return False

        assert subscribed()
        for i in range(20):
            publisher.send_multipart([b"t", msgpack.packb({"n": i})])
        for message in HOSTILE_MESSAGES:
            publisher.send_multipart(message)
        publisher.send_multipart([b"t", b"\x80" * 100_000_000])  # an empty map, 100 MB long
        seen["resubscribed"] = subscribed()  # the source connected again after the drop
        pid = seen.get("gateway")
        if pid:
            with open(f"/proc/{pid}/status") as status:
                seen["peak_kb"] = int(next(l for l in status if l.startswith("VmHWM")).split()[1])
        for i in range(20, 40):
            publisher.send_multipart([b"t", msgpack.packb({"n": i})])

    def on_status(status):
        seen.setdefault("gateway", status.pids.get("gateway-feed"))

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        status = cep.run(cep.compile(workdir / "p.yaml"), on_status=on_status)
    finally:
        thread.join(30)
        publisher.close(0)
    records = [json.loads(line) for line in open(workdir / "out" / "records.jsonl")]
    assert records == [{"n": i} for i in range(40)]
    assert status.nodes()["feed"].dead_lettered == len(HOSTILE_MESSAGES) and status.restarts == {}
    assert seen["resubscribed"]
    assert seen["peak_kb"] < 100_000, "the 100 MB frame was read into the gateway's memory"


PLUGIN = '''
import msgpack
from pydantic import BaseModel
from cep.plugins import source


class Params(BaseModel):
    pass


class Poisoned:
    def batches(self):
        batch = [{"timestamp": i, "v": i} for i in range(40)]
        batch.insert(13, {"timestamp": 99, "v": msgpack.ExtType(5, b"ab")})
        batch.insert(29, {"timestamp": 99, "v": msgpack.Timestamp(1, 2)})
        yield batch

    def close(self):
        pass


@source("poisoned", params=Params, replayable=True)
def poisoned(params, ctx):
    """40 records with an ext type and a msgpack Timestamp among them: plugin sources are trusted."""
    return Poisoned()
'''


def _run_poisoned_source(workdir, plugin: str):
    """Run the 40-record `poisoned` source `plugin` into a jsonl sink: (status, dead letters),
    once the sink is checked to hold every good record and nothing else."""
    (workdir / "poisoned.py").write_text(plugin)
    (workdir / "p.yaml").write_text(f"""
version: 1
name: poisoned
plugins: [{workdir / "poisoned.py"}]
sources: {{feed: {{type: poisoned}}}}
sinks: {{out: {{type: jsonl, from: [feed], path: out/records.jsonl}}}}
""")
    status = cep.run(cep.compile(workdir / "p.yaml"))
    records = [json.loads(line) for line in open(workdir / "out" / "records.jsonl")]
    assert records == [{"timestamp": i, "v": i} for i in range(40)]
    return status, [json.loads(line) for line in open(workdir / "out" / "deadletter.jsonl")]


@pytest.mark.integration
def test_a_frame_with_two_poisoned_records_costs_those_two_not_the_frame(workdir):
    status, letters = _run_poisoned_source(workdir, PLUGIN)
    assert [letter["node"] for letter in letters] == ["out", "out"]
    assert "ExtType value is not plain data" in letters[0]["reason"]
    assert "Timestamp value is not plain data" in letters[1]["reason"]
    assert status.nodes()["out"].dead_lettered == 2


@pytest.mark.integration
def test_a_100_mb_message_pushed_at_a_workers_data_socket_never_enters_its_memory(workdir):
    (workdir / "p.yaml").write_text("""
version: 1
name: flood
sources: {ticks: {type: synthetic, instruments: 2, seed: 3, count: 9000, rate: 3000, speed: realtime}}
rules: {up5: {use: momentum, from: ticks, with: {count: 5, direction: both, quantity: 100}}}
sinks: {signals: {type: jsonl, from: [up5], path: out/signals.jsonl}}
""")
    plan = cep.compile(workdir / "p.yaml")
    endpoint = next(e for e in plan.edges if e.pattern == "push/pull").endpoints[0]
    flood = zmq.Context.instance().socket(zmq.PUSH)
    flood.setsockopt(zmq.LINGER, 0)
    seen: dict = {}

    def inject_once(status):
        pid = status.pids.get("sink-signals")
        if "sent" not in seen and status.nodes()["up5"].received > 300:
            flood.connect(endpoint)
            flood.send(b"up5\0" + b"\x80" * 100_000_000, copy=False)
            seen["sent"] = time.monotonic()
        elif "sent" in seen and "peak_kb" not in seen and time.monotonic() - seen["sent"] > 0.5:
            with open(f"/proc/{pid}/status") as proc:
                seen["peak_kb"] = int(next(l for l in proc if l.startswith("VmHWM")).split()[1])

    status = cep.run(plan, on_status=inject_once)
    flood.close(0)
    assert "sent" in seen and status.restarts == {}
    assert seen["peak_kb"] < 100_000, "the 100 MB message was read into the sink's memory"
    assert status.nodes()["signals"].received == len(open(workdir / "out" / "signals.jsonl").readlines()) > 0


UNENCODABLE = PLUGIN.replace('msgpack.ExtType(5, b"ab")', "2 ** 70").replace("msgpack.Timestamp(1, 2)", '"\\ud800"')


@pytest.mark.integration
def test_records_no_frame_can_carry_cost_themselves_only_at_the_sender(workdir):
    """A plugin source (or operator) whose output msgpack cannot pack: an integer beyond 64 bits,
    a lone surrogate. The sender dead-letters those records and sends the rest."""
    status, letters = _run_poisoned_source(workdir, UNENCODABLE)
    assert [letter["node"] for letter in letters] == ["feed", "feed"]
    assert "out of range" in letters[0]["reason"] and "surrogates not allowed" in letters[1]["reason"]
    assert status.nodes()["feed"].dead_lettered == 2 and status.restarts == {}
