"""Fusing chains of stateless record steps (`filter`, `map` without `prev`) into one loop.

What users write stays the ReactiveX operator model; what runs for a chain like
`filter -> map -> filter` is one compiled function per batch (DESIGN §4: one RxPY operator costs
about 0.75 µs per event). A batch in which some record fails is redone through the unfused
operators, so exactly that record is dead-lettered, as without fusion.
"""
from __future__ import annotations

from typing import Any

from reactivex.subject import Subject

from cep.components.base import BatchOperator, BuildContext, batch_map
from cep.events import Batch
from cep.expressions import compile_expression, compile_record_steps


def fusable(config: Any) -> bool:
    steps = getattr(config, "record_steps", None)
    return callable(steps) and steps() is not None


def fused_operator(parts: list[tuple[Any, Any]], ctx: BuildContext) -> BatchOperator:
    """One batch operator for consecutive fusable (component, config) steps."""
    fused = compile_record_steps([(kind, field, compile_expression(source))
                                  for _, config in parts for kind, field, source in config.record_steps()])
    careful_in: Subject = Subject()
    careful_out: Batch = []
    chain = careful_in
    for component, config in parts:
        chain = chain.pipe(component.factory(config, ctx))
    chain.subscribe(careful_out.extend)

    def apply(batch: Batch) -> Batch:
        try:
            return fused(batch)
        except Exception:  # some record fails: the unfused steps dead-letter just that one
            careful_in.on_next(batch)
            out = careful_out[:]
            careful_out.clear()
            return out

    return batch_map(apply)
