"""What a match becomes on the rule's output stream.

Without `emit`: a `PatternMatch` record `{rule, key, timestamp, match: {STEP: [events...]}}`,
every bound event as it came in (steps that bound nothing are absent). With `emit`: a
TradingSignal (the fields of `cep.events.TradingSignal`) or any record (`type: Record`), its values
evaluated over the match. `timestamp` is always the match's last event's.
"""
from __future__ import annotations

from typing import Any

from cep.components.patterns.matcher import Match
from cep.components.patterns.params import PatternParams


class Emitter:
    """Turns the matches of one rule node into output records (never mutates the events).

    Raises whatever an emit expression raises (KeyError, TypeError, ...): the caller
    dead-letters that match and goes on.
    """

    def __init__(self, params: PatternParams, node: str):
        self.node = node
        self.emit = params.emit
        self.values = params.emitters()
        self.looping = {step.name: step.times is not None or step.one_or_more
                        for step in params.pattern}

    def __call__(self, match: Match) -> dict[str, Any]:
        last = next(reversed(match.values()))[-1]
        timestamp = last["timestamp"]
        if self.emit is None:
            return {"rule": self.node, "key": match.key, "timestamp": timestamp,
                    "match": dict(match)}
        bound = self.bind(match)
        values = {name: value(last, bound) for name, value in self.values.items()}
        if self.emit.type == "Record":
            return {**values, "timestamp": timestamp}
        return self.signal(match.key, last, timestamp, values)

    def bind(self, match: Match) -> dict[str, Any]:
        """Step name -> its events (a looping step) or its one event (else; None if unbound)."""
        return {name: match.get(name, []) if looping else match.get(name, [None])[0]
                for name, looping in self.looping.items()}

    def signal(self, key: Any, last: dict, timestamp: int, values: dict) -> dict[str, Any]:
        action = self.emit.action
        instrument = values.get("instrument")
        if instrument is None:
            instrument = last.get("instrument", key)
        confidence = min(1.0, max(0.0, float(values["confidence"])))
        return {"signal_id": f"{self.node}:{key}:{timestamp}:{action}", "timestamp": timestamp,
                "action": action, "instrument": str(instrument),
                "trigger_price": float(values["trigger_price"]),
                "quantity": float(values["quantity"]), "strategy_name": self.node,
                "confidence": confidence}
