"""The worker side: how a worker stands now, added to each of its reports (twice a second).

Counts (`Counters`, `EdgeCounters`) are kept as events go; what is here is read only when the
worker reports, so it costs nothing per event: the event time of the latest batch each node's
output and each remote input passed on (a `Hub` keeps its latest record), each
pattern rule's partial matches (`BuildContext.keep_gauges`), and the worker's checkpoints.
"""
from __future__ import annotations

from typing import Any


TIMESTAMP = "timestamp"


def event_time(record: Any, fields: tuple[str, ...] | None = None) -> int | None:
    """The event time (ns) of `record`, a row of layout `fields` or a record dict; None if it has
    none."""
    if fields is not None:
        value = record[fields.index(TIMESTAMP)] if TIMESTAMP in fields else None
    else:
        value = record.get(TIMESTAMP) if isinstance(record, dict) else None
    return value if type(value) is int else None


def observed(graph: Any, checkpointer: Any | None) -> dict[str, Any]:
    """What a worker adds to its report (`RunStatus.gauges`, `RunStatus.checkpoints`)."""
    report: dict[str, Any] = {"gauges": {
        "times_out": _times(graph.outputs),
        "times_in": _times(graph.remote_inputs),
        "nodes": {node: counters.gauges() for node, counters in graph.counters.items()
                  if counters.gauges is not None},
    }}
    if checkpointer is not None:
        report["checkpoints"] = checkpointer.stats()
    return report


def _times(hubs: dict[str, Any]) -> dict[str, int]:
    times = {}
    for node, hub in hubs.items():
        time = event_time(hub.last, hub.last_fields)
        if time is not None:
            times[node] = time
    return times
