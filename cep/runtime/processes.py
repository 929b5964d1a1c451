"""How worker processes start: forked from a server that imported the worker's code once.

With `spawn` every worker is a fresh interpreter importing cep, pydantic, reactivex and pyzmq
again: three workers doing that at once took 0.6 s of a 1.0 s run of `pipelines/momentum.yaml`
on 2 cores, and a restart after a crash waited as long. With `forkserver` one server process
imports `cep.runtime.worker` once and forks each worker from itself. Not plain `fork`: the
supervisor's ZeroMQ threads are running, and a fork would copy them mid-flight.

This module imports nothing heavy, so the command line can start the server first and let it
import while the pipeline compiles (`start_server`).

A worker's parent is therefore the fork server, not the supervisor. The server exits once every
copy of its "alive" pipe from the supervisor is closed; multiprocessing hands each child a copy,
which a worker closes at once, so the server exits as soon as the supervisor dies. Each worker
has the kernel kill it when its parent dies (`die_with_parent`): whatever kills the supervisor,
even SIGKILL, kills every worker, also one busy in a computation that never returns to the
interpreter.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import types
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, Callable

PRELOAD = ["cep.runtime.worker"]
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_processes() -> BaseContext:
    """The multiprocessing context workers start from (`spawn` where there is no forkserver).

    A forked worker inherits the server's environment and working directory, from the server's
    first use; `worker_main` takes the supervisor's current ones, as a spawned worker would."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_server() -> None:
    """Start the fork server now (it imports in the background), not at the first worker."""
    context = worker_processes()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver
        forkserver.ensure_running()


def start(context: BaseContext, target: Callable[..., None], args: tuple[Any, ...], name: str) -> BaseProcess:
    """Start `target(*args)` in a worker process (a daemon) of `context`, without the parent's
    main module.

    multiprocessing has each child run the parent's main script first (as `__mp_main__`, for
    what the script defines). A worker needs nothing from it, a script that calls `cep.run`
    without an `if __name__ == "__main__":` guard would run again in every worker, and one read
    from stdin cannot run again at all. So the main module is out of sight while the child is
    prepared.
    """
    process = context.Process(target=target, args=args, name=name, daemon=True)
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        process.start()
    finally:
        sys.modules["__main__"] = main
    return process


def die_with_parent() -> None:
    """In a worker, first thing: let the fork server end with the supervisor, have the kernel
    SIGKILL this process when its parent dies (Linux's `PR_SET_PDEATHSIG`), and exit now if the
    supervisor died before that was set. Where prctl does not exist, the worker's loop notices a
    dead supervisor by itself (between passes)."""
    from multiprocessing import forkserver
    server = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if alive is not None:
        os.close(alive)  # a worker's copy of the server's pipe from the supervisor
        server._forkserver_alive_fd = None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    supervisor = multiprocessing.parent_process()
    if supervisor is not None and not supervisor.is_alive():
        os._exit(1)


def name_process(title: str) -> None:
    """What `ps` and `top` show for this process (else the fork server's command line). Only a
    name: an environment installed before cep required setproctitle runs its workers unnamed."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)
