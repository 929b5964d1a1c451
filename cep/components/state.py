"""Component state as `exactly_once` checkpoints keep it: plain data out, checked data back in.

A stateful component declares its state with `BuildContext.keep_state(snapshot, restore)`. The
runtime writes each snapshot to the worker's checkpoint file as msgpack, at once, so a snapshot
must be plain data: None, bool, int (any size), float, str, bytes, list, tuple and dict, nested
(dict keys too: any of those that Python can hash). What a component holds in other forms (a
deque, a set, its own objects) its snapshot turns into plain data and its restore builds again;
a snapshot may hand out the component's own containers, since they are encoded before it runs on.

What `restore` receives was read back from a file, so it must not trust it: `restorer(schema,
apply)` checks and converts the data with a pydantic type (`dict[str, int]`, `tuple[float, int]`,
`Any` for records) before `apply` sees it, and raises `InvalidState` naming the place that does
not fit; `apply` raises it too for what a type cannot say (an index out of range). The runtime
then refuses to start the worker: `checkpoint of NODE is not valid: ...`.
"""
from __future__ import annotations

from typing import Any, Callable

from pydantic import TypeAdapter, ValidationError

RecordData = dict[str, Any]
"""A record held in state (a buffered event, a previous record), as plain data."""


class InvalidState(ValueError):
    """Checkpointed data that does not have the shape its component's state needs."""


def restorer(schema: Any, apply: Callable[[Any], None]) -> Callable[[Any], None]:
    """A `restore` for `keep_state`: checks the data against `schema` (a type pydantic validates;
    lists become tuples where it says tuple), then hands the converted value to `apply`."""
    adapter = TypeAdapter(schema)

    def restore(data: Any) -> None:
        try:
            value = adapter.validate_python(data)
        except ValidationError as exc:
            raise InvalidState(_first_problem(exc)) from None
        apply(value)

    return restore


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = "".join(f"[{part!r}]" for part in problem["loc"]) or "the state"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {problem['msg']}, got {problem['input']!r:.80}{more}"
