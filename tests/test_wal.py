"""The SQLite logs a worker writes on its hot path (exactly_once checkpoints, the executor's order
log, the venue's request log) move their WAL into the database from a thread of their own: a
COMMIT never runs SQLite's automatic checkpoint (with its syncs) while the worker waits."""
from __future__ import annotations

import threading

from cep.orders.recovery import OrderLog
from cep.orders.service import RequestLog
from cep.runtime.checkpoint import CheckpointStore
from cep.runtime.rundir import private_database
from cep.runtime.wal import WalCheckpointer
from tests.support import wait_for

DEADLINE_S = 20


def wal_threads() -> set[threading.Thread]:
    """The checkpointing threads alive now (other tests' logs may still hold theirs)."""
    return {thread for thread in threading.enumerate() if thread.name.startswith("wal ")}


def test_commits_never_checkpoint_and_the_thread_moves_the_wal_into_the_database(workdir):
    path = workdir / "log.sqlite"
    db = private_database(path, fresh=True)
    before = wal_threads()
    wal = WalCheckpointer(db, path)
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    db.execute("CREATE TABLE t (v BLOB)")
    for _ in range(1_500):  # ~6 MB of WAL: SQLite alone would checkpoint inside some COMMIT
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 4_000,))
    # only a checkpoint writes pages into the database file
    wait_for(lambda: path.stat().st_size >= 4_000_000, DEADLINE_S, "the WAL moved into the database")
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1_500
    wal.close()
    assert wal_threads() == before
    db.close()


def test_each_hot_path_log_has_its_wal_moved_in_the_background_until_closed(workdir):
    before = wal_threads()
    logs = [OrderLog(workdir / "exec.orders.sqlite", fresh=True),
            RequestLog(workdir / "paper.requests.sqlite", fresh=True),
            CheckpointStore(workdir / "checkpoints" / "w.sqlite", fresh=True)]
    assert [log.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] for log in logs] == [0, 0, 0]
    assert len(wal_threads() - before) == 3
    for log in logs:
        log.close()
    assert wal_threads() == before


def test_a_log_dropped_unclosed_takes_its_thread_with_it(workdir):
    """A log dropped without close (a crashed executor's, in a test) leaves no thread behind."""
    before = wal_threads()
    log = OrderLog(workdir / "dropped.orders.sqlite", fresh=True)
    (thread,) = wal_threads() - before
    del log
    thread.join(DEADLINE_S)
    assert not thread.is_alive()
