"""The `pattern` rule: an inline CEP pattern of a pipeline, run by the pattern engine."""
from __future__ import annotations

from cep.components.base import BatchOperator, BuildContext, stateful
from cep.components.patterns.emit import Emitter
from typing_extensions import TypedDict

from pydantic import NonNegativeInt

from cep.components.patterns.matcher import Match, Matcher, MatcherData
from cep.components.patterns.params import PatternParams
from cep.components.state import restorer
from cep.events import Batch
from cep.plugins.markers import rule

DROP_REASONS = {"discarded": "partial_match_cap", "timed_out": "partial_match_within"}
"""Matcher counter -> the reason its partial matches show under in the run's `dropped` counts.
Partial matches discarded by the skip strategy are the pattern's meaning, not a loss."""

TOP_KEYS = 5
"""Keys holding the most partial matches that a rule reports (`cep top`)."""
KEY_CHARS = 64
"""A reported key is cut to this many characters (a key is data: it may be any string)."""


class PatternState(TypedDict):
    """What the rule checkpoints: its matcher, and the drops of each reason already counted."""

    matcher: MatcherData
    reported: dict[str, NonNegativeInt]


@rule("pattern", params=PatternParams, state="keyed", checkpoint=True)
def pattern(params: PatternParams, ctx: BuildContext) -> BatchOperator:
    """Match an event pattern per partition key, with Flink CEP's semantics.

    Records are matched independently per value of the rule's `partition_by` field (no key:
    one sequence for the whole stream), in arrival order, with `timestamp` as event time.
    Each match is emitted as a PatternMatch record or, with `emit`, a TradingSignal or any
    record (see `cep.components.patterns.emit`). End of stream releases matches that waited on
    a trailing negated step and drops the other partial matches. A record whose `where`/`until`
    fails (missing field, None...) is dead-lettered and has no effect on any match; a match whose
    `emit` fails is dead-lettered. Partial matches lost to `max_partials` or pruned by `within`
    are counted as drops. Output does not depend on batching nor on how keys are spread over
    workers (only the order of matches of different keys may differ).
    """
    matcher = Matcher(params.compile(), params.max_partials)
    emitter = Emitter(params, ctx.node)
    key_field = ctx.key
    timed = params.within is not None
    reported = dict.fromkeys(DROP_REASONS, 0)

    def restore(saved: PatternState) -> None:
        matcher.restore(saved["matcher"])
        reported.update(saved["reported"])

    ctx.keep_state(lambda: {"matcher": matcher.snapshot(), "reported": reported}, restorer(PatternState, restore))

    def gauges() -> dict:
        alive, top = matcher.partials(TOP_KEYS)
        return {"alive": alive, "top_keys": [[str(key)[:KEY_CHARS], count] for key, count in top]}

    ctx.keep_gauges(gauges)

    def emit(matches: list[Match], out: Batch) -> Batch:
        for match in matches:
            try:
                out.append(emitter(match))
            except Exception as exc:  # one bad match must not end the stream
                ctx.dead_letter(f"pattern emit: {type(exc).__name__}: {exc}", dict(match))
        for counter, reason in DROP_REASONS.items():
            count = matcher.counters[counter]
            if count > reported[counter]:
                ctx.counters.drop(reason, count - reported[counter])
                reported[counter] = count
        return out

    def step(batch: Batch) -> Batch:
        matches: list[Match] = []
        feed = matcher.feed
        now = None
        for record in batch:
            try:
                found = feed(record.get(key_field) if key_field else None, record)
            except Exception as exc:  # a condition failed on this record: it never happened
                ctx.dead_letter(f"pattern: {type(exc).__name__}: {exc}", record)
                continue
            now = record["timestamp"]
            if found:
                matches.extend(found)
        if timed and now is not None:
            matches.extend(matcher.advance_time(now))
        return emit(matches, [])

    def finish() -> Batch:
        return emit(matcher.finish(), [])

    return stateful(step, finish)
