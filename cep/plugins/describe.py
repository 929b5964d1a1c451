"""`cep plugins`: every registered component with its one-line description, what it declares
(`capabilities: keyed state, checkpoint, rows`; see `cep.plugins.markers`) and its parameters, the
keys of nested parameters (a pattern's steps, its emit) expanded beneath them, and the rule
templates a pipeline imports."""
from __future__ import annotations

import os
from types import UnionType
from typing import Annotated, Iterator, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cep.plugins.manager import Registry


def _type_name(annotation) -> str:
    """A type as a user reads it in YAML terms: `str | int | float`, `'drop' | 'unit'`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None:
        inner = ", ".join(_type_name(arg) for arg in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _nested_models(annotation) -> list[type[BaseModel]]:
    """The parameter models inside an annotation (`list[StepParams]`, `SignalEmit | RecordEmit`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _nested_models(arg)]


def _fields(model: type[BaseModel], shorthand: str | None, indent: str) -> Iterator[str]:
    for name, info in model.model_fields.items():
        default = "required" if info.default is PydanticUndefined and info.default_factory is None else (
            f"= {info.default!r}" if info.default_factory is None else "= (computed)")
        if shorthand == name:
            default += "  (shorthand)"
        description = f"  {info.description}" if info.description else ""
        yield f"{indent}{info.alias or name}: {_type_name(info.annotation)} {default}{description}"
        for nested in _nested_models(info.annotation):
            summary = " ".join((nested.__doc__ or "").strip().split("\n\n")[0].split())
            yield f"{indent}  {nested.__name__}: {summary}"
            yield from _fields(nested, None, indent + "    ")


def describe(registry: Registry, kind: str | None = None) -> Iterator[str]:
    current = None
    for component in registry.all():
        if kind and component.kind != kind:
            continue
        if component.kind != current:
            current = component.kind
            yield f"{current}s:"
        origin = "" if component.origin.startswith("cep.") else f"  [{component.origin}]"
        yield f"  {component.name:<24} {component.summary}{origin}"
        if component.capabilities:
            yield f"      capabilities: {', '.join(component.capabilities)}"
        yield from _fields(component.params, component.shorthand, "      ")
    if kind in (None, "rule") and registry.templates:
        yield from _templates(registry)


def _templates(registry: Registry) -> Iterator[str]:
    """The rule templates a pipeline imports (`use: NAME`, `with:` its params)."""
    yield "templates (imported by the pipeline; use: NAME, with: {param: value}):"
    for name, template in sorted(registry.templates.items()):
        shadows = ("  (shadows the built-in rule of that name, whose parameters differ)"
                   if registry.get("rule", name) is not None else "")
        yield f"  {name:<24} {template.description}  [{os.path.normpath(template.file)}]{shadows}"
        for param, default in template.params.items():
            yield f"      {param} = {default!r}"
