"""Output that a sink starts afresh once per run: the `mode` of file sinks (`jsonl`, `positions`).

In `truncate` mode a sink empties its output when its first record comes (or at the end of a run
without any), never when it is built: a run that fails while starting (a bad data file, a busy
socket) leaves the previous run's output as it was. A claim file in the run directory
(`NODE.started`) says this run has started the output afresh, so a worker restarted after a
crash continues it, even if the crashed incarnation died before its first record; without a run
directory, a restarted worker assumes it was started.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field

from cep.components.base import BuildContext
from cep.runtime.rundir import private_file, private_run_dir

OutputMode = Literal["truncate", "append"]
MODE = Field("truncate", description="truncate: start afresh each run (a worker restarted after a crash "
                                     "goes on with it); append: add to what is there")


class Afresh:
    """`pending` until the sink has started its output afresh (`done()`), in truncate mode."""

    def __init__(self, mode: str, claim: Path | None = None) -> None:
        self.claim = claim
        self.pending = mode == "truncate" and not (claim is not None and claim.exists())

    @classmethod
    def of(cls, mode: str, ctx: BuildContext) -> "Afresh":
        """The sink `ctx.node`'s, in this worker incarnation: a new run forgets an earlier run's
        claim; a restarted worker with no run directory appends."""
        claim = ctx.run_dir / f"{ctx.node}.started" if ctx.run_dir is not None else None
        if claim is not None and ctx.incarnation == 0:
            claim.unlink(missing_ok=True)  # left by an earlier run
        restarted = ctx.incarnation > 0 and claim is None
        return cls("append" if restarted else mode, claim)

    def done(self) -> None:
        """The output was started afresh (claimed after: a crash in between starts it again)."""
        self.pending = False
        if self.claim is not None:
            private_run_dir(self.claim.parent)
            os.close(private_file(self.claim))
