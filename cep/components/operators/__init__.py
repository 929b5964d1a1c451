"""cep's built-in ReactiveX operators, one private module per operator or family (as RxPY's
`_map.py`). Each factory is `(params, ctx) -> BatchOperator` and is registered through its
marker; `__all__` is what the registry collects (see `cep.components`).

Every operator works on event time (the records' `timestamp`, integer ns), keeps keyed state per
value of `ctx.key` (set by `key_by` or the stream's `key_by:`), dead-letters a record it cannot
process and goes on, and flushes what it holds at end of stream.
"""
from cep.components.operators._buffer import buffer_with_count
from cep.components.operators._common import ExpressionUse, OpParams  # noqa: F401 - for the compiler
from cep.components.operators._filter import filter_records
from cep.components.operators._key_by import key_by
from cep.components.operators._map import map_records
from cep.components.operators._scan import pairwise, scan
from cep.components.operators._slicing import skip, take
from cep.components.operators._throttle import distinct_until_changed, throttle_first
from cep.components.operators._window import buffer_with_time, window

__all__ = ["buffer_with_count", "buffer_with_time", "distinct_until_changed", "filter_records",
           "key_by", "map_records", "pairwise", "scan", "skip", "take", "throttle_first", "window"]

from cep.components.operators._bars import bars  # noqa: E402 - bar-based operators
from cep.components.operators._levels import levels  # noqa: E402
from cep.components.operators._pivots import pivots  # noqa: E402
from cep.components.operators._swings import swings  # noqa: E402

__all__ += ["bars", "levels", "pivots", "swings"]
