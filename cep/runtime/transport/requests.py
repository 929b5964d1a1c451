"""Request/reply between an order executor and its venue: DEALER on the executor's side, ROUTER
on the venue's, over the pipeline's transport (ipc in the run directory, or tcp with CURVE).

Why not REQ/REP: a REQ socket whose peer dies waits forever for the reply and refuses to send
again; a DEALER sends whenever it likes. So `DealerChannel.call` sends a request, waits up to
`timeout` for its reply, sends it again (the same bytes: the same request id and client order
id, so the venue never takes an order twice) up to `retries` times, then raises
`VenueUnavailable`, which the executor counts against its circuit breaker. A late reply to an
earlier attempt (or to an earlier request) is recognised by its id and skipped.

`RouterInlet` is the venue's end, an `Inlet` (`protocol.py`) of the venue worker: each request it reads goes to
the venue node (`VenueService.handle`), whose answer goes back to the DEALER that asked, perhaps
later (when the quotes the request waits for come). A `bye` from the executor (sent when its
stream ends) completes the edge, so the venue worker ends once its executor has.
"""
from __future__ import annotations

import time
from typing import Any

import zmq

from cep.orders import messages
from cep.orders.link import VenueUnavailable
from cep.orders.service import VenueService
from cep.plan import EdgePlan, NodePlan, Plan
from cep.runtime.transport.protocol import EdgeCounters
from cep.runtime.transport.sockets import Connecting, bind

BYE = "bye"


def dealer_channel(context: zmq.Context, plan: Plan, node: NodePlan, worker: str) -> "DealerChannel":
    """The channel of executor `node` in `worker` to its venue, with the executor's timeout and
    retries (`orders: {ID: {request: ...}}`)."""
    from cep.orders.settings import RequestSettings

    (edge,) = [e for e in plan.edges if e.pattern == "dealer/router" and e.node == node.id]
    settings = RequestSettings.model_validate(node.params.get("request", {}))
    return DealerChannel(context, edge.endpoints[0], settings.timeout, settings.retries, identity=worker)


def router_inlet(context: zmq.Context, plan: Plan, edge: EdgePlan, venues: dict[str, VenueService]) -> "RouterInlet":
    """The venue worker's end of `edge`: the venue node the executor's params name."""
    venue = plan.nodes[edge.node].params["venue"]
    return RouterInlet(context, edge, venues[venue], plan.process(edge.producer).workers)


class DealerChannel:
    """The executor's end: one DEALER connected to the venue's ROUTER."""

    def __init__(self, context: zmq.Context, endpoint: str, timeout_ns: int, retries: int, identity: str) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, identity.encode())
        self.socket.setsockopt(zmq.LINGER, 1000)
        self._connecting = Connecting()
        self._connecting.connect(endpoint, self.socket, endpoint)
        self.timeout_ms = max(1, timeout_ns // 1_000_000)
        self.retries = retries
        self.calls = 0       # requests sent, retries included
        self.stale = 0       # replies to requests already answered or given up
        self.resent = 0      # requests sent again after their timeout (the executor's `venue retry`)
        self.timeouts = 0    # requests given up after every retry (the executor's `venue timeout`)

    @property
    def ready(self) -> bool:
        """Connected to the venue (`Connecting`): its worker says it is ready only then."""
        return not self._connecting.pending()

    def waiting_for(self) -> list[str]:
        return [f"the venue at {endpoint}" for endpoint in self._connecting.pending()]

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        data = messages.encode(request)
        for attempt in range(self.retries + 1):
            self.calls += 1
            self.resent += attempt > 0
            self.socket.send(data)
            deadline = time.monotonic() + self.timeout_ms / 1000
            while (left := deadline - time.monotonic()) > 0:
                if not self.socket.poll(max(1, int(left * 1000)), zmq.POLLIN):
                    break
                answer = self._read()
                if answer is not None and answer.get("id") == request["id"]:
                    return answer
                self.stale += 1
        self.timeouts += 1
        raise VenueUnavailable(f"no reply to {request['op']} {request['id']} after {self.retries + 1} attempts "
                               f"of {self.timeout_ms} ms")

    def _read(self) -> dict[str, Any] | None:
        try:
            return messages.decode(self.socket.recv())
        except messages.BadReply as exc:  # the caller gets the id check wrong and counts it
            return {"id": None, "error": str(exc)}

    def close(self) -> None:
        """Tell the venue this executor is done (its edge completes), then close."""
        self._connecting.close()
        if not self.socket.closed:
            try:
                self.socket.send(messages.encode({"op": BYE}), zmq.NOBLOCK)
            except zmq.Again:
                pass
            self.socket.close()


class RouterInlet:
    """The venue's end of the request edge (the worker's `Inlet` protocol): requests in, replies
    out on the same socket; `receive` yields no batch, only the executor's end of stream."""

    def __init__(self, context: zmq.Context, edge: EdgePlan, service: VenueService, producers: tuple[str, ...]) -> None:
        self.edge = edge
        self.service = service
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 1000)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a reply to an executor gone is dropped
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)   # a restarted executor takes its name back
        bind(self.socket, edge.endpoints[0])
        self.counters = EdgeCounters()
        self._producers = set(producers)
        self._ended: set[str] = set()

    @property
    def complete(self) -> bool:
        return self._ended >= self._producers

    @property
    def pollable(self) -> zmq.Socket:
        return self.socket

    def waiting(self) -> bool:
        return bool(self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN)

    def receive(self, wait_ms: int = 0) -> tuple[None, str | None]:
        if wait_ms and not self.socket.poll(wait_ms, zmq.POLLIN):
            raise BlockingIOError
        try:
            identity, data = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            raise BlockingIOError from None
        except ValueError:  # not [identity, body]: nothing a DEALER of ours sends
            self.counters.refused += 1
            return None, None
        producer = identity.decode(errors="replace")
        try:
            request = messages.decode(data)
        except messages.BadReply as exc:
            self.counters.refused += 1
            self._reply(identity, {"id": None, "error": str(exc)})
            return None, None
        if request.get("op") == BYE:
            if producer in self._producers and producer not in self._ended:
                self._ended.add(producer)
                return None, producer
            return None, None
        self.counters.frames += 1
        self.counters.events += 1
        self.service.handle(request, lambda answer: self._reply(identity, answer))
        return None, None

    def _reply(self, identity: bytes, answer: dict[str, Any]) -> None:
        try:
            self.socket.send_multipart([identity, messages.encode(answer)], zmq.NOBLOCK)
        except zmq.Again:  # the executor is not reading: it will ask again
            self.counters.dropped += 1

    def close(self) -> None:
        self.socket.close()
