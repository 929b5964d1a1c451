"""The trading half with real processes and real kills: the executor, the venue or the positions
process SIGKILLed at random instants, several times per run, in each reliable delivery mode.

- exactly_once: nothing changes. No client order id is placed at the venue twice (its request
  log holds each place once), no fill is journaled twice, and the orders, fills and positions
  equal a fault-free run's.
- at_least_once: no client order id is placed twice, no fill is journaled twice, every signal is
  decided, and every order the venue took is journaled as sent. A killed positions process
  changes nothing in the journal. A restarted executor comes back from its order log and asks
  the venue for the orders whose reply it lost (`cep.orders.recovery`), so each order it sent
  ends filled; its orders equal a fault-free run's when the signals come again in order, but
  at_least_once keeps no order across a restart (frames sent meanwhile can come before those
  sent again), and a signal that comes after later quotes is decided late (STALE_SIGNAL past
  `max_signal_age`), after which positions and decisions may differ. A killed paper venue keeps
  its word (a repeat of an order it took is answered, never placed) but its book dies with it.

A failure prints its seed; `CEP_FAULT_SEED=<seed>` replays it. `CEP_SOAK=N` runs N seeds per
victim (by hand; CI runs one).
"""
from __future__ import annotations

import math
import os
import random
import sqlite3
from collections import Counter
from pathlib import Path

import msgpack
import pytest

import cep
from cep.orders import positions_report, read_events
from tests.support import kill_at
from tests.test_trading_run import outcome, write_trading

pytestmark = pytest.mark.integration

SPEED = "200x"              # the shipped ticks take about 3.3 s: kills land mid-run
KILL_WINDOW_S = (0.3, 3.0)
KILLS = 3                   # per run
RUN_DEADLINE_S = 60.0
VICTIMS = ["executor-exec", "venue-paper", "sink-book"]


def write(directory: Path, delivery: str) -> Path:
    path = write_trading(directory, delivery)
    text = path.read_text().replace("speed: max", f"speed: {SPEED}")
    text = text.replace("request: {timeout: 250ms, retries: 3}", "request: {timeout: 300ms, retries: 20}")
    path.write_text(text)
    return path


def journaled(directory: Path) -> tuple[list[dict], list[dict]]:
    """Every event the journal holds, by client order id and sequence (the order of appends
    differs between runs where a restart sent events again), and the positions they add up to."""
    journal = directory / "out" / "trading-journal.db"
    events = sorted((event.to_record() for event in read_events(journal)),
                    key=lambda e: (e["client_order_id"], e["sequence"]))
    return events, positions_report(journal)


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory):
    """Per mode, the log and positions and the journal of a fault-free run."""
    runs = {}
    for delivery in ("exactly_once", "at_least_once", "at_most_once"):
        directory = tmp_path_factory.mktemp(delivery)
        cep.run(cep.compile(write(directory, delivery)), inline=True)
        runs[delivery] = outcome(directory), journaled(directory)
    return runs


def placed_at_the_venue(run_dir: Path) -> Counter:
    """How often each client order id was placed, from the venue's log of the requests it served
    (a retry whose reply was lost is answered with the order placed, marked `repeat`)."""
    db = sqlite3.connect(run_dir / "paper.requests.sqlite")
    try:
        requests = [msgpack.unpackb(data) for (data,) in db.execute("SELECT request FROM served")]
    finally:
        db.close()
    return Counter(r["order"]["client_order_id"] for r in requests if r["op"] == "place" and not r.get("repeat"))


def same_positions(book: list[dict], expected: list[dict]) -> bool:
    """The same positions, the sums of the same fills in any order (within floating-point error)."""
    def same(a, b) -> bool:
        return a == b if isinstance(a, str) else math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)

    return len(book) == len(expected) and all(
        p.keys() == q.keys() and all(same(p[k], q[k]) for k in p) for p, q in zip(book, expected))


SEEDS = [int(os.environ["CEP_FAULT_SEED"])] if os.environ.get("CEP_FAULT_SEED") else None


def under_fire(workdir: Path, delivery: str, victim: str):
    """Each run's plan, where-string and journal, for the seeds of this test."""
    for seed in SEEDS or [random.randrange(1 << 32) for _ in range(int(os.environ.get("CEP_SOAK", "1")))]:
        plan = cep.compile(write(workdir, delivery))
        rng = random.Random(seed)
        shots = [(at, [victim]) for at in sorted(rng.uniform(*KILL_WINDOW_S) for _ in range(KILLS))]
        killed, status, hung = kill_at(plan, shots, RUN_DEADLINE_S)
        where = f"seed {seed}, {victim} killed {len(killed)} times (replay: CEP_FAULT_SEED={seed})"
        assert len(killed) >= 2 and status.restarts.get(victim, 0) >= len(killed), where
        assert not hung, f"the run hung: {where}"
        fills = [(e.client_order_id, e.fill_id) for e in read_events(workdir / "out" / "trading-journal.db")
                 if e.fill_id]
        assert len(fills) == len(set(fills)), f"a fill journaled twice: {where}"
        placed = placed_at_the_venue(Path(plan.run_dir))
        assert placed and max(placed.values()) == 1, f"a client order id placed twice: {where}"
        yield placed, where, status


@pytest.mark.parametrize("victim", VICTIMS)
def test_under_exactly_once_killing_the_executor_the_venue_or_the_positions_process_changes_nothing(
        workdir, fault_free, victim):
    (log, _), _ = fault_free["exactly_once"]
    for placed, where, _ in under_fire(workdir, "exactly_once", victim):
        assert outcome(workdir) == fault_free["exactly_once"][0], where
        assert sum(placed.values()) == len({e["client_order_id"] for e in log if e["status"] == "SUBMITTED"}), where


@pytest.mark.parametrize("victim", VICTIMS)
def test_under_at_least_once_a_restart_never_places_an_order_twice_nor_journals_a_fill_twice(
        workdir, fault_free, victim):
    _, (events, positions) = fault_free["at_least_once"]
    for placed, where, _ in under_fire(workdir, "at_least_once", victim):
        after, book = journaled(workdir)
        assert {e["signal_id"] for e in after} >= {e["signal_id"] for e in events}, f"signals not decided: {where}"
        assert set(placed) == {e["client_order_id"] for e in after if e["status"] == "SUBMITTED"}, where
        if victim == "sink-book":  # events sent again are journaled later: positions add up in another order
            assert after == events and same_positions(book, positions), where
        else:  # every order sent got its fills, or was canceled because the venue lost it
            assert none_left_working(after), where


FINAL = {"FILLED", "DENIED", "REJECTED", "EXPIRED", "CANCELED"}


def none_left_working(events: list[dict]) -> bool:
    """No order ends working: each was filled, expired, rejected, denied or canceled (a
    restarted paper venue lost it: VENUE_RESTARTED)."""
    final = {e["client_order_id"]: e for e in events}
    return all(e["status"] in FINAL and (e["status"] != "CANCELED" or (e["reason"] or "").startswith("VENUE_RESTARTED"))
               for e in final.values())


@pytest.mark.parametrize("victim", ["executor-exec", "venue-paper"])
def test_under_at_most_once_a_restart_loses_what_was_in_flight_counted_and_never_places_an_order_twice(
        workdir, fault_free, victim):
    """What was on its way to a killed process is lost, and counted on the edge it came by (the
    signals and quotes to the executor, the quotes to the venue); nothing is placed twice; the
    executor trades on with what its order log kept, and a venue that lost its book says so."""
    _, (events, _) = fault_free["at_most_once"]
    for _, where, status in under_fire(workdir, "at_most_once", victim):
        after, _ = journaled(workdir)
        lost = {e["signal_id"] for e in events} - {e["signal_id"] for e in after}
        edges = status.edges()
        if victim == "executor-exec":
            assert len(lost) <= edges["exec.in->executor-exec"].dropped, where
        else:  # the executor lived: its events all reached the journal
            assert not lost and edges["ticks->venue-paper"].dropped > 0, where
            assert none_left_working(after), where
