"""A venue's state does not grow with the run: it forgets the reports its executor has taken for
good and the orders that finished before the executor's last checkpoint, and its request log holds
what came after the checkpoint before the last; a client order id it placed is never placed again,
however long ago."""
from __future__ import annotations

from cep.components.base import BuildContext
from cep.events import Action, OrderStatus
from cep.orders.link import LocalChannel
from cep.orders.node import ExecutorNode
from cep.orders.nodes import _keep_executor_state
from cep.orders.paper import PaperVenue
from cep.orders.service import RequestLog, VenueService
from cep.orders.settings import ExecutorSettings
from cep.orders.state import ServiceState, restore_service, service_snapshot
from cep.orders.venue import OrderRequest
from cep.runtime.checkpoint import decode_state, encode_state
from tests.test_trading_restore import market

T0 = 1_723_161_600_000_000_000


def checkpointed_executor(service):
    """An executor as a worker under exactly_once builds it: its checkpoints are taken by `take`."""
    kept = []
    ctx = BuildContext(node="exec", keep_state_fn=lambda node, snapshot, restore: kept.append(snapshot))
    node = ExecutorNode(ExecutorSettings.model_validate({"risk": {"max_position": 5, "max_open_orders": 6}}),
                        LocalChannel(service), ctx)
    _keep_executor_state(node, ctx, checkpointed=True)
    return node, kept[0]


def checkpoint_size(service):
    return len(encode_state(service_snapshot(service)))


def test_a_long_runs_venue_checkpoint_grows_by_no_more_than_an_id_per_order():
    service = VenueService(PaperVenue(latency_ns=300_000, history=50))
    node, take = checkpointed_executor(service)
    sizes, orders = [], []
    run = market(1, 10_000)
    for batches in (run[:len(run) // 5], run[len(run) // 5:]):
        for batch in batches:
            service.on_quotes([r for r in batch if "signal_id" not in r])
            node.step(batch)
            take()  # a checkpoint after each pass, as a worker takes them
        sizes.append(checkpoint_size(service))
        orders.append(len(service.placed))
    assert orders[1] - orders[0] > 300
    per_order = (sizes[1] - sizes[0]) / (orders[1] - orders[0])
    assert per_order < 80, per_order  # the ids of the orders placed (the venue's and the paper venue's)
    assert len(service.reports) < 50 and len(service.adapter._orders) < 50


def test_a_retried_place_of_an_order_the_venue_forgot_is_a_duplicate_never_placed_again():
    service = VenueService(PaperVenue(latency_ns=0))
    answers = []

    def request(number, op, t, **fields):
        service.handle({"id": f"0:{number}", "op": op, "t": t, "n": number, "after": 0, **fields}, answers.append)
        return answers[-1]

    order = {"client_order_id": "cep-1", "instrument": "X", "side": "BUY", "quantity": 1.0, "timestamp": T0}
    service.on_quotes([{"timestamp": T0, "instrument": "X", "bid_price": 99.0, "ask_price": 100.0}])
    first = request(1, "place", T0, order=order, kept=[0, 0], by="exec")
    assert first["reply"]["status"] == "ACCEPTED" and len(first["reports"]) == 1  # filled at once
    service.on_quotes([{"timestamp": T0 + 10**9, "instrument": "X", "bid_price": 99.0, "ask_price": 100.0}])
    request(2, "sync", T0 + 10**9, kept=[1, T0 + 10**9], by="exec")  # taken for good: forgotten
    assert "cep-1" not in service.adapter._orders and service.reports == [] and service.base == 1
    restored = VenueService(PaperVenue(latency_ns=0))
    restore_service(restored, ServiceState.model_validate(decode_state(encode_state(service_snapshot(service)))))
    for venue in (service, restored):  # also after a restart from the checkpoint
        answers.clear()
        venue.handle({"id": "1:1", "op": "place", "t": T0 + 10**9, "n": 2, "after": 1, "order": order}, answers.append)
        reply = answers[-1]["reply"]
        assert reply["duplicate"] and reply["status"] == "REJECTED" and reply["reason"].startswith("DUPLICATE_ORDER")
        assert answers[-1]["reports"] == [] and "cep-1" not in venue.adapter._orders and venue.repeats == 1


def test_the_paper_venue_answers_an_order_it_forgot_as_a_duplicate():
    from cep.events import TickEvent

    venue = PaperVenue()
    venue.on_quote(TickEvent(T0, "X", 99.0, 100.0, None, None))
    venue.place(OrderRequest("c1", "X", Action.BUY, 1.0, T0))
    venue.place(OrderRequest("c2", "X", Action.BUY, 1.0, T0 + 5))
    venue.forget(T0 + 5)
    assert set(venue._orders) == {"c2"}
    again = venue.place(OrderRequest("c1", "X", Action.BUY, 1.0, T0 + 9))
    assert again.duplicate and again.status is OrderStatus.REJECTED and venue.duplicates == 1
    assert venue.query("c1").reason.startswith("DUPLICATE_ORDER") and set(venue._orders) == {"c2"}


def test_the_request_log_holds_what_came_after_the_checkpoint_before_the_last_and_every_place(tmp_path):
    log = RequestLog(tmp_path / "requests.sqlite", fresh=True)
    for number in range(1, 101):
        log.append({"id": f"0:{number}", "op": "place" if number % 25 == 0 else "sync"}, number)
        if number % 10 == 0:
            log.checkpoint(number)
    assert [r["id"] for r in log.since(100)] == []
    # the last checkpoint covers 100, the one before it 90: a restart needs at most what came after 90
    assert [r["id"] for r in log.since(90)] == [f"0:{n}" for n in range(91, 101)]
    assert [r["id"] for r in log.since(0)] == ["0:25", "0:50", "0:75"] + [f"0:{n}" for n in range(91, 101)]
    log.close()


def test_a_restarted_venue_numbers_its_requests_on_from_its_checkpoint_even_after_the_log_dropped_them(tmp_path):
    path = tmp_path / "requests.sqlite"
    service = VenueService(PaperVenue(), RequestLog(path, fresh=True))
    answers = []
    for number in range(1, 4):
        service.on_quotes([{"timestamp": T0 + number, "instrument": "X", "bid_price": 99.0, "ask_price": 100.0}])
        service.handle({"id": f"0:{number}", "op": "sync", "t": T0 + number, "n": number, "after": 0}, answers.append)
    saved = decode_state(encode_state(service_snapshot(service)))
    service.log.checkpoint(3)
    service.log.checkpoint(3)  # two checkpoints after the same requests: the log keeps none of them
    service.log.close()
    restarted = VenueService(PaperVenue(), RequestLog(path, fresh=False))
    restore_service(restarted, ServiceState.model_validate(saved))
    restarted.on_quotes([{"timestamp": T0 + 4, "instrument": "X", "bid_price": 99.0, "ask_price": 100.0}])
    restarted.handle({"id": "1:1", "op": "sync", "t": T0 + 4, "n": 4, "after": 0}, answers.append)
    assert [r["id"] for r in restarted.log.since(3)] == ["1:1"]  # what a second restart must serve again
