"""The one registry of sources, operators, rules and sinks — built-in and plugin alike.

A plugin author imports from this module only: a marker per kind (source, operator, rule, sink,
venue), and the few types a factory uses::

    from cep.plugins import OpParams, operator

    class VwapParams(OpParams):
        window: int = 20

    @operator("vwap", params=VwapParams)
    def vwap(params: VwapParams, ctx):
        '''Volume-weighted average price over the last `window` ticks per key.'''
        ...

The markers only tag the factory; nothing is registered at import time. The manager collects the
tagged factories of a module when it loads it: built-ins come from the entry point `builtins` of
the group `cep.plugins` (declared in cep's own pyproject), third-party packages from their entry
points in the same group, local modules from a pipeline's `plugins:` list. See `manager.py`.
"""
from cep.plugins.markers import Component, Kind, operator, rule, sink, source, venue
from cep.plugins.manager import Registry, default_registry

__all__ = ["Component", "Kind", "Registry", "default_registry", "operator", "rule", "sink", "source", "venue",
           *["BatchOperator", "BuildContext", "OpParams", "Expr", "Duration", "ExpressionUse",
             "batch_map", "per_record", "stateful"]]

# What a factory needs, importable from here too, so a plugin imports from one place. Loaded on
# first use: importing the registry must not import every built-in component.
_FOR_AUTHORS = {"BatchOperator": "cep.components.base", "BuildContext": "cep.components.base",
                "batch_map": "cep.components.base", "per_record": "cep.components.base",
                "stateful": "cep.components.base", "OpParams": "cep.components.operators.common",
                "Expr": "cep.components.operators.common", "Duration": "cep.components.operators.common",
                "ExpressionUse": "cep.components.operators.common"}


def __getattr__(name: str):
    if name in _FOR_AUTHORS:
        import importlib
        return getattr(importlib.import_module(_FOR_AUTHORS[name]), name)
    raise AttributeError(f"module 'cep.plugins' has no attribute {name!r}")
