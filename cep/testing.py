"""Test your pipelines and operators with Python lists in, Python lists out.

Three pieces, all running on the real loader, compiler and inline runner (no second engine):

- a `list` source: `type: list` in a pipeline; its records are given by the test,
- a `collect` sink: `type: collect`; records land in a Python list the test reads,
- `run_inline(pipeline, inputs)` runs a pipeline in this process with the given sources fed from
  lists and every sink collected; `run_operator(name, params, records)` runs one operator or rule.

A complete test file (`tests/test_testing.py` runs this very example)::

    from cep.testing import run_inline, run_operator

    PIPELINE = '''
    name: wide-quotes
    sources:
      quotes: {type: list}
    streams:
      wide:
        from: quotes
        ops:
          - filter: "ask_price - bid_price > 1"
    sinks:
      out: {type: collect, from: [wide]}
    '''

    def quote(timestamp, bid, ask):
        return {"timestamp": timestamp, "instrument": "X", "bid_price": bid, "ask_price": ask}

    def test_only_wide_quotes_pass():
        out = run_inline(PIPELINE, inputs={"quotes": [quote(1, 100, 100.5), quote(2, 100, 102)]})
        assert out["out"] == [quote(2, 100, 102)]

    def test_take_keeps_the_first_records():
        records = [quote(t, 100, 101) for t in range(5)]
        assert run_operator("take", 2, records) == records[:2]

The kit registers `list` and `collect` in this process's registry on first use, so pipelines
loaded afterwards in the same process (by `cep.load` too) may name them.
"""
from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, InstanceOf, NonNegativeInt, field_validator

from cep.components.base import BuildContext
from cep.components.state import restorer
from cep.config import Pipeline, load_pipeline, load_pipeline_text
from cep.config.models import SinkSpec
from cep.config.overrides import replace_source
from cep.errors import ConfigError, Problem
from cep.events import Batch, Record
from cep.plugins import Component, default_registry, sink, source
from cep.plugins.markers import MARK
from cep.runtime.metrics import RunStatus

__all__ = ["DeadLetter", "Outcome", "collect_sink", "list_source", "run_inline", "run_operator"]


# -- the list source --------------------------------------------------------------------------
class ListParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    records: InstanceOf[list] = Field(default_factory=list,
                                      description="the records (dicts), in event-time order")
    batch_size: int | None = Field(None, ge=1, description="records per batch (default: the "
                                                           "pipeline's batch_size)")


    @field_validator("records")
    @classmethod
    def _records_are_mappings(cls, records: list) -> list:
        """Checked, not copied item by item: the source copies each record as it replays it."""
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise ValueError(f"record {index} is a {type(record).__name__}, not a mapping")
        return records


class ListSource:
    """Replays copies of the given records (the test's own stay untouched), then ends."""

    def __init__(self, records: list[Record], batch_size: int) -> None:
        self._records = records
        self._batch_size = batch_size

    def batches(self) -> Iterator[Batch]:
        for start in range(0, len(self._records), self._batch_size):
            yield [dict(record) for record in self._records[start:start + self._batch_size]]

    def close(self) -> None:
        """Nothing to release."""


@source("list", params=ListParams, replayable=True)
def list_source(params: ListParams, ctx: BuildContext) -> ListSource:
    """Records given as a Python list (cep.testing); `run_inline(inputs=...)` fills them in.

    Replayable (the same list gives the same records again), so it feeds `exactly_once`
    pipelines too."""
    return ListSource(params.records, params.batch_size or ctx.batch_size)


# -- the collecting sink ----------------------------------------------------------------------
class CollectParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    into: InstanceOf[list] = Field(default_factory=list,
                                   description="the Python list records are appended to")


class CollectingSink:
    """Appends to a list; a restored checkpoint cuts the list back to the length it had."""

    def __init__(self, into: list[Record], ctx: BuildContext) -> None:
        self.into = into
        ctx.keep_state(lambda: len(into), restorer(NonNegativeInt, self._truncate))

    def _truncate(self, length: int) -> None:
        del self.into[length:]

    def write(self, batch: Batch) -> None:
        self.into.extend(batch)

    def close(self) -> None:
        """Nothing to flush: records are in the list as soon as they arrive."""


@sink("collect", params=CollectParams, checkpoint=True)
def collect_sink(params: CollectParams, ctx: BuildContext) -> CollectingSink:
    """Append records to a Python list (cep.testing); `run_inline` returns them per sink."""
    return CollectingSink(params.into, ctx)


# -- running ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeadLetter:
    """A record (or row, or frame) a node could not process, and why."""

    node: str
    reason: str
    raw: Any


@dataclass
class Outcome(Mapping[str, list[Record]]):
    """What a run produced: `outcome[sink_id]` is the list of records that sink received.

    `dead_letters` lists what was dead-lettered, `status` holds the per-node counts
    (`status.nodes()["quotes"].dropped`).
    """

    sinks: dict[str, list[Record]]
    dead_letters: list[DeadLetter] = field(default_factory=list)
    status: RunStatus | None = None

    def __getitem__(self, sink_id: str) -> list[Record]:
        return self.sinks[sink_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sinks)

    def __len__(self) -> int:
        return len(self.sinks)


def run_inline(pipeline: str | Path | Pipeline, inputs: Mapping[str, Iterable[Record]] | None = None,
               *, base_dir: str | Path | None = None, batch_size: int | None = None) -> Outcome:
    """Run `pipeline` in this process, sources in `inputs` fed from lists, every sink collected.

    `pipeline` is YAML text, a path (a `Path`, or a one-line string ending in .yaml/.yml), or a
    loaded `Pipeline`. Relative paths in YAML text resolve against `base_dir` (default: the current
    directory). Each `inputs[source_id]` replaces that source (of any type) by a `list` source;
    sources not named run as written. Every sink, whatever its type, is replaced by a `collect`
    sink, so nothing is written to files; dead letters are collected too. `batch_size` sets how
    many records the list sources put in one batch. Mistakes raise `ConfigError` /
    `CompileError` as `cep validate` would report them; a node failing raises `RuntimeFailure`.

    >>> from cep.testing import run_inline
    >>> out = run_inline('''
    ... name: mids
    ... sources: {quotes: {type: list}}
    ... streams:
    ...   mids: {from: quotes, ops: [{map: {mid: "(bid_price + ask_price) / 2"}}]}
    ... sinks: {out: {type: collect, from: [mids]}}
    ... ''', inputs={"quotes": [{"timestamp": 1, "bid_price": 1.0, "ask_price": 3.0}]})
    >>> out["out"]
    [{'timestamp': 1, 'bid_price': 1.0, 'ask_price': 3.0, 'mid': 2.0}]
    """
    import cep
    from cep.runtime.inline import run_inline as run_plan

    _register()
    model = _load(pipeline, base_dir)
    for source_id, records in (inputs or {}).items():
        spec: dict[str, Any] = {"type": "list", "records": list(records)}
        if batch_size is not None:
            spec["batch_size"] = batch_size
        model = replace_source(model, source_id, spec)
    collected: dict[str, list[Record]] = {sink_id: [] for sink_id in model.sinks}
    with tempfile.TemporaryDirectory(prefix="cep-test-") as scratch:
        dead_letter_file = Path(scratch) / "deadletter.jsonl"
        model = _collecting(model, collected, dead_letter_file)
        status = run_plan(cep.compile(model, run_dir=Path(scratch) / "run"))
        dead_letters = _read_dead_letters(dead_letter_file)
    return Outcome(collected, dead_letters, status)


def run_operator(operator: str | Any, params: Any, records: Iterable[Record], key: str | None = None,
                 *, batch_size: int | None = None) -> list[Record]:
    """What one operator (or rule) emits for `records`, built from `params` as YAML would be.

    `operator` is a registered name or a factory tagged with `@operator`/`@rule` (registered in
    this process on first use). `params` is what follows the name in YAML: a mapping, a pydantic
    params instance, None, or the shorthand's bare value (`run_operator("take", 2, ...)`).
    `key` partitions the input as `key_by:` (operators) or `partition_by:` (rules) would.

    >>> from cep.testing import run_operator
    >>> ticks = [{"timestamp": t, "instrument": i, "bid_volume": 1.0 + t} for t, i in enumerate("ABA")]
    >>> [r["total"] for r in run_operator("scan", {"into": "total", "expr": "acc + bid_volume"},
    ...                                   ticks, key="instrument")]
    [1.0, 2.0, 4.0]
    """
    _register()
    component = _component_of(operator)
    if isinstance(params, BaseModel):
        params = params.model_dump(mode="json", by_alias=True)
    document: dict[str, Any] = {"name": f"run_operator-{component.name}",
                                "sources": {"input": {"type": "list"}},
                                "sinks": {"output": {"type": "collect", "from": ["step"]}}}
    if component.kind == "rule":
        document["rules"] = {"step": {"use": component.name, "from": "input", "partition_by": key,
                                      "with": params if params is not None else {}}}
    else:
        document["streams"] = {"step": {"from": "input", "key_by": key,
                                        "ops": [{component.name: params}]}}
    text = yaml.safe_dump(document, sort_keys=False)
    return run_inline(text, inputs={"input": records}, batch_size=batch_size)["output"]


def _register() -> None:
    """Put `list` and `collect` into this process's registry (again is a no-op)."""
    default_registry().register_module(sys.modules[__name__])


def _component_of(operator: str | Any) -> Component:
    registry = default_registry()
    if not isinstance(operator, str):
        component = getattr(operator, MARK, None)
        if not isinstance(component, Component) or component.kind not in ("operator", "rule"):
            raise ConfigError(Problem(f"{operator!r} is not a factory tagged as an operator or rule",
                                      hint="decorate it with @operator(name, params=...) from cep.plugins"))
        registry.register(component)
        return component
    found = registry.get("operator", operator) or registry.get("rule", operator)
    if found is None:
        close = registry.suggest("operator", operator) or registry.suggest("rule", operator)
        raise ConfigError(Problem(f"no operator or rule named {operator!r}",
                                  hint=f"did you mean {close!r}?" if close else "see `cep plugins`"))
    return found


def _load(pipeline: str | Path | Pipeline, base_dir: str | Path | None) -> Pipeline:
    if isinstance(pipeline, Pipeline):
        return pipeline
    if isinstance(pipeline, Path) or ("\n" not in pipeline and pipeline.endswith((".yaml", ".yml"))):
        return load_pipeline(pipeline)
    return load_pipeline_text(pipeline, "<test pipeline>", Path(base_dir) if base_dir else None)


def _collecting(pipeline: Pipeline, collected: dict[str, list[Record]], dead_letter_file: Path) -> Pipeline:
    """`pipeline` with every sink a `collect` sink into `collected[sink_id]`, dead letters to a file."""
    sinks = {sink_id: SinkSpec(id=sink_id, type="collect", params={"into": collected[sink_id]},
                               from_=spec.from_)
             for sink_id, spec in pipeline.sinks.items()}
    defaults = pipeline.defaults.model_copy(update={"dead_letter": str(dead_letter_file)})
    changed = pipeline.model_copy(update={"sinks": sinks, "defaults": defaults})
    changed._locations = pipeline._locations
    changed._registry = pipeline._registry
    return changed


def _read_dead_letters(path: Path) -> list[DeadLetter]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as lines:
        return [DeadLetter(entry["node"], entry["reason"], entry["raw"])
                for entry in map(json.loads, lines)]
