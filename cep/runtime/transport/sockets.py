"""ZeroMQ socket handling every ZeroMQ implementation of the transport shares: binding and
connecting (with CURVE where the process has keys), sending a frame per a backpressure policy
without spinning, and draining what waits on a socket.
"""
from __future__ import annotations

import errno
import time
from typing import Callable, Hashable, Iterator

import zmq
import zmq.backend
from zmq.utils.monitor import recv_monitor_message

from cep.errors import TransportError
from cep.runtime import security
from cep.runtime.rundir import owner_only_files

SEND_RETRY_MS = 100
SEND_PAUSE_MIN_S = 0.0005
SEND_PAUSE_MAX_S = 0.02
"""A blocked sender whose socket cannot wait for room sleeps between tries, this long at most:
the delay it adds once room comes back."""
RECONNECT_MS = 10
"""How soon a connecting socket retries a peer that is not there (yet, or again after a restart)."""

NOBLOCK = int(zmq.NOBLOCK)
EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
_send_bytes = zmq.backend.Socket.send
"""pyzmq's own send, under the `zmq.Socket` wrapper that adds a Python call with keyword
arguments for options (routing ids, groups) cep never sends: about 0.3 us a frame, warm."""
get_option = zmq.backend.Socket.get
"""pyzmq's own getsockopt: the wrapper turns `EVENTS` into an enum, which showed in profiles of
the strategy and the sink (about 3% of their Python time, asked once per frame)."""


def bind(socket: zmq.Socket, endpoint: str) -> None:
    """Bind, translating 'address in use' into an error that says which address; a tcp socket
    serves CURVE when the process has keys (`security.install`)."""
    security.as_server(socket, endpoint)
    try:
        with owner_only_files():  # an ipc socket file: srw------- whatever the umask
            socket.bind(endpoint)
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise TransportError(f"{endpoint} is already in use by another process "
                                 "(is the pipeline already running? set transport.base_port or "
                                 "transport.dir to run a second copy)") from exc
        raise TransportError(f"cannot bind {endpoint}: {exc}") from exc


def connect(socket: zmq.Socket, endpoint: str) -> None:
    """Connect; a tcp socket is a CURVE client when the process has keys (`security.install`)."""
    security.as_client(socket, endpoint)
    socket.connect(endpoint)


class Connecting:
    """Sockets connecting in the background, each watched until it has connected once.

    Why: a socket that connects before its peer binds retries only after its reconnect interval,
    and what it sends meanwhile waits in its queue; a worker that says it is ready only once its
    sockets are connected starts its run with nothing waiting (measured: a PUSH left to itself
    delivered the first 50 ms of a run's signals late, a DEALER the first order 100 ms late)."""

    def __init__(self) -> None:
        self._monitors: dict[Hashable, tuple[zmq.Socket, zmq.Socket]] = {}

    def connect(self, key: Hashable, socket: zmq.Socket, endpoint: str) -> None:
        """`connect` `socket`, retrying every `RECONNECT_MS`, watched under `key`."""
        socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self._monitors[key] = socket, socket.get_monitor_socket(zmq.EVENT_CONNECTED)
        connect(socket, endpoint)

    def pending(self) -> list[Hashable]:
        """The keys of the sockets not connected yet (never waits)."""
        for key, (socket, monitor) in list(self._monitors.items()):
            try:
                recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                continue
            socket.disable_monitor()
            monitor.close(0)
            del self._monitors[key]
        return list(self._monitors)

    def close(self) -> None:
        for _, monitor in self._monitors.values():
            monitor.close(0)
        self._monitors.clear()


def drain(socket: zmq.Socket) -> Iterator[bytes]:
    """Every message waiting on `socket` now, oldest first; never waits for one to come.

    For sockets whose every message is handled at once when the poller says readable: the
    supervisor's control messages, an XPUB's subscriptions, a reliable producer's acks."""
    while True:
        try:
            yield socket.recv(NOBLOCK)
        except zmq.Again:
            return


def send_frame(socket: zmq.Socket, frame: bytes, blocking: bool, stopping: Callable[[], bool]) -> bool:
    """Send a frame; True if sent. Blocking retries while the peer is full, until `stopping()`;
    otherwise a full peer returns False at once (the caller counts the drop)."""
    try:
        _send_bytes(socket, frame, NOBLOCK)
        return True
    except zmq.Again:
        if not blocking:
            return False
    return _send_when_room(socket, frame, stopping)


def _send_when_room(socket: zmq.Socket, frame: bytes, stopping: Callable[[], bool]) -> bool:
    """Wait for room to send `frame`, without spinning. A PUSH's POLLOUT waits for room; an XPUB
    says POLLOUT at once even while a subscriber is full (XPUB_NODROP), so when the poll did not
    wait, the wait is a sleep, doubled each time up to `SEND_PAUSE_MAX_S` (a stopped consumer
    made a blocked gateway spend a core in this loop)."""
    pause = SEND_PAUSE_MIN_S
    while not stopping():
        before = time.monotonic()
        socket.poll(SEND_RETRY_MS, zmq.POLLOUT)
        try:
            _send_bytes(socket, frame, NOBLOCK)
            return True
        except zmq.Again:
            if time.monotonic() - before < pause:
                time.sleep(pause)
                pause = min(2 * pause, SEND_PAUSE_MAX_S)
    return False
