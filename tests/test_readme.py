"""The pipeline shown in README.md is a real one: it loads, compiles and runs."""
import re

from cep.compiler import compile_pipeline
from cep.config import load_pipeline_text, pipeline_registry
from cep.runtime.inline import run_inline
from tests.support import ROOT


def readme_pipeline() -> str:
    text = (ROOT / "README.md").read_text()
    return next(block for block in re.findall(r"```yaml\n(.*?)```", text, re.S) if "version: 1" in block)


def test_the_readme_pipeline_validates_and_runs_inline(workdir):
    pipeline = load_pipeline_text(readme_pipeline(), filename="README.md", base_dir=ROOT / "pipelines")
    plan = compile_pipeline(pipeline, pipeline_registry(pipeline))
    assert {p.role for p in plan.processes} >= {"gateway", "strategy", "sink"}
    plan = plan.__class__(**{**plan.__dict__, "dead_letter": str(workdir / "dead.jsonl")})
    nodes = run_inline(plan).nodes()
    assert nodes["ticks"].emitted == 131_932
    assert nodes["signals"].received == nodes["up5"].emitted + nodes["dip_then_rise"].emitted > 0
