"""The worker side: how a worker stands now, added to each of its reports (twice a second).

Counts (`Counters`, `EdgeCounters`) are kept as events go; what is here is read only when the
worker reports, so it costs nothing per event: the event time of the latest batch each node's
output and each remote input passed on (a `Hub` keeps a reference to its latest batch), each
pattern rule's partial matches (`BuildContext.keep_gauges`), and the worker's checkpoints.
"""
from __future__ import annotations

from typing import Any

from cep.rows import Rows

TIMESTAMP = "timestamp"


def event_time(batch: Any) -> int | None:
    """The event time (ns) of the last record of `batch`, rows or records; None if it has none."""
    if not batch:
        return None
    if type(batch) is Rows:
        slot = batch.slot(TIMESTAMP)
        value = None if slot is None else batch.rows[-1][slot]
    else:
        last = batch[-1]
        value = last.get(TIMESTAMP) if isinstance(last, dict) else None
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
        time = event_time(hub.last)
        if time is not None:
            times[node] = time
    return times
