"""The trading part of `cep run`'s summary (its lines on stderr, its `trading` key in
`--summary-json`): per executor, the signals it got, the denials by reason, its trading state,
breaker and venue failures, and its book: each position marked at its instrument's last quote
(unrealized PnL at the bid when long, the ask when short; exposure), realized PnL, equity, peak
equity and drawdown; per `positions` journal, the orders and fills it holds and the PnL they add
up to.

Where each number comes from, and why:
- the executor's counts and its book come from its worker's last report (`cep.orders.gauges`).
  Its risk manager is the one that saw every quote and fill in event time and decided the
  trading state on them; peak equity and drawdown depend on that path, and only the executor
  has it, so the summary shows its numbers rather than a recomputation elsewhere;
- a journal's totals are read from the journal alone (`cep.orders.queries`), exactly as
  `cep positions` reads it, marked at the quotes the journal keeps when its `positions` sink is
  given them (`from: [exec, quotes]`). At the end of a run both marks are each instrument's last
  quote, so the journal's realized plus unrealized PnL is the executor's equity: two processes,
  one answer.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from cep.events import OrderStatus
from cep.orders.gauges import breaker_text, equity_text, executors, venue_text
from cep.orders.journal import read_events
from cep.orders.queries import format_time, positions_report
from cep.plan import Plan


def trading_report(plan: Plan, status: Any, host: str | None = None) -> dict[str, Any]:
    """The trading summary as plain data: `executors` (`cep.orders.gauges.executors`) and
    `journals` (per positions sink: its file, order and fill counts, positions); on one `host`
    of several, the executors and journals of its own processes (another host's are not here)."""
    journals = {}
    ours = {node for process in plan.processes if host is None or process.host == host for node in process.nodes}
    for sink in (n for n in plan.nodes.values() if n.kind == "sink" and n.type == "positions" and n.id in ours):
        journals[sink.id] = _journal(Path(plan.base_dir) / sink.params["journal"])
    ran = {node: view for node, view in executors(status).items() if node in ours}
    return {"executors": ran, "journals": journals}


def trading_summary(report: dict[str, Any]) -> list[str]:
    """`trading_report` as the summary's lines."""
    lines = []
    for node, view in report["executors"].items():
        denials = ", ".join(f"{reason} {count:,}" for reason, count in view["denials"].items())
        lines.append(f"trading {node}: {view['signals']:,} signals, {view['denied']:,} denied"
                     + (f" ({denials})" if denials else "") + f"; {view['state'] or '?'}, {breaker_text(view)}, "
                     + ("" if view["working"] is None else f"{view['working']:,} working, ") + venue_text(view))
        lines += [f"  {p['instrument']:<12} {_position(p)}" for p in view["positions"] or ()]
        if view["risk"] is not None:
            lines.append(f"  total {equity_text(view)}")
    for sink, journal in report["journals"].items():
        lines += _journal_lines(sink, journal)
    return lines


def _position(p: dict[str, Any]) -> str:
    """`position -0.04 at 61,623.3941, realized PnL 15.0046, unrealized PnL 0.8550 at the ask
    61,602.02 (as of 2024-08-09T00:05:04.524703633Z), exposure 2,464.08`."""
    text = f"position {p['quantity']:g} at {p['average_cost']:,.4f}, realized PnL {p['realized']:,.4f}"
    if "unrealized" not in p:
        return text
    if p["mark"] is not None:
        side = "bid" if p["quantity"] > 0 else "ask"
        text += f", unrealized PnL {p['unrealized']:,.4f} at the {side} {p['mark']:,.8g}"
    if p["marked_at"] is not None:
        text += f" (as of {format_time(p['marked_at'])})"
    return text + f", exposure {p['exposure']:,.2f}"


def _journal(path: Path) -> dict[str, Any]:
    journal = path.resolve()
    if not journal.is_file():
        return {"path": str(journal), "found": False}
    statuses: Counter[str] = Counter()
    orders: set[str] = set()
    fills = 0
    for event in read_events(journal):
        statuses[event.status.value] += 1
        if event.status is not OrderStatus.DENIED and event.status is not OrderStatus.NEW:
            orders.add(event.client_order_id)
        fills += bool(event.fill_id)
    positions = positions_report(journal)
    return {"path": str(journal), "found": True, "orders_sent": len(orders), "fills": fills,
            "rejected": statuses["REJECTED"], "expired": statuses["EXPIRED"], "canceled": statuses["CANCELED"],
            "positions": positions, "realized": sum(p["realized"] for p in positions),
            "unrealized": sum(p.get("unrealized", 0.0) for p in positions)
            if any("unrealized" in p for p in positions) else None,
            "marked_at": max((p["marked_at"] for p in positions if p.get("marked_at") is not None), default=None)}


def _journal_lines(name: str, journal: dict[str, Any]) -> list[str]:
    if not journal["found"]:
        return [f"positions {name}: no journal at {journal['path']}"]
    lines = [f"positions {name} ({journal['path']}): {journal['orders_sent']:,} orders sent, "
             f"{journal['fills']:,} fills, {journal['rejected']:,} rejected, {journal['expired']:,} expired, "
             f"{journal['canceled']:,} canceled"]
    total = f"  total realized PnL {journal['realized']:,.4f}"
    if journal["unrealized"] is not None:
        total += (f", unrealized PnL {journal['unrealized']:,.4f} at the quotes it keeps (as of "
                  f"{format_time(journal['marked_at'])}), realized + unrealized "
                  f"{journal['realized'] + journal['unrealized']:,.4f}")
    return lines + [total]
