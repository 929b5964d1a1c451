"""Pattern expressions: `where`/`until` conditions and `emit` values, compiled once.

A pattern expression may name the event's fields, `prev` (in a condition) and any step of the
pattern. Binding a looping step costs a walk of the partial match, so each expression is compiled
with only the names it actually uses: `mid > prev.mid` binds `prev` alone, never the steps.
"""
from __future__ import annotations

import ast
from typing import Any, Callable, Sequence

from cep.components.patterns.model import Condition
from cep.expressions import Expression, compile_expression


def compile_bound(source: str, names: Sequence[str]) -> tuple[Expression, tuple[str, ...]]:
    """`source` compiled with the subset of `names` it reads, and that subset (in `names` order).

    Raises `ExpressionError` (a cep UserError) for anything outside the expression language.
    """
    compile_expression(source, bound=tuple(names))  # every check, with every name in scope
    read = _names_read(source)
    used = tuple(name for name in names if name in read)
    return compile_expression(source, bound=used), used


class BoundCondition:
    """A step condition `(event, view) -> bool` evaluating an expression on the event.

    It also declares what it reads: `function(event, *values of used)` is the same test, so the
    automaton can bind `used` straight from its buffer (see `view.node_binder`) instead of
    building a `MatchView` for every test.
    """

    __slots__ = ("function", "used")

    def __init__(self, function: Callable[..., Any], used: tuple[str, ...]):
        self.function = function
        self.used = used

    def __call__(self, event: dict, view) -> Any:
        return self.function(event, *view.bind(self.used))


def as_condition(source: str, names: Sequence[str]) -> Condition:
    """A step condition `(event, view) -> bool` evaluating `source` on the event."""
    expression, used = compile_bound(source, names)
    return BoundCondition(expression.function, used)


def as_value(source: Any, names: Sequence[str]) -> Callable[[dict, dict], Any]:
    """An emit value `(last_event, bound) -> value`: an expression for a string, else the
    literal itself. `bound` maps step names to what the match bound (see `bind_match`)."""
    if not isinstance(source, str):
        return lambda event, bound: source
    expression, used = compile_bound(source, names)
    function = expression.function
    return lambda event, bound: function(event, *(bound[name] for name in used))


def _names_read(source: str) -> set[str]:
    tree = ast.parse(source.strip(), mode="eval")
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}

