"""The plan: plain data at the bottom of the package, which a worker loads without the compiler."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CONFIG_LAYER = ("cep.config", "cep.config.loader", "cep.config.models", "cep.compiler", "yaml", "networkx")


@pytest.mark.parametrize("module", ["cep.runtime.worker", "cep.runtime.transport"])
def test_a_worker_loads_neither_the_config_layer_nor_networkx(module):
    """What a fork server preloads for every worker: importing the compiler there cost each
    worker ~14 MB and 0.1 s of start-up (YAML, the config models, networkx)."""
    probe = f"import {module}, sys, json; print(json.dumps([m for m in {CONFIG_LAYER!r} if m in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
