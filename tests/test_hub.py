"""A node's output hub: every consumer gets every batch, counted once as emitted and once per consumer
as received; the end of stream (or an error) reaches subscribers that come late too."""
import reactivex

from cep.components.base import Counters, batch_map
from cep.runtime.hub import Hub


def test_every_consumer_gets_every_batch_and_counts_add_up():
    node, first, second = Counters(), Counters(), Counters()
    hub = Hub(node)
    hub.feed(first)
    hub.feed(second)
    seen_a, seen_b = [], []
    hub.subscribe(seen_a.append)
    hub.subscribe(seen_b.append)
    for batch in ([1, 2], [3]):
        hub.on_next(batch)
    assert seen_a == seen_b == [[1, 2], [3]]
    assert (node.emitted, first.received, second.received) == (3, 3, 3)


def test_end_of_stream_reaches_late_subscribers_and_stops_the_hub():
    hub = Hub()
    hub.on_completed()
    hub.on_next([1])
    ended, seen = [], []
    hub.subscribe(seen.append, on_completed=lambda: ended.append(True))
    assert ended == [True] and seen == []


def test_an_error_reaches_every_subscriber_once():
    hub = Hub()
    errors = []
    hub.subscribe(on_error=errors.append)
    boom = ValueError("boom")
    hub.on_error(boom)
    hub.on_error(ValueError("again"))
    hub.subscribe(on_error=errors.append)
    assert errors == [boom, boom]


def test_disposed_subscribers_get_nothing_more():
    hub = Hub()
    seen = []
    subscription = hub.subscribe(seen.append)
    hub.on_next([1])
    subscription.dispose()
    hub.on_next([2])
    assert seen == [[1]]


def test_batch_map_drops_empty_batches_and_ends_with_an_error_when_apply_fails():
    out, errors = [], []
    reactivex.of([1, 2], [], [3], [0]).pipe(batch_map(lambda b: [x for x in b if x])).subscribe(out.append)
    assert out == [[1, 2], [3]]
    reactivex.of([1]).pipe(batch_map(lambda b: 1 / 0)).subscribe(out.append, on_error=errors.append)
    assert isinstance(errors[0], ZeroDivisionError)
