"""The transport: how frames cross between the processes of a pipeline.

One small protocol (`protocol.py`: an `Outlet` sends batches and end-of-stream, an `Inlet`
yields frames and, on reliable edges, acknowledges them) and its implementations:

- `zeromq.py`: plain ZeroMQ, PUB/SUB for market data and PUSH/PULL for the rest (at_most_once);
- `reliable.py`: the same sockets with acknowledgements, retention until acknowledged,
  retransmission to a restarted consumer and checkpointed output (at_least_once, exactly_once);
  its bookkeeping, which checkpoints and offsets share, is `cep.runtime.delivery`;
- `sockets.py`: binding, connecting, sending per backpressure and draining, for ZeroMQ sockets;
- `requests.py`: request/reply between an order executor (DEALER, with timeout and retries) and
  its venue (ROUTER, an `Inlet` of the venue worker); imported only by workers that have one.
- `jetstream.py`: NATS JetStream edges (`transport: {kind: nats}`): every delivery mode over a
  JetStream stream, its consuming end the inlets above, fed through inproc sockets.

The factories below choose the implementation for an edge from the plan; the worker asks for
nothing else. A new kind of edge (request/reply, another broker) is a module that implements the
protocol and a branch here.
"""
from __future__ import annotations

from typing import Callable

import zmq

from cep.plan import EdgePlan, Plan
from cep.runtime.delivery import Receipts
from cep.runtime.transport import jetstream
from cep.runtime.transport.protocol import Acknowledging, EdgeCounters, Inlet, Outlet
from cep.runtime.transport.reliable import (
    DedupingInlet,
    ReliableInlet,
    ReliablePubOutlet,
    ReliablePushOutlet,
    RetainingOutlet,
    checkpointed,
    reliable,
    send_acks,
)
from cep.runtime.transport.sockets import bind, connect, drain
from cep.runtime.transport.zeromq import PubOutlet, PushOutlet, ZmqInlet, topic_owner

__all__ = ["Acknowledging", "EdgeCounters", "Inlet", "Outlet", "RetainingOutlet", "bind", "checkpointed",
           "connect", "drain", "inlet", "pub_outlet", "push_outlet", "reliable", "send_acks", "topic_owner"]


def pub_outlet(context: zmq.Context, plan: Plan, worker: str, incarnation: int, node: str,
               edges: list[EdgePlan], stopping: Callable[[], bool]) -> Outlet:
    """The outlet of `worker` for `node`'s pub/sub edges (one socket serves them all)."""
    if edges[0].subject is not None:
        return jetstream.outlet(plan, worker, incarnation, node, edges, stopping)
    if not any(reliable(edge) for edge in edges):
        return PubOutlet(context, plan, worker, node, edges, plan.frame_size, stopping)
    return ReliablePubOutlet(context, plan, worker, node, edges, plan.frame_size, stopping,
                             _producer_index(plan, edges[0], worker), incarnation)


def push_outlet(context: zmq.Context, plan: Plan, worker: str, incarnation: int, edge: EdgePlan,
                stopping: Callable[[], bool]) -> Outlet:
    """The outlet of `worker` for one push/pull edge."""
    if edge.subject is not None:
        return jetstream.outlet(plan, worker, incarnation, edge.node, [edge], stopping)
    if not reliable(edge):
        return PushOutlet(context, plan, worker, edge, plan.frame_size, stopping)
    return ReliablePushOutlet(context, plan, worker, edge, plan.frame_size, stopping,
                              _producer_index(plan, edge, worker), incarnation)


def inlet(context: zmq.Context, plan: Plan, edge: EdgePlan, worker: str, index: int, incarnation: int,
          dead_letter: Callable[[str, bytes], None], receipts: Receipts) -> Inlet:
    """The inlet of `worker` (the `index`th of its process) for `edge`; a reliable one notes what
    it reads in `receipts`. A NATS edge's inlet is the same, fed by a bridge (`jetstream.py`)."""
    if edge.subject is not None:
        bridge = jetstream.InletBridge(context, plan, edge, worker, index)
        return jetstream.BridgedInlet(_zmq_inlet(context, plan, edge, worker, index, incarnation, dead_letter,
                                                 receipts), bridge)
    return _zmq_inlet(context, plan, edge, worker, index, incarnation, dead_letter, receipts)


def _zmq_inlet(context: zmq.Context, plan: Plan, edge: EdgePlan, worker: str, index: int, incarnation: int,
               dead_letter: Callable[[str, bytes], None], receipts: Receipts) -> Inlet:
    if not reliable(edge):
        return ZmqInlet(context, plan, edge, worker, index, dead_letter)
    kind = DedupingInlet if checkpointed([edge]) else ReliableInlet
    return kind(context, plan, edge, worker, index, dead_letter, receipts, incarnation)


def _producer_index(plan: Plan, edge: EdgePlan, worker: str) -> int:
    return plan.process(edge.producer).workers.index(worker)
