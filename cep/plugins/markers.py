"""Markers that tag a factory as a cep component. What each kind's factory returns:

- source:   `factory(params, ctx) -> Source`            (cep.components.base.Source)
- operator: `factory(params, ctx) -> BatchOperator`     (Observable[Batch] -> Observable[Batch])
- rule:     `factory(params, ctx) -> BatchOperator`     (emits TradingSignal or other records)
- sink:     `factory(params, ctx) -> Sink`              (cep.components.base.Sink)
- venue:    `factory(params, ctx) -> VenueAdapter`      (cep.orders.venue.VenueAdapter: place,
            cancel, query by client order id, the fill stream `reports()`; see that module)

`params` is an instance of the pydantic model given to the marker (validated from YAML, unknown
keys rejected); `ctx` is a `cep.components.base.BuildContext`. A params model may define
`warnings() -> list[str]`: legal but risky settings, printed by `cep validate` and `cep run`.

Capabilities: what a component can do, declared as keyword arguments of its marker and kept as
fields of its `Component`, the one place the compiler and the runtime read them. Each marker
takes only its kind's; anything else (`checkpont=True`, `replayable=True` on a sink, a
capability that is not True or False) is a `PluginError` naming the plugin's file and line
when the module is imported.
- `live` (sources): the records come from outside at their own pace and cannot be asked to
  wait (a feed, not a replay). The edges it feeds default to `drop` rather than `block` (every
  drop counted) and its gateway keeps normal priority.
- `replayable` (sources): the same params give the same records again, so a restart resumes
  it from an offset; `exactly_once` requires it of every source it runs from.
- `checkpoint` (operators, rules, sinks): the factory declares its state with
  `BuildContext.keep_state` (a sink: what it wrote, so a restart can undo writes made after
  the last checkpoint); `exactly_once` requires it of every component with `state` other than
  stateless, and of every sink.
- `rows` (operators, rules, sinks): the component also takes `cep.rows.Rows` batches (records
  of one layout as tuples, as sources and the wire carry ticks); without it the runtime hands
  it record dicts.
- `sets_key` (operators): the operator re-keys its stream by its `field` parameter (`key_by`).

`state` (operators, rules) says what the component remembers: "stateless" chains may be fused
and replicated, "keyed" state is per key, "global" state is one for the whole stream.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from cep.errors import Location, PluginError, Problem

Kind = Literal["source", "operator", "rule", "sink", "venue"]
KINDS: tuple[Kind, ...] = ("source", "operator", "rule", "sink", "venue")
MARK = "__cep_component__"
State = Literal["stateless", "keyed", "global"]
STATES: tuple[State, ...] = ("stateless", "keyed", "global")

CAPABILITIES: dict[str, tuple[Kind, ...]] = {
    "live": ("source",),
    "replayable": ("source",),
    "checkpoint": ("operator", "rule", "sink"),
    "rows": ("operator", "rule", "sink"),
    "sets_key": ("operator",),
}
"""Each capability and the kinds of component that may declare it (see the module docstring)."""


class NoParams(BaseModel):
    """For components that take no parameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Component:
    """A registered factory with what `cep plugins`, the compiler and the runtime need to know."""

    kind: Kind
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel]
    description: str
    origin: str = "?"                       # module or file it was loaded from
    state: State = "stateless"
    # For operators given a bare value in YAML (`filter: "ask > bid"`): the params field it fills.
    shorthand: str | None = None
    # For sources and rules: the record fields every record carries (drives type checks of expressions).
    fields: tuple[str, ...] | None = None
    # Capabilities (see the module docstring and CAPABILITIES).
    live: bool = False
    replayable: bool = False
    checkpoint: bool = False
    rows: bool = False
    sets_key: bool = False

    @property
    def capabilities(self) -> list[str]:
        """What `cep plugins` shows: the state it keeps, if any, and the capabilities it declares."""
        state = [f"{self.state} state"] if self.state != "stateless" else []
        return state + [name for name in CAPABILITIES if getattr(self, name)]

    def shorthand_args(self, args: Any) -> Any:
        """The params mapping for raw YAML `args`, applying the shorthand rule.

        With a `shorthand`, a mapping made of the model's own keys is taken as is; anything else
        is the shorthand field's value: `filter: "x > 1"`, `take: 10`,
        `map: {mid: "(bid_price + ask_price) / 2"}`.
        """
        if args is None:
            args = {}
        keys = {key for name, info in self.params.model_fields.items() for key in (name, info.alias) if key}
        if self.shorthand and not (isinstance(args, dict) and set(args) <= keys):
            return {self.shorthand: args}
        return args

    def configure(self, args: Any, base_dir: Path | None = None, registry: Any = None) -> BaseModel:
        """Validate raw YAML `args` into the params model (raises pydantic.ValidationError)."""
        context = {"base_dir": base_dir or Path.cwd(), "registry": registry}
        return self.params.model_validate(self.shorthand_args(args), context=context)

    @property
    def summary(self) -> str:
        return self.description.strip().splitlines()[0] if self.description.strip() else ""


Tag = Callable[[Callable[..., Any]], Callable[..., Any]]
Marker = TypeVar("Marker", bound=Callable[..., Tag])


def _declared(marker: Marker) -> Marker:
    """Refuse, as a PluginError at the plugin's line, any option the marker does not declare and
    any capability that is not True or False, instead of a TypeError or a silent mistake."""
    kind = marker.__name__
    options = [name for name in inspect.signature(marker).parameters if name != "name"]

    @functools.wraps(marker)
    def checked(name: str, **given: Any) -> Tag:
        caller = sys._getframe(1)
        where = Location(caller.f_code.co_filename, caller.f_lineno, 1)
        for option, value in given.items():
            problem = _option_problem(f"@{kind}({name!r})", kind, option, value, options)
            if problem:
                raise PluginError(Problem(problem[0], where, problem[1]))
        return marker(name, **given)
    return checked  # type: ignore[return-value]


def _option_problem(call: str, kind: str, option: str, value: Any,
                    options: list[str]) -> tuple[str, str | None] | None:
    """What is wrong with `option=value` in the marker `call` of `kind`, and the fix; or None."""
    if option not in options:
        if option in CAPABILITIES:
            kinds = ", ".join(f"{k}s" for k in CAPABILITIES[option])
            own = ", ".join(o for o in options if o in CAPABILITIES) or "none"
            return f"{call}: {option} is a capability of {kinds}, not of {kind}s", f"a {kind} declares {own}"
        close = difflib.get_close_matches(option, options, n=1)
        return (f"{call} has no option {option!r}",
                (f"did you mean {close[0]!r}? " if close else "") + f"@{kind} takes {', '.join(options)}")
    if option in CAPABILITIES and not isinstance(value, bool):
        return f"{call}: {option} must be True or False, got {value!r}", None
    if option == "state" and value not in STATES:
        return f"{call}: state must be one of {', '.join(STATES)}, got {value!r}", None
    return None


def _tag(kind: Kind, name: str, params: type[BaseModel], **declared: Any) -> Tag:
    def tag(factory: Callable[..., Any]) -> Callable[..., Any]:
        setattr(factory, MARK, Component(kind=kind, name=name, factory=factory, params=params,
                                         description=inspect.getdoc(factory) or "",
                                         origin=factory.__module__, **declared))
        return factory
    return tag


@_declared
def source(name: str, *, params: type[BaseModel] = NoParams, fields: tuple[str, ...] | None = None,
           live: bool = False, replayable: bool = False) -> Tag:
    """Tag a factory `(params, ctx) -> Source` as the cep source `name`."""
    return _tag("source", name, params, fields=fields, live=live, replayable=replayable)


@_declared
def operator(name: str, *, params: type[BaseModel] = NoParams, state: State = "stateless",
             shorthand: str | None = None, checkpoint: bool = False, rows: bool = False,
             sets_key: bool = False) -> Tag:
    """Tag a factory `(params, ctx) -> BatchOperator` as the cep operator `name`."""
    return _tag("operator", name, params, state=state, shorthand=shorthand, checkpoint=checkpoint,
                rows=rows, sets_key=sets_key)


@_declared
def rule(name: str, *, params: type[BaseModel] = NoParams, state: State = "stateless",
         fields: tuple[str, ...] | None = None, checkpoint: bool = False, rows: bool = False) -> Tag:
    """Tag a factory `(params, ctx) -> BatchOperator` emitting signals as the cep rule `name`."""
    return _tag("rule", name, params, state=state, fields=fields, checkpoint=checkpoint, rows=rows)


@_declared
def sink(name: str, *, params: type[BaseModel] = NoParams, checkpoint: bool = False,
         rows: bool = False) -> Tag:
    """Tag a factory `(params, ctx) -> Sink` as the cep sink `name`."""
    return _tag("sink", name, params, checkpoint=checkpoint, rows=rows)


@_declared
def venue(name: str, *, params: type[BaseModel] = NoParams) -> Tag:
    """Tag a factory `(params, ctx) -> VenueAdapter` as the cep venue `name`."""
    return _tag("venue", name, params)
