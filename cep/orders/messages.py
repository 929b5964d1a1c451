"""What an executor and its venue say to each other, as plain data (msgpack on the wire).

A request is `{"id": str, "op": place|cancel|query|sync, "t": event time, "n": int, "after": int,
"kept": [int, int], "by": str, ...}`: `t` is the executor's event time and `n` how many quotes it
has taken (the venue matches up to there, `cep.orders.service`), `after` how
many reports of the venue's fill stream the executor has taken (the reply carries the ones after
it, so a reply lost and asked again loses no fill), `kept` the report count and event time the
executor `by` would resume from after a restart (the venue may forget what is before them; both
optional), `id` names the request (a retry carries the same id and the same client order id). A reply is `{"id", "reply": VenueReply or None,
"reports": [Fill or OrderUpdate, ...], "count": reports so far, "due": [time or None, [instrument,
...], "session": int}` (`due` only from a venue that knows when its next report can come,
`ReportDue`; `session` only from a venue restarted without its state, which lost the orders it
held: an executor that sees it change asks for its working orders) or `{"id", "error": text}`.

Nothing a peer sends is trusted: `read_reply` checks every field and raises `BadReply` with what
was wrong, which the executor counts (`unparseable reply`) and treats as a failed call.
"""
from __future__ import annotations

import math
from typing import Any

import msgpack

from cep.events import Action, OrderStatus
from cep.orders.lifecycle import Fill
from cep.orders.venue import OrderRequest, OrderType, OrderUpdate, Report, ReportDue, VenueReply

OPS = ("place", "cancel", "query", "sync")


class BadReply(ValueError):
    """A reply that does not parse or does not have the fields it must."""


def encode(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def decode(data: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # any malformed bytes
        raise BadReply(f"not msgpack: {type(exc).__name__}") from None
    if not isinstance(message, dict):
        raise BadReply(f"not a mapping: {type(message).__name__}")
    return message


def is_request(request: Any) -> bool:
    """Whether `request` has the fields every request needs (the venue side checks the rest)."""
    return (isinstance(request, dict) and request.get("op") in OPS and isinstance(request.get("id"), str)
            and _whole(request.get("t")) and _whole(request.get("n")) and _whole(request.get("after"))
            and request["after"] >= 0 and isinstance(request.get("by", ""), str)
            and ("kept" not in request or (isinstance(request["kept"], list) and len(request["kept"]) == 2
                                           and all(_whole(v) and v >= 0 for v in request["kept"]))))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def request_of(order: OrderRequest) -> dict[str, Any]:
    return {"client_order_id": order.client_order_id, "instrument": order.instrument,
            "side": order.side.value, "quantity": order.quantity, "timestamp": order.timestamp,
            "order_type": order.order_type.value, "limit_price": order.limit_price}


def order_of(data: Any) -> OrderRequest:
    """The order in a place request (the venue side); ValueError if it is not one."""
    if not isinstance(data, dict):
        raise ValueError("a place request needs an order")
    return OrderRequest(_text(data, "client_order_id"), _text(data, "instrument"), Action(data.get("side")),
                        _number(data, "quantity"), _integer(data, "timestamp"),
                        OrderType(data.get("order_type", "MARKET")), data.get("limit_price"))


def reply_of(reply: VenueReply | None) -> dict[str, Any] | None:
    if reply is None:
        return None
    return {"client_order_id": reply.client_order_id, "status": reply.status.value, "order_id": reply.order_id,
            "filled_quantity": reply.filled_quantity, "reason": reply.reason, "duplicate": reply.duplicate}


def report_of(report: Report) -> dict[str, Any]:
    if isinstance(report, Fill):
        return {"fill": [report.client_order_id, report.fill_id, report.price, report.quantity,
                         report.timestamp, report.order_id]}
    return {"update": [report.client_order_id, report.order_id, report.status.value, report.timestamp,
                       report.reason]}


def due_of(due: ReportDue) -> list[Any]:
    return [due.at, sorted(due.instruments)]


def read_reply(message: dict[str, Any], request_id: str) -> tuple[VenueReply | None, list[Report], int,
                                                                 ReportDue | None]:
    """The venue's answer, its reports, its report count and when its next report is due (None:
    it does not say), checked; BadReply if malformed."""
    try:
        if message.get("id") != request_id:
            raise BadReply(f"answers request {message.get('id')!r}, not {request_id!r}")
        if "error" in message:
            raise BadReply(f"the venue refused the request: {message['error']}")
        reports = [_report(item) for item in _list(message, "reports")]
        count = _integer(message, "count")
        reply = message.get("reply")
        due = message.get("due")
        return (None if reply is None else _reply(reply)), reports, count, None if due is None else _due(due)
    except BadReply:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise BadReply(f"{type(exc).__name__}: {exc}") from None


def _reply(data: Any) -> VenueReply:
    if not isinstance(data, dict):
        raise ValueError("reply is not a mapping")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("reason is not text")
    return VenueReply(_text(data, "client_order_id"), OrderStatus(data.get("status")), _text(data, "order_id", True),
                      _number(data, "filled_quantity", zero=True), reason, bool(data.get("duplicate")))


def _due(data: Any) -> ReportDue:
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[1], list)
            and all(isinstance(name, str) for name in data[1])):
        raise ValueError("due is not [time, [instrument, ...]]")
    at = None if data[0] is None else _integer({"t": data[0]}, "t")
    return ReportDue(at, frozenset(data[1]))


def report_from(item: Any) -> Report:
    """A report as `report_of` wrote it; ValueError if it is not one."""
    return _report(item)


def _report(item: Any) -> Report:
    if isinstance(item, dict) and isinstance(item.get("fill"), list) and len(item["fill"]) == 6:
        coid, fill_id, price, quantity, timestamp, order_id = item["fill"]
        fields = {"c": coid, "f": fill_id, "o": order_id, "p": price, "q": quantity, "t": timestamp}
        return Fill(_text(fields, "c"), _text(fields, "f"), _number(fields, "p"), _number(fields, "q"),
                    _integer(fields, "t"), _text(fields, "o", True))
    if isinstance(item, dict) and isinstance(item.get("update"), list) and len(item["update"]) == 5:
        coid, order_id, status, timestamp, reason = item["update"]
        if reason is not None and not isinstance(reason, str):
            raise ValueError("reason is not text")
        return OrderUpdate(_text({"c": coid}, "c"), _text({"o": order_id}, "o", True), OrderStatus(status),
                           _integer({"t": timestamp}, "t"), reason)
    raise ValueError("a report is neither a fill nor an update")


def _text(data: dict, key: str, empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not (value or empty):
        raise ValueError(f"{key} is not text")
    return value


def _number(data: dict, key: str, zero: bool = False) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero):
        raise ValueError(f"{key} is not a finite number above 0")
    return float(value)


def _integer(data: dict, key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is not an integer")
    return value


def _list(data: dict, key: str) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value
