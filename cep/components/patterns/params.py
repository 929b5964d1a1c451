"""The YAML surface of a pattern rule, validated at load time (`cep validate`).

An inline rule's keys other than `from`/`partition_by` are these params::

    pattern:                 # the steps, in order (see Step in cep.components.patterns.model)
      - {name: dip, where: "mid < 10"}
      - {name: up, where: "prev is None or mid > prev.mid", times: 3, consecutive: true}
    within: 2s               # optional; event time, last event - first event < within
    skip: no_skip            # | skip_to_next | skip_past_last_event | skip_to_first:STEP | ...
    emit: {action: BUY, trigger_price: "up[-1].ask_price", confidence: "0.6"}   # optional
    max_partials: 10000      # partial matches kept per key; the excess is discarded and counted

Everything Flink CEP would refuse, and every expression mistake, is a validation error pointing
at the step (or key) that causes it; nothing is left to fail when the rule is built.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from cep.components.patterns.expressions import as_condition, as_value
from cep.components.patterns.model import Pattern, Step, validate_pattern
from cep.durations import parse_duration
from cep.errors import Problem, UserError

Number = Union[float, str]
"""An emit value: a number, or an expression string over the match."""


class StepParams(BaseModel):
    """One step of a pattern, as written in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the step's name; later expressions read what it bound")
    where: str | None = Field(None, description="condition on the event (absent: any event)")
    times: int | tuple[int, int] | None = Field(None, description="N, or [N, M]")
    one_or_more: bool = Field(False, description="1 or more events (N or more with times)")
    optional: bool = Field(False, description="the step may bind nothing")
    greedy: bool = Field(False, description="a looping step takes as many events as it can")
    consecutive: bool = Field(False, description="strict contiguity inside the loop")
    allow_combinations: bool = Field(False, description="any contiguity inside the loop")
    until: str | None = Field(None, description="stop condition of a one_or_more loop")
    contiguity: Literal["strict", "relaxed", "any"] = Field(
        "relaxed", description="to the previous step: strict (next), relaxed (followedBy), "
                               "any (followedByAny)")
    negated: bool = Field(False, description="notNext (strict) / notFollowedBy (relaxed)")


class SignalEmit(BaseModel):
    """Emit a TradingSignal per match; strings are expressions over the match's steps (a step
    without a quantifier is one event, a looping step a list), bare names read the last event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["TradingSignal"] = Field("TradingSignal", description="the record emitted "
                                           "(Record: any fields, each an expression)")
    action: Literal["BUY", "SELL"] = Field(description="BUY or SELL")
    trigger_price: Number = Field(description="expression over the match, e.g. up[-1].ask_price")
    quantity: Number = Field(1.0, description="number or expression")
    confidence: Number = Field(1.0, description="number or expression, 0 to 1")
    instrument: str | None = Field(None, description="expression; default: the last event's "
                                                     "instrument, else the partition key")


class RecordEmit(BaseModel):
    """Emit any record per match: each key's value is an expression (or a literal number/bool),
    plus the match's `timestamp`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["Record"]


Emit = Annotated[Union[SignalEmit, RecordEmit], Field(discriminator="type")]


class PatternParams(BaseModel):
    """An inline CEP pattern rule (Flink CEP semantics); see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: list[StepParams] = Field(min_length=1, description="the steps, in order")
    within: str | float | None = Field(None, description="event-time bound of a whole match")
    skip: str = Field("no_skip", description="after-match skip strategy")
    emit: Emit | None = Field(None, description="what a match becomes (default: PatternMatch)")
    max_partials: int = Field(10_000, ge=1, description="partial matches kept per key")

    @field_validator("emit", mode="before")
    @classmethod
    def _default_emit_type(cls, value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": "TradingSignal", **value}
        return value

    @field_validator("within")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"within must be a positive duration, got {value!r}")
        return value

    @property
    def within_ns(self) -> int | None:
        return parse_duration(self.within) if self.within is not None else None

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.pattern)

    def compile(self) -> Pattern:
        """The engine's Pattern, with every `where`/`until` compiled (UserError if one fails)."""
        names = ("prev", *self.step_names)
        steps = []
        for step in self.pattern:
            fields = step.model_dump(exclude={"where", "until"})
            steps.append(Step(condition=_condition(step.where, names),
                              until=_condition(step.until, names), **fields))
        return Pattern(tuple(steps), within_ns=self.within_ns, skip=self.skip)

    def emitters(self) -> dict[str, Any]:
        """The emit values compiled: name -> `(last_event, bound) -> value` (UserError if one
        fails); empty without `emit`."""
        if self.emit is None:
            return {}
        values = self.emit.model_dump(exclude={"type", "action"}, exclude_none=True)
        return {key: as_value(value, self.step_names) for key, value in values.items()}

    def warnings(self) -> list[str]:
        """What is legal but risky (e.g. an unbounded loop without `within`); `cep validate` and
        `cep run` print these without failing."""
        return [_text(p) for p in validate_pattern(self.compile()) if p.severity == "warning"]

    @model_validator(mode="after")
    def _check(self) -> "PatternParams":
        errors = self._expression_errors()
        if not errors:
            errors = [_detail(self._locate(p), _text(p)) for p in validate_pattern(self.compile())
                      if p.severity == "error"]
        if errors:
            raise ValidationError.from_exception_data("PatternParams", errors)
        return self

    def _expression_errors(self) -> list[InitErrorDetails]:
        names = ("prev", *self.step_names)
        errors = []
        for index, step in enumerate(self.pattern):
            for key in ("where", "until"):
                source = getattr(step, key)
                if source is not None:
                    errors.extend(_failures(lambda: as_condition(source, names),
                                            ("pattern", index, key)))
        if self.emit is not None:
            values = self.emit.model_dump(exclude={"type", "action"}, exclude_none=True)
            for key, value in values.items():
                errors.extend(_failures(lambda: as_value(value, self.step_names), ("emit", key)))
        return errors

    def _locate(self, problem: Problem) -> tuple:
        """The params path a pattern problem belongs to: its step, `within` or `skip`."""
        for index, name in enumerate(self.step_names):
            if problem.message.startswith(f"step {name!r}:"):
                return ("pattern", index)
        if "skip" in problem.message:
            return ("skip",)
        if "within" in problem.message and self.within is not None:
            return ("within",)
        return ("pattern", len(self.pattern) - 1)


def _condition(source: str | None, names: tuple[str, ...]):
    return None if source is None else as_condition(source, names)


def _failures(build, loc: tuple) -> list[InitErrorDetails]:
    try:
        build()
    except UserError as exc:
        return [_detail(loc, _text(p)) for p in exc.problems]
    return []


def _text(problem: Problem) -> str:
    return problem.message + (f" ({problem.hint})" if problem.hint else "")


def _detail(loc: tuple, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("value_error", "{message}",
                                                     {"message": message}),
                            loc=loc, input=None)
