"""Collecting every mistake in a pipeline before reporting any (the user fixes them in one go).

A `Report` holds the key-path -> `Location` map of what is being loaded and the problems found so
far. Paths are tuples of mapping keys and list indexes, as in `("streams", "quotes", "ops", 0)`;
a path that has no location of its own is reported at its nearest located ancestor.
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable

from cep.errors import ConfigError, Location, Problem

KeyPath = tuple[Any, ...]


def nearest(locations: dict[KeyPath, Location], path: KeyPath) -> Location | None:
    """The location of `path`, or of its nearest ancestor that has one (the root last)."""
    key = tuple(path)
    while key:
        if key in locations:
            return locations[key]
        key = key[:-1]
    return locations.get(())


def did_you_mean(name: str, known: Iterable[str], what: str = "known") -> str:
    """A hint for a mistyped name: the closest known name, then the list of all of them."""
    choices = sorted({str(k) for k in known})
    close = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    listing = f"{what}: {', '.join(choices)}" if choices else f"nothing is {what}"
    return f"did you mean {close[0]!r}? {listing}" if close else listing


def describe(value: Any) -> str:
    """A short, safe rendering of a user value for a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Report:
    """The problems found while loading one pipeline (or rule library), in discovery order."""

    def __init__(self, locations: dict[KeyPath, Location]):
        self.locations = locations
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # legal but likely not meant; never fail the load
        self.unresolved: set[KeyPath] = set()
        """Paths of values naming an unset variable: reported once, so no other check of such a
        value adds a follow-on error (`no such CSV file .../${DATA_DIR}/...`)."""

    def locate(self, path: KeyPath) -> Location | None:
        return nearest(self.locations, path)

    def error(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(message, self.locate(path), hint))

    def warn(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        self.warnings.append(Problem(message, self.locate(path), hint, severity="warning"))

    def add(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def sorted(self) -> list[Problem]:
        return in_file_order(self.problems)

    def raise_if_any(self) -> None:
        """Raise one `ConfigError` with every problem, ordered by file and position."""
        if self.problems:
            raise ConfigError(self.sorted())


def in_file_order(problems: Iterable[Problem]) -> list[Problem]:
    """Problems ordered by file, line and column (those without a place first)."""
    return sorted(problems, key=_position)


def _position(problem: Problem) -> tuple[str, int, int]:
    loc = problem.location
    return (loc.file, loc.line, loc.col) if loc else ("", 0, 0)
