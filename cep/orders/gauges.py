"""How each order executor stands: what the live status, `cep top`, the metrics and the run
summary show of it, made in one place.

Two halves, one on each side of the worker's report:
- in the executor's worker, `executor_gauges(node)` is what the executor node declares with
  `BuildContext.keep_gauges`: how it stands now (the breaker's state and since when, the trading
  state, orders working, and its risk manager's book: each position marked at its instrument's
  latest quote, equity, peak equity, drawdown). The worker reads it when it reports, twice a
  second at most, never per event;
- in the supervisor, `executors(status)` adds the counts the executor keeps as it goes (each
  denial as a drop under its reason code; venue failures, timeouts, unparseable replies and
  retries as notes), which `RunStatus` sums over the worker's incarnations like every count.

Why the book comes from the executor: its risk manager sees every quote and every fill in event
time, in one process, and decides the trading state on exactly these numbers; peak equity and
drawdown depend on that path, which no other process sees in the same order.
"""
from __future__ import annotations

import time
from typing import Any

from cep.plan import Plan

VENUE_NOTES = {"venue failure": "failures", "venue timeout": "timeouts", "unparseable reply": "unparseable_replies",
               "venue retry": "retries"}
"""The executor node's notes about its venue (`ExecutorNode._note_venue`) -> their keys here."""


# -- the executor's worker ----------------------------------------------------------------------
def executor_gauges(node: Any) -> dict[str, Any]:
    """How the executor node `node` (`cep.orders.node.ExecutorNode`) stands now, as plain data."""
    executor, manager = node.executor, node.executor.manager
    breaker, book = executor.breaker, manager.book
    in_state_s = max(0.0, breaker.clock() - breaker.changed_at)
    positions = book.snapshot()
    return {"trading": {
        "signals": node.signals,  # its own count: the rules that make them may run on another host
        "state": manager.state.value,
        "breaker": breaker.state.value,
        "breaker_since": round(time.time() - in_state_s, 3),  # wall-clock seconds since the epoch
        "breaker_opened": breaker.opened,
        "working": sum(1 for _ in executor.ledger.working()),
        "risk": {"equity": manager.equity, "peak_equity": manager.peak_equity, "drawdown": manager.drawdown,
                 "realized": book.realized(), "unrealized": book.unrealized(),
                 "exposure": sum(row["exposure"] for row in positions)},
        "positions": positions,
    }}


# -- the supervisor -----------------------------------------------------------------------------
def executor_ids(plan: Plan) -> list[str]:
    return [node.id for node in plan.nodes.values() if node.kind == "order"]


def executors(status: Any) -> dict[str, dict[str, Any]]:
    """Per order executor of the run (`RunStatus`), in plan order: signals it got, denials by
    reason, venue failures (of which timeouts and unparseable replies) and retries, and how it
    stood at its worker's latest report (`state`, `breaker`, ... as `executor_gauges` says; None
    before its first report)."""
    ids = executor_ids(status.plan)
    if not ids:
        return {}
    totals = status.nodes()
    reported: dict[str, dict[str, Any]] = {}
    for report in status.gauges().values():  # an executor runs in one worker (it has no partition key)
        for node, gauges in report.get("nodes", {}).items():
            if "trading" in gauges:
                reported[node] = gauges["trading"]
    view = {}
    for node in ids:
        counts = totals[node]
        view[node] = {  # signals: the rules' count until the executor's own comes with its report
            "signals": sum(totals[n].emitted for n in _signal_makers(status.plan, node) if n in totals),
            "denied": counts.dropped, "denials": dict(sorted(counts.drops.items())),
            "venue": {key: counts.noted.get(reason, 0) for reason, key in VENUE_NOTES.items()},
            **dict.fromkeys(("state", "breaker", "breaker_since", "breaker_opened", "working", "risk", "positions")),
            **reported.get(node, {})}
    return view


def _signal_makers(plan: Plan, node: str) -> list[str]:
    """The rules whose signals executor `node` reads (its merged input, less its quotes)."""
    merged = plan.nodes.get(f"{node}.in")
    quotes = plan.nodes[node].params.get("quotes")
    return [n for n in (merged.inputs if merged else ()) if n != quotes]


def breaker_text(view: dict[str, Any], now: float | None = None) -> str:
    """`breaker OPEN for 12s` (how long it has been in its state); `breaker ?` before a report."""
    if view["breaker"] is None:
        return "breaker ?"
    since = max(0.0, (time.time() if now is None else now) - view["breaker_since"])
    return f"breaker {view['breaker']} for {_duration(since)}"


def venue_text(view: dict[str, Any]) -> str:
    """`venue 3 failures (2 timeouts, 1 unparseable), 6 retries`."""
    venue = view["venue"]
    return (f"venue {venue['failures']:,} failures ({venue['timeouts']:,} timeouts, "
            f"{venue['unparseable_replies']:,} unparseable), {venue['retries']:,} retries")


def equity_text(view: dict[str, Any]) -> str:
    """`equity 16.4974 (realized 15.5483, unrealized 0.9490), peak 16.5579, drawdown 0.0605, exposure 2,597.96`."""
    risk = view["risk"]
    return (f"equity {risk['equity']:,.4f} (realized {risk['realized']:,.4f}, unrealized {risk['unrealized']:,.4f}), "
            f"peak {risk['peak_equity']:,.4f}, drawdown {risk['drawdown']:,.4f}, exposure {risk['exposure']:,.2f}")


def line(node: str, view: dict[str, Any], now: float | None = None) -> str:
    """One line of an executor for the live status: state, breaker, working orders, venue, denials."""
    denials = ", ".join(f"{reason} {count:,}" for reason, count in view["denials"].items())
    working = "?" if view["working"] is None else f"{view['working']:,}"
    return (f"{node}: {view['state'] or '?'}, {breaker_text(view, now)}, {working} working, {venue_text(view)}, "
            f"{view['denied']:,} denied" + (f" ({denials})" if denials else ""))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"
