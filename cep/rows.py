"""Batches in row form: the values of records that share one layout, without a dict per record.

A `Batch` is a list of record dicts, which is what every operator, rule and sink receives unless
it says otherwise. Building a dict per tick is, however, most of what a worker spends: a source
that makes ticks, a codec that turns them into wire arrays and back, a `map` that copies them.
`Rows` carries the same records as rows of values in `fields` order (tuples, or lists as decoded
from the wire: never changed in place, as several consumers may read one batch), as on the wire,
so the hot path (source -> frame -> fused filter/map -> a rule) never builds a dict. Components
that handle rows are registered with `rows=True`; the runtime turns rows into records (with
`as_records`) before any other component, so plugin authors who never heard of rows see dicts.

Field order in a row is the order a dict made from it has, so the two forms convert both ways
without a change that anything downstream could see.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

from cep.events import Batch, Record


class Rows:
    """Records of one layout: `rows[i][j]` is the value of field `fields[j]` of record i."""

    __slots__ = ("fields", "rows")

    def __init__(self, fields: tuple[str, ...], rows: list[Sequence[Any]]) -> None:
        self.fields = fields
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Rows({self.fields!r}, {len(self.rows)} rows)"

    def slot(self, name: str) -> int | None:
        """The index of field `name` in a row, or None if this layout lacks it."""
        try:
            return self.fields.index(name)
        except ValueError:
            return None

    def records(self) -> Batch:
        return compiled(self.fields, RECORDS)(self.rows)


AnyBatch = Union[Batch, Rows]
"""What travels between nodes inside the runtime: records, or rows for components that take them."""


def as_records(batch: AnyBatch) -> Batch:
    """The batch as record dicts (a list of records is returned as it is)."""
    return batch.records() if type(batch) is Rows else batch  # type: ignore[union-attr]


def record_at(batch: AnyBatch, item: Any) -> Record:
    """One item of `batch` (a record, or a row of it) as a record, e.g. for a dead letter."""
    return dict(zip(batch.fields, item)) if type(batch) is Rows else item  # type: ignore[union-attr]


def concat(batches: list[AnyBatch]) -> AnyBatch:
    """One batch of all of `batches`, in order; rows stay rows when they share one layout."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    if type(first) is Rows and all(type(b) is Rows and b.fields == first.fields for b in batches):
        rows: list[tuple] = []
        for batch in batches:
            rows += batch.rows  # type: ignore[union-attr]
        return Rows(first.fields, rows)  # type: ignore[union-attr]
    records: Batch = []
    for batch in batches:
        records += as_records(batch)
    return records


def items(batch: AnyBatch) -> list:
    """The batch's items: its rows, or its records."""
    return batch.rows if type(batch) is Rows else batch  # type: ignore[union-attr, return-value]


def like(batch: AnyBatch, items: list) -> AnyBatch:
    """`items` (rows or records taken from `batch`) as a batch of the same form."""
    return Rows(batch.fields, items) if type(batch) is Rows else items  # type: ignore[union-attr]


def split_by(batch: AnyBatch, field: str, route: Callable[[Any], Any] | None = None) -> dict[Any, list]:
    """The batch's items grouped by the value of `field` (or `route(value)`), in order of first
    appearance; order within a group is kept. A record without the field goes with None."""
    if type(batch) is Rows:
        index = batch.slot(field)  # type: ignore[union-attr]
        members = batch.rows  # type: ignore[union-attr]
        keys = [None] * len(members) if index is None else [row[index] for row in members]
    else:
        members = batch
        keys = [record.get(field) for record in members]
    if route is not None:
        keys = list(map(route, keys))
    parts: dict[Any, list] = {}
    for key, member in zip(keys, members):
        part = parts.get(key)
        if part is None:
            part = parts[key] = []
        part.append(member)
    return parts


# -- compiled conversions ------------------------------------------------------------------------
ROWS, RECORDS = 0, 1
_compiled_cache: dict[tuple[int, tuple[str, ...]], Callable[[list], list]] = {}
_MAX_COMPILED = 1024


def compiled(fields: tuple[str, ...], kind: int) -> Callable[[list], list]:
    """Records -> rows (`ROWS`) or rows -> records (`RECORDS`) for one layout, compiled once.

    A comprehension with the field names as constants (`[(r['a'], r['b']) for r in records]`,
    `[{'a': v0, 'b': v1} for v0, v1 in rows]`) is several times faster than generic code per
    record. Only field names that are Python identifiers are compiled in (so wire data can never
    be code); other layouts, and any beyond the cache bound, take the generic path. A record
    lacking a field raises KeyError; a row of another width raises ValueError.
    """
    key = (kind, fields)
    function = _compiled_cache.get(key)
    if function is not None:
        return function
    if not (len(_compiled_cache) < _MAX_COMPILED and 0 < len(fields) <= 64
            and all(name.isidentifier() for name in fields)):
        if kind == ROWS:
            return lambda records: [tuple([record[name] for name in fields]) for record in records]
        return lambda rows: [dict(zip(fields, row, strict=True)) for row in rows]
    if kind == ROWS:
        source = "lambda records: [(" + "".join(f"r[{name!r}], " for name in fields) + ") for r in records]"
    else:
        values = ", ".join(f"v{i}" for i in range(len(fields)))
        display = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(fields))
        source = f"lambda rows: [{{{display}}} for {values}, in rows]"
    function = _compiled_cache[key] = eval(source, {"__builtins__": {}})  # noqa: S307 - identifiers only
    return function
