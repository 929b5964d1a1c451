"""`scan` and `pairwise`: carry something from one record of a key to the next."""
from __future__ import annotations

from pydantic import Field

from typing import Any

from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.common import Expr, ExpressionUse, OpParams, compiled, per_key
from cep.components.state import RecordData
from cep.events import Record
from cep.plugins.markers import operator


class ScanParams(OpParams):
    into: str = Field(description="the field the accumulator is written to")
    expr: Expr = Field(description="the next accumulator, with acc (the current one) and the record's fields")
    initial: Any = Field(0, description="the accumulator before a key's first record")

    def expressions(self, fields, key=None):
        yield ExpressionUse("expr", self.expr, ("acc",), fields)

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return fields | {self.into}


@operator("scan", params=ScanParams, state="keyed", checkpoint=True)
def scan(params: ScanParams, ctx: BuildContext) -> BatchOperator:
    """Running accumulator per key: each record is emitted with the accumulator added.

    `acc` is the accumulator so far (`initial` at a key's first record); the expression gives its
    next value, which the emitted record carries in the field `into`. A record whose expression
    fails is dead-lettered and leaves the accumulator as it was.

        ops:
          - scan: {into: volume_total, expr: "acc + bid_volume", initial: 0}

        in:   --{bid_volume 2}--{bid_volume 3}--|
        out:  --{.., total 2}---{.., total 5}---|
    """
    accumulate = compiled(params.expr, "acc")
    into = params.into

    def step(record: Record, acc: Any) -> tuple[Record, Any]:
        acc = accumulate(record, acc)
        return {**record, into: acc}, acc

    return per_key(ctx, step, Any, initial=params.initial)  # an accumulator is what the expression makes


class PairwiseParams(OpParams):
    into: str = Field("prev", description="the field the previous record of the key is put in")

    def output_fields(self, fields: frozenset[str], key: str | None = None) -> frozenset[str]:
        return fields | {self.into}


@operator("pairwise", params=PairwiseParams, state="keyed", checkpoint=True)
def pairwise(params: PairwiseParams, ctx: BuildContext) -> BatchOperator:
    """Pair each record with the previous one of its key: `{**current, "prev": previous}`.

    A key's first record has no predecessor and emits nothing. The previous record sits in the
    field `into` (default `prev`) as it arrived here, so a later step reads it as `prev.mid`.

        ops:
          - pairwise: {}
          - filter: "mid > prev.mid"

        in:   --a--b--c--|
        out:  -----b(prev a)--c(prev b)--|
    """
    into = params.into

    def step(record: Record, previous: Record | None) -> tuple[Record | None, Record]:
        return (None if previous is None else {**record, into: previous}), record

    return per_key(ctx, step, RecordData)
