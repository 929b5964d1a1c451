"""Changes the CLI makes to a loaded pipeline (`cep replay --data`), validated like the file."""
from __future__ import annotations

from typing import Any

from cep.config.models import Pipeline, SourceSpec
from cep.errors import ConfigError, Problem


def replace_source(pipeline: Pipeline, source_id: str | None, spec: dict[str, Any]) -> Pipeline:
    """The pipeline with one source replaced by `spec` (`type` plus params)."""
    if source_id is None:
        if len(pipeline.sources) != 1:
            raise ConfigError(Problem(f"the pipeline has {len(pipeline.sources)} sources",
                                      hint="name the one to replace with --source"))
        source_id = next(iter(pipeline.sources))
    if source_id not in pipeline.sources:
        raise ConfigError(Problem(f'no source "{source_id}"',
                                  hint="known: " + ", ".join(pipeline.sources)))
    params = {k: v for k, v in spec.items() if k != "type"}
    sources = dict(pipeline.sources)
    sources[source_id] = SourceSpec(id=source_id, type=spec["type"], params=params)
    replaced = pipeline.model_copy(update={"sources": sources})
    replaced._locations = pipeline._locations
    return replaced
