"""Where each replayable source of a worker is in its input, kept across a restart of the worker
under `at_most_once` and `at_least_once` (`exactly_once` keeps it in its checkpoint instead).

A source's offset is the number of records it has emitted. It is written to
`<run dir>/offsets/<worker>.msgpack` (a msgpack map of node to offset, plain data, replaced
atomically, 0600), never per record and never on the hot path; a restarted worker's sources
resume from it (`Worker._counted` leaves out what it says was emitted). What is written depends
on what the mode promises:

- `at_most_once` may lose, never repeat (`Reservation`): before a batch takes a source past the
  offset on file, the file is moved ahead by about `RESERVE_S` of emission, so it always covers
  everything sent. A restart skips what was sent and what had been reserved but not sent yet.
- `at_least_once` may repeat, never lose (`Acknowledged`): every `SAVE_EVERY_S` the worker notes
  where its sources are and where its outlets' windows are; an offset is written once every frame
  sent up to it is acknowledged, so a restart repeats at most what was in flight then.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import msgpack

from cep.errors import RuntimeFailure
from cep.runtime.delivery import Window
from cep.runtime.rundir import private_dir, private_file

SAVE_EVERY_S = 0.1
"""How often an at_least_once worker looks for offsets that became safe (and writes them)."""
RESERVE_S = 0.25
"""About how much emission an at_most_once reservation covers: what a restart may skip, and how
often the file is written."""
FIRST_STEP = 256
MAX_OFFSET = 1 << 62


class OffsetFile:
    """One worker's offsets on disk. `fresh` (a first start in this run) forgets an older run's."""

    def __init__(self, run_dir: Path, worker: str, fresh: bool) -> None:
        directory = private_dir(run_dir / "offsets", "offsets directory")
        self.path = directory / f"{worker}.msgpack"
        if fresh:
            self.path.unlink(missing_ok=True)

    def load(self) -> dict[str, int]:
        """The offsets on file ({} if none); RuntimeFailure for a file that is not one of ours."""
        try:
            data = msgpack.unpackb(self.path.read_bytes(), raw=False, max_ext_len=0)
        except FileNotFoundError:
            return {}
        except Exception as exc:  # a damaged or planted file is refused, never trusted
            raise RuntimeFailure(f"source offsets {self.path} are unreadable ({type(exc).__name__}): "
                                 "remove the file to start the sources afresh") from None
        if not (isinstance(data, dict) and all(isinstance(node, str) and isinstance(offset, int)
                                               and 0 <= offset < MAX_OFFSET for node, offset in data.items())):
            raise RuntimeFailure(f"source offsets {self.path} are not a map of node to offset: "
                                 "remove the file to start the sources afresh")
        return data

    def save(self, offsets: dict[str, int]) -> None:
        """Replace the file with `offsets` at once: a crash leaves the old file or the new one."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.unlink(missing_ok=True)
        fd = private_file(temporary)
        try:
            os.write(fd, msgpack.packb(offsets))
        finally:
            os.close(fd)
        os.replace(temporary, self.path)


class Reservation:
    """at_most_once: the offsets on file are always at or ahead of what the sources emitted.

    A reservation covers `step` records past the batch that needed it; the step doubles while
    reservations come less than `RESERVE_S` apart and halves when they come further apart, so the
    file is written a few times a second at any rate and a restart skips about that much."""

    def __init__(self, file: OffsetFile, emitted: dict[str, int], clock: Callable[[], float]) -> None:
        self.file = file
        self.clock = clock
        self.reserved = dict(emitted)
        self._steps: dict[str, tuple[int, float]] = {}  # node -> (step, time) of its last reservation

    def cover(self, node: str, offset: int) -> None:
        """Called before a batch that takes `node` to `offset` leaves: reserve ahead if needed."""
        if offset <= self.reserved.get(node, 0):
            return
        now = self.clock()
        step, then = self._steps.get(node, (FIRST_STEP // 2, now))
        step = step * 2 if now - then < RESERVE_S else max(step // 2, 1)
        self.reserved[node] = offset + step
        self._steps[node] = (step, now)
        self.file.save(self.reserved)


class Acknowledged:
    """at_least_once: an offset goes on file once every frame sent up to it is acknowledged."""

    def __init__(self, file: OffsetFile, emitted: dict[str, int], windows: list[Window]) -> None:
        self.file = file
        self.emitted = emitted
        self.windows = windows
        self.saved = dict(emitted)
        self._marks: list[tuple[dict[str, int], list[int]]] = []  # (offsets, each window's next ordinal)

    def note(self) -> None:
        """Between passes, with every record emitted so far in a frame: save what became safe,
        and mark where the sources and the windows are now."""
        lows = [window.low_ordinal() for window in self.windows]
        safe = None
        while self._marks and all(low >= mark for low, mark in zip(lows, self._marks[0][1])):
            safe = self._marks.pop(0)[0]
        if safe is not None and safe != self.saved:
            self.file.save(safe)
            self.saved = safe
        if self.emitted != (self._marks[-1][0] if self._marks else self.saved):
            self._marks.append((dict(self.emitted), [window.next_ordinal for window in self.windows]))
