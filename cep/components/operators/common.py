"""What the operator modules share: the params base class, validated param types, the key of a
record, per-key state, and the shape of a record that groups events (buffers, windows)."""
from __future__ import annotations

import ast

from typing import Annotated, Any, Callable, Iterator, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict

from cep.components.base import BatchOperator, BuildContext, per_record
from cep.components.state import restorer
from cep.durations import parse_duration
from cep.errors import ExpressionError
from cep.events import Record
from cep.expressions import compile_expression


class ExpressionUse(NamedTuple):
    """One expression of a step, with what is in scope where it is evaluated."""

    param: str                   # where it sits in the step's params, e.g. "fields.mid"
    source: str
    bound: tuple[str, ...]       # names the step binds (`prev`, `acc`, `events`)
    fields: frozenset[str]       # record fields it may read


class OpParams(BaseModel):
    """Params of an operator: unknown keys rejected, immutable once validated.

    Two questions the compiler asks of any step, answered by the step itself:
    `expressions()` for the name check against the stream's fields, `output_fields()` for type flow.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def expressions(self, fields: frozenset[str], key: str | None = None) -> Iterator[ExpressionUse]:
        """Every expression the step evaluates, given the fields and key of its input stream;
        `compile_expression(use.source, fields=use.fields, bound=use.bound)` checks its names."""
        return iter(())

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        """The fields of the records the step emits, given those it receives and the stream key."""
        return fields

    def input_warnings(self, fields: frozenset[str], key: str | None = None) -> list[str]:
        """What is legal but likely not meant, given the fields and key of the input stream
        (`cep validate` and `cep run` print these without failing)."""
        return []

    def record_steps(self) -> list[tuple[str, str | None, str]] | None:
        """The step as stateless record steps (`("keep", None, expr)`, `("set", field, expr)`)
        that the runtime may fuse with its neighbours into one loop; None if it cannot be."""
        return None


def _syntax_checked(source: str) -> str:
    """Load-time check of syntax and whitelist; names are checked later against the schema."""
    try:
        compile_expression(source)
    except ExpressionError as exc:
        raise ValueError("; ".join(f"{p.message}" + (f" ({p.hint})" if p.hint else "")
                                   for p in exc.problems)) from None
    return source


def _positive_duration(value: str | int | float) -> str | int | float:
    if parse_duration(value) <= 0:
        raise ValueError(f"a duration must be longer than zero, got {value!r}")
    return value


Expr = Annotated[str, AfterValidator(_syntax_checked)]
"""An expression string whose syntax and whitelist were checked when the pipeline was loaded."""

Duration = Annotated[str | int | float, AfterValidator(_positive_duration)]
"""A positive duration as written (`500ms`, `2s`, bare seconds); kept as written so a dumped and
re-validated params model means the same; read it in ns with `parse_duration`."""


def compiled(source: str, *bound: str) -> Callable[..., Any]:
    """The function of an expression already checked at load time: `f(record, *bound_values)`."""
    return compile_expression(source, bound=bound).function


def reads_prev(source: str) -> bool:
    """Whether an (already checked) expression uses `prev`, i.e. needs per-key state."""
    return any(isinstance(node, ast.Name) and node.id == "prev" for node in ast.walk(ast.parse(source, mode="eval")))


def key_getter(ctx: BuildContext) -> Callable[[Record], Any]:
    """The partition key of a record: the value of `ctx.key`, or None for an unkeyed stream.

    A record without the key field raises KeyError, so the caller dead-letters it.
    """
    key = ctx.key
    if key is None:
        return lambda record: None
    return lambda record: record[key]


def per_key(ctx: BuildContext, step: Callable[[Record, Any], tuple[Record | None, Any]],
            schema: Any, initial: Any = None) -> BatchOperator:
    """A per-record operator with one state value per key.

    `step(record, state) -> (output or None, new state)`; a key's first record gets `initial`.
    A record whose step raises is dead-lettered and leaves its key's state as it was. The states
    are checkpointed for exactly_once (`BuildContext.keep_state`) as they are, so they must be
    plain data (`cep.components.state`) of the type `schema`.
    """
    key_of = key_getter(ctx)
    states: dict[Any, Any] = {}

    def restore(saved: dict[Any, Any]) -> None:
        states.clear()
        states.update(saved)

    ctx.keep_state(lambda: states, restorer(dict[Any, schema], restore))

    def transform(record: Record) -> Record | None:
        key = key_of(record)
        out, states[key] = step(record, states.get(key, initial))
        return out

    return per_record(transform, ctx)


def group_record(key_field: str | None, key: Any, timestamp: int | None, events: list[Record],
                 **extra: Any) -> Record:
    """The record a buffer or window emits: its key, its time, how many events, the events."""
    record: Record = {key_field: key} if key_field is not None else {}
    record.update(timestamp=timestamp, **extra, count=len(events), events=events)
    return record


def group_fields(key: str | None, *extra: str) -> frozenset[str]:
    """The fields of the records `group_record` builds."""
    return frozenset({"timestamp", "count", "events", *extra, *([key] if key else [])})
