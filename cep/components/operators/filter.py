"""`filter`: keep the records an expression holds for."""
from __future__ import annotations

from pydantic import Field

from cep.components.base import BatchOperator, BuildContext, per_record
from cep.components.operators.common import Expr, ExpressionUse, OpParams, compiled
from cep.plugins.markers import operator


class FilterParams(OpParams):
    expr: Expr = Field(description="expression over the record; the record is kept when it is true")

    def expressions(self, fields, key=None):
        yield ExpressionUse("expr", self.expr, (), fields)

    def record_steps(self):
        return [("keep", None, self.expr)]


@operator("filter", params=FilterParams, shorthand="expr")
def filter_records(params: FilterParams, ctx: BuildContext) -> BatchOperator:
    """Keep only the records for which an expression is true.

    A record whose expression fails (a missing field, a division by zero) is dead-lettered; the
    stream goes on. Records left out are counted as `filtered` (not as dropped: nothing is lost).

        ops:
          - filter: "ask_price > bid_price"

        in:   --a(ask>bid)--b(ask=bid)--c(ask>bid)--|
        out:  --a-----------------------c-----------|
    """
    test = compiled(params.expr)
    return per_record(lambda record: record if test(record) else None, ctx, pure=True, filters=True)
