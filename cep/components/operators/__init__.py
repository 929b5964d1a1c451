"""cep's built-in ReactiveX operators, one module per operator or family. Each factory is
`(params, ctx) -> BatchOperator` and is registered through its marker; `__all__` is what the
registry collects (see `cep.components`).

The naming rule of `cep.components`: modules are public, so a rule or a plugin may build on an
operator's parts (`rules/support_resistance.py` uses `bars.BarBuilder`, `swings.SwingDetector`,
`levels.LevelTable`, `keyed.keyed_flow`); what a module keeps to itself is a `_name` inside it.
`common` holds what the operators share (params base class, param types, per-key state),
`keyed` the per-key flows of the stateful ones. This package re-exports each factory under its
own name, which hides a module of the same name (`operators.window` is the factory): import a
module's parts with `from cep.components.operators.window import ...`.

Every operator works on event time (the records' `timestamp`, integer ns), keeps keyed state per
value of `ctx.key` (set by `key_by` or the stream's `key_by:`), dead-letters a record it cannot
process and goes on, and flushes what it holds at end of stream.
"""
from cep.components.operators.buffer import buffer_with_count
from cep.components.operators.common import ExpressionUse, OpParams  # noqa: F401 - for the compiler
from cep.components.operators.filter import filter_records
from cep.components.operators.key_by import key_by
from cep.components.operators.map import map_records
from cep.components.operators.scan import pairwise, scan
from cep.components.operators.slicing import skip, take
from cep.components.operators.throttle import distinct_until_changed, throttle_first
from cep.components.operators.window import buffer_with_time, window

__all__ = ["buffer_with_count", "buffer_with_time", "distinct_until_changed", "filter_records",
           "key_by", "map_records", "pairwise", "scan", "skip", "take", "throttle_first", "window"]

from cep.components.operators.bars import bars  # noqa: E402 - bar-based operators
from cep.components.operators.levels import levels  # noqa: E402
from cep.components.operators.pivots import pivots  # noqa: E402
from cep.components.operators.swings import swings  # noqa: E402

__all__ += ["bars", "levels", "pivots", "swings"]
