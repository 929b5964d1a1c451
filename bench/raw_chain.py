"""The ceiling: a bare pyzmq + msgpack chain of three processes, source -> momentum -> sink.

PUSH/PULL over ipc, `multiprocessing` spawn, the same real ticks and the same momentum check as
cep's rule, nothing else (no headers, sequence numbers, metrics, Rx or plugins). It answers "how
fast can three Python processes on this machine move these ticks at all", so cep's numbers are
read as a ratio to it, measured in the same run.

Throughput: the source sends as fast as it can, one tick per message or `batch` ticks per frame
(msgpack arrays); elapsed is from the source's first send to the sink's end frame.
Latency: the source paces one tick per message at `rate`, stamping each with the wall time it is
due (a random walk there, as cep's synthetic source, so most ticks give a signal to time); the sink takes `time.time_ns() - stamp` of every signal (a signal carries its tick's stamp).
"""
from __future__ import annotations

import multiprocessing
import tempfile
import time
from array import array
from pathlib import Path

import msgpack
import zmq
from ticks import Momentum, load_ticks, random_walk

END = b""
HWM = 10_000


def _push(context: zmq.Context, endpoint: str) -> zmq.Socket:
    socket = context.socket(zmq.PUSH)
    socket.setsockopt(zmq.SNDHWM, HWM)
    socket.setsockopt(zmq.LINGER, -1)  # the end frame must arrive
    socket.connect(endpoint)
    return socket


def _pull(context: zmq.Context, endpoint: str) -> zmq.Socket:
    socket = context.socket(zmq.PULL)
    socket.setsockopt(zmq.RCVHWM, HWM)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    return socket


# -- child processes ------------------------------------------------------------------------------
def _source(endpoint: str, count: int, batch: int, rate: float | None, barrier, results) -> None:
    ticks = load_ticks(count) if rate is None else random_walk(count)
    context = zmq.Context()
    out = _push(context, endpoint)
    pack = msgpack.Packer(autoreset=True).pack
    send = out.send
    barrier.wait()
    started = time.monotonic()
    if rate is not None:  # paced, one tick per message, stamped with its due wall time
        period = 1e9 / rate
        origin = time.time_ns()
        for index, tick in enumerate(ticks):
            due = origin + int(index * period)
            delay = due - time.time_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            send(pack((due, *tick[1:])))
    elif batch == 1:
        for tick in ticks:
            send(pack(tick))
    else:
        for first in range(0, len(ticks), batch):
            send(pack(ticks[first:first + batch]))
    send(END)
    results.put(("source", started))
    out.close()
    context.term()


def _strategy(inbound: str, outbound: str, batch: int, streak: int, barrier) -> None:
    context = zmq.Context()
    source, sink = _pull(context, inbound), _push(context, outbound)
    pack, unpackb, momentum = msgpack.Packer(autoreset=True).pack, msgpack.unpackb, Momentum(streak)
    barrier.wait()
    while True:
        frame = source.recv()
        if frame == END:
            break
        rows = unpackb(frame)
        signals = []
        for ts, instrument, bid, ask, _bv, _av in (rows if batch > 1 else (rows,)):
            if ask > bid:
                action = momentum(instrument, (bid + ask) / 2)
                if action is not None:
                    signals.append((ts, instrument, action, ask if action == "BUY" else bid))
        if signals:
            if batch > 1:
                sink.send(pack(signals))
            else:
                for signal in signals:
                    sink.send(pack(signal))
    sink.send(END)
    source.close()
    sink.close()
    context.term()


def _sink(endpoint: str, batch: int, latency: bool, barrier, results) -> None:
    context = zmq.Context()
    inbound = _pull(context, endpoint)
    unpackb = msgpack.unpackb
    samples = array("q")
    signals = 0
    barrier.wait()
    while True:
        frame = inbound.recv()
        if frame == END:
            break
        rows = unpackb(frame)
        rows = rows if batch > 1 else (rows,)
        signals += len(rows)
        if latency:
            now = time.time_ns()
            samples.extend(now - row[0] for row in rows)
    results.put(("sink", time.monotonic(), signals, samples.tobytes()))
    inbound.close()
    context.term()


# -- parent ---------------------------------------------------------------------------------------
def run_chain(count: int, batch: int = 1, rate: float | None = None, streak: int = 5) -> dict:
    """Run the chain once (`streak`: the momentum count); {'ticks', 'seconds', 'ticks_per_s', 'signals', 'latencies_ns'}."""
    mp = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="cep-raw-") as tmp:
        first, second = f"ipc://{Path(tmp) / 'a'}", f"ipc://{Path(tmp) / 'b'}"
        barrier, results = mp.Barrier(3), mp.Queue()
        children = [mp.Process(target=_sink, args=(second, batch, rate is not None, barrier, results)),
                    mp.Process(target=_strategy, args=(first, second, batch, streak, barrier)),
                    mp.Process(target=_source, args=(first, count, batch, rate, barrier, results))]
        for child in children:
            child.start()
        reports = {}
        for _ in range(2):
            report = results.get(timeout=600)
            reports[report[0]] = report
        for child in children:
            child.join(timeout=30)
    _, end, signals, raw = reports["sink"]
    seconds = end - reports["source"][1]
    latencies = array("q")
    latencies.frombytes(raw)
    return {"ticks": count, "seconds": seconds, "ticks_per_s": count / seconds,
            "signals": signals, "latencies_ns": list(latencies)}
