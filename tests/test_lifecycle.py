"""The life of a run's processes: crashes during start-up, the supervisor's own death, signals,
exit codes and process names. Real processes, real signals."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import cep
from cep.runtime.supervisor import Supervisor
from tests.test_faults import output_lines, write_pipeline

pytestmark = pytest.mark.integration


def kill_when_spawned(supervisor: Supervisor, worker: str, killed: list) -> threading.Thread:
    """SIGKILL `worker` as soon as it has a pid, before the pipeline started; notes whether the
    pipeline had started by then."""
    def watch() -> None:
        while worker not in supervisor.status.pids:
            time.sleep(0.001)
        killed.append(supervisor.status.started)
        os.kill(supervisor.status.pids[worker], signal.SIGKILL)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("victim", ["strategy", "sink-signals", "gateway-ticks"])
def test_a_worker_killed_during_start_up_is_restarted_like_any_crash(workdir, victim):
    plan = cep.compile(write_pipeline(workdir, "exactly_once", speed="max"))
    cep.run(plan, inline=True)
    reference = output_lines(workdir)
    supervisor = Supervisor(plan, backoff_s=0.05)
    killed: list = []
    kill_when_spawned(supervisor, victim, killed)
    status = supervisor.run()
    assert killed == [None], "the kill did not land before the start"
    assert status.restarts == {victim: 1}
    assert output_lines(workdir) == reference
