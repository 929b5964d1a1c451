"""One exception tree for everything cep raises on purpose.

Foreign errors (yaml, pydantic, zmq, msgpack) are translated into these at the boundary of the
module that meets them, so callers handle `CepError` and never a library's exception. User mistakes
(`UserError` and its subclasses) exit with code 2; runtime failures (`RuntimeFailure`) with 1.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in a pipeline file a value came from (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One mistake in user input: where, what, and how to fix it."""

    message: str
    location: Location | None = None
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        prefix = "warning: " if self.severity == "warning" else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{prefix}{self.message}{hint}"


class CepError(Exception):
    """Base of every error cep raises deliberately."""

    exit_code = 1
    restartable = True
    """Raised in a worker: whether restarting the worker may help (False fails the run at once)."""


class UserError(CepError):
    """A mistake in what the user wrote; reported with its place and a hint, exit code 2."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(UserError):
    """The pipeline file cannot be read or does not match the pipeline schema."""


class ExpressionError(UserError):
    """An expression in a pipeline is malformed or uses something outside the whitelist."""


class PluginError(UserError):
    """A plugin cannot be loaded, or registers something invalid."""


class CompileError(UserError):
    """The pipeline is well-formed but its graph is not (unknown references, cycles, types)."""


class RuntimeFailure(CepError):
    """Something failed while running; exit code 1."""


class TransportError(RuntimeFailure):
    """A socket could not be bound or connected (address in use, bad endpoint)."""


class CodecError(CepError):
    """Bytes on the wire could not be decoded into a frame; the frame is dead-lettered."""


class WorkerCrashed(RuntimeFailure):
    """A worker process failed and could not be restarted; chained to the worker's exception."""


class UnreadableFile(RuntimeFailure):
    """A data file ends in the middle or is corrupt (a cut-off or damaged .gz): the replay cannot
    be complete, and a restarted worker would only meet the same end again, so the run fails at
    once."""

    restartable = False
