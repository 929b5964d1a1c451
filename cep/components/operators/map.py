"""`map`: add or replace fields computed by expressions."""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from cep.components.base import BatchOperator, BuildContext, per_record
from cep.components.operators.common import (Expr, ExpressionUse, OpParams, compiled,
                                              key_getter, reads_prev)
from cep.events import Record
from cep.plugins.markers import operator


class MapParams(OpParams):
    fields: dict[str, Expr] = Field(description="field -> expression, in order (a field sees those "
                                                "before it); prev is the key's previous record")

    @model_validator(mode="before")
    @classmethod
    def _bare_mapping(cls, data: Any) -> Any:
        """`map: {mid: "..."}` is the usual spelling; `map: {fields: {mid: "..."}}` also works."""
        if isinstance(data, dict) and not (set(data) == {"fields"} and isinstance(data["fields"], dict)):
            return {"fields": data}
        return data

    def expressions(self, fields, key=None):
        for name, source in self.fields.items():  # a field sees the fields computed before it
            yield ExpressionUse(f"fields.{name}", source, ("prev",), fields)
            fields = fields | {name}

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return fields | set(self.fields)

    def record_steps(self):
        if any(reads_prev(source) for source in self.fields.values()):
            return None  # `prev` is per-key state
        return [("set", name, source) for name, source in self.fields.items()]


@operator("map", params=MapParams, shorthand="fields")
def map_records(params: MapParams, ctx: BuildContext) -> BatchOperator:
    """Add or replace fields, each computed by an expression over the record.

    Emits a new record `{**record, field: value, ...}`; the input record is never changed. Fields
    are computed in the order written, so a later one can use an earlier one. `prev` is the
    previous record of the same key with this map's fields added (None at a key's first record),
    so `prev.mid` reads a field computed here; if that record failed, `prev` lacks the fields it
    failed on. A record whose expression fails is dead-lettered; the stream goes on.

        ops:
          - map: {mid: "(bid_price + ask_price) / 2", rising: "prev is not None and mid > prev.mid"}

        in:   --{bid 1, ask 3}---------{bid 2, ask 4}--|
        out:  --{.., mid 2, rising F}--{.., mid 3, rising T}--|
    """
    computations = [(name, compiled(source, "prev")) for name, source in params.fields.items()]
    if not any(reads_prev(source) for source in params.fields.values()):
        def compute_fields(record: Record) -> Record:
            out = dict(record)
            for name, compute in computations:
                out[name] = compute(out, None)
            return out
        return per_record(compute_fields, ctx, pure=True)  # no `prev`: no state per key
    key_of = key_getter(ctx)
    last: dict[Any, Record] = {}

    def transform(record: Record) -> Record:
        key = key_of(record)
        out = dict(record)
        prev = last.get(key)
        last[key] = out  # before computing: a failing record is still the next one's prev
        for name, compute in computations:
            out[name] = compute(out, prev)
        return out

    return per_record(transform, ctx)
