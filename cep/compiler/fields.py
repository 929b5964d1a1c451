"""Type flow: which record fields reach each node, so expressions naming a field that cannot
exist are errors at validate time (with "did you mean"), not dead letters at run time."""
from __future__ import annotations

import networkx as nx

from cep.config.models import Pipeline
from cep.errors import Problem
from cep.plugins import Registry


def check_fields(pipeline: Pipeline, graph: nx.DiGraph, registry: Registry) -> list[Problem]:
    return []
