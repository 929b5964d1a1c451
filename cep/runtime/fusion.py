"""Fusing chains of stateless record steps (`filter`, `map` without `prev`) into one loop.

What users write stays the ReactiveX operator model; what runs for a chain like
`filter -> map -> filter` is one compiled function per batch (DESIGN §4: one RxPY operator costs
about 0.75 µs per event), compiled once more per layout of `Rows` it meets, so ticks that arrive
as rows leave as rows and no dict is built for them. A batch in which some record fails is redone
through the unfused operators, so exactly that record is dead-lettered, as without fusion. Records
the chain's filters leave out are counted as `filtered`, per batch.

The code generator lives here too: `compile_record_steps` and `compile_row_steps` inline the
checked trees of `cep.expressions` (each `Expression.body`, which reads its record as
`expressions.RECORD`) into one generated function, in a namespace holding only the whitelisted
functions the expressions' own namespaces hold.
"""
from __future__ import annotations

import ast
import copy
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from reactivex.subject import Subject

from cep.components.base import BatchOperator, BuildContext, batch_map
from cep.events import Batch
from cep.expressions import RECORD, Expression, compile_expression
from cep.rows import AnyBatch, Rows, as_records


def fusable(config: Any) -> bool:
    steps = getattr(config, "record_steps", None)
    return callable(steps) and steps() is not None


def fused_operator(parts: list[tuple[Any, Any]], ctx: BuildContext) -> BatchOperator:
    """One batch operator for consecutive fusable (component, config) steps; it takes rows too."""
    steps = [(kind, field, compile_expression(source))
             for _, config in parts for kind, field, source in config.record_steps()]
    fused = compile_record_steps(steps)
    for_layout: dict[tuple[str, ...], Any] = {}  # rows layout -> (function, out fields) or None
    careful_in: Subject = Subject()
    careful_out: Batch = []
    chain = careful_in
    for component, config in parts:
        chain = chain.pipe(component.factory(config, ctx))
    chain.subscribe(careful_out.extend)

    counters = ctx.counters

    def apply(batch: AnyBatch) -> AnyBatch:
        try:
            out = None
            if type(batch) is Rows:
                compiled = for_layout.get(batch.fields, False)
                if compiled is False:
                    compiled = for_layout[batch.fields] = compile_row_steps(steps, batch.fields)
                if compiled is not None:
                    function, fields = compiled
                    out = Rows(fields, function(batch.rows))
            if out is None:
                out = fused(as_records(batch))
            counters.filtered += len(batch) - len(out)  # only filters leave records out
            return out
        except Exception:  # some record fails: the unfused steps dead-letter just that one
            careful_in.on_next(as_records(batch))
            out = careful_out[:]
            careful_out.clear()
            return out

    return batch_map(apply)


# -- the code generator ------------------------------------------------------------------------
RecordStep = tuple[str, "str | None", Expression]
"""`("keep", None, expr)` drops records for which expr is false; `("set", field, expr)` sets a
field (on a copy: the input record is never changed)."""


def compile_record_steps(steps: Sequence[RecordStep]) -> Callable[[list], list]:
    """One function `batch -> batch` doing every step in order, for each record in one loop.

    Chains of stateless `filter`/`map` steps are what users write most; run one by one, each
    costs a function call and a list per batch and a call per record. Fused, the checked
    expression trees are inlined into one loop, compiled once: no calls but the whitelisted
    functions. Only expressions without bound names can be fused. An exception propagates; the
    caller redoes that batch step by step to dead-letter just the failing record.
    """
    record = ast.Name(RECORD, ast.Load())
    body: list[ast.stmt] = []
    copied = False
    namespace: dict[str, Any] = {}
    for kind, field, expression in steps:
        if expression.bound:
            raise ValueError("only expressions without bound names can be fused")
        namespace.update(expression.namespace)
        if kind == "keep":
            body.append(ast.If(ast.UnaryOp(ast.Not(), expression.body), [ast.Continue()], []))
        elif kind == "set":
            if not copied:  # one copy per record, before its first new field
                body.append(ast.Assign([ast.Name(RECORD, ast.Store())],
                                       ast.Call(ast.Name("_cep_copy", ast.Load()), [record], [])))
                copied = True
            body.append(ast.Assign([ast.Subscript(ast.Name(RECORD, ast.Load()), ast.Constant(field),
                                                  ast.Store())], expression.body))
        else:
            raise ValueError(f"unknown record step {kind!r}")
    body.append(ast.Expr(ast.Call(ast.Name("_cep_append", ast.Load()), [record], [])))
    function = _loop_function("fused", body)
    return _define(function, {**namespace, "_cep_copy": dict})


def compile_row_steps(steps: Sequence[RecordStep],
                      fields: tuple[str, ...]) -> tuple[Callable[[Sequence], list], tuple[str, ...]] | None:
    """The steps of `compile_record_steps` for rows of layout `fields`: `(function, out_fields)`,
    where `function(rows) -> rows` gives the rows of exactly the records the record form would
    give, in layout `out_fields` (a set field keeps its place, a new one is appended, as in a
    dict). None if a step reads a field the layout lacks: the record form then raises KeyError
    for every record, and the caller takes that path so each is dead-lettered as it would be.

    The function is one list comprehension. When a step sets a field, each row is unpacked into
    locals (`for (f0, f1, ...) in rows`), set values are locals too (`for v in [expr]`, which
    CPython compiles to an assignment), and the output row is one tuple built from them: a third
    faster than subscripting the row and concatenating, and a row a later filter drops is never
    built. Filters alone keep the input rows as they are. A row of the wrong width raises
    ValueError, and the caller redoes the batch record by record.
    """
    sets = any(kind == "set" for kind, _, _ in steps)
    row_name = ast.Name(RECORD, ast.Load())
    if sets:
        slots: dict[str, ast.expr] = {name: ast.Name(f"_cep_f{index}", ast.Load())
                                      for index, name in enumerate(fields)}
        target: ast.expr = ast.Tuple([ast.Name(f"_cep_f{index}", ast.Store()) for index in range(len(fields))],
                                     ast.Store())
    else:
        slots = {name: ast.Subscript(row_name, ast.Constant(index), ast.Load()) for index, name in enumerate(fields)}
        target = ast.Name(RECORD, ast.Store())
    out_fields = list(fields)
    clauses = [ast.comprehension(target, ast.Name("_cep_batch", ast.Load()), [], 0)]
    namespace: dict[str, Any] = {}
    for number, (kind, field, expression) in enumerate(steps):
        if expression.bound:
            raise ValueError("only expressions without bound names can be fused")
        if not expression.fields <= slots.keys():
            return None
        namespace.update(expression.namespace)
        value = _ReadSlots(slots).visit(copy.deepcopy(expression.body))
        if kind == "keep":
            clauses[-1].ifs.append(value)
        elif kind == "set":
            local = f"_cep_v{number}"
            clauses.append(ast.comprehension(ast.Name(local, ast.Store()), ast.List([value], ast.Load()), [], 0))
            slots[field] = ast.Name(local, ast.Load())  # type: ignore[index]
            if field not in out_fields:
                out_fields.append(field)  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown record step {kind!r}")
    row = ast.Tuple([slots[name] for name in out_fields], ast.Load()) if sets else row_name
    function = _batch_function("fused_rows", [ast.Return(ast.ListComp(row, clauses))])
    return _define(function, namespace), tuple(out_fields)


class _ReadSlots(ast.NodeTransformer):
    """`record['name']` -> where the value of `name` is in the row form (a row index or a local)."""

    def __init__(self, slots: Mapping[str, ast.expr]) -> None:
        self.slots = slots

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if (isinstance(node.value, ast.Name) and node.value.id == RECORD
                and isinstance(node.slice, ast.Constant) and node.slice.value in self.slots):
            return copy.deepcopy(self.slots[node.slice.value])
        return node


def _loop_function(name: str, body: list[ast.stmt]) -> ast.FunctionDef:
    """`def name(_cep_batch): out = []; for _cep_record in _cep_batch: <body>; return out`."""
    loop = ast.For(ast.Name(RECORD, ast.Store()), ast.Name("_cep_batch", ast.Load()), body, [])
    return _batch_function(name, [
        ast.Assign([ast.Name("_cep_out", ast.Store())], ast.List([], ast.Load())),
        ast.Assign([ast.Name("_cep_append", ast.Store())],
                   ast.Attribute(ast.Name("_cep_out", ast.Load()), "append", ast.Load())),
        loop, ast.Return(ast.Name("_cep_out", ast.Load()))])


def _batch_function(name: str, body: list[ast.stmt]) -> ast.FunctionDef:
    """`def name(_cep_batch): <body>`."""
    return ast.FunctionDef(
        name=name, args=ast.arguments(posonlyargs=[], args=[ast.arg("_cep_batch")], kwonlyargs=[],
                                      kw_defaults=[], defaults=[]),
        body=body, decorator_list=[], returns=None, type_params=[])


def _define(function: ast.FunctionDef, namespace: dict[str, Any]) -> Callable[..., Any]:
    """Compile one generated function in a namespace of whitelisted names (no builtins)."""
    module = ast.fix_missing_locations(ast.Module([function], type_ignores=[]))
    namespace = {**namespace, "__builtins__": {}}
    exec(compile(module, f"<{function.name}>", "exec"), namespace)  # noqa: S102 - checked trees only
    return namespace[function.name]
