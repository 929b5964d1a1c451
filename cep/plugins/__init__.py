"""The one registry of sources, operators, rules and sinks — built-in and plugin alike.

A plugin author imports one marker per kind and nothing else::

    from pydantic import BaseModel
    from cep.plugins import operator

    class VwapParams(BaseModel):
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
from cep.plugins.markers import Component, Kind, operator, rule, sink, source
from cep.plugins.manager import Registry, default_registry

__all__ = ["Component", "Kind", "Registry", "default_registry", "operator", "rule", "sink", "source"]
