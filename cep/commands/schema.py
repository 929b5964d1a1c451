"""`cep schema [PIPELINE]`: the JSON Schema of the pipeline format, for editors and CI checks."""
from __future__ import annotations

import json
from pathlib import Path

import click

from cep.errors import RuntimeFailure

EXAMPLES = """\b
Examples:
  cep schema > cep-pipeline.schema.json       # built-ins and installed plugins
  cep schema pipelines/vwap.yaml -o vwap.schema.json   # also its local plugins and templates
\b
Then, as the first line of a pipeline file, for completion and checking in
editors that use yaml-language-server (VS Code's YAML extension, Neovim, Helix):
  # yaml-language-server: $schema=../cep-pipeline.schema.json"""


@click.command("schema", short_help="Print the JSON Schema of pipeline files, for editors.", epilog=EXAMPLES)
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema there instead of stdout.")
def schema_command(pipeline: Path | None, output: Path | None) -> None:
    """Print the JSON Schema (draft 2020-12) of the pipeline format: every section, and each
    source, operator, rule, sink and venue's parameters, chosen by `type:`, the operator's name or
    `use:`. With PIPELINE, also the local plugins it loads and the rule templates it imports.
    What a schema cannot check (references, expressions, `${ENV}` in numbers) is `cep validate`'s."""
    from cep.config.schema import pipeline_schema
    from cep.plugins import default_registry
    if pipeline is None:
        registry = default_registry()
    else:
        from cep.config import load_pipeline, pipeline_registry
        registry = pipeline_registry(load_pipeline(pipeline))
    text = json.dumps(pipeline_schema(registry), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RuntimeFailure(f"cannot write the schema to {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}", err=True)
