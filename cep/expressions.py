"""The safe expression language of `filter`, `map`, `where`, `emit` and window aggregates.

An expression is one Python formula over the fields of a record: `(bid_price + ask_price) / 2`,
`prev is None or mid > prev.mid`, `avg(events, 'mid')`. It is parsed with `ast`, checked against a
whitelist, and compiled once into a plain Python function, so evaluating it costs what the same
lambda written by hand costs (well under a microsecond for a small formula).

What a user may write:
- literals (numbers, strings, True/False/None), tuples and lists;
- arithmetic `+ - * / // % **`, comparisons including chains, `is None`, `in`, `not in`,
  `and`/`or`/`not`, `x if cond else y`, subscripts and slices (`up[-1]`, `events[:3]`);
- names: record fields, the names the operator binds (`prev`, `acc`, `events`, `up`...);
- `record.field` on a bound record or a field holding a record (`prev.mid`, `up[-1].ask_price`);
- calls to abs, min, max, round, len, sum, avg, int, float, str, bool, and `math.<function>`;
  `math.pi`, `math.e`, `math.inf` and the other public constants of `math`.
  `sum`, `avg`, `min`, `max` also take a list of records and a field name: `avg(events, 'mid')`.

Why the compiled code is safe: after the rewrite the only names left in the generated function
are its own parameters (the record and the bound values) and the whitelisted functions, looked up
in a namespace with empty `__builtins__`. Every user-written field name becomes a dict subscript
(`bid_price` -> `record['bid_price']`) and every attribute becomes one too (`prev.mid` ->
`prev['mid']`), so the generated code performs no attribute lookup at all: no path leads from an
expression to an object's `__class__`, `__globals__` or any module. Names and attributes starting
with `__` are refused anyway, as are lambdas, comprehensions, walrus, f-strings and starred
arguments, so an error message says what is wrong rather than failing later. Sizes are capped
(source length and nesting depth) before anything recursive runs. Cost is bounded too
(`cep.expression_costs`): operations whose cost grows with a value (integer powers, factorial,
comb, perm, sequence repetition, printf widths) check their operands first and raise
`CostLimitError`; where the operands are constants, that happens at compile time.

Run-time errors (a missing field -> KeyError, `prev.mid` while `prev` is None -> TypeError, a
division by zero) are raised to the caller, which dead-letters the record and goes on.
"""
from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Callable, NoReturn

from cep.errors import ExpressionError, Location, Problem
from cep.expression_costs import (GUARDED_FUNCTIONS, GUARDED_MATH, GUARDED_OPERATORS, LIMITS_HINT,
                                  MAX_INT_EXPONENT, CostLimitError, first_costly_constant,
                                  needs_guard)

MAX_LENGTH = 2_000
"""Longest expression source accepted, checked before parsing."""

MAX_DEPTH = 64
"""Deepest syntax tree accepted, checked before any recursive pass over the tree."""

__all__ = ["CostLimitError", "Expression", "FUNCTIONS", "MATH", "MAX_DEPTH", "MAX_INT_EXPONENT",
           "MAX_LENGTH", "RECORD", "compile_expression"]

RECORD = "_cep_record"
"""The name under which a compiled expression's `body` reads its record (`RECORD['mid']`)."""
_MATH_PREFIX = "_cep_math_"


# -- the functions an expression may call ------------------------------------------------------
def _field_form(args: tuple, kwargs: dict) -> bool:
    """`f(records, 'field')`: a list of records and the name of the field to aggregate."""
    return (len(args) == 2 and not kwargs and isinstance(args[0], (list, tuple))
            and isinstance(args[1], str))


def _over_field(builtin: Callable[..., Any], name: str) -> Callable[..., Any]:
    def aggregate(*args: Any, **kwargs: Any) -> Any:
        if _field_form(args, kwargs):
            records, field = args
            return builtin(record[field] for record in records)
        return builtin(*args, **kwargs)
    aggregate.__name__ = name
    return aggregate


def _mean(values: Any) -> float:
    values = list(values)
    if not values:
        raise ValueError("avg() of no values")
    return sum(values) / len(values)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "len": len, "float": float, "str": str, "bool": bool, **GUARDED_FUNCTIONS,
    "min": _over_field(min, "min"), "max": _over_field(max, "max"),
    "sum": _over_field(GUARDED_FUNCTIONS["sum"], "sum"), "avg": _over_field(_mean, "avg"),
}
"""The functions an expression may call, by the name it calls them with."""

MATH: dict[str, Any] = {**{name: value for name, value in vars(math).items()
                           if not name.startswith("_")}, **GUARDED_MATH}
"""`math.<name>` an expression may use: the module's public functions and constants."""

_ALLOWED_NODES: tuple[type, ...] = (
    ast.Expression, ast.Constant, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp,
    ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Call, ast.keyword,
    ast.Load,
    ast.And, ast.Or,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.UAdd, ast.USub, ast.Not,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)
_CONSTANT_TYPES = (int, float, str, bool, type(None))
_FRIENDLY_NAMES = {
    ast.Lambda: "lambda", ast.ListComp: "a list comprehension", ast.SetComp: "a set comprehension",
    ast.DictComp: "a dict comprehension", ast.GeneratorExp: "a generator expression",
    ast.NamedExpr: "an assignment expression (:=)", ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string", ast.Starred: "a starred expression (*x)",
    ast.Dict: "a dict literal", ast.Set: "a set literal", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield", ast.BitAnd: "the & operator",
    ast.BitOr: "the | operator", ast.BitXor: "the ^ operator", ast.LShift: "the << operator",
    ast.RShift: "the >> operator", ast.Invert: "the ~ operator", ast.MatMult: "the @ operator",
}
_ALLOWED_CALLS = ", ".join(sorted(FUNCTIONS)) + " and math.<function>"


class Expression:
    """A checked, compiled expression.

    Call it with a record and the values of the names it was compiled with as `bound`, in that
    order: `expr(record, prev)`. `function` is the same callable without this object's call
    overhead, for hot loops. Errors of evaluation (KeyError for a missing field, TypeError,
    ZeroDivisionError...) propagate: the caller dead-letters the record.
    """

    __slots__ = ("source", "fields", "bound", "function", "body", "namespace")

    def __init__(self, source: str, fields: frozenset[str], bound: tuple[str, ...],
                 function: Callable[..., Any], body: ast.expr, namespace: dict[str, Any]):
        self.source = source
        self.fields = fields          # record fields the expression reads by name
        self.bound = bound            # the names bound to the extra call arguments, in order
        self.function = function
        self.body = body              # the checked, rewritten tree, reading the record as RECORD
        self.namespace = namespace    # the only globals `body` may see (whitelisted functions)

    def __call__(self, record: Mapping[str, Any], *bound_values: Any) -> Any:
        return self.function(record, *bound_values)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: str, *, fields: Collection[str] | None = None,
                       bound: Sequence[str] = (), location: Location | None = None) -> Expression:
    """Check `source` against the whitelist and compile it once.

    `fields`: the record fields known to exist; when given, any other name (not bound, not an
    allowed function) is an error with a "did you mean" hint. When None, unknown names are read
    from the record and a missing one raises KeyError at run time.
    `bound`: names the caller passes values for after the record (`prev`, `acc`, `events`);
    a bound name shadows a record field of the same name.
    Raises `ExpressionError` with `location` for every mistake; never a foreign exception.
    """
    _check_bound_names(bound)
    fail = _Failer(source, location)
    if not isinstance(source, str):
        fail(f"expected an expression string, got {type(source).__name__}",
             "quote the expression in YAML, e.g. \"ask_price > bid_price\"")
    if not source.strip():
        fail("the expression is empty", "write a formula such as \"ask_price > bid_price\"")
    if len(source) > MAX_LENGTH:
        fail(f"the expression is {len(source)} characters long; the limit is {MAX_LENGTH}",
             "split it into several map steps")
    tree = _parse(source, fail)
    _check_shape(tree, fail)
    rewriter = _Rewriter(fail, frozenset(fields) if fields is not None else None, tuple(bound))
    body = rewriter.visit(tree.body)
    namespace = _namespace(rewriter.math_names)
    refused = first_costly_constant(body, namespace)
    if refused is not None:
        fail(str(refused), LIMITS_HINT)
    return Expression(source, frozenset(rewriter.fields_read), tuple(bound),
                      _build_function(body, tuple(bound), namespace, fail), body, namespace)


# -- checking ----------------------------------------------------------------------------------
class _Failer:
    """Raises the ExpressionError for one source, so every check words its errors alike."""

    def __init__(self, source: Any, location: Location | None):
        shown = source if isinstance(source, str) else repr(source)
        self.shown = shown if len(shown) <= 60 else shown[:57] + "..."
        self.location = location

    def __call__(self, message: str, hint: str | None = None) -> NoReturn:
        raise ExpressionError(Problem(f"expression {self.shown!r}: {message}", self.location,
                                      hint))


def _check_bound_names(bound: Sequence[str]) -> None:
    for name in bound:
        if (not name.isidentifier() or name.startswith("_") or name in FUNCTIONS
                or name == "math"):
            raise ValueError(f"cannot bind {name!r} in an expression")


def _parse(source: str, fail: _Failer) -> ast.Expression:
    try:
        return ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        if any(word in source.split() for word in ("import", "from")):
            fail("imports are not allowed", "an expression is one formula; use math.<function> "
                                             "for mathematics")
        where = f" at column {exc.offset}" if exc.offset else ""
        fail(f"invalid syntax: {exc.msg}{where}",
             "an expression is one Python formula such as \"(bid_price + ask_price) / 2\"")
    except (RecursionError, MemoryError, ValueError):
        fail("the expression is too deeply nested", f"at most {MAX_DEPTH} levels")


def _check_shape(tree: ast.AST, fail: _Failer) -> None:
    """Refuse trees deeper than MAX_DEPTH without recursing (so no RecursionError is possible),
    then the first name or attribute starting with `__`, whatever surrounds it."""
    dunders: list[tuple[int, str]] = []
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            fail("the expression is too deeply nested", f"at most {MAX_DEPTH} levels")
        name = (node.id if isinstance(node, ast.Name) else node.attr
                if isinstance(node, ast.Attribute) else node.arg
                if isinstance(node, ast.keyword) else None)
        if name and name.startswith("__"):
            dunders.append((getattr(node, "end_col_offset", 0) or 0, name))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    if dunders:
        fail(f"{min(dunders)[1]!r} is not allowed: names starting with '__' are refused",
             "expressions read record fields, e.g. prev.mid")


class _Rewriter(ast.NodeTransformer):
    """Checks every node against the whitelist and rewrites names into record subscripts."""

    def __init__(self, fail: _Failer, fields: frozenset[str] | None, bound: tuple[str, ...]):
        self.fail = fail
        self.known_fields = fields
        self.bound = bound
        self.fields_read: set[str] = set()
        self.math_names: set[str] = set()

    def visit(self, node: ast.AST) -> Any:
        if not isinstance(node, _ALLOWED_NODES):
            what = _FRIENDLY_NAMES.get(type(node), type(node).__name__)
            self.fail(f"{what} is not allowed in an expression",
                      "an expression is one formula over record fields; iterate with operators "
                      "such as scan or window")
        return super().visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if not isinstance(node.value, _CONSTANT_TYPES):
            self.fail(f"the literal {node.value!r} is not allowed",
                      "use numbers, strings, True, False or None")
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        """`**` always, `*` and `%` where an operand may be a sequence or a big integer, become
        calls of their guarded twins (`cep.expression_costs`)."""
        self.generic_visit(node)
        guard = GUARDED_OPERATORS.get(type(node.op))
        if guard is None or not (isinstance(node.op, ast.Pow) or needs_guard(node, _MATH_PREFIX)):
            return node
        return ast.copy_location(
            ast.Call(ast.Name(guard[0], ast.Load()), [node.left, node.right], []), node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        name = node.id
        if name in self.bound:
            return node
        if name == "math":
            self.fail("math can only be used as math.<name>, e.g. math.sqrt(x) or math.pi")
        if self.known_fields is not None and name not in self.known_fields:
            candidates = sorted(self.known_fields | set(self.bound) | set(FUNCTIONS))
            close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
            self.fail(f"unknown name {name!r}",
                      f"did you mean {close[0]!r}?" if close
                      else f"known fields: {', '.join(sorted(self.known_fields)) or 'none'}")
        self.fields_read.add(name)
        return ast.copy_location(
            ast.Subscript(ast.Name(RECORD, ast.Load()), ast.Constant(name), ast.Load()), node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id == "math":
            return self._math(node)
        if not isinstance(node.value, (ast.Name, ast.Attribute, ast.Subscript)):
            self.fail(f"'.{node.attr}' can only be read from a record (prev.mid, up[-1].ask_price)"
                      " or the math module")
        value = self.visit(node.value)
        return ast.copy_location(ast.Subscript(value, ast.Constant(node.attr), ast.Load()), node)

    def _math(self, node: ast.Attribute) -> ast.AST:
        if node.attr not in MATH:
            close = difflib.get_close_matches(node.attr, sorted(MATH), n=1)
            self.fail(f"math.{node.attr} does not exist",
                      f"did you mean math.{close[0]}?" if close else None)
        self.math_names.add(node.attr)
        return ast.copy_location(ast.Name(_MATH_PREFIX + node.attr, ast.Load()), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        is_math = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                   and func.value.id == "math")
        if isinstance(func, ast.Name) and func.id in FUNCTIONS:
            new_func: ast.AST = func
        elif is_math:
            new_func = self._math(func)  # type: ignore[arg-type]
            if not callable(MATH[func.attr]):  # type: ignore[union-attr]
                self.fail(f"math.{func.attr} is a constant, not a function")  # type: ignore[union-attr]
        else:
            self.fail(f"calling {ast.unparse(func)!r} is not allowed",
                      f"allowed calls: {_ALLOWED_CALLS}")
        for keyword in node.keywords:
            if keyword.arg is None:
                self.fail("**keyword arguments are not allowed")
        args = [self.visit(arg) for arg in node.args]
        keywords = [ast.keyword(k.arg, self.visit(k.value)) for k in node.keywords]
        return ast.copy_location(ast.Call(new_func, args, keywords), node)


def _namespace(math_names: set[str]) -> dict[str, Any]:
    """The only globals a compiled expression sees: whitelisted functions, no builtins."""
    namespace: dict[str, Any] = {"__builtins__": {}, **dict(GUARDED_OPERATORS.values()),
                                 **FUNCTIONS}
    namespace.update({_MATH_PREFIX + name: MATH[name] for name in math_names})
    return namespace


def _build_function(body: ast.AST, bound: tuple[str, ...], namespace: dict[str, Any],
                    fail: _Failer) -> Callable[..., Any]:
    """`lambda _cep_record, *bound: body`, evaluated in a namespace of whitelisted names only."""
    params = ast.arguments(posonlyargs=[], args=[ast.arg(RECORD)] + [ast.arg(n) for n in bound],
                           kwonlyargs=[], kw_defaults=[], defaults=[])
    tree = ast.fix_missing_locations(ast.Expression(ast.Lambda(params, body)))
    try:
        code = compile(tree, "<expression>", "eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        fail(f"cannot be compiled: {exc}")
    return eval(code, namespace)  # noqa: S307 - the tree was rewritten and checked above
