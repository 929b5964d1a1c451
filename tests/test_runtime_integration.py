"""Real processes and real sockets: the end-to-end behaviour DESIGN §4-6 promise."""
import json
import os
import select
import socket
import subprocess
import sys

import msgpack
import pytest
import zmq

import cep
from cep import codec
from cep.errors import TransportError
from tests.support import SHIPPED_TICKS, KillOnce

pytestmark = pytest.mark.integration

MOMENTUM = """
version: 1
name: it-momentum
transport: {transport}
sources:
  ticks: {{type: {source}}}
streams:
  quotes:
    from: ticks
    ops:
      - filter: "ask_price > bid_price"
      - map: {{mid: "(bid_price + ask_price) / 2"}}
rules:
  up5: {{use: momentum, from: quotes, with: {{count: 5, direction: both, quantity: 100}}}}
sinks:
  signals: {{type: jsonl, from: [up5], path: out/signals.jsonl}}
{deploy}
"""


def write_pipeline(workdir, source=None, deploy="", transport="{kind: ipc}"):
    source = source or f"csv, path: {SHIPPED_TICKS}"
    path = workdir / "pipeline.yaml"
    path.write_text(MOMENTUM.format(source=source, deploy=deploy, transport=transport))
    return path


def signals(workdir):
    with open(workdir / "out" / "signals.jsonl") as file:
        return [json.loads(line) for line in file]


def test_real_data_momentum_gives_the_same_signals_inline_and_as_processes(workdir):
    plan = cep.compile(write_pipeline(workdir))
    assert len(plan.workers()) == 3
    assert [e.topic for e in plan.edges if e.pattern == "pub/sub"] == ["TICK.*"]  # no consumer partitions
    status = cep.run(plan, inline=True)
    inline = signals(workdir)
    assert status.nodes()["ticks"].emitted == 131_932
    status = cep.run(plan)
    processes = signals(workdir)
    assert status.nodes()["ticks"].emitted == 131_932
    assert status.nodes()["signals"].received == len(processes)
    assert len(inline) > 100
    assert sorted(processes, key=lambda s: s["signal_id"]) == sorted(inline, key=lambda s: s["signal_id"])


def test_parallel_strategy_partitions_by_instrument_and_changes_nothing(workdir):
    plan = cep.compile(write_pipeline(workdir, deploy="deploy: {up5: {parallelism: 2}}"))
    strategy = next(p for p in plan.processes if p.role == "strategy")
    assert strategy.parallelism == 2 and strategy.partition_key == "instrument"
    assert [e.topic for e in plan.edges if e.pattern == "pub/sub"] == ["TICK.0..1"]
    cep.run(plan, inline=True)
    inline = signals(workdir)
    status = cep.run(plan)
    assert status.restarts == {}
    assert sorted(signals(workdir), key=lambda s: s["signal_id"]) == sorted(inline, key=lambda s: s["signal_id"])


def test_killing_the_strategy_restarts_it_while_source_and_sink_keep_running(workdir):
    source = "synthetic, instruments: 2, seed: 3, count: 6000, rate: 3000, speed: realtime"
    plan = cep.compile(write_pipeline(workdir, source=source))
    kill = KillOnce("strategy", "quotes", after=500)
    status = cep.run(plan, on_status=kill, backoff_s=0.05)
    assert kill.pid, "the strategy never processed 500 ticks"
    assert status.restarts == {"strategy": 1}
    assert status.pids["strategy"] != kill.pid
    assert status.nodes()["ticks"].emitted == 6000          # the source kept going
    assert status.nodes()["signals"].received > 0           # the sink kept receiving after the restart
    assert status.nodes()["ticks"].dropped > 0              # what the dead strategy missed is counted


def test_garbage_frame_is_dead_lettered_and_the_run_goes_on(workdir):
    # 3 s of ticks: the status comes twice a second, and the frames injected at the first one
    # must reach the sink before its end (a 1 s run could end first on a slow start)
    source = "synthetic, instruments: 2, seed: 3, count: 9000, rate: 3000, speed: realtime"
    plan = cep.compile(write_pipeline(workdir, source=source))
    endpoint = next(e for e in plan.edges if e.pattern == "push/pull").endpoints[0]
    context = zmq.Context.instance()
    injector = context.socket(zmq.PUSH)
    injector.setsockopt(zmq.LINGER, 1000)
    sent = {}

    def inject_once(status):
        if not sent and status.nodes()["quotes"].received > 300:
            injector.connect(endpoint)
            injector.send(b"up5\0\xc1not msgpack")
            lying = [codec.VERSION, codec.DATA, "strategy", 1, 5, [[["x"], [[1]]]]]  # says 5 events, carries 1
            injector.send(b"up5\0" + msgpack.packb(lying))
            injector.send(codec.encode_frame(b"up5", codec.DATA, "intruder", 1, [{"x": 1}]))  # not a producer here
            sent["yes"] = True

    status = cep.run(plan, on_status=inject_once)
    injector.close()
    assert sent
    assert status.nodes()["signals"].dead_lettered == 3
    letters = [json.loads(line) for line in open(workdir / "out" / "deadletter.jsonl")]
    assert [letter["node"] for letter in letters] == ["signals"] * 3
    assert "undecodable" in letters[0]["reason"] and "says 5 events" in letters[1]["reason"]
    assert "'intruder', which is not a producer" in letters[2]["reason"]
    assert status.nodes()["ticks"].emitted == 9000


def test_a_tcp_port_in_use_fails_with_the_address(workdir):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        plan = cep.compile(write_pipeline(workdir, transport=f"{{kind: tcp, base_port: {port}}}"))
        with pytest.raises(Exception) as failure:
            cep.run(plan)
        assert f"127.0.0.1:{port}" in str(failure.value)
        assert "already in use" in str(failure.value)
    finally:
        taken.close()


def test_a_second_run_of_the_same_pipeline_is_refused_while_the_first_holds_its_ipc_dir(workdir):
    plan = cep.compile(write_pipeline(workdir))
    from cep.runtime.supervisor import Supervisor
    first = Supervisor(plan)
    run_dir = workdir / "run" / "it-momentum"
    run_dir.mkdir(parents=True)
    lock = first._lock(run_dir)
    try:
        with pytest.raises(TransportError, match="already in use"):
            cep.run(plan)
    finally:
        os.close(lock)


def test_a_worker_that_cannot_start_fails_the_run_with_its_error_chained(workdir):
    (workdir / "out" / "signals.jsonl").mkdir(parents=True)  # the sink cannot open a directory as its file
    plan = cep.compile(write_pipeline(workdir))
    from cep.errors import WorkerCrashed
    with pytest.raises(WorkerCrashed, match="sink-signals") as failure:
        cep.run(plan)
    assert "IsADirectoryError" in str(failure.value.__cause__)


WHERE_SINK = '''
import os
from pydantic import BaseModel
from cep.plugins import sink


class WhereParams(BaseModel):
    path: str


class Where:
    def __init__(self, path):
        self.path = path

    def write(self, batch):
        pass

    def close(self):
        with open(self.path, "w") as handle:
            handle.write(f"{os.environ.get('CEP_TEST_MARK')}\\n{os.getcwd()}\\n")


@sink("where", params=WhereParams)
def where(params, ctx):
    """Write the worker's $CEP_TEST_MARK and working directory at the end."""
    return Where(params.path)
'''


def test_workers_take_the_supervisors_environment_and_directory_of_the_moment(workdir, monkeypatch):
    """Workers fork from a server that keeps the environment and directory of its first use; a
    later run must still give them the supervisor's, as a freshly started process would have."""
    (workdir / "where.py").write_text(WHERE_SINK)
    (workdir / "p.yaml").write_text(f"""
name: where
plugins: [{workdir / "where.py"}]
sources: {{ticks: {{type: synthetic, count: 10}}}}
sinks: {{seen: {{type: where, from: [ticks], path: {workdir / "seen.txt"}}}}}
""")
    for mark, directory in (("first", os.getcwd()), ("second", workdir)):
        monkeypatch.setenv("CEP_TEST_MARK", mark)
        monkeypatch.chdir(directory)
        cep.run(cep.compile(workdir / "p.yaml"))
        assert (workdir / "seen.txt").read_text().splitlines() == [mark, str(directory)]


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_a_script_without_a_main_guard_runs_once_and_its_workers_do_not_run_it(workdir, how):
    """multiprocessing would have every worker run the parent's main script first: an unguarded
    cep.run would start again in each, and a script read from stdin cannot run again at all."""
    (workdir / "p.yaml").write_text(
        "name: unguarded\nsources: {ticks: {type: synthetic, count: 500}}\n"
        "sinks: {out: {type: jsonl, from: [ticks], path: out.jsonl}}\n")
    script = ("import cep\n"
              f"status = cep.run(cep.compile({str(workdir / 'p.yaml')!r}))\n"
              "print('emitted', status.nodes()['ticks'].emitted)\n")
    (workdir / "run.py").write_text(script)
    command = [sys.executable, "run.py"] if how == "script" else [sys.executable, "-"]
    done = subprocess.run(command, input=script if how == "stdin" else None, cwd=workdir,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["emitted 500"]


ORPHANING_SCRIPT = """
import sys
import cep
plan = cep.compile(sys.argv[1])
told = []
def on_status(status):
    if not told and len(status.pids) == len(plan.workers()):
        print(*status.pids.values(), flush=True)
        told.append(True)
cep.run(plan, on_status=on_status)
"""


def test_workers_of_a_killed_supervisor_stop_by_themselves(workdir):
    """A supervisor killed outright cannot stop its workers: each notices and exits."""
    (workdir / "p.yaml").write_text(
        "name: orphans\nsources: {ticks: {type: synthetic, count: 1000000, rate: 1000, speed: realtime}}\n"
        "sinks: {out: {type: 'null', from: [ticks]}}\n")
    supervisor = subprocess.Popen([sys.executable, "-c", ORPHANING_SCRIPT, str(workdir / "p.yaml")],
                                  stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in supervisor.stdout.readline().split()]
        exits = [os.pidfd_open(pid) for pid in pids]
    finally:
        supervisor.kill()
        supervisor.wait()
    assert len(pids) == 2
    try:
        for pidfd in exits:
            readable, _, _ = select.select([pidfd], [], [], 10)
            assert readable, "a worker was still running 10 s after its supervisor was killed"
    finally:
        for pidfd in exits:
            os.close(pidfd)
