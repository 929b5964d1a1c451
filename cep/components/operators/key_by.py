"""`key_by`: name the field that partitions the stream for the steps after it."""
from __future__ import annotations

from pydantic import Field

from reactivex import operators as ops

from cep.components.base import BatchOperator, BuildContext
from cep.components.operators.common import OpParams
from cep.plugins.markers import operator


class KeyByParams(OpParams):
    field: str = Field(description="the field whose value is the key (e.g. instrument)")


@operator("key_by", params=KeyByParams, shorthand="field", sets_key=True)
def key_by(params: KeyByParams, ctx: BuildContext) -> BatchOperator:
    """Partition the stream by a field: later keyed steps keep their state per value of it.

    Batches pass unchanged (empty ones are not passed on); the builder gives the steps after
    this one `ctx.key = field`, and `parallelism: N` sends every record of one key to the same
    worker.

        ops:
          - key_by: instrument
          - pairwise: {}            # now per instrument

        in:   --a(BTC)--b(ETH)--c(BTC)--|
        out:  --a(BTC)--b(ETH)--c(BTC)--|
    """
    return lambda source: source.pipe(ops.filter(bool))
