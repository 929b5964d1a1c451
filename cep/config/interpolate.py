"""`${NAME}` and `${NAME:-default}` in YAML string values, filled from the environment.

Substitution happens on the parsed data (string values only, never keys), before validation, so a
substituted value is checked like a written one: `count: ${N:-5}` gives the string "5", which a
numeric parameter accepts. `$${` writes a literal `${`. An unset variable without a default is an
error at the value that names it; so is a malformed reference such as `${NAME-x}`.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

from cep.errors import Problem
from cep.config.problems import KeyPath, Report, nearest
from cep.config.yamlsafe import YamlDocument

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def interpolate_env(doc: YamlDocument, report: Report, environ: Mapping[str, str] | None = None) -> None:
    """Replace every reference in `doc.data` in place; problems go to `report`."""
    env = os.environ if environ is None else environ
    doc.data = _walk(doc.data, (), doc, report, env)


def _walk(value: Any, path: KeyPath, doc: YamlDocument, report: Report, env: Mapping[str, str]) -> Any:
    if isinstance(value, str) and "${" in value:
        return _substitute(value, path, doc, report, env)
    if isinstance(value, dict):
        return {k: _walk(v, path + (k,), doc, report, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, path + (i,), doc, report, env) for i, v in enumerate(value)]
    return value


def _substitute(text: str, path: KeyPath, doc: YamlDocument, report: Report,
                env: Mapping[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match.group(0) == "$${":
            return "${"
        body = _BODY.fullmatch(match.group(1))
        where = nearest(doc.values, path)
        if body is None:
            report.problems.append(Problem(
                f"malformed variable reference {match.group(0)!r}", where,
                "write ${NAME} or ${NAME:-default}; $${ writes a literal ${"))
            return match.group(0)
        name, default = body.groups()
        if name in env:
            return env[name]
        if default is not None:
            return default
        report.problems.append(Problem(
            f"environment variable {name!r} is not set", where,
            f"set it, or give a default: ${{{name}:-value}}"))
        report.unresolved.add(path)
        return match.group(0)

    return _REFERENCE.sub(replace, text)
