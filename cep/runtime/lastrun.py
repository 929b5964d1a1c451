"""What a run leaves in its run directory for the next: the marker of a run in progress, and the
ipc socket files of a run whose supervisor died.

`RUN_DIR/running` is written when a run starts and removed when it ends in any way its supervisor
sees (done, drained, failed with an error). Found at the next start, it says the supervisor died
without ending the run (SIGKILL, out of memory, the machine going down): the output may stop
midway. It holds plain JSON: the supervisor's pid, when the run started, a fingerprint of the
plan, and the latest incarnation of each worker, so that a rerun of the same plan under
`exactly_once` can resume every worker from its checkpoint with sequence numbers of a new
incarnation (receivers restored from their checkpoints then tell new frames from old ones).
Its modification time is refreshed while the run goes on: when it stops changing, the run ended.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cep.plan import Plan
from cep.runtime.rundir import private_file

MARKER = "running"


@dataclass(frozen=True)
class PreviousRun:
    """A run of the same run directory whose supervisor died."""

    pid: int
    started: float          # time.time() at its start
    last_seen: float        # the marker's last refresh: about when it died
    fingerprint: str        # of its plan; "" if the marker could not be read
    incarnations: dict[str, int]


def fingerprint(plan: Plan) -> str:
    """Equal for equal plans: checkpoints are only resumed by the plan that wrote them."""
    return hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


class RunMarker:
    """The marker of the run in progress in `run_dir` (the caller holds the run directory's lock)."""

    def __init__(self, run_dir: Path, plan: Plan) -> None:
        self.path = run_dir / MARKER
        self.fingerprint = fingerprint(plan)
        self.started = 0.0
        self.incarnations: dict[str, int] = {}

    def previous(self) -> PreviousRun | None:
        """The run that left the marker, if one did (a damaged marker still says a run died)."""
        try:
            last_seen = self.path.stat().st_mtime
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return PreviousRun(int(data["pid"]), float(data["started"]), last_seen, str(data["plan"]),
                               {str(w): int(n) for w, n in dict(data["incarnations"]).items()})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return PreviousRun(0, last_seen, last_seen, "", {})

    def begin(self, started: float) -> None:
        self.started = started
        self._write()

    def spawned(self, worker: str, incarnation: int) -> None:
        """Note a worker's incarnation before it starts: a rerun must number its own above it."""
        self.incarnations[worker] = incarnation
        self._write()

    def refresh(self) -> None:
        """Note that the run is still going (a marker removed under a running pipeline stays so)."""
        try:
            os.utime(self.path)
        except FileNotFoundError:
            pass

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        data = {"pid": os.getpid(), "started": self.started, "plan": self.fingerprint,
                "incarnations": self.incarnations}
        temporary = self.path.with_name(MARKER + ".tmp")
        fd = private_file(temporary)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(data).encode())
        finally:
            os.close(fd)
        os.replace(temporary, self.path)


def remove_sockets(plan: Plan) -> None:
    """Remove the plan's ipc socket files (a dead supervisor's run leaves them behind; so does a
    clean one, as ZeroMQ does not unlink them). Only while holding the run directory's lock."""
    endpoints = [plan.control] + [e for edge in plan.edges for e in (*edge.endpoints, *edge.acks)]
    for endpoint in endpoints:
        if endpoint.startswith("ipc://"):
            path = Path(endpoint.removeprefix("ipc://"))
            try:
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
            except FileNotFoundError:
                pass
