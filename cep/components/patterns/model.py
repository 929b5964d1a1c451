"""What a pattern is: a sequence of steps, a time bound and an after-match skip strategy.

The vocabulary is Flink CEP's (its `cep.md` is the spec), spelled the way the YAML surface spells
it: `contiguity` to the previous step is `strict` (next), `relaxed` (followedBy, the default) or
`any` (followedByAny); `negated` turns a step into notNext (strict) or notFollowedBy (relaxed); a
looping step is `consecutive` (strict inside the loop) or `allow_combinations` (any inside the
loop), relaxed otherwise. `validate_pattern` reports, all at once, what Flink would refuse.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from cep.errors import Problem

if TYPE_CHECKING:
    from cep.components.patterns.view import MatchView

Condition = Callable[[dict, "MatchView"], bool]
"""A step's test of one event, given the partial match so far (see `MatchView`)."""

CONTIGUITIES = ("strict", "relaxed", "any")
SKIPS = ("no_skip", "skip_to_next", "skip_past_last_event", "skip_to_first", "skip_to_last")
RESERVED_NAMES = ("prev",)


@dataclass(frozen=True)
class Step:
    """One step of a pattern.

    Quantifiers: none (the step binds exactly one event), `times=N` (exactly N), `times=(N, M)`
    (N to M; `(0, M)` is read as Flink reads it, an optional `(1, M)`), `one_or_more=True` (1 or more; with `times=N`, N or more), `optional=True` (may
    bind nothing), `greedy=True` (a looping step takes as many events as it can before the next
    step may start). A step with `times` or `one_or_more` is *looping*: conditions of later steps
    see it as a list of events; any other step is seen as one event (None while unbound).
    """

    name: str
    condition: Condition | None = None
    times: int | tuple[int, int] | None = None
    one_or_more: bool = False
    optional: bool = False
    greedy: bool = False
    consecutive: bool = False
    allow_combinations: bool = False
    until: Condition | None = None
    contiguity: str = "relaxed"
    negated: bool = False

    def __post_init__(self) -> None:
        # Flink reads times(0, M) as an optional times(1, M): "none" is the optional's empty pass
        if isinstance(self.times, (tuple, list)) and self.times[0] == 0 and self.times[1] >= 1:
            object.__setattr__(self, "times", (1, self.times[1]))
            object.__setattr__(self, "optional", True)

    @property
    def looping(self) -> bool:
        """Whether the step may bind more than one event (it binds a list)."""
        return self.times is not None or self.one_or_more

    @property
    def bounds(self) -> tuple[int, int | None]:
        """(min, max) number of events of a non-optional pass; max None means unbounded."""
        if self.times is None:
            low, high = 1, 1
        elif isinstance(self.times, int):
            low, high = self.times, self.times
        else:
            low, high = self.times
        return (low, None) if self.one_or_more else (low, high)

    @property
    def inner_contiguity(self) -> str:
        """Contiguity between the events a looping step binds."""
        if self.consecutive:
            return "strict"
        return "any" if self.allow_combinations else "relaxed"


@dataclass(frozen=True)
class Pattern:
    """A pattern sequence: steps in order, an optional event-time bound (`within_ns`: the last
    event of a match is less than `within_ns` after its first) and an after-match skip strategy:
    "no_skip", "skip_to_next", "skip_past_last_event", ("skip_to_first", STEP) or
    ("skip_to_last", STEP) (the string "skip_to_first:STEP" is read the same way)."""

    steps: tuple[Step, ...]
    within_ns: int | None = None
    skip: str | tuple[str, str] = "no_skip"
    names: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "names", {step.name: i for i, step in enumerate(self.steps)})

    @property
    def skip_strategy(self) -> tuple[str, str | None]:
        """The skip strategy as (kind, step name or None)."""
        if isinstance(self.skip, tuple):
            return self.skip[0], self.skip[1]
        kind, _, step = str(self.skip).partition(":")
        return kind, (step or None)


def validate_pattern(pattern: Pattern) -> list[Problem]:
    """Every reason Flink CEP would refuse `pattern` (errors), plus warnings for patterns whose
    partial matches can live forever (relaxed waiting or unbounded loops without `within`)."""
    problems: list[Problem] = []

    def error(message: str, hint: str | None = None) -> None:
        problems.append(Problem(message, hint=hint))

    steps = pattern.steps
    if not steps:
        error("a pattern needs at least one step")
        return problems
    seen: set[str] = set()
    for index, step in enumerate(steps):
        problems.extend(_step_problems(step, index, steps))
        if step.name in seen:
            error(f"step name {step.name!r} is used twice", "every step needs its own name")
        seen.add(step.name)
    if steps[-1].negated and steps[-1].contiguity == "relaxed" and not pattern.within_ns:
        error(f"the pattern ends in a negated step {steps[-1].name!r} (notFollowedBy) but has "
              "no within", "add within: the absence is only known once the window closes")
    if pattern.within_ns is not None and pattern.within_ns <= 0:
        error(f"within must be positive, got {pattern.within_ns}ns")
    problems.extend(_skip_problems(pattern))
    waiting = None if pattern.within_ns else _waits_forever(steps)
    if waiting:
        problems.append(Problem(
            f"partial matches of this pattern can wait forever: {waiting}, and there is no "
            "within",
            hint="add within so old partial matches are pruned; the partial-match cap "
                 "discards (and counts) the excess otherwise",
            severity="warning"))
    return problems


Finding = tuple[str, str | None]
"""One error of a step: its message and a hint (or None)."""


def _step_problems(step: Step, index: int, steps: tuple[Step, ...]) -> list[Problem]:
    """What is wrong with one step: its own settings, then how it sits among its neighbours."""
    where = f"step {step.name!r}"
    problems = [Problem(f"{where}: {message}", hint=hint)
                for check in (_name_problems, _quantifier_problems)
                for message, hint in check(step)]
    problems += [Problem(f"{where}: {message}", hint=hint)
                 for message, hint in _placement_problems(step, index, steps)]
    if index == 0 and step.contiguity != "relaxed":
        problems.append(Problem(f"{where}: contiguity has no effect on the first step",
                                severity="warning"))
    if step.greedy and index == len(steps) - 1:
        problems.append(Problem(f"{where}: greedy has no effect on the last step",
                                severity="warning"))
    return problems


def _name_problems(step: Step) -> Iterator[Finding]:
    if not step.name or ":" in step.name:
        yield "a step name must be non-empty and cannot contain ':'", None
    if step.name in RESERVED_NAMES:
        yield (f"{step.name!r} is reserved (it names the previous event of a looping step)",
               "rename the step")
    if step.contiguity not in CONTIGUITIES:
        yield f"unknown contiguity {step.contiguity!r}", "use strict, relaxed or any"


def _quantifier_problems(step: Step) -> Iterator[Finding]:
    low, high = step.bounds
    if step.looping and (low < 1 or (high is not None and high < low)):
        yield (f"times must be N >= 1 or [N, M] with 0 <= N <= M and M >= 1, "
               f"got {step.times!r}"), None
    if not step.looping:
        for flag in ("greedy", "consecutive", "allow_combinations"):
            if getattr(step, flag):
                yield f"{flag} applies only to a looping step (times or one_or_more)", None
    if step.consecutive and step.allow_combinations:
        yield "consecutive and allow_combinations exclude each other", None
    if step.until is not None and not step.one_or_more:
        yield "until applies only to a one_or_more step", None


def _placement_problems(step: Step, index: int, steps: tuple[Step, ...]) -> Iterator[Finding]:
    """A negated step's limits, and what may not follow an optional or a greedy step."""
    previous = steps[index - 1] if index > 0 else None
    if step.negated:
        if previous is None:
            yield "the first step cannot be negated", "a pattern must start with an event"
        if step.looping or step.optional or step.greedy or step.until is not None:
            yield "a negated step takes no quantifier, optional, greedy or until", None
        if step.contiguity == "any":
            yield "a negated step must be strict (notNext) or relaxed (notFollowedBy)", None
        if previous is not None and previous.optional:
            yield ("a negated step cannot follow an optional step",
                   "write two patterns, one with and one without the optional step")
    if step.optional and previous is not None and previous.greedy:
        yield "an optional step cannot follow a greedy one", None


def _skip_problems(pattern: Pattern) -> list[Problem]:
    kind, target = pattern.skip_strategy
    if kind not in SKIPS:
        return [Problem(f"unknown skip strategy {kind!r}", hint="use one of " + ", ".join(SKIPS))]
    if kind in ("skip_to_first", "skip_to_last"):
        if target not in pattern.names:
            return [Problem(f"{kind} names the step {target!r}, which the pattern does not have",
                            hint="write " + kind + ":STEP with one of " + ", ".join(pattern.names))]
    elif target is not None:
        return [Problem(f"{kind} takes no step name")]
    return []


def _waits_forever(steps: tuple[Step, ...]) -> str | None:
    """Why a partial match may never end without `within` (the first step that makes it so)."""
    for index, step in enumerate(steps):
        if step.looping and step.bounds[1] is None and step.until is None:
            return f"step {step.name!r} loops without an upper bound or until"
        if index > 0 and step.contiguity != "strict" and not step.negated:
            return f"step {step.name!r} waits for its event ({step.contiguity} contiguity)"
    return None
