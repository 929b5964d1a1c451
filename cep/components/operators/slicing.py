"""`take` and `skip`: the head or the rest of the whole stream, by count."""
from __future__ import annotations

from pydantic import Field, NonNegativeInt

from cep.components.base import BatchOperator, BuildContext, batch_map
from cep.components.operators.common import OpParams
from cep.components.state import restorer
from cep.events import Batch
from cep.plugins.markers import operator


class CountParams(OpParams):
    count: int = Field(ge=0, description="how many records")


def _checkpointed_count(ctx: BuildContext, start: int) -> list[int]:
    """A count of records still to take or skip, as a one-item list the operator updates in
    place; declared as the operator's state, so exactly_once resumes it."""
    left = [start]
    ctx.keep_state(lambda: left[0], restorer(NonNegativeInt, lambda saved: left.__setitem__(0, saved)))
    return left


@operator("take", params=CountParams, state="global", shorthand="count", checkpoint=True)
def take(params: CountParams, ctx: BuildContext) -> BatchOperator:
    """Pass the first `count` records of the stream, then drop the rest.

    Counts over the whole stream, not per key. End of stream still comes from upstream: a source
    keeps reading after the count is reached (bound a replay with the source's own limit).

        ops:
          - take: 2

        in:   --a--b--c--d--|
        out:  --a--b--------|
    """
    remaining = _checkpointed_count(ctx, params.count)

    def head(batch: Batch) -> Batch:
        kept = batch[:remaining[0]]
        remaining[0] -= len(kept)
        return kept

    return batch_map(head)


@operator("skip", params=CountParams, state="global", shorthand="count", checkpoint=True)
def skip(params: CountParams, ctx: BuildContext) -> BatchOperator:
    """Drop the first `count` records of the stream, then pass everything.

    Counts over the whole stream, not per key (a warm-up, e.g. the first ticks of a replay).

        ops:
          - skip: 2

        in:   --a--b--c--d--|
        out:  --------c--d--|
    """
    to_skip = _checkpointed_count(ctx, params.count)

    def rest(batch: Batch) -> Batch:
        if not to_skip[0]:
            return batch
        dropped = batch[:to_skip[0]]
        to_skip[0] -= len(dropped)
        return batch[len(dropped):]

    return batch_map(rest)
