"""The `positions` sink: an order executor's OrderEvents into the append-only journal, from which
positions, PnL and each order's history are read (`cep positions`, `cep orders`, the run summary).

Why a sink and not the risk manager itself: the trading state (ACTIVE / REDUCING / HALTED) must
hold for the very next signal, so the executor computes it from the fills it produces itself
(`cep.orders.node`); this sink is the durable, queryable side of the same events. Positions
rebuilt from its journal equal the executor's live ones.

Delivery: the journal is keyed by (client order id, sequence), so an event that comes again
(a retransmit under at_least_once, a replay after a restart under exactly_once) is skipped and
counted (`duplicate event`), never journaled twice; so it takes part in exactly_once
(`checkpoint=True`) with no state of its own to checkpoint.
A record that is not an OrderEvent is dead-lettered with the reason.

Marks: given a stream of quotes too (`from: [exec, quotes]`), it keeps each instrument's latest
quote in the journal (`Journal.mark`, once per batch), so `cep positions` shows unrealized PnL
as of that quote. Why here and not from the executor, whose risk manager marks the same
positions: the journal is this sink's file alone, and the quotes are one more subscription of
the stream the executor reads; at the end of a run both marks are each instrument's last quote.
It takes rows as they come (`rows=True`): of a batch of quotes only the last of each instrument
matters, so no record is built for the others.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cep.components.base import BuildContext
from cep.components.sinks.afresh import MODE, Afresh, OutputMode
from cep.events import OrderEvent, TickEvent
from cep.orders.journal import Journal
from cep.plugins.markers import sink
from cep.rows import AnyBatch, Rows, as_records


class PositionsSinkParams(BaseModel):
    """Journal OrderEvents (SQLite, WAL, append-only) for positions, PnL and order histories."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    journal: Path = Field(description="the journal file, relative to the pipeline file")
    mode: OutputMode = MODE


class PositionsSink:
    """Journals each batch in one transaction. In `truncate` mode the previous run's journal is
    removed when the first record comes (or at the end of a run without any), as the `jsonl` sink
    does with its file (`cep.components.sinks.afresh`)."""

    def __init__(self, path: Path, afresh: Afresh, ctx: BuildContext) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.ctx, self._afresh = path, ctx, afresh
        self.journal: Journal | None = None

    def write(self, batch: AnyBatch) -> None:
        if type(batch) is Rows and batch.slot("client_order_id") is None:  # quotes, as sources make them
            self._mark([dict(zip(batch.fields, row)) for row in _last_per_instrument(batch)])
            return
        events, quotes = [], []
        for record in as_records(batch):
            if "client_order_id" not in record and "bid_price" in record:
                quotes.append(record)
                continue
            try:
                events.append(OrderEvent.from_record(record))
            except (TypeError, ValueError, KeyError) as exc:
                self.ctx.dead_letter(f"not an OrderEvent: {type(exc).__name__}: {exc}", record)
        if events:
            added = self._open().append(events)
            if added < len(events):
                self.ctx.counters.note("duplicate event", len(events) - added)
        if quotes:
            self._mark(quotes)

    def _mark(self, records: list[dict[str, Any]]) -> None:
        """Keep the latest quote of each instrument of `records` (a quote no position can be
        marked at, with a price that is no price, is dropped and counted)."""
        latest: dict[str, TickEvent] = {}
        for record in records:
            instrument, bid, ask, timestamp = (record.get("instrument"), record.get("bid_price"),
                                               record.get("ask_price"), record.get("timestamp"))
            if not (isinstance(instrument, str) and type(timestamp) is int and _price(bid) and _price(ask)):
                self.ctx.counters.drop("bad quote")
                continue
            if instrument not in latest or timestamp >= latest[instrument].timestamp:
                latest[instrument] = TickEvent(timestamp, instrument, float(bid), float(ask))
        if latest:
            self._open().mark(latest.values())

    def flush(self) -> None:
        """Each batch is committed when written; nothing is held back."""

    def close(self) -> None:
        self._open().close()

    def _open(self) -> Journal:
        if self.journal is None:
            if self._afresh.pending:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.journal = Journal(self.path)
            if self._afresh.pending:
                self._afresh.done()
        return self.journal


def _last_per_instrument(batch: Rows) -> list[Any]:
    """The last row of each instrument in `batch` (all rows if it has no instrument field)."""
    slot = batch.slot("instrument")
    if slot is None:
        return list(batch.rows)
    last = {row[slot]: row for row in batch.rows}
    return list(last.values())


def _price(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


@sink("positions", params=PositionsSinkParams, checkpoint=True, rows=True)
def positions_sink(params: PositionsSinkParams, ctx: BuildContext) -> PositionsSink:
    """Journal OrderEvents (append-only SQLite) for positions and PnL, and each instrument's latest
    quote when given quotes too (to mark positions); any delivery mode.

    An event that comes again is skipped (the journal is keyed by client order id and sequence),
    so under exactly_once nothing is journaled twice; read it with `cep positions JOURNAL`.
    """
    # no state to checkpoint: the journal skips what it has, so a replay after a restart is harmless
    return PositionsSink(ctx.resolve(params.journal), Afresh.of(params.mode, ctx), ctx)
