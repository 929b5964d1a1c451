"""The `paper` venue: `cep.orders.paper.PaperVenue` as a pipeline component."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PositiveInt

from cep.components.base import BuildContext
from cep.durations import parse_duration
from cep.orders.paper import PaperVenue
from cep.plugins.markers import venue


def _duration(value: str | int | float) -> str | int | float:
    parse_duration(value)  # raises ValueError with the fix
    return value


Delay = Annotated[str | int | float, AfterValidator(_duration)]


class PaperVenueParams(BaseModel):
    """Fill orders against the quotes, in event time, as the exchange would have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency: Delay = Field(0, description="time from sending an order to its arrival (2ms)")
    jitter: Delay = Field(0, description="a seeded random extra latency up to this")
    seed: int = Field(0, description="seed of the jitter: the same seed gives the same fills")
    remainder: Literal["next_quotes", "expire"] = Field(
        "next_quotes", description="what is left of a market order after the displayed size: "
                                   "takes the next quotes, or expires (immediate-or-cancel)")
    history: PositiveInt = Field(10_000, description="quotes kept per instrument for orders "
                                                              "that arrive after newer quotes")

    def latency_ns(self) -> int:
        return parse_duration(self.latency)

    def jitter_ns(self) -> int:
        return parse_duration(self.jitter)


@venue("paper", params=PaperVenueParams)
def paper_venue(params: PaperVenueParams, ctx: BuildContext) -> PaperVenue:
    """The paper exchange: market orders fill at the ask (BUY) / bid (SELL) up to the displayed
    size, limit orders when crossed; seeded and deterministic; deduplicates by client order id."""
    return PaperVenue(latency_ns=params.latency_ns(), jitter_ns=params.jitter_ns(), seed=params.seed,
                      remainder=params.remainder, history=params.history, name=ctx.node)
