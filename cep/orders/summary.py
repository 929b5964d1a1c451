"""The trading lines of `cep run`'s summary: per executor, the signals it got, the orders and
fills they led to and the denials by reason; per `positions` journal, the position and PnL of
each instrument.

Counts come from the run's status (the executor counts each denial under its reason code), the
positions from the journal, read only (`cep.orders.queries`), exactly as `cep positions` reads it.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from cep.events import OrderStatus
from cep.orders.journal import read_events
from cep.orders.queries import positions_at
from cep.plan import Plan


def trading_summary(plan: Plan, status: Any) -> list[str]:
    executors = [node for node in plan.nodes.values() if node.kind == "order"]
    if not executors:
        return []
    totals = status.nodes()
    lines = []
    for node in executors:
        merged = plan.nodes.get(f"{node.id}.in")
        makers = [n for n in (merged.inputs if merged else ()) if n != node.params.get("quotes")]
        signals = sum(totals[n].emitted for n in makers if n in totals)
        denials, noted = totals[node.id].drops, totals[node.id].noted
        venue = ", ".join(f"{count:,} {reason}" for reason, count in sorted(noted.items())
                          if reason in ("venue failure", "unparseable reply"))
        lines.append(f"trading {node.id}: {signals:,} signals, {sum(denials.values()):,} denied"
                     + (" (" + ", ".join(f"{reason} {count:,}" for reason, count in sorted(denials.items())) + ")"
                        if denials else "") + (f"; the venue: {venue}" if venue else ""))
    for sink in (n for n in plan.nodes.values() if n.kind == "sink" and n.type == "positions"):
        journal = (Path(plan.base_dir) / sink.params["journal"]).resolve()
        lines += _journal_lines(sink.id, journal)
    return lines


def _journal_lines(name: str, journal: Path) -> list[str]:
    if not journal.is_file():
        return [f"positions {name}: no journal at {journal}"]
    statuses: Counter[str] = Counter()
    orders: set[str] = set()
    fills = 0
    for event in read_events(journal):
        statuses[event.status.value] += 1
        if event.status is not OrderStatus.DENIED and event.status is not OrderStatus.NEW:
            orders.add(event.client_order_id)
        fills += bool(event.fill_id)
    lines = [f"positions {name} ({journal}): {len(orders):,} orders sent, {fills:,} fills, "
             f"{statuses['REJECTED']:,} rejected, {statuses['EXPIRED']:,} expired, {statuses['CANCELED']:,} canceled"]
    book = positions_at(journal)
    for position in book.positions():
        lines.append(f"  {position.instrument:<12} position {position.quantity:g} at {position.average_cost:,.4f}, "
                     f"realized PnL {position.realized:,.4f}")
    lines.append(f"  total realized PnL {book.realized():,.4f}")
    return lines
