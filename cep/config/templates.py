"""Rule libraries: YAML files of parameterised rule templates that pipelines `imports:`.

A library file::

    version: 1
    templates:
      momentum_up:
        description: Buy after N rising mids.
        params: {count: 5, quantity: 100}
        use: momentum                        # a registry rule ...
        with: {count: "{{count}}", direction: up, quantity: "{{quantity}}"}
      dip_then_rise:
        description: A dip below a level, then rises.
        params: {level: 10}
        pattern: [{name: dip, where: "mid < {{level}}"}, ...]   # ... or an inline pattern
        within: 2s

A pipeline rule `use: momentum_up` + `with: {count: 3}` instantiates it: the template's defaults
overridden by `with:`; a string that is exactly `"{{p}}"` becomes the value itself (typed), and
`{{p}}` inside a longer string is replaced by its text. A template never says where it reads
`from`; the pipeline's rule does. Templates may use registry rules but not other templates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cep.errors import ConfigError, Location
from cep.config.interpolate import interpolate_env
from cep.config.problems import KeyPath, Report, describe, did_you_mean, nearest
from cep.config.yamlsafe import read_yaml_file

LIBRARY_KEYS = ("version", "description", "templates", "tests")  # `tests:` is `cep test`'s
USE_KEYS = ("description", "params", "use", "with", "partition_by")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Template:
    """One rule template: its parameters with defaults, and the rule body they are put into."""

    name: str
    description: str
    params: dict[str, Any]
    body: dict[str, Any]            # the rule minus description/params, placeholders unfilled
    file: str
    locations: dict[KeyPath, Location] = field(default_factory=dict)  # body path -> place in file


def read_rule_library(path: Path, report: Report) -> dict[str, Template]:
    """The templates of one library file; every mistake in it goes to `report`, pointing into it."""
    try:
        doc = read_yaml_file(path, "rule library")
    except ConfigError as exc:
        report.add(exc.problems)
        return {}
    local = Report(doc.keys)
    local.add(doc.problems)
    interpolate_env(doc, local)
    templates = _library(doc.data, doc.file, local)
    report.add(local.problems)
    return templates


def _library(data: Any, file: str, report: Report) -> dict[str, Template]:
    if not isinstance(data, dict):
        report.error((), "a rule library must be a mapping with 'version: 1' and 'templates:'")
        return {}
    for key in data:
        if key not in LIBRARY_KEYS:
            hint = ("a rule library has no name; pipelines name themselves" if key == "name"
                    else did_you_mean(key, LIBRARY_KEYS, "valid keys"))
            report.error((key,), f"unknown key {key!r} in a rule library", hint)
    if data.get("version") != 1:
        report.error(("version",), f"rule library version must be 1 (got {describe(data.get('version'))})",
                     "start the file with 'version: 1'")
    entries = data.get("templates")
    if not isinstance(entries, dict):
        report.error(("templates",), "a rule library needs 'templates:', a mapping of name -> template")
        return {}
    templates = {}
    for name, raw in entries.items():
        template = _template(name, raw, file, report)
        if template is not None:
            templates[name] = template
    return templates


def _template(name: str, raw: Any, file: str, report: Report) -> Template | None:
    path: KeyPath = ("templates", name)
    what = f'template "{name}"'
    if not isinstance(raw, dict):
        report.error(path, f"{what}: must be a mapping")
        return None
    before = len(report.problems)
    if not isinstance(raw.get("description"), str):
        report.error(path + ("description",), f"{what}: needs a 'description:' string",
                     "say in one line what the rule detects")
    params = _template_params(raw, path, what, report)
    _check_body(raw, path, what, report)
    body = {k: v for k, v in raw.items() if k not in ("description", "params")}
    _check_placeholders(body, path, params, what, report)
    if len(report.problems) > before:
        return None
    prefix_len = len(path)
    locations = {p[prefix_len:]: loc for p, loc in report.locations.items()
                 if p[:prefix_len] == path and len(p) > prefix_len}
    return Template(name, raw["description"], dict(params), body, file, locations)


def _template_params(raw: dict, path: KeyPath, what: str, report: Report) -> dict[str, Any]:
    """A template's `params:` (each a plain name with its default); {} if it is no mapping."""
    params = raw.get("params", {})
    if not isinstance(params, dict):
        report.error(path + ("params",), f"{what}: 'params:' must map each parameter to its default")
        return {}
    for param in params:
        if not _NAME.fullmatch(param):
            report.error(path + ("params", param), f"{what}: parameter {param!r} is not a plain name")
    return params


def _check_body(raw: dict, path: KeyPath, what: str, report: Report) -> None:
    """A template is a `use:` of a rule (with `with:`) or an inline `pattern:`, never `from:`."""
    if "from" in raw:
        report.error(path + ("from",), f"{what}: a template does not say where it reads from",
                     "the pipeline's rule gives 'from:'")
    if "use" in raw and "pattern" in raw:
        report.error(path + ("pattern",), f"{what}: has both 'use:' and 'pattern:'", "keep one")
    elif "use" in raw:
        if not isinstance(raw["use"], str):
            report.error(path + ("use",), f"{what}: 'use:' names a rule")
        if not isinstance(raw.get("with", {}), dict):
            report.error(path + ("with",), f"{what}: 'with:' must be a mapping of parameters")
        for key in raw:
            if key not in USE_KEYS:
                report.error(path + (key,), f"{what}: unknown key {key!r}",
                             did_you_mean(key, USE_KEYS, "valid keys"))
    elif "pattern" not in raw:
        report.error(path, f"{what}: needs 'use: RULE' or an inline 'pattern:'")


def _check_placeholders(value: Any, path: KeyPath, params: dict[str, Any], what: str,
                        report: Report) -> None:
    if isinstance(value, str):
        for match in _PLACEHOLDER.finditer(value):
            if match.group(1) not in params:
                report.error(path, f"{what}: {{{{{match.group(1)}}}}} is not one of its params",
                             did_you_mean(match.group(1), params, "params"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_placeholders(item, path + (key,), params, what, report)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_placeholders(item, path + (index,), params, what, report)


def instantiate(template: Template, rule: dict[str, Any], rule_path: KeyPath,
                report: Report) -> dict[str, Any] | None:
    """The pipeline rule `rule` (which `use:`s `template`) as if its body were written inline.

    The returned rule keeps the pipeline's `from:`, `partition_by:` and `transport:`; `report.locations` is
    updated so the rule's paths point where each part was written: the template's lines in the
    library file, except values that came whole from the rule's `with:`.
    """
    given = rule.get("with", {})
    subject = f'rule "{rule_path[-1]}"'
    if not isinstance(given, dict):
        report.error(rule_path + ("with",), f"{subject}: 'with:' must be a mapping of parameters")
        return None
    unknown = [key for key in given if key not in template.params]
    for key in unknown:
        report.error(rule_path + ("with", key),
                     f'{subject}: template "{template.name}" has no parameter {key!r}',
                     did_you_mean(key, template.params, "its params"))
    if unknown:
        return None
    values = {**template.params, **given}
    from_with = {p: nearest(report.locations, rule_path + ("with", p)) for p in given}
    locations: dict[KeyPath, Location] = {}
    body = _fill(template.body, (), values, template.locations, from_with, locations)
    own = {k: rule[k] for k in ("from", "partition_by", "transport") if k in rule}
    for stale in [p for p in report.locations if p[:len(rule_path)] == rule_path
                  and len(p) > len(rule_path) and p[len(rule_path)] not in own]:
        del report.locations[stale]
    for sub, loc in locations.items():
        if sub[0] not in own:
            report.locations[rule_path + sub] = loc
    return {**{k: v for k, v in body.items() if k not in own}, **own}


def _fill(value: Any, path: KeyPath, values: dict[str, Any], template_locations: dict,
          from_with: dict[str, Location | None], out: dict[KeyPath, Location]) -> Any:
    """Substitute placeholders in `value`, recording where each filled path came from."""
    if path in template_locations:
        out[path] = template_locations[path]
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole:
            name = whole.group(1)
            if from_with.get(name) is not None:
                out[path] = from_with[name]
            return values[name]
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: _fill(v, path + (k,), values, template_locations, from_with, out)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, path + (i,), values, template_locations, from_with, out)
                for i, v in enumerate(value)]
    return value
