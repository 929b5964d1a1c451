"""Endpoints named in a pipeline for talking to the outside world over ZeroMQ."""
from __future__ import annotations

import re
import socket as stdsocket
from pathlib import Path
from typing import Annotated

import zmq
from pydantic import AfterValidator

from cep.errors import Problem, TransportError

_ENDPOINT = re.compile(r"^(tcp|ipc|inproc|ws|wss|pgm|epgm)://.+$")
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"


def check_endpoint(endpoint: str) -> str:
    """A params validator: ValueError with the accepted forms when `endpoint` is not one."""
    if not _ENDPOINT.match(endpoint):
        raise ValueError(f"{endpoint!r} is not a ZeroMQ endpoint (write tcp://HOST:PORT "
                         f"or ipc:///path/to/socket)")
    return endpoint


Endpoint = Annotated[str, AfterValidator(check_endpoint)]
"""A params field type for a ZeroMQ endpoint, checked at load time."""


def attach(sock: zmq.Socket, endpoint: str, bind: bool) -> None:
    """Bind or connect `sock`; TransportError naming the endpoint when it fails.

    An ipc path that another process is listening on counts as in use: libzmq would silently
    take the path over, stealing that process's peers.
    """
    try:
        if bind:
            if endpoint.startswith("ipc://") and _ipc_listening(endpoint[len("ipc://"):]):
                raise zmq.ZMQError(zmq.EADDRINUSE)
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        verb = "bind" if bind else "connect"
        hint = ("another process uses it; choose another endpoint or stop that process"
                if exc.errno == zmq.EADDRINUSE else "check the endpoint's host, port or path")
        raise TransportError(Problem(f"cannot {verb} {endpoint}: {exc}", hint=hint)) from exc


def _ipc_listening(path: str) -> bool:
    if not Path(path).exists():
        return False
    probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()
