"""The JSON Schema of the pipeline format as users write it (`cep schema`), for editors and CI.

It describes the YAML, not the internal envelope: a source is `{type: csv, path: ...}` with its
params beside `type`, an operator is `- filter: "..."`, a rule is `use:`/`with:` or an inline
`pattern:`. The envelope's own models (`Defaults`, `Transport`, `Security`, `DeploySpec`) give
their parts directly; each component's params come from the model its registry entry names, and
are chosen by `type:` (sources, sinks, venues), by the operator's name, or by `use:` (rules), as
the loader validates them (`cep.config.params`). Plugins extend it the way they extend the
loader: the registry given (a pipeline's, with its local plugins) is the registry described.

What a schema cannot say is left to `cep validate`: `${ENV}` in a non-string value, references
between nodes, expressions, and the parameters of imported templates (their `with:` is any
mapping here, unless the registry is a pipeline's, which knows the templates it imports).
"""
from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from cep.config.models import (Defaults, DeploySpec, HostSpec, Metrics, NodeTransport, RuleSpec, Security, SinkSpec,
                               SourceSpec, Transport)
from cep.plugins import Component, Registry

ID = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def pipeline_schema(registry: Registry) -> dict[str, Any]:
    """The schema of a pipeline file whose components come from `registry`."""
    return _Builder(registry).pipeline()


class _Builder:
    """Collects the `$defs` of every model it describes under names that cannot collide."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.defs: dict[str, Any] = {}

    # -- models ----------------------------------------------------------------------------
    def model(self, model: type[BaseModel], prefix: str) -> dict[str, Any]:
        """`model`'s schema, its `$defs` moved to the top as `prefix.Name` (refs rewritten)."""
        try:
            schema = model.model_json_schema(by_alias=True)
        except Exception:  # a type pydantic cannot describe (a plugin's arbitrary type): say nothing
            return {"type": "object", "description": f"{model.__name__} (no schema: see `cep plugins`)"}
        for name, definition in schema.pop("$defs", {}).items():
            self.defs[f"{prefix}.{name}"] = _renamed(definition, prefix)
        schema = _renamed(schema, prefix)
        schema.pop("title", None)
        return schema

    def envelope(self, model: type[BaseModel], field: str) -> dict[str, Any]:
        """The schema of one envelope field (`backpressure`, `delivery`, `partition_by`)."""
        schema = self.model(model, f"envelope.{model.__name__}")["properties"][field]
        schema.pop("title", None)
        return schema

    def node_transport(self) -> dict[str, Any]:
        """A node's `transport:` (what carries its edges), described once in `$defs`."""
        if "node.NodeTransport" not in self.defs:
            self.defs["node.NodeTransport"] = self.model(NodeTransport, "node")
        return {"$ref": "#/$defs/node.NodeTransport"}

    def params(self, component: Component) -> dict[str, Any]:
        return self.model(component.params, f"{component.kind}.{component.name}")

    # -- the pipeline ----------------------------------------------------------------------
    def pipeline(self) -> dict[str, Any]:
        from cep.casetest.spec import Case, Suite  # `tests:` is read by `cep test`, one layer up
        ids = {"type": "object", "propertyNames": {"pattern": ID}}
        properties = {
            "version": {"const": 1},
            "name": {"type": "string", "pattern": ID, "description": "the pipeline's name"},
            "imports": {"type": "array", "items": {"type": "string"},
                        "description": "rule libraries, relative to this file"},
            "plugins": {"type": "array", "items": {"type": "string"},
                        "description": "local plugin modules, relative to this file"},
            "defaults": self.model(Defaults, "defaults"),
            "transport": self.model(Transport, "transport"),
            "security": self.model(Security, "security"),
            "metrics": self.model(Metrics, "metrics"),
            "sources": {**ids, "additionalProperties": self.typed("source", {
                "backpressure": self.envelope(SourceSpec, "backpressure"), "transport": self.node_transport()})},
            "streams": {**ids, "additionalProperties": self.stream()},
            "rules": {**ids, "additionalProperties": self.rule()},
            "sinks": {**ids, "additionalProperties": self.typed("sink", {
                "from": _FROM, "delivery": self.envelope(SinkSpec, "delivery"),
                "backpressure": self.envelope(SinkSpec, "backpressure"), "transport": self.node_transport()},
                required=("from",))},
            "venues": {**ids, "additionalProperties": self.typed("venue", {"quotes": {"type": "string"}},
                                                                required=("quotes",))},
            "orders": {**ids, "additionalProperties": self.order()},
            "hosts": {**ids, "additionalProperties": self.model(HostSpec, "hosts")},
            "deploy": {**ids, "additionalProperties": self.model(DeploySpec, "deploy")},
            "tests": {"anyOf": [{"type": "array", "items": self.model(Case, "tests")}, self.model(Suite, "tests")],
                      "description": "test cases `cep test` runs (README: Testing pipelines)"},
        }
        return {"$schema": DIALECT, "title": "cep pipeline", "type": "object",
                "properties": properties, "required": ["name", "sources"], "additionalProperties": False,
                "$defs": dict(sorted(self.defs.items()))}

    def typed(self, kind: Any, envelope: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
        """A component chosen by `type:`: its params beside the envelope's keys, per type."""
        names = self.registry.names(kind)
        variants = []
        for name in names:
            params = self.params(self.registry.get(kind, name))
            variants.append({"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                             "then": _flat({"type": {"const": name}, **envelope}, params, ("type", *required))})
        return {"type": "object", "properties": {"type": {"enum": names}}, "required": ["type", *required],
                "allOf": variants}

    def stream(self) -> dict[str, Any]:
        operators = {name: self.operator(self.registry.get("operator", name))
                     for name in self.registry.names("operator")}
        step = {"type": "object", "minProperties": 1, "maxProperties": 1, "properties": operators,
                "additionalProperties": False}
        return {"type": "object", "required": ["from"], "additionalProperties": False,
                "properties": {"from": _FROM, "key_by": {"type": ["string", "null"]},
                               "ops": {"type": "array", "items": step}, "transport": self.node_transport()}}

    def operator(self, component: Component) -> dict[str, Any]:
        """What may follow an operator's name: its params, or the shorthand field's value alone."""
        params = self.params(component)
        params.pop("description", None)
        described = {"description": component.description.split("\n")[0]}
        if component.shorthand:
            shorthand = params.get("properties", {}).get(component.shorthand, {})
            return {"anyOf": [params, shorthand], **described}
        if not params.get("properties"):
            return {"type": ["object", "null"], "additionalProperties": False, **described}
        return {**params, **described}

    def rule(self) -> dict[str, Any]:
        """`use:` a registered rule (its params under `with:`) or a template, or an inline pattern."""
        inputs = {"from": _FROM, "partition_by": self.envelope(RuleSpec, "partition_by"),
                  "transport": self.node_transport()}
        templates = self.registry.templates
        withs = {name: self.params(self.registry.get("rule", name)) for name in self.registry.names("rule")}
        withs.update({name: {"type": "object", "properties": {param: {} for param in template.params},
                             "additionalProperties": False, "description": template.description}
                      for name, template in templates.items()})  # an imported template wins over a rule
        chosen = [{"if": {"properties": {"use": {"const": name}}, "required": ["use"]},
                   "then": {"properties": {"with": schema}}} for name, schema in withs.items()]
        used = {"type": "object", "required": ["use", "from"], "additionalProperties": False,
                "properties": {**inputs, "use": {"type": "string", "description": "a registered rule "
                                                 "or an imported template"},
                               "with": {"type": "object"}}, "allOf": chosen}
        pattern = self.registry.get("rule", "pattern")
        forms = [used]
        if pattern is not None:
            forms.append(_flat(inputs, self.params(pattern), ("from",)))
        return {"oneOf": forms}

    def order(self) -> dict[str, Any]:
        from cep.orders.settings import ExecutorSettings  # the order half loads only when described
        envelope = {"from": _FROM, "venue": {"type": "string"}, "quotes": {"type": "string"}}
        return _flat(envelope, self.model(ExecutorSettings, "orders"), ("from", "venue"))


_FROM = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
         "description": "the id (or ids) of the nodes it reads"}


def _flat(envelope: dict[str, Any], params: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    """One YAML mapping holding the envelope's keys and the params' keys side by side."""
    flat = {"type": "object", "properties": {**params.get("properties", {}), **envelope},
            "required": sorted({*required, *params.get("required", ())}), "additionalProperties": False}
    if "description" in params:
        flat["description"] = params["description"]
    return flat


def _renamed(schema: Any, prefix: str) -> Any:
    """`schema` with every `#/$defs/Name` reference pointing at `#/$defs/prefix.Name`."""
    if isinstance(schema, dict):
        return {key: (f"#/$defs/{prefix}.{value.removeprefix('#/$defs/')}"
                      if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                      else _renamed(value, prefix)) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_renamed(item, prefix) for item in schema]
    return copy.copy(schema)
