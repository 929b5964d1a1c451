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

Feed flag: `live=True` (sources): the records come from outside at their own pace and cannot be
asked to wait (a feed, not a replay). The compiler then makes the edges it feeds `drop` rather than
`block` by default (every drop counted) and leaves its gateway at normal priority.

Delivery flags (keyword arguments of the marker, kept in `Component.extra`), which `exactly_once`
requires of every component it runs through:
- `replayable=True` (sources): the same params give the same records again;
- `checkpoint=True` (operators and rules with `state` other than stateless, and sinks): the
  factory declares its state with `BuildContext.keep_state` (a sink: what it wrote, so a restart
  can undo writes made after the last checkpoint).

Speed flag: `rows=True` (operators, rules, sinks): the component also takes `cep.rows.Rows`
batches (records of one layout as tuples, as sources and the wire carry ticks); without it the
runtime hands it record dicts.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["source", "operator", "rule", "sink", "venue"]
KINDS: tuple[Kind, ...] = ("source", "operator", "rule", "sink", "venue")
MARK = "__cep_component__"


class NoParams(BaseModel):
    """For components that take no parameters."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Component:
    """A registered factory with what `cep plugins` and the config loader need to know."""

    kind: Kind
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel]
    description: str
    origin: str = "?"                       # module or file it was loaded from
    # For operators: "stateless" chains may be fused and replicated; "keyed" keep per-key state.
    state: Literal["stateless", "keyed", "global"] = "stateless"
    # For operators given a bare value in YAML (`filter: "ask > bid"`): the params field it fills.
    shorthand: str | None = None
    # For sources: the record fields every record carries (drives type checks of expressions).
    fields: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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


def _marker(kind: Kind):
    def mark(name: str, *, params: type[BaseModel] = NoParams, state: str = "stateless",
             shorthand: str | None = None, fields: tuple[str, ...] | None = None, **extra: Any):
        def tag(factory: Callable[..., Any]) -> Callable[..., Any]:
            setattr(factory, MARK, Component(
                kind=kind, name=name, factory=factory, params=params,
                description=inspect.getdoc(factory) or "", origin=factory.__module__,
                state=state, shorthand=shorthand, fields=fields, extra=extra))  # type: ignore[arg-type]
            return factory
        return tag
    mark.__doc__ = f"Tag a factory as a cep {kind}: `@{kind}(name, params=Model)`."
    return mark


source = _marker("source")
operator = _marker("operator")
rule = _marker("rule")
sink = _marker("sink")
venue = _marker("venue")
