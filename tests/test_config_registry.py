"""A small registry of marked components shaped like the real ones, for the config tests.

The config layer must not depend on which built-ins exist, so its tests validate against these.
Also tests `Registry.copy()`, which keeps a pipeline's local plugins out of the shared registry.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cep.errors import ExpressionError, Problem
from cep.plugins import Registry, operator, rule, sink, source


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsvFileParams(_Params):
    """Resolves `path` against the pipeline folder given in the validation context."""

    path: Path

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        return value if value.is_absolute() or base is None else Path(base) / value


class FilterParams(_Params):
    expr: str


class MapParams(_Params):
    fields: dict[str, str]


class TakeParams(_Params):
    count: int = Field(ge=0)


class MomentumParams(_Params):
    count: int = Field(5, ge=2)
    direction: Literal["up", "down"] = "up"
    quantity: float = Field(100, gt=0)


class StepParams(_Params):
    name: str
    where: str
    times: int = 1


class PatternParams(_Params):
    pattern: list[StepParams]
    within: str | None = None
    emit: dict[str, Any] = {}


class JsonlParams(_Params):
    path: str

    @field_validator("path")
    @classmethod
    def _jsonl(cls, value: str) -> str:
        if value == "-":
            raise ExpressionError(Problem("'-' is not a file", hint="use the stdout sink"))
        if value.endswith(".csv"):
            raise ValueError(f"a jsonl sink writes .jsonl files, got {value!r}")
        return value


@source("csv", params=CsvFileParams)
def csv_source(params, ctx):
    """Replay ticks from a CSV file."""


@operator("filter", params=FilterParams, shorthand="expr")
def filter_op(params, ctx):
    """Keep records for which the expression is true."""


@operator("map", params=MapParams, shorthand="fields")
def map_op(params, ctx):
    """Add fields computed by expressions."""


@operator("take", params=TakeParams, shorthand="count")
def take_op(params, ctx):
    """The first N records."""


@rule("momentum", params=MomentumParams)
def momentum_rule(params, ctx):
    """N consecutive rising or falling mids."""


@rule("pattern", params=PatternParams)
def pattern_rule(params, ctx):
    """An inline CEP pattern."""


@sink("jsonl", params=JsonlParams)
def jsonl_sink(params, ctx):
    """Write records as JSON lines."""


def make_registry() -> Registry:
    """A fresh registry holding the components above."""
    registry = Registry()
    registry.register_module(sys.modules[__name__])
    return registry


def test_registry_holds_one_component_per_kind_and_name():
    registry = make_registry()
    assert registry.names("operator") == ["filter", "map", "take"]
    assert registry.names("rule") == ["momentum", "pattern"]
    assert registry.get("source", "csv").params is CsvFileParams


def test_copy_keeps_later_registrations_out_of_the_original(tmp_path):
    original = make_registry()
    plugin = tmp_path / "spread.py"
    plugin.write_text("from cep.plugins import operator\n\n"
                      "@operator('spread_filter')\ndef spread_filter(params, ctx):\n"
                      "    '''Drop wide spreads.'''\n")
    copy = original.copy()
    copy.load_path(plugin)
    assert copy.get("operator", "spread_filter") is not None
    assert original.get("operator", "spread_filter") is None
    assert copy.get("rule", "momentum") is original.get("rule", "momentum")
