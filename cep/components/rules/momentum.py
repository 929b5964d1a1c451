"""The built-in `momentum` rule: trade when a key's mid price moves the same way N times running."""
from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from cep.components.base import BatchOperator, BuildContext, batch_map
from cep.components.state import restorer
from cep.events import TradingSignal
from cep.plugins.markers import rule
from cep.rows import AnyBatch, Rows, record_at

UNSEEN_START = 1 << 62
"""Run length given to the streak a key starts with: it grows and shrinks like any run but is
never equal to a count, so it never fires."""


class MomentumParams(BaseModel):
    """N consecutive strictly rising (BUY) or falling (SELL) mid prices per key -> one signal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(5, ge=1, description="consecutive moves (not ticks) that make a streak")
    direction: Literal["up", "down", "both"] = Field(
        "both", description="up: BUY on rising streaks; down: SELL on falling ones; both")
    quantity: float = Field(1.0, gt=0, description="quantity of every signal")
    strategy_name: str | None = Field(None, description="strategy_name of the signals "
                                                        "(default: the rule's id)")
    confidence_scale_bps: float = Field(
        1.0, gt=0, description="streak move, in basis points, that gives confidence 0.5")


def confidence(start_mid: float, mid: float, scale_bps: float) -> float:
    """How strong a streak is, from 0 (no move) towards 1 (a move much larger than the scale).

    `move = |mid - start_mid| / start_mid` in basis points, where `start_mid` is the mid before
    the streak's first move; `confidence = move / (move + scale_bps)`, so a move of exactly
    `scale_bps` gives 0.5. Rounded to 6 decimals so the value reads the same in every output.
    """
    move = abs(mid - start_mid) / start_mid * 1e4 if start_mid else 0.0
    return round(move / (move + scale_bps), 6)


class Slots(NamedTuple):
    """Where the fields the rule reads are in a record of this batch: the field names for record
    dicts, row indexes for `Rows` (None: the layout lacks the field)."""

    mid: Any
    key: Any
    timestamp: Any
    instrument: Any
    bid_price: Any
    ask_price: Any


def _layout(batch: AnyBatch, key_field: str | None, known: dict) -> tuple[Slots, Any]:
    """`(slots, records or rows)` for one batch, so one loop reads either form by subscript.

    Rows without a `mid` column get one appended (the loop then never meets a missing mid); a
    record dict without `mid` falls back per record to (bid_price + ask_price) / 2. `known`
    caches the slots per rows layout (a stream has one or two).
    """
    if type(batch) is not Rows:
        return Slots("mid", key_field, "timestamp", "instrument", "bid_price", "ask_price"), batch
    at = known.get(batch.fields)
    if at is None:
        slot = batch.slot
        at = known[batch.fields] = Slots(slot("mid"), slot(key_field) if key_field is not None else None,
                                         slot("timestamp"), slot("instrument"), slot("bid_price"),
                                         slot("ask_price"))
    rows = batch.rows
    if at.mid is None and at.bid_price is not None and at.ask_price is not None:
        b, a = at.bid_price, at.ask_price
        try:
            rows = [(*row, (row[b] + row[a]) / 2) for row in rows]
            at = at._replace(mid=len(batch.fields))
        except (TypeError, ArithmeticError):
            pass  # some row has no usable price: the loop dead-letters it
    return at, rows


@rule("momentum", params=MomentumParams, state="keyed", rows=True, checkpoint=True)
def momentum(params: MomentumParams, ctx: BuildContext) -> BatchOperator:
    """N consecutive strictly rising (BUY) or falling (SELL) mid prices per key -> TradingSignal.

    The mid is the record's `mid` field if present, else (bid_price + ask_price) / 2. A mid equal
    to the previous one neither extends nor breaks a streak. A streak starts at a reversal (a move
    the other way before it), so the moves after a key's first tick, whose start was never seen,
    are no streak; this is what the pattern form of the rule (`rules/momentum.yaml`) can see, and
    the two give the same signals. A streak fires once, when it reaches
    `count` moves; it fires again only after it breaks and a new one reaches `count`. BUY triggers
    at the ask price, SELL at the bid; `signal_id` is `node:instrument:timestamp:action`, the same
    on every run. Confidence: see `confidence()`. State is per key (the stream's partition key,
    usually the instrument; none = one streak over the whole stream), so the output does not
    depend on how records are batched or how keys are spread over workers. A record without a
    price is dead-lettered; the stream goes on.
    """
    count = params.count
    want_buy = params.direction in ("up", "both")
    want_sell = params.direction in ("down", "both")
    quantity = params.quantity
    strategy = params.strategy_name or ctx.node
    scale = params.confidence_scale_bps
    key_field = ctx.key
    node = ctx.node
    # key -> [last mid, signed run length: +n rising / -n falling, mid before the run started];
    # a run that began at the key's first tick is offset by UNSEEN_START so it never reaches count
    streaks: dict[object, list] = {}
    layouts: dict[tuple[str, ...], Slots] = {}

    def restore(saved: dict[object, tuple]) -> None:
        streaks.clear()
        streaks.update((key, list(streak)) for key, streak in saved.items())

    ctx.keep_state(lambda: streaks, restorer(dict[Any, tuple[float | int, int, float | int]], restore))

    def signal(at: Slots, record, action: str, start: float, mid: float) -> tuple:
        """A TradingSignal as a row in `TradingSignal.FIELDS` order."""
        if type(record) is dict:
            instrument = record.get("instrument")
        else:
            instrument = record[at.instrument] if at.instrument is not None else None
        timestamp = record[at.timestamp]
        price = record[at.ask_price] if action == "BUY" else record[at.bid_price]
        return (f"{node}:{instrument}:{timestamp}:{action}", timestamp, action, instrument, price,
                quantity, strategy, confidence(start, mid, scale))

    def step(batch: AnyBatch) -> AnyBatch:
        """The batch's signals as Rows: no dict per signal, and a frame packs rows as they are."""
        out: list[tuple] = []
        at, members = _layout(batch, key_field, layouts)
        mid_at, key_at, bid_at, ask_at = at.mid, at.key, at.bid_price, at.ask_price
        for record in members:
            try:
                try:  # subscripts, not .get(): this loop is the rule's whole cost
                    mid = record[mid_at]
                except KeyError:  # a record dict without a mid
                    mid = (record[bid_at] + record[ask_at]) / 2
                if key_at is None:
                    key = None
                else:
                    try:
                        key = record[key_at]
                    except KeyError:
                        key = None
                try:  # a subscript costs less than .get(), and a key is new only once
                    streak = streaks[key]
                except KeyError:
                    streaks[key] = [mid, 0, mid]
                    continue
                last = streak[0]  # updated in place: no new state object per event
                if mid == last:  # most ticks (90% of the real ones) leave the mid where it was
                    continue
                if mid > last:
                    run = streak[1]
                    if run > 0:
                        run += 1
                    elif run == 0:  # the key's first move: its streak's start was not seen
                        run = UNSEEN_START
                    else:
                        run = 1
                        streak[2] = last
                elif mid < last:
                    run = streak[1]
                    if run < 0:
                        run -= 1
                    elif run == 0:
                        run = -UNSEEN_START
                    else:
                        run = -1
                        streak[2] = last
                else:  # NaN: compares neither way
                    continue
                streak[0] = mid
                streak[1] = run
                if run == count:
                    if want_buy:
                        out.append(signal(at, record, "BUY", streak[2], mid))
                elif run == -count and want_sell:
                    out.append(signal(at, record, "SELL", streak[2], mid))
            except (KeyError, IndexError, TypeError, ArithmeticError) as exc:
                ctx.dead_letter(f"momentum: {type(exc).__name__}: {exc}", record_at(batch, record))
        return Rows(TradingSignal.FIELDS, out) if out else []

    return batch_map(step)
