"""exactly_once, a restored producer's resend to a restored consumer: frames of an incarnation of
the producer older than the last one the consumer's checkpoint knows, which the consumer had
delivered and acknowledged to a producer incarnation that then died before its checkpoint
recorded the ack. Real sockets, one consumer inlet, a hand-driven publisher."""
import os

import pytest
import zmq

import cep
from cep import codec
from cep.runtime import transport
from cep.runtime.transport.reliable import retx_topic
from cep.runtime.delivery import Receipts, epoch
from tests.test_faults import write_pipeline


@pytest.mark.integration
def test_a_restored_consumer_acknowledges_an_older_producer_incarnations_resend_it_had_delivered(workdir):
    plan = cep.compile(write_pipeline(workdir, "exactly_once", parallelism=2))
    os.makedirs(plan.run_dir, exist_ok=True)
    edge = next(e for e in plan.edges if e.pattern == "pub/sub" and transport.checkpointed([e]))
    producer = plan.process(edge.producer).workers[0]
    consumer = plan.process(edge.consumer).workers[1]
    context = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.bind(edge.endpoints[0])
    dead = []
    receipts = Receipts()
    inlet = transport.inlet(context, plan, edge, consumer, 1, 2, lambda reason, data: dead.append(reason), receipts)
    try:
        channel, topic = (edge.id, producer), b"TICK.1"
        # its checkpoint: incarnation 0 of the producer up to 900, then incarnation 2 up to 500
        receipts.restore_seen({(channel, topic): [(epoch(0) + 1, epoch(0) + 900), (epoch(2) + 1, epoch(2) + 500)]})
        publisher.setsockopt(zmq.RCVTIMEO, 5000)
        while not publisher.recv().startswith(b"\x01!HELLO."):  # subscribed: frames now reach it
            pass
        resend = codec.encode_frame(topic, codec.DATA, producer, epoch(0) + 820, None)
        publisher.send(retx_topic(consumer) + resend)
        batch, ended = inlet.receive(5000)
        receipts.end_pass()
        assert (batch, ended, dead) == (None, None, [])  # a duplicate: dropped, not refused
        assert inlet.counters.refused == 0 and inlet.counters.duplicates == 1
        acks = receipts.due()  # acknowledged again, to the producer incarnation that resent it
        assert {c: {t: r.pairs() for t, r in a.items()} for c, a in acks.items()} == \
            {channel: {topic: [(epoch(0) + 820, epoch(0) + 820)]}}
    finally:
        inlet.close()
        publisher.close(0)
        context.term()
