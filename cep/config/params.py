"""The second validation pass: each component's parameters, checked by its own model.

The registry decides which model applies (`type:`, `use:` or the operator's name), so plugins
extend the schema without the envelope knowing them. Models are validated with the context
`{"base_dir": <pipeline dir>, "registry": <the pipeline's registry>}` so they can resolve paths
and look up other components.
"""
from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

from cep.errors import Problem, UserError
from cep.config.problems import KeyPath, Report, did_you_mean
from cep.config.translate import validation_problems
from cep.plugins import Component, Kind, Registry


class ParamsValidator:
    """Looks components up and validates their params; every mistake goes to the report."""

    def __init__(self, registry: Registry, report: Report, context: dict[str, Any]):
        self.registry = registry
        self.report = report
        self.context = context

    def component(self, kind: Kind, name: Any, path: KeyPath, subject: str,
                  also_known: Iterable[str] = ()) -> Component | None:
        """The registered component `name`, or None after reporting it unknown at `path`."""
        if not isinstance(name, str):
            hint = 'YAML reads an unquoted null as no value: write type: "null"' if name is None else None
            self.report.error(path, f"{subject}: the {kind} type must be a name", hint)
            return None
        found = self.registry.get(kind, name)
        if found is None:
            known = [*self.registry.names(kind), *also_known]
            self.report.error(path, f"{subject}: unknown {kind} type {name!r}",
                              did_you_mean(name, known, f"known {kind}s"))
        return found

    def validate(self, component: Component, params: Any, path: KeyPath, subject: str,
                 drop: int = 0) -> BaseModel | None:
        """`component.params` validated from `params` written at `path`; None if invalid."""
        return self.model(component.params, params, path, subject, drop, origin=component.origin)

    def model(self, model: type[BaseModel], params: Any, path: KeyPath, subject: str, drop: int = 0,
              origin: str = "cep") -> BaseModel | None:
        """`model` validated from `params` written at `path`; None after reporting why not."""
        try:
            return model.model_validate(params, context=self.context)
        except ValidationError as exc:
            self.report.add(validation_problems(
                exc, model=model, locations=self.report.locations, prefix=path,
                subject=subject, drop=drop, reported=self.report.unresolved))
        except UserError as exc:  # a validator that reports through cep's own errors
            where = self.report.locate(path)
            self.report.add(Problem(f"{subject}: {p.message}", p.location or where, p.hint)
                            for p in exc.problems)
        except Exception as exc:  # a plugin's validator failing in its own way
            self.report.error(path, f"{subject}: parameters rejected by {origin}: "
                                    f"{type(exc).__name__}: {exc}")
        return None

    def operator(self, component: Component, args: Any, path: KeyPath,
                 subject: str) -> BaseModel | None:
        """An operator's params from the value written after its name in `ops:`.

        With a shorthand field, a mapping of the model's own keys is taken as is, anything else
        fills the shorthand (`- filter: "ask_price > bid_price"`, `- map: {mid: "..."}`).
        """
        params = component.shorthand_args(args)
        if params is not args and component.shorthand and params.keys() == {component.shorthand}:
            return self.validate(component, params, path, subject, drop=1)
        if not isinstance(params, dict):
            fields = sorted(component.params.model_fields)
            self.report.error(path, f"{subject}: takes a mapping of parameters",
                              f"keys: {', '.join(fields)}" if fields else "write it without a value")
            return None
        return self.validate(component, params, path, subject)
