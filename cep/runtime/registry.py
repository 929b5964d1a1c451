"""The registry a worker builds its components from: the built-ins and entry-point plugins, plus
the local plugin modules the pipeline names (the plan carries their resolved paths)."""
from __future__ import annotations

from pathlib import Path

from cep.plan import Plan
from cep.plugins import Registry, default_registry


def registry_for(plan: Plan) -> Registry:
    if not plan.plugins:
        return default_registry()
    registry = default_registry().copy()
    for path in plan.plugins:
        registry.load_path(Path(path))
    return registry
