"""The query side of the journal: positions and order histories, read from the journal file alone.

These are what `cep positions JOURNAL` and `cep orders JOURNAL` print. They open the journal
read-only and fold its events in the order they were appended, so they never touch a running
pipeline and answer the same while it runs and afterwards. Its events hold no quotes; a journal
whose `positions` sink was given the quotes keeps each instrument's latest (`read_marks`), and a
position is marked at it (unrealized PnL at the bid when long, the ask when short, as of that
quote's time). A mark later than the time asked for (`at`) is not used: the journal does not know
the quote in force then, so such a position shows no unrealized PnL rather than a wrong one.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cep.events import OrderEvent
from cep.orders.journal import read_events, read_marks
from cep.orders.positions import PositionBook


def positions_at(journal: Path | str, at: int | None = None) -> PositionBook:
    """The positions the journal's fills add up to, counting fills up to event time `at`."""
    book = PositionBook()
    for event in read_events(journal, until=at):
        book.apply_event(event)
    return book


def positions_report(journal: Path | str, at: int | None = None) -> list[dict[str, Any]]:
    """One plain dict per instrument traded: quantity, average cost, realized PnL; and where the
    journal keeps a mark for it (up to `at`), unrealized PnL, exposure, the mark and its time
    (`PositionBook.snapshot`)."""
    book = positions_at(journal, at)
    marks = {name: quote for name, quote in read_marks(journal).items() if at is None or quote.timestamp <= at}
    for quote in marks.values():
        book.mark(quote)
    return [row if row["instrument"] in marks else {key: row[key] for key in UNMARKED}
            for row in book.snapshot()]


UNMARKED = ("instrument", "quantity", "average_cost", "realized")
"""What a position without a mark shows."""


def order_history(journal: Path | str, *, signal_id: str | None = None,
                  client_order_id: str | None = None) -> list[OrderEvent]:
    """Every event of the order of one signal or one client order id, in order."""
    return list(read_events(journal, signal_id=signal_id, client_order_id=client_order_id))


def latest_per_order(journal: Path | str) -> list[OrderEvent]:
    """Each order's latest event (its current state), in the order the orders were opened."""
    latest: dict[str, OrderEvent] = {}
    for event in read_events(journal):
        latest[event.client_order_id] = event
    return list(latest.values())


def parse_time(text: str) -> int:
    """Event time from the command line: integer nanoseconds since the epoch, or an ISO 8601
    date-time (UTC unless it names an offset), e.g. 2024-08-08T23:55:00Z."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)  # ValueError for anything else
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    delta = moment - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def format_time(timestamp: int) -> str:
    moment = datetime.fromtimestamp(timestamp // 1_000_000_000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{timestamp % 1_000_000_000:09d}Z"


def render_positions(rows: list[dict[str, Any]]) -> list[str]:
    """`positions_report` as an aligned text table with the total realized PnL; with unrealized
    PnL, the mark and its time when the journal marks a position."""
    if not rows:
        return ["no fills in the journal (up to that time)"]
    marked = any("unrealized" in row for row in rows)
    lines = [f"{'instrument':<12} {'quantity':>14} {'average_cost':>14} {'realized':>14}"
             + (f" {'unrealized':>14} {'mark':>14}  as of" if marked else "")]
    for row in rows:
        line = f"{row['instrument']:<12} {row['quantity']:>14.8g} {row['average_cost']:>14.8g} {row['realized']:>14.6f}"
        if "unrealized" in row:
            mark = "-" if row["mark"] is None else f"{row['mark']:.8g}"
            line += f" {row['unrealized']:>14.6f} {mark:>14}  {format_time(row['marked_at'])}"
        elif marked:
            line += f" {'-':>14} {'-':>14}  (no quote up to that time)"
        lines.append(line)
    total = f"{'total':<12} {'':>14} {'':>14} {sum(row['realized'] for row in rows):>14.6f}"
    if marked:
        total += f" {sum(row.get('unrealized', 0.0) for row in rows):>14.6f}"
    return lines + [total]


def render_orders(events: list[OrderEvent]) -> list[str]:
    """One line per order (its latest event): ids, what was asked, what became of it."""
    if not events:
        return ["no orders in the journal"]
    return [f"{e.client_order_id}  {e.signal_id}  {e.instrument} {e.side.value if e.side else '?'} "
            f"{e.quantity:g}  {e.status.value} filled {e.filled_quantity:g}"
            + (f" at {e.average_price:.8g}" if e.average_price is not None else "")
            + (f"  ({e.reason})" if e.reason else "") for e in events]


def render_history(events: list[OrderEvent]) -> list[str]:
    """One line per event of one order, in order."""
    if not events:
        return ["no such order in the journal"]
    first = events[0]
    lines = [f"order {first.client_order_id} for signal {first.signal_id}: {first.instrument} "
             f"{first.side.value if first.side else '?'} {first.quantity:g}"]
    for e in events:
        fill = f" fill {e.fill_quantity:g} at {e.fill_price:.8g} ({e.fill_id})" if e.fill_id else ""
        lines.append(f"{e.sequence:>4} {format_time(e.timestamp)} {e.status.value:<16} filled "
                     f"{e.filled_quantity:g}{fill}" + (f"  {e.reason}" if e.reason else ""))
    return lines
