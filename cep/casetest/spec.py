"""What a test case may say, as pydantic models: `cep test` validates with them and `cep schema`
describes the `tests:` section from them.

The models check the shape (keys, types); what the values mean (an event's time, a node's id)
is checked where the case is built (`cep.casetest.cases`), each mistake at its line.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, NonNegativeInt, Tag

DEFAULT_COLUMNS = ("t", "instrument", "bid", "ask")
ALIASES = {"t": "timestamp", "bid": "bid_price", "ask": "ask_price"}
"""Short names a test may write for record fields, in events and in expectations alike."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleUnderTest(_Strict):
    """In a rule library: the template a case runs, with its parameters (`use:`, `with:`)."""

    use: str = Field(description="the template (or registered rule) to run")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="its parameters")
    partition_by: str | None = Field(None, description="the key field (default: the template's, or instrument)")


class Advance(_Strict):
    """Move the event-time clock without an event: `- advance: 2s`."""

    advance: str | float = Field(description="how far: 500ms, 2s, 1m")


FORMS = ("list", "mapping", "advance")


def _form(value: Any) -> str:
    """Which form a value is written in, so an error speaks of that form only."""
    if isinstance(value, list):
        return "list"
    return "advance" if isinstance(value, dict) and "advance" in value else "mapping"


Step = Annotated[Union[Annotated[Advance, Tag("advance")], Annotated[list[Any], Tag("list")],
                       Annotated[dict[str, Any], Tag("mapping")]], Discriminator(_form)]
"""An event: a list of values in `columns` order, or a mapping of fields (`t`, `bid`, `ask` are
short for timestamp, bid_price, ask_price); or an `advance:` step."""


class NodeExpectation(_Strict):
    """What one node must output (each key given is checked)."""

    records: list[dict[str, Any]] | None = Field(
        None, description="exactly these records, every field, in this order")
    match: list[dict[str, Any]] | None = Field(
        None, description="as many records, in this order, each having at least the fields given")
    count: NonNegativeInt | None = Field(None, description="how many records (0: none at all)")
    dropped: dict[str, NonNegativeInt] | None = Field(
        None, description="drops per reason, e.g. {partial_match_within: 1}")
    dead_lettered: NonNegativeInt | None = Field(None, description="how many records it dead-lettered")


Expectation = Annotated[Union[Annotated[list[dict[str, Any]], Tag("list")],
                              Annotated[NodeExpectation, Tag("mapping")]], Discriminator(_form)]
"""A list is short for `match:` (`[]`: no record at all)."""


class CaseDefaults(_Strict):
    """Keys every case of a suite shares unless it sets them itself."""

    feed: str | None = Field(None, description="the node the input goes into: a source (replaced "
                                               "by the input) or a stream, rule or sink (fed directly); "
                                               "default: the only source")
    rule: str | RuleUnderTest | None = Field(None, description="rule libraries: the template to "
                                                                "run (default: the only one)")
    columns: list[str] | None = Field(None, description="field of each value of a list event "
                                                        f"(default: {', '.join(DEFAULT_COLUMNS)})")
    instrument: str | None = Field(None, description="instrument of events that do not name one")
    date: dt.date | str | None = Field(None, description="day of times of day such as 10:00:01 "
                                                        "(default 1970-01-01)")
    step: str | float | None = Field(None, description="time between events written without one "
                                                      "(default 1s)")


class Case(CaseDefaults):
    """One test: input into one node, expectations on what nodes output."""

    name: str = Field(min_length=1, description="shown in the report")
    input: list[Step] = Field(default_factory=list,
                                               description="events and advance steps, in order")
    expect: dict[str, Expectation] = Field(min_length=1, description="node id -> what it outputs")


class Suite(CaseDefaults):
    """`tests:` as a mapping: shared keys, then the cases."""

    cases: list[Case] = Field(min_length=1, description="the test cases")


class TestFile(_Strict):
    """A file of tests on their own: the pipeline (or rule library) they run, and the tests."""

    pipeline: str = Field(description="pipeline file or rule library, relative to this file")
    tests: Union[list[Case], Suite]
