"""Load a pipeline file into a validated `Pipeline`, or fail with every problem at once.

The steps, each adding to one report before anything is raised: safe YAML with positions ->
`${ENV}` interpolation -> local `plugins:` into a copy of the registry -> `imports:` of rule
libraries -> envelope per component with its params validated by the registry's model ->
the envelope itself. Only the graph (references, cycles, expression names) is left to the compiler.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cep.errors import PluginError, Problem
from cep.config.interpolate import interpolate_env
from cep.config.models import Pipeline
from cep.config.normalise import Normaliser
from cep.config.params import ParamsValidator
from cep.config.problems import KeyPath, Report
from cep.config.templates import Template, read_rule_library
from cep.config.translate import validation_problems
from cep.config.yamlsafe import YamlDocument, parse_yaml, read_yaml_file
from cep.plugins import Registry, default_registry

_SUBJECTS = {"sources": "source", "streams": "stream", "rules": "rule", "sinks": "sink",
             "venues": "venue", "orders": "order executor", "deploy": "deploy", "hosts": "host"}
_SECTIONS = ("sources", "streams", "rules", "sinks", "venues", "orders", "deploy", "hosts")
_PLACEHOLDER_NAME = "pipeline"
"""The name a deferred load gives a pipeline whose `name:` is missing or wrong (reported)."""


def load_pipeline(path: str | Path, registry: Registry | None = None, *,
                  defer_errors: bool = False) -> Pipeline:
    """Read and validate the pipeline at `path`; relative paths in it resolve against its folder.

    `registry` defaults to the process-wide one; the pipeline's own `plugins:` are loaded into a
    copy of it (see `pipeline_registry`). Raises `ConfigError` listing every problem found.
    With `defer_errors`, a pipeline with mistakes (but readable YAML) is returned as far as it
    could be built instead: each broken component left out (its id in `_broken`), its problems in
    `_problems`; `compile_pipeline` then reports them together with the graph's own, so
    `cep validate` lists every problem in one pass. Such a pipeline never compiles.
    """
    path = Path(path)
    return _load(read_yaml_file(path), path, path.parent, registry, defer_errors)


def load_pipeline_text(text: str, filename: str = "<string>", base_dir: Path | None = None,
                       registry: Registry | None = None) -> Pipeline:
    """As `load_pipeline`, from text; `filename` is only used in messages.

    Relative paths resolve against `base_dir` (default: the current directory).
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    path = base / Path(filename).name if base_dir is not None else None
    return _load(parse_yaml(text, filename), path, base, registry)


def pipeline_registry(pipeline: Pipeline) -> Registry:
    """The registry `pipeline` was validated with: its loader's registry plus its local plugins.

    For a `Pipeline` built in code (not loaded), a copy of the default registry with the
    pipeline's `plugins:` loaded, remembered on the pipeline.
    """
    if pipeline._registry is None:
        report = Report(pipeline._locations)
        registry = default_registry().copy()
        _load_plugins(list(enumerate(pipeline.plugins)), pipeline.base_dir, registry, report)
        report.raise_if_any()
        pipeline._registry = registry
    return pipeline._registry


def load_rule_library(path: str | Path, registry: Registry | None = None) -> dict[str, Template]:
    """Read a rule library on its own (`cep validate rules/x.yaml`) and check every template.

    Each template is instantiated with its default params and validated against `registry`
    (default: the process-wide one) exactly as a pipeline rule using it would be.
    """
    path = Path(path)
    report = Report({})
    templates = read_rule_library(path, report)
    registry = registry if registry is not None else default_registry()
    validator = ParamsValidator(registry, report, {"base_dir": path.parent, "registry": registry})
    normaliser = Normaliser(report, validator, templates)
    for name in templates:
        normaliser.rule(name, {"use": name}, ("templates", name), subject=f'template "{name}"',
                        needs_from=False)
    report.raise_if_any()
    return templates


def _load(doc: YamlDocument, path: Path | None, base_dir: Path, registry: Registry | None,
          defer_errors: bool = False) -> Pipeline:
    report = Report(doc.keys)
    report.add(doc.problems)
    interpolate_env(doc, report)
    data = doc.data
    if not isinstance(data, dict):
        report.error((), "a pipeline must be a mapping with at least 'name:' and 'sources:'"
                     if data is not None else "the pipeline file is empty",
                     "start from an example in pipelines/")
        report.raise_if_any()
    registry = (registry if registry is not None else default_registry()).copy()
    _load_plugins(_paths(data, "plugins", report), base_dir, registry, report)
    templates = _load_imports(_paths(data, "imports", report), base_dir, report)
    registry.templates = templates
    validator = ParamsValidator(registry, report, {"base_dir": base_dir, "registry": registry})
    written = {section: list(data[section]) for section in _SECTIONS if isinstance(data.get(section), dict)}
    envelope = Normaliser(report, validator, templates).pipeline(data)
    pipeline = _envelope(envelope, path, report)  # leaving a broken part out may reach into `data`
    if pipeline is None or not defer_errors:
        report.raise_if_any()
    assert pipeline is not None
    pipeline._locations = report.locations
    pipeline._registry = registry
    pipeline._problems = tuple(report.sorted())
    pipeline._warnings = tuple(report.warnings)
    pipeline._unresolved = frozenset(report.unresolved)
    pipeline._broken = frozenset(
        cid for section, ids in written.items() for cid in ids if cid not in getattr(pipeline, section))
    return pipeline


def _envelope(envelope: dict[str, Any], path: Path | None, report: Report) -> Pipeline | None:
    """The `Pipeline` of `envelope`, every mistake reported; a part that fails is left out and
    the rest validated again (a broken component, or a section such as `defaults:` that then
    takes its defaults), so the graph of what is left can still be checked."""
    while True:
        try:
            return Pipeline.model_validate({**envelope, "path": path})
        except ValidationError as exc:
            report.add(validation_problems(exc, model=Pipeline, locations=report.locations,
                                           subject=_subject))
            if not _leave_out(envelope, [tuple(error["loc"]) for error in exc.errors()], path):
                return None


def _leave_out(envelope: dict[str, Any], failed: list[tuple], path: Path | None) -> bool:
    """Drop from `envelope` what each failed pydantic location points into; False if nothing
    could be dropped (so validating again would fail the same way)."""
    changed = False
    for loc in failed:
        if not loc:
            continue
        if loc[0] in _SECTIONS and len(loc) > 1:
            changed = envelope[loc[0]].pop(loc[1], None) is not None or changed
        elif loc[0] == "name":
            changed = changed or envelope.get("name") != _PLACEHOLDER_NAME
            envelope["name"] = _PLACEHOLDER_NAME
        else:
            changed = envelope.pop(loc[0], None) is not None or changed
    return changed


def _subject(path: KeyPath) -> tuple[str, int]:
    """How an envelope error names its component: `source "ticks"`, `defaults`, `pipeline`."""
    if len(path) >= 2 and path[0] in _SUBJECTS:
        return f'{_SUBJECTS[path[0]]} "{path[1]}"', 2
    if path and path[0] in ("defaults", "transport", "security", "metrics"):
        return path[0], 1
    return "pipeline", 0


def _paths(data: dict[str, Any], key: str, report: Report) -> list[tuple[int, str]]:
    """(index, path) of each entry under `imports:` or `plugins:`; malformed ones are reported,
    and ones naming an unset variable left out (that is their one problem)."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        report.error((key,), f"'{key}:' must be a list of file paths", f"write {key}: [path/file]")
        return []
    good = []
    for index, entry in enumerate(value):
        if (key, index) in report.unresolved:
            continue  # names an unset variable: reported, not looked for
        if isinstance(entry, str) and entry:
            good.append((index, entry))
        else:
            report.error((key, index), f"'{key}:' entries are file paths (got {entry!r})")
    return good


def _load_plugins(paths: list[tuple[int, str]], base_dir: Path, registry: Registry,
                  report: Report) -> None:
    for index, entry in paths:
        try:
            registry.load_path(base_dir / Path(entry).expanduser())
        except PluginError as exc:
            where = report.locate(("plugins", index))
            report.add(Problem(p.message, p.location or where, p.hint) for p in exc.problems)


def _load_imports(paths: list[tuple[int, str]], base_dir: Path, report: Report) -> dict[str, Template]:
    templates: dict[str, Template] = {}
    for index, entry in paths:
        file = base_dir / Path(entry).expanduser()
        if not file.is_file():
            report.error(("imports", index), f"imported rule library {entry!r} does not exist",
                         f"imports: takes paths relative to the pipeline file ({file} not found)")
            continue
        for name, template in read_rule_library(file, report).items():
            if name in templates:
                report.error(("imports", index), f"template {name!r} from {entry!r} is already "
                                                 f"defined in {templates[name].file}",
                             "rename one of them")
            else:
                templates[name] = template
    return templates
