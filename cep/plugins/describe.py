"""`cep plugins`: every registered component with its one-line description and parameters."""
from __future__ import annotations

from typing import Iterator

from pydantic_core import PydanticUndefined

from cep.plugins.manager import Registry


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    return text or str(annotation).replace("typing.", "")


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
