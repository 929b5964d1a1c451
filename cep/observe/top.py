"""`cep top`: a running pipeline seen from another terminal.

It reads the status file the supervisor replaces about twice a second (`statusfile.py`), so it
needs no restart, sends nothing to the pipeline and works whatever the delivery mode; the
pipeline does no more work with it than without it. Which run: a run directory, a pipeline file
(its run directory, as `cep run` would choose it), or, with neither, the only run going on under
`$CEP_RUN_DIR` or `/tmp/cep-<uid>`.
"""
from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cep.errors import RuntimeFailure
from cep.observe.statusfile import read_status
from cep.plan import Delivery
from cep.runtime.lastrun import MARKER

REFRESH_S = 0.5
STALE_AFTER_S = 5.0
"""A status file this much older than the supervisor's refresh says the supervisor is hung."""
START_WAIT_S = 5.0
"""How long a run whose supervisor is alive may take to publish its first status."""


class NothingRunning(RuntimeFailure):
    """No pipeline is running where `cep top` was pointed."""


def default_base() -> Path:
    return Path(os.environ.get("CEP_RUN_DIR") or f"/tmp/cep-{os.getuid()}")


def run_dir_of(target: Path | None, host: str | None = None) -> Path:
    """The run directory `target` names: itself, a pipeline file's (of its `host`, for a
    pipeline run on several hosts), or (None) the only one with a run going on under the
    default base."""
    if target is None:
        base = default_base()
        running = sorted(d for d in _subdirs(base) if _running(d))
        if len(running) == 1:
            return running[0]
        if not running:
            raise NothingRunning(f"no pipeline is running under {base} (name a run directory or a pipeline "
                                 "file: cep top RUN_DIR | PIPELINE)")
        raise NothingRunning(f"{len(running)} pipelines run under {base}: name one, "
                             + ", ".join(f"cep top {d}" for d in running))
    if target.is_file():
        import cep
        plan = cep.compile(target)
        if host is not None:
            from cep.runtime.hostlink import host_plan
            plan = host_plan(plan, host, run_dir_given=False)
        return Path(plan.run_dir)
    return target


def _running(run_dir: Path) -> bool:
    """Whether a run goes on in `run_dir` now (one that left a stale marker does not)."""
    if not (run_dir / MARKER).exists():
        return False
    try:
        current_status(run_dir, wait_s=0)
    except RuntimeFailure:
        return False
    return True


def _subdirs(base: Path) -> list[Path]:
    try:
        return [entry for entry in base.iterdir() if entry.is_dir() and not entry.is_symlink()]
    except OSError:
        return []


def current_status(run_dir: Path, wait_s: float = START_WAIT_S) -> dict[str, Any]:
    """The snapshot of the run going on in `run_dir`; NothingRunning saying why there is none."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            snapshot = read_status(run_dir)
        except FileNotFoundError:
            raise NothingRunning(f"nothing is running in {run_dir}: it does not exist (is the pipeline "
                                 "running? cep top takes its run directory or its pipeline file)") from None
        supervisor = _supervisor_pid(run_dir, snapshot)
        if supervisor is None:
            raise NothingRunning(f"nothing is running in {run_dir}: no run is in progress there")
        if not _alive(supervisor):
            raise NothingRunning(f"nothing is running in {run_dir}: the run's supervisor (pid {supervisor}) "
                                 "is gone; it ended without cleaning up (the next cep run there says more)")
        if snapshot is not None:
            age = time.time() - snapshot["time"]
            if age > STALE_AFTER_S:
                raise NothingRunning(f"the run in {run_dir} (pid {supervisor}) has published no status "
                                     f"for {age:.0f}s: its supervisor is not responding")
            return snapshot
        if time.monotonic() >= deadline:
            raise NothingRunning(f"the run in {run_dir} (pid {supervisor}) has published no status in "
                                 f"{wait_s:.0f}s (still starting? try again)")
        time.sleep(0.1)


def _supervisor_pid(run_dir: Path, snapshot: dict[str, Any] | None) -> int | None:
    """The pid of the supervisor of the run in `run_dir`: the snapshot's, else its marker's."""
    if snapshot is not None:
        return int(snapshot["supervisor"]["pid"])
    import json
    try:
        return int(json.loads((run_dir / MARKER).read_text())["pid"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise NothingRunning(f"nothing is running in {run_dir}: its marker {run_dir / MARKER} is unreadable") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took the pid: not our supervisor
        return False
    return True


# -- rendering ----------------------------------------------------------------------------------
def render(snapshot: dict[str, Any], run_dir: Path, live: bool = False) -> Any:
    """The whole view as one rich renderable: processes, nodes, edges, pattern rules, order
    executors and their positions, dead letters."""
    from rich.console import Group
    from rich.text import Text
    age = max(0.0, time.time() - snapshot["time"])
    title = Text.assemble(("cep top ", "bold"), (snapshot["pipeline"], "bold cyan"),
                          f"  {snapshot['elapsed_s']:.1f}s  {run_dir}  (status {age:.1f}s old"
                          + ("; q quits)" if live else ")"))
    parts = [title, *_hosts(snapshot), _processes(snapshot), _nodes(snapshot), _edges(snapshot)]
    if snapshot["patterns"]:
        parts.append(_patterns(snapshot))
    if snapshot.get("executors"):
        parts += [_executors(snapshot), _positions(snapshot)]
    parts.append(_dead_letters(snapshot))
    return Group(*parts)


TEXT_COLUMNS = ("kind", "state", "pattern", "delivery", "top keys", "dropped by reason", "breaker",
                "denied by reason", "instrument", "marked at")


def _table(title: str, *columns: str) -> Any:
    from rich import box
    from rich.table import Table
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 or column in TEXT_COLUMNS else "right")
    return table


def _processes(snapshot: dict[str, Any]) -> Any:
    table = _table("processes", "process", "pid", "CPU", "RSS", "CPU s", "restarts", "state")
    supervisor = snapshot["supervisor"]
    table.add_row("supervisor", str(supervisor["pid"]), _share(supervisor["cpu_share"]),
                  _bytes(supervisor["rss_bytes"]), "", "", "")
    for worker, w in snapshot["workers"].items():
        table.add_row(worker, str(w["pid"] or ""), _share(w["cpu_share"]), _bytes(w["rss_bytes"]),
                      f"{w['cpu_s']:.1f}", str(w["restarts"]), _state(snapshot, w))
    return table


def _state(snapshot: dict[str, Any], worker: dict[str, Any]) -> str:
    if worker.get("waiting_for"):
        return "waiting"
    if not snapshot["started"]:
        return "starting"
    silent = worker["silent_s"]
    if silent is None:
        return "done"
    return "running" if silent < 2 else f"silent {silent:.0f}s"


def _hosts(snapshot: dict[str, Any]) -> list[Any]:
    """One host of several: its link to each other host (waiting for it, connected, or refused
    as another pipeline's, and since when), and what its workers wait for on other hosts."""
    from rich.text import Text
    links = snapshot.get("links") or {}
    if not links:
        return []
    lines = []
    for host, link in links.items():
        where = f"{host} ({link['address']})"
        if link["state"] == "connected":
            lines.append(f"  connected to {where} {_since(link['since'])}")
        elif link["state"] == "waiting":
            lines.append(f"  waiting for {where} {_since(link['since'])}")
        else:
            lines.append(f"  refused {where}: it runs a different pipeline (digest {link['digest']}) "
                         f"{_since(link['since'])}")
    lines += [f"  {worker}: waiting for {', '.join(w['waiting_for'])} {_since(w['waiting_since'])}"
              for worker, w in snapshot["workers"].items() if w.get("waiting_for")]
    return [Text("hosts", style="bold"), Text("\n".join(lines) + "\n")]


def _since(when: float) -> str:
    return f"since {time.strftime('%H:%M:%S', time.localtime(when))} ({max(0.0, time.time() - when):.0f}s)"


def _nodes(snapshot: dict[str, Any]) -> Any:
    table = _table("nodes", "node", "kind", "in/s", "out/s", "in", "out", "dropped", "dead", "gaps",
                   "dropped by reason")
    for node, n in snapshot["nodes"].items():
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(n["dropped"].items()))
        table.add_row(node, n["kind"], f"{n['in_per_s']:,.0f}", f"{n['out_per_s']:,.0f}", f"{n['in']:,}",
                      f"{n['out']:,}", f"{sum(n['dropped'].values()):,}", f"{n['dead_lettered']:,}",
                      f"{n['gaps']:,}", reasons)
    return table


def _edges(snapshot: dict[str, Any]) -> Any:
    table = _table("edges", "edge", "pattern", "delivery", "queued", "unacked", "retx", "dup", "lag")
    for edge_id, e in snapshot["edges"].items():
        reliable = Delivery(e["delivery"]).reliable
        table.add_row(edge_id, e["pattern"], e["delivery"], f"{e['queued']:,}",
                      f"{e['unacked']:,}" if reliable else "-", f"{e['retransmitted']:,}" if reliable else "-",
                      f"{e['duplicates']:,}" if reliable else "-", _seconds(e["lag_s"]))
    return table


def _patterns(snapshot: dict[str, Any]) -> Any:
    table = _table("pattern rules", "rule", "partial matches", "discarded", "pruned (within)", "top keys")
    for node, p in snapshot["patterns"].items():
        keys = ", ".join(f"{key} {count:,}" for key, count in p["top_keys"])
        table.add_row(node, f"{p['alive']:,}", f"{p['discarded']:,}", f"{p['pruned']:,}", keys)
    return table


def _executors(snapshot: dict[str, Any]) -> Any:
    """Per order executor: trading state, breaker and since when, orders working, the venue's
    failures and retries, denials by reason (`cep.orders.gauges`)."""
    from cep.orders.gauges import breaker_text
    table = _table("order executors", "executor", "state", "breaker", "working", "venue failures", "timeouts",
                   "unparseable", "retries", "denied", "denied by reason")
    for node, x in snapshot["executors"].items():
        venue = x["venue"]
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in x["denials"].items())
        table.add_row(node, x["state"] or "?", breaker_text(x, snapshot["time"]).removeprefix("breaker "),
                      "?" if x["working"] is None else f"{x['working']:,}", f"{venue['failures']:,}",
                      f"{venue['timeouts']:,}", f"{venue['unparseable_replies']:,}", f"{venue['retries']:,}",
                      f"{x['denied']:,}", reasons)
    return table


def _positions(snapshot: dict[str, Any]) -> Any:
    """Each executor's positions marked at their latest quote; its equity, peak and drawdown."""
    from cep.orders.gauges import equity_text
    from cep.orders.queries import format_time
    table = _table("positions", "executor", "instrument", "quantity", "avg cost", "mark", "unrealized",
                   "realized", "exposure", "marked at")
    for node, x in snapshot["executors"].items():
        for p in x["positions"] or ():
            table.add_row(node, p["instrument"], f"{p['quantity']:,.8g}", f"{p['average_cost']:,.8g}",
                          "-" if p["mark"] is None else f"{p['mark']:,.8g}", f"{p['unrealized']:,.2f}",
                          f"{p['realized']:,.2f}", f"{p['exposure']:,.2f}",
                          "-" if p["marked_at"] is None else format_time(p["marked_at"]))
    table.caption = "\n".join(f"{node}: {equity_text(x)}" for node, x in snapshot["executors"].items()
                              if x["risk"] is not None) or None
    table.caption_justify = "left"
    return table


def _dead_letters(snapshot: dict[str, Any]) -> Any:
    from rich.text import Text
    letters = snapshot["dead_letters"]
    per_node = ", ".join(f"{node} {n['dead_lettered']:,}" for node, n in snapshot["nodes"].items()
                         if n["dead_lettered"])
    return Text(f"dead letters: {letters['count']:,}" + (f" ({per_node})" if per_node else "")
                + f" in {letters['path']}")


def _share(share: float | None) -> str:
    return "" if share is None else f"{share:.0%}"


def _bytes(size: int | None) -> str:
    return "" if size is None else f"{size / 2 ** 20:,.0f} MB"


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:,.1f} s"


# -- the live view ------------------------------------------------------------------------------
def watch(run_dir: Path) -> str:
    """Redraw the view until `q`, Ctrl-C or the end of the run; returns why it stopped."""
    from rich.console import Console
    from rich.live import Live
    console = Console()
    with _keys() as pressed, Live(console=console, auto_refresh=False, screen=False) as live:
        while True:
            try:
                snapshot = current_status(run_dir, wait_s=0)
            except NothingRunning as ended:
                return f"cep top: {ended}"
            live.update(render(snapshot, run_dir, live=True), refresh=True)
            if pressed(REFRESH_S) == "q":
                return ""


@contextmanager
def _keys() -> Iterator[Any]:
    """`pressed(timeout)`: the key pressed within `timeout` seconds (None if none), with the
    terminal in cbreak mode meanwhile (keys arrive unbuffered and unechoed); without a terminal
    on stdin, it only waits."""
    stdin = sys.stdin
    if not stdin.isatty():
        yield lambda timeout: time.sleep(timeout)
        return
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def pressed(timeout: float) -> str | None:
        readable, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode(errors="replace").lower() if readable else None

    try:
        yield pressed
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
