"""Finds plugins and holds what they register.

Three ways in, one path: entry points of the group `cep.plugins` (cep's built-ins are one of
them), and local modules named by path in a pipeline's `plugins:` list. Each is a module (or a
package whose `__init__` imports its submodules) whose attributes carry the markers of
`cep.plugins.markers`.

Environment switches (as pytest's): `CEP_LOAD_PLUGINS=0` loads only the built-ins;
`CEP_LOAD_PLUGINS=a,b` loads only those entry points (plus the built-ins); `CEP_TRACE_PLUGINS=1`
prints every registration to stderr.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from cep.errors import PluginError, Problem
from cep.plugins.markers import KINDS, MARK, Component, Kind

GROUP = "cep.plugins"
BUILTINS = "builtins"


class Registry:
    """Components by kind and name. Built-ins and plugins are registered the same way."""

    def __init__(self) -> None:
        self._components: dict[Kind, dict[str, Component]] = {kind: {} for kind in KINDS}
        self._loaded_paths: set[Path] = set()
        self.templates: dict[str, Any] = {}
        """The rule templates (`cep.config.Template` by name) of the pipeline this registry was
        copied for, from its `imports:`; listed by `cep plugins PIPELINE`."""

    # -- registration -------------------------------------------------------------------------
    def register(self, component: Component) -> None:
        """Add one component; a second component of the same kind and name is an error."""
        existing = self._components[component.kind].get(component.name)
        if existing is not None and not _same_factory(existing.factory, component.factory):
            raise PluginError(Problem(
                f"{component.kind} {component.name!r} from {component.origin} is already "
                f"registered by {existing.origin}", hint="rename one of them"))
        if os.environ.get("CEP_TRACE_PLUGINS"):
            print(f"cep: registered {component.kind} {component.name!r} from {component.origin}",
                  file=sys.stderr)
        self._components[component.kind][component.name] = component

    def register_module(self, module: ModuleType, origin: str | None = None) -> int:
        """Register every marked factory found on `module`; returns how many."""
        count = 0
        for value in list(vars(module).values()):
            component = getattr(value, MARK, None)
            if isinstance(component, Component):
                if origin:
                    component = dataclasses.replace(component, origin=origin)
                self.register(component)
                count += 1
        return count

    def load_entry_points(self) -> None:
        """Load the built-ins and, as `CEP_LOAD_PLUGINS` allows, third-party entry points."""
        wanted = os.environ.get("CEP_LOAD_PLUGINS", "1").strip()
        found = {ep.name: ep for ep in entry_points(group=GROUP)}
        if BUILTINS not in found:  # running from a source tree that was never pip-installed
            self.load_module("cep.components")
        for name, ep in sorted(found.items()):
            if name != BUILTINS and (wanted == "0" or (wanted != "1" and name not in wanted.split(","))):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not hide the others
                raise PluginError(Problem(f"plugin entry point {name!r} ({ep.value}) failed to "
                                          f"load: {exc}", hint="fix or uninstall that package")) from exc
            self.register_module(module, origin=None if name == BUILTINS else f"entry point {name}")

    def load_module(self, dotted: str) -> None:
        self.register_module(importlib.import_module(dotted))

    def load_path(self, path: Path) -> None:
        """Load a local plugin module (a pipeline's `plugins:` entry) once per registry."""
        path = path.resolve()
        if path in self._loaded_paths:
            return
        if not path.is_file():
            raise PluginError(Problem(f"plugin module {path} does not exist",
                                      hint="plugins: takes paths relative to the pipeline file"))
        name = f"cep_local_plugin_{path.stem}_{abs(hash(str(path))) % 10**8}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except PluginError:
            raise  # a marker refused an option: the problem already names the plugin's line
        except Exception as exc:
            raise PluginError(Problem(f"plugin module {path} failed to import: "
                                      f"{type(exc).__name__}: {exc}")) from exc
        self._loaded_paths.add(path)
        self.register_module(module, origin=str(path))

    def copy(self) -> "Registry":
        """A registry with the same components whose later registrations stay its own.

        A pipeline loads its local `plugins:` into a copy, so they never leak into the
        process-wide registry (or into another pipeline loaded by the same process).
        """
        clone = Registry()
        clone._components = {kind: dict(found) for kind, found in self._components.items()}
        clone._loaded_paths = set(self._loaded_paths)
        clone.templates = dict(self.templates)
        return clone

    # -- lookup -------------------------------------------------------------------------------
    def get(self, kind: Kind, name: str) -> Component | None:
        return self._components[kind].get(name)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._components[kind])

    def all(self) -> list[Component]:
        return [c for kind in KINDS for _, c in sorted(self._components[kind].items())]

    def suggest(self, kind: Kind, name: str) -> str | None:
        """`did you mean X` for a mistyped component name, or None."""
        close = difflib.get_close_matches(name, self.names(kind), n=1, cutoff=0.6)
        return close[0] if close else None


def _same_factory(a, b) -> bool:
    """The same function, even loaded twice (an installed plugin also named by path)."""
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return a is b or (code_a is not None and code_b is not None
                      and code_a.co_filename == code_b.co_filename
                      and a.__qualname__ == b.__qualname__)


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry with built-ins and entry-point plugins loaded once."""
    global _default
    if _default is None:
        registry = Registry()
        registry.load_entry_points()
        _default = registry
    return _default
