"""cep: declarative complex-event processing for event-driven trading.

The public façade: load a pipeline, compile it into a plan, run the plan (as processes or
inline). Data flows one way: file -> models -> graph -> plan -> processes.

    import cep
    plan = cep.compile("pipelines/momentum.yaml")
    status = cep.run(plan)             # one OS process per plan worker, joined by ZeroMQ
    status = cep.run(plan, inline=True)  # the same graph in this process
"""
from __future__ import annotations

from pathlib import Path

from cep.errors import CepError, CompileError, ConfigError, RuntimeFailure, UserError

__all__ = ["CepError", "CompileError", "ConfigError", "RuntimeFailure", "UserError", "compile", "load", "run"]


def load(path: str | Path):
    """The validated pipeline model of a YAML file (ConfigError lists every problem)."""
    from cep.config import load_pipeline
    return load_pipeline(path)


def compile(pipeline, run_dir: str | Path | None = None):  # noqa: A001 - the verb users expect
    """The plan of a pipeline (a path or a loaded model); CompileError lists every problem."""
    from cep.compiler import compile_pipeline
    from cep.config import pipeline_registry
    if isinstance(pipeline, (str, Path)):
        from cep.config import load_pipeline
        pipeline = load_pipeline(pipeline, defer_errors=True)  # every problem in one report
    return compile_pipeline(pipeline, pipeline_registry(pipeline), Path(run_dir) if run_dir else None)


def run(plan, inline: bool = False, on_status=None, **supervisor_options):
    """Run a plan to completion; returns the run's status (per-node counts, restarts)."""
    if inline:
        from cep.runtime.inline import run_inline_until_signalled
        return run_inline_until_signalled(plan)
    from cep.runtime.supervisor import Supervisor
    return Supervisor(plan, on_status=on_status, **supervisor_options).run()
