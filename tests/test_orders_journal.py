"""The journal: append-only, private, plain JSON; positions rebuilt from it alone equal the live
ones, on the shipped real data driven through the paper venue."""
import csv
import gzip
import json
import os
import sqlite3
import stat

import pytest

from cep.errors import UserError
from cep.events import TickEvent
from cep.orders.desk import PaperDesk
from cep.orders.journal import Journal, read_events
from cep.orders.lifecycle import Fill, OrderLedger
from cep.orders.paper import PaperVenue
from cep.orders.positions import RiskManager
from cep.orders.queries import order_history, parse_time, positions_at, positions_report
from cep.orders.risk import RiskLimits
from cep.testing import run_operator
from tests.support import SHIPPED_TICKS


def issue_example_events():
    ledger = OrderLedger()
    events = []
    for number, (side, quantity, price) in enumerate([("BUY", 100, 50.0), ("SELL", 150, 55.0), ("BUY", 50, 52.0)]):
        coid = f"c{number}"
        events.append(ledger.open(f"s{number}", coid, "X", side, quantity, 10 * number))
        events.append(ledger.move(coid, "SUBMITTED", 10 * number))
        events.append(ledger.move(coid, "ACCEPTED", 10 * number + 1))
        events.append(ledger.fill(Fill(coid, "f1", price, quantity, 10 * number + 2)))
    return events


def test_positions_rebuilt_from_the_journal_at_any_time(tmp_path):
    with Journal(tmp_path / "j.db") as journal:
        assert journal.append(issue_example_events()) == 12
    assert positions_report(tmp_path / "j.db") == [{"instrument": "X", "quantity": 0.0, "average_cost": 0.0,
                                                    "realized": 650.0}]
    assert positions_report(tmp_path / "j.db", at=12) == [{"instrument": "X", "quantity": -50.0,
                                                           "average_cost": 55.0, "realized": 500.0}]
    assert positions_report(tmp_path / "j.db", at=1) == []
    history = order_history(tmp_path / "j.db", signal_id="s1")
    assert [e.status.value for e in history] == ["NEW", "SUBMITTED", "ACCEPTED", "FILLED"]
    assert order_history(tmp_path / "j.db", client_order_id="c1") == history


def test_an_event_appended_twice_is_kept_once_and_counted(tmp_path):
    events = issue_example_events()
    with Journal(tmp_path / "j.db") as journal:
        journal.append(events[:6])
        assert journal.append(events) == 6 and journal.duplicates == 6
    assert list(read_events(tmp_path / "j.db")) == events


def test_the_journal_is_append_only_private_and_plain_json(tmp_path):
    saved = os.umask(0)
    try:
        journal = Journal(tmp_path / "j.db")
    finally:
        os.umask(saved)
    journal.append(issue_example_events())
    for name in ("j.db", "j.db-wal"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    for statement in ("UPDATE order_events SET status = 'FILLED'", "DELETE FROM order_events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            journal.db.execute(statement)
    (text,) = journal.db.execute("SELECT event FROM fills LIMIT 1").fetchone()
    assert json.loads(text)["fill_id"] == "f1"
    journal.close()


def test_what_is_not_a_journal_is_said_plainly(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.close()
    for path, message in [(tmp_path / "missing.db", "no such journal"), (tmp_path / "notes.txt", "not a cep journal"),
                          (tmp_path / "other.db", "not a cep journal")]:
        with pytest.raises(UserError, match=message):
            positions_report(path)


def test_times_read_as_nanoseconds_or_iso_8601():
    assert parse_time("1723161254024619568") == 1723161254024619568
    assert parse_time("2024-08-09T00:00:00Z") == parse_time("2024-08-09") == 1723161600 * 10**9
    assert parse_time("2024-08-09T02:00:00+02:00") == 1723161600 * 10**9
    with pytest.raises(ValueError):
        parse_time("yesterday")


QUANTITY = {"BTCUSDT": 0.01, "ETHUSDT": 0.2}


@pytest.fixture(scope="module")
def shipped_quotes_and_signals():
    if not SHIPPED_TICKS.exists():
        pytest.skip(f"needs the shipped ticks {SHIPPED_TICKS}")
    with gzip.open(SHIPPED_TICKS, "rt") as file:
        quotes = [TickEvent(int(row["timestamp"]), row["instrument"], float(row["bid_price"]),
                            float(row["ask_price"]), float(row["bid_volume"]), float(row["ask_volume"]))
                  for row in csv.DictReader(file)]
    quotes = [q for q in quotes if q.ask_price > q.bid_price]
    records = [{**q.to_record(), "mid": (q.bid_price + q.ask_price) / 2} for q in quotes]
    signals = run_operator("momentum", {"count": 5, "direction": "both", "quantity": 1}, records, key="instrument")
    return quotes, [{**s, "quantity": QUANTITY[s["instrument"]]} for s in signals]


def test_positions_rebuilt_from_the_journal_equal_the_live_ones_on_the_real_data(tmp_path, shipped_quotes_and_signals):
    quotes, signals = shipped_quotes_and_signals
    assert len(signals) == 629
    limits = RiskLimits(max_notional=1_000, max_position=0.6, max_spread=0.001, price_band=0.005,
                        max_quote_age_ns=5 * 10**9, max_orders=3, max_open_orders=4)
    desk = PaperDesk(limits, venue=PaperVenue(latency_ns=2_000_000, jitter_ns=1_000_000, seed=7),
                     manager=RiskManager(), journal=Journal(tmp_path / "journal.db"))
    middle = quotes[len(quotes) // 2].timestamp
    at_middle, pending = None, iter(signals)
    upcoming = next(pending, None)
    for quote in quotes:
        desk.on_quote(quote)
        while upcoming is not None and upcoming["timestamp"] <= quote.timestamp:
            desk.on_signal(upcoming)
            upcoming = next(pending, None)
        if at_middle is None and quote.timestamp >= middle:
            at_middle, middle = live(desk), quote.timestamp
    desk.finish()
    desk.journal.close()

    fills = [e for e in read_events(tmp_path / "journal.db") if e.fill_id]
    assert len(fills) > 100 and sum(desk.executor.denials.values()) > 0  # both paths exercised
    assert {p.instrument for p in desk.manager.book.positions()} == {"BTCUSDT", "ETHUSDT"}
    assert as_rows(positions_at(tmp_path / "journal.db")) == live(desk)
    assert as_rows(positions_at(tmp_path / "journal.db", at=middle)) == at_middle != live(desk)
    first = fills[0]
    history = order_history(tmp_path / "journal.db", signal_id=first.signal_id)
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    assert history[0].status.value == "NEW" and history[-1].filled_quantity == first.quantity


def live(desk):
    return as_rows(desk.manager.book)


def as_rows(book):
    return [(p.instrument, p.quantity, p.average_cost, p.realized) for p in book.positions()]


def test_the_package_docstring_example_runs():
    import doctest

    import cep.orders
    failed, tried = doctest.testmod(cep.orders, raise_on_error=False, verbose=False)
    assert tried > 5 and failed == 0


def test_a_reader_sees_what_was_committed_while_the_writer_is_still_open(tmp_path):
    events = issue_example_events()
    journal = Journal(tmp_path / "j.db")
    journal.append(events[:4])
    assert positions_report(tmp_path / "j.db") == [{"instrument": "X", "quantity": 100.0, "average_cost": 50.0,
                                                    "realized": 0.0}]
    journal.append(events[4:])
    assert positions_report(tmp_path / "j.db")[0]["realized"] == 650.0
    journal.close()
