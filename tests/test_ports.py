"""tests.ports: tcp port ranges for pipelines under test that concurrent runs cannot take from
them (a run that loses a port to another process runs again on new ones)."""
import socket

import pytest

import cep
from cep.errors import RuntimeFailure
from tests import ports
from tests.test_security_tcp import write


def test_a_range_is_below_the_kernels_own_ports_and_skips_one_in_use(monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # the kernel's port: inside its ephemeral range
    port = taken.getsockname()[1]
    assert port >= ports.ephemeral_low()
    bases = iter([ports.LOWEST, ports.LOWEST + 100])
    held = socket.socket()
    held.bind(("127.0.0.1", ports.LOWEST + 3))  # another process's port within the first draw
    monkeypatch.setattr(ports.random, "randrange", lambda low, high: next(bases))
    try:
        assert ports.free_port_range(8) == ports.LOWEST + 100
    finally:
        held.close()
        taken.close()
    monkeypatch.undo()
    assert ports.LOWEST <= ports.free_port_range(8) < ports.ephemeral_low() - 8


@pytest.mark.integration
def test_a_run_whose_port_another_process_took_runs_again_on_new_ports(workdir):
    """The collision the probe cannot prevent: a port taken after it and before the run."""
    bases, thief = [], socket.socket()

    def attempt(base_port):
        bases.append(base_port)
        if len(bases) == 1:
            thief.bind(("127.0.0.1", base_port))
            thief.listen()
        return cep.run(cep.compile(write(workdir, "ports", count=50, base_port=base_port)))

    try:
        status = ports.on_free_ports(attempt, count=8)
    finally:
        thief.close()
    assert len(bases) == 2 and bases[0] != bases[1]
    assert status.nodes()["ticks"].emitted == 50


def test_other_failures_are_raised_at_once():
    calls = []

    def attempt(base_port):
        calls.append(base_port)
        raise RuntimeFailure("worker strategy failed: division by zero")

    with pytest.raises(RuntimeFailure, match="division by zero"):
        ports.on_free_ports(attempt, count=8)
    assert len(calls) == 1


def test_ipc_directory_in_use_is_not_a_port_collision():
    calls = []

    def attempt(base_port):
        calls.append(base_port)
        raise RuntimeFailure("ipc path /tmp/x is already in use: pipeline 'p' is running there")

    with pytest.raises(RuntimeFailure):
        ports.on_free_ports(attempt, count=8)
    assert len(calls) == 1
