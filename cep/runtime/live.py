"""Live per-node status while a pipeline runs, always on stderr (stdout belongs to the records of
a `stdout` sink): a rich table redrawn in place on a terminal, plain periodic lines otherwise
(logs, CI). The supervisor calls `update(status)` about twice a second. Each order executor adds
a line: trading state, breaker and since when, working orders, venue failures, denials.

A table redrawn in place moves the cursor up and erases what it drew before, which erases
anything else written to the same terminal meanwhile. A `stdout` sink writes from its own
process, so when its records go to a terminal the status is printed as plain lines instead:
they only ever append."""
from __future__ import annotations

import sys
import time

from cep.plan import Plan
from cep.runtime.metrics import STUCK_AFTER_S, RunStatus

PLAIN_EVERY_S = 5.0


def prints_to_stdout(plan: Plan) -> bool:
    """Whether a sink of `plan` writes records to standard output."""
    return any(node.kind == "sink" and node.type == "stdout" for node in plan.nodes.values())


class LiveStatus:
    def __init__(self, plan: Plan, enabled: bool = True, stuck_after_s: float = STUCK_AFTER_S) -> None:
        self.enabled = enabled
        self.stuck_after_s = stuck_after_s
        self.trading = any(node.kind == "order" for node in plan.nodes.values())
        records_on_terminal = prints_to_stdout(plan) and sys.stdout.isatty()
        self.redraw = sys.stderr.isatty() and not records_on_terminal
        self._live = None
        self._next_plain = time.monotonic() + PLAIN_EVERY_S

    def __enter__(self) -> "LiveStatus":
        if self.enabled and self.redraw:
            from rich.console import Console
            from rich.live import Live
            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, status: RunStatus) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            self._live.update(self._table(status))
        elif time.monotonic() >= self._next_plain:
            self._next_plain = time.monotonic() + PLAIN_EVERY_S
            parts = [f"{node} {t.emitted if kind != 'sink' else t.received:,} ({rate:,.0f}/s)"
                     for node, kind, t, rate in status.rows()]
            print(f"[{status.elapsed:7.1f}s] " + "  ".join(parts + _delivery(status) + self._stuck(status)),
                  *(f"\n  {line}" for line in self._trading(status)), sep="", file=sys.stderr, flush=True)

    def _stuck(self, status: RunStatus) -> list[str]:
        """Workers that sent nothing for --stuck-after (metrics.STUCK_RULE), not to be shown idle."""
        return [f"STUCK {worker}: {silence.describe()}"
                for worker, silence in sorted(status.stuck(self.stuck_after_s).items())]

    def _trading(self, status: RunStatus) -> list[str]:
        """Each order executor's state, breaker, working orders, venue failures and denials."""
        if not self.trading:
            return []
        from cep.orders.gauges import executors, line
        return [line(node, view) for node, view in executors(status).items()]

    def _table(self, status: RunStatus):
        from rich.table import Table
        table = Table(title=f"cep: {status.plan.name}  {status.elapsed:.1f}s  "
                            f"restarts {sum(status.restarts.values())}")
        for column in ("node", "kind", "in", "out", "dropped", "dead", "gaps", "rate/s"):
            table.add_column(column, justify="left" if column in ("node", "kind") else "right")
        for node, kind, t, rate in status.rows():
            table.add_row(node, kind, f"{t.received:,}", f"{t.emitted:,}", f"{t.dropped:,}",
                          f"{t.dead_lettered:,}", f"{t.gaps:,}", f"{rate:,.0f}")
        table.caption = "\n".join(filter(None, ["  ".join(_delivery(status)), *self._stuck(status),
                                                *self._trading(status)])) or None
        return table


def _delivery(status: RunStatus) -> list[str]:
    """What reliable edges are doing: unacknowledged frames now, retransmits and duplicates so far."""
    return [f"{edge_id} unacked {t.unacked:,} retx {t.retransmitted:,} dup {t.duplicates:,}"
            for edge_id, t in status.edges().items() if t.delivery.reliable]
