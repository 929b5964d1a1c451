"""Changes the CLI makes to a loaded pipeline (`cep replay --data`), validated like the file."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from cep.config.models import Pipeline, SourceSpec
from cep.errors import ConfigError, Location, Problem, UserError


def replace_source(pipeline: Pipeline, source_id: str | None, spec: dict[str, Any],
                   options: dict[str, str] | None = None) -> Pipeline:
    """The pipeline with one source replaced by `spec` (`type` plus params), whose params are
    checked here, before anything runs. `options` says how the user wrote each param (`{"path":
    "--data ticks.csv"}`), so a problem names what to fix; the first names whole-source problems."""
    if source_id is None:
        if len(pipeline.sources) != 1:
            raise ConfigError(Problem(f"the pipeline has {len(pipeline.sources)} sources",
                                      hint="name the one to replace with --source"))
        source_id = next(iter(pipeline.sources))
    if source_id not in pipeline.sources:
        raise ConfigError(Problem(f'no source "{source_id}"',
                                  hint="known: " + ", ".join(pipeline.sources)))
    params = {k: v for k, v in spec.items() if k != "type"}
    where = pipeline._locations.get(("sources", source_id))
    problems = _check(pipeline, spec["type"], params, options or {name: name for name in params}, where)
    if problems:
        raise ConfigError(problems)
    sources = dict(pipeline.sources)
    sources[source_id] = SourceSpec(id=source_id, type=spec["type"], params=params)
    replaced = pipeline.model_copy(update={"sources": sources})
    replaced._locations = pipeline._locations
    return replaced


def _check(pipeline: Pipeline, kind: str, params: dict[str, Any], options: dict[str, str],
           where: Location | None) -> list[Problem]:
    """Problems of `params` for a source of type `kind`, each naming the option to fix."""
    component = pipeline._registry.get("source", kind)
    if component is None:
        return [Problem(f"unknown source type {kind!r}", where)]
    first = next(iter(options.values()))
    try:
        component.params.model_validate(params, context={"base_dir": pipeline.base_dir,
                                                         "registry": pipeline._registry})
    except ValidationError as exc:
        return [Problem(f"{options.get(str(error['loc'][0]), first) if error['loc'] else first}: "
                        f"{error['msg'].removeprefix('Value error, ')}", where)
                for error in exc.errors(include_url=False)]
    except UserError as exc:  # a validator that reports through cep's own errors
        return [Problem(f"{first}: {problem.message}", where, problem.hint) for problem in exc.problems]
    return []
