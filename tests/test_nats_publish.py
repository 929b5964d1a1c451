"""`cep.jetstream.publish.Publisher` against a real nats-server: messages are stored in the order
they were published, and one whose publish failed is published again and stored once."""
import pytest

from cep.jetstream.client import NatsConnection, close, connect, loop
from cep.jetstream.publish import Publisher
from tests.natsserver import FailingPublishes, nats_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def _stream(url: str, name: str = "P") -> None:
    client = connect(NatsConnection(url=url), "test")
    try:
        loop().call(client.jetstream().add_stream(name=name, subjects=[f"{name.lower()}.>"]))
    finally:
        close(client)


def _bodies(url: str, name: str = "P") -> list[bytes]:
    client = connect(NatsConnection(url=url), "test")
    try:
        js = client.jetstream()
        count = loop().call(js.stream_info(name)).state.messages
        return [loop().call(js.get_msg(name, seq=seq)).data for seq in range(1, count + 1)]
    finally:
        close(client)


def _publish(client, count: int) -> list[bytes]:
    publisher = Publisher(client)
    bodies = [f"message {n}".encode() for n in range(1, count + 1)]
    try:
        for n, body in enumerate(bodies, 1):
            publisher.publish("p.x", body, f"test:{n}")
        publisher.wait()
    finally:
        publisher.close()
    return bodies


def test_messages_are_stored_in_the_order_they_were_published(nats_server):
    """The first messages too, while the client still sets up where acknowledgements come."""
    _stream(nats_server.url)
    client = connect(NatsConnection(url=nats_server.url), "test")
    try:
        bodies = _publish(client, 300)
    finally:
        close(client)
    assert _bodies(nats_server.url) == bodies


@pytest.mark.parametrize("stored", [False, True], ids=["not stored", "stored, ack lost"])
def test_a_failed_publish_goes_again_and_is_stored_once(nats_server, stored):
    _stream(nats_server.url)
    client = connect(NatsConnection(url=nats_server.url), "test")
    try:
        bodies = _publish(FailingPublishes(client, {2: 1, 5: 2}, stored), 6)
    finally:
        close(client)
    kept = _bodies(nats_server.url)
    assert sorted(kept) == sorted(bodies)  # each once
    if not stored:  # published again after the others: stored after them
        assert kept == [bodies[n - 1] for n in (1, 3, 4, 6, 2, 5)]
