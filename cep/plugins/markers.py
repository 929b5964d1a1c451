"""Markers that tag a factory as a cep component. What each kind's factory returns:

- source:   `factory(params, ctx) -> Source`            (cep.components.base.Source)
- operator: `factory(params, ctx) -> BatchOperator`     (Observable[Batch] -> Observable[Batch])
- rule:     `factory(params, ctx) -> BatchOperator`     (emits TradingSignal or other records)
- sink:     `factory(params, ctx) -> Sink`              (cep.components.base.Sink)

`params` is an instance of the pydantic model given to the marker (validated from YAML, unknown
keys rejected); `ctx` is a `cep.components.base.BuildContext`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["source", "operator", "rule", "sink"]
KINDS: tuple[Kind, ...] = ("source", "operator", "rule", "sink")
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

    def configure(self, args: Any, base_dir: Path | None = None, registry: Any = None) -> BaseModel:
        """Validate raw YAML `args` into the params model (raises pydantic.ValidationError).

        With a `shorthand`, a bare value or a mapping that is not made of the model's own
        fields is the shorthand field's value: `filter: "x > 1"`, `take: 10`,
        `map: {mid: "(bid_price + ask_price) / 2"}`.
        """
        if self.shorthand is not None and not (
                isinstance(args, dict) and args and set(args) <= set(self.params.model_fields)):
            args = {self.shorthand: args}
        context = {"base_dir": base_dir or Path.cwd(), "registry": registry}
        return self.params.model_validate(args if args is not None else {}, context=context)

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
