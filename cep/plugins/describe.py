"""`cep plugins`: every registered component with its one-line description and parameters."""
from __future__ import annotations

from types import UnionType
from typing import Annotated, Iterator, Literal, Union, get_args, get_origin

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
        for name, info in component.params.model_fields.items():
            default = "required" if info.default is PydanticUndefined and info.default_factory is None else (
                f"= {info.default!r}" if info.default_factory is None else "= (computed)")
            if component.shorthand == name:
                default += "  (shorthand)"
            description = f"  {info.description}" if info.description else ""
            yield f"      {name}: {_type_name(info.annotation)} {default}{description}"
