"""Plugins of the pipeline benchmark `orders_pipeline.py` (a local plugin module, loaded by path):
a rule that turns every n-th quote into a signal stamped with the wall clock, and a sink that
measures, for each order acknowledged, how long ago its signal was made."""
from __future__ import annotations

import json
import time

from pydantic import BaseModel, ConfigDict

from cep.components.base import batch_map
from cep.plugins import rule, sink


class EveryNthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = 20
    quantity: float = 0.01


@rule("every_nth", params=EveryNthParams)
def every_nth(params: EveryNthParams, ctx):
    """A signal for every n-th quote, BUY and SELL in turn; its id carries when it was made."""
    seen = [0]

    def apply(batch):
        out = []
        for record in batch:
            seen[0] += 1
            if seen[0] % params.every == 0:
                buy = (seen[0] // params.every) % 2 == 0
                out.append({"signal_id": f"bench:{seen[0]}:{time.time_ns()}", "timestamp": record["timestamp"],
                            "action": "BUY" if buy else "SELL", "instrument": record["instrument"],
                            "trigger_price": record["ask_price"] if buy else record["bid_price"],
                            "quantity": params.quantity, "strategy_name": "bench", "confidence": 0.5})
        return out

    return batch_map(apply)


class AckLatencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


class AckLatency:
    def __init__(self, path):
        self.path, self.latencies, self.made, self.statuses = path, [], [], {}

    def write(self, batch):
        now = time.time_ns()
        for event in batch:
            self.statuses[event["status"]] = self.statuses.get(event["status"], 0) + 1
            if event["status"] == "ACCEPTED":
                made = int(event["signal_id"].rsplit(":", 1)[1])
                self.made.append(made)
                self.latencies.append(now - made)

    def close(self):
        with open(self.path, "w") as file:
            json.dump({"latencies_ns": self.latencies, "made_ns": self.made, "statuses": self.statuses}, file)


@sink("ack_latency", params=AckLatencyParams)
def ack_latency(params: AckLatencyParams, ctx):
    """Per ACCEPTED event: when its signal was made and the wall time since (written at the end)."""
    return AckLatency(params.path)
