"""YAML pipeline files -> validated `Pipeline` models, with every error at its file:line:col.

The façade of the config layer: `load_pipeline` / `load_pipeline_text` for pipelines,
`load_rule_library` for rule library files on their own (`is_rule_library` tells the two apart),
and `pipeline_registry` for the registry (built-ins, entry-point plugins and the pipeline's local
plugins) a pipeline was validated with.
"""
from cep.config.loader import load_pipeline, load_pipeline_text, load_rule_library, pipeline_registry
from cep.config.models import Pipeline
from cep.config.templates import Template
from cep.config.yamlsafe import is_rule_library

__all__ = ["Pipeline", "Template", "is_rule_library", "load_pipeline", "load_pipeline_text",
           "load_rule_library", "pipeline_registry"]
