"""Test files -> runnable cases, or every mistake in them at its file:line (exit 2).

Three kinds of file hold tests: a pipeline with a `tests:` section, a rule library with one (each
case runs one template, fed directly), and a file of tests alone (`pipeline:` names the pipeline
or library, `tests:` holds the cases). A case's pipeline is the file's, cut down to what its
input reaches: the fed node takes the case's events (a source is replaced by them; a stream,
rule or sink reads them instead of its `from:`), nodes the input does not reach are left out
(no data file is read), every sink collects, and each node an expectation names is collected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cep.casetest.spec import (
    ALIASES, DEFAULT_COLUMNS, FORMS, Advance, Case, CaseDefaults, NodeExpectation, RuleUnderTest, TestFile)
from cep.casetest.times import Clock, absolute_time, day_start
from cep.config import Pipeline, load_pipeline, load_pipeline_text, load_rule_library
from cep.config.models import SinkSpec, SourceSpec
from cep.config.problems import KeyPath, Report, describe, did_you_mean
from cep.config.translate import validation_problems
from cep.config.yamlsafe import read_yaml_file
from cep.durations import parse_duration
from cep.errors import ConfigError, Location, Problem, UserError
from cep.events import Record

INPUT = "test_input"
"""The id of the source that feeds a stream, rule or sink its case's events."""
OBSERVER = "test_observes."
"""Prefix of the collecting sinks added for nodes an expectation names."""


@dataclass(frozen=True)
class Check:
    """An expectation on one node's output, with expected records in record form."""

    node: str
    collected_by: str                 # the sink whose records are the node's output
    spec: NodeExpectation
    location: Location | None


@dataclass
class BuiltCase:
    """A case ready to run: its pipeline, the events for its input source, its checks."""

    file: str
    name: str
    location: Location | None
    pipeline: Pipeline
    source: str
    events: list[Record]
    checks: list[Check] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


def load_cases(path: Path) -> list[BuiltCase]:
    """Every case of the test file at `path`; ConfigError listing every mistake in it."""
    try:
        doc = read_yaml_file(path, "test")
    except ConfigError as exc:
        raise ConfigError(exc.problems) from None
    report = Report(doc.keys)
    report.add(doc.problems)
    data = doc.data
    if not isinstance(data, dict):
        report.error((), "a test file must be a mapping", "see `cep test --help` for its form")
        report.raise_if_any()
    target, tests = _target(path, data, report)
    cases = _cases(tests, report)
    built: list[BuiltCase] = []
    if target is not None and cases:
        builder = _Builder(path, target, report)
        built = [case for raw_case, where in cases if (case := builder.build(raw_case, where)) is not None]
    report.raise_if_any()
    return built


def _target(path: Path, data: dict, report: Report) -> tuple[Path | None, Any]:
    """(the pipeline or library the tests run, the `tests:` value)."""
    if "templates" in data or "name" in data or "sources" in data:
        if "tests" not in data:
            report.error((), f"{path} has no 'tests:' section",
                         "add one: tests: [{name: ..., input: [...], expect: {NODE: [...]}}]")
        return path, data.get("tests")
    try:
        TestFile.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, model=TestFile, locations=report.locations)
        report.add(p for p in problems if not p.message.startswith("tests"))  # cases: checked one by one
        if "pipeline" not in data or not isinstance(data["pipeline"], str):
            return None, data.get("tests")
    target = path.parent / data["pipeline"]
    if not target.is_file():
        report.error(("pipeline",), f"pipeline: no such file {data['pipeline']!r}",
                     f"a path relative to the test file ({target} not found)")
        return None, data.get("tests")
    return target, data.get("tests")


def _cases(tests: Any, report: Report) -> list[tuple[Case, KeyPath]]:
    """The cases of a `tests:` value (a list, or a mapping of shared keys and `cases:`), each
    with the shared keys it does not set itself, and the key path it was written at."""
    if tests is None:
        return []
    if isinstance(tests, list):
        shared, items, base = CaseDefaults(), tests, ("tests",)
    elif isinstance(tests, dict):
        shared = _validated(CaseDefaults, {k: v for k, v in tests.items() if k != "cases"}, ("tests",), report)
        items, base = tests.get("cases"), ("tests", "cases")
        if not isinstance(items, list) or not items:
            report.error(("tests",), "tests: 'cases:' must be a non-empty list of cases")
            return []
    else:
        report.error(("tests",), "'tests:' must be a list of cases (or a mapping with 'cases:')")
        return []
    shared = shared or CaseDefaults()
    given = {key: getattr(shared, key) for key in shared.model_fields_set}
    found = []
    for index, item in enumerate(items):
        case = _validated(Case, item, base + (index,), report)
        if case is not None:
            found.append((case.model_copy(update={k: v for k, v in given.items()
                                                    if k not in case.model_fields_set}), base + (index,)))
    return found


def _validated(model: type[BaseModel], data: Any, path: KeyPath, report: Report) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        name = data.get("name") if isinstance(data, dict) else None
        subject = f'case "{name}"' if isinstance(name, str) else "tests"
        report.add(validation_problems(_Untagged(exc), model=model, locations=report.locations,  # type: ignore[arg-type]
                                       prefix=path, subject=subject))
        return None


class _Untagged:
    """A ValidationError's errors without the form tags of `spec._form` in their paths
    (`expect.momentum5.count`, not `expect.momentum5.mapping.count`)."""

    def __init__(self, exc: ValidationError) -> None:
        self._errors = [{**error, "loc": _untagged(tuple(error["loc"]))} for error in exc.errors(include_url=False)]

    def errors(self, **_: Any) -> list[dict[str, Any]]:
        return self._errors


def _untagged(loc: KeyPath) -> KeyPath:
    return tuple(part for index, part in enumerate(loc)
                 if not (part in FORMS and index >= 2 and loc[index - 2] in ("expect", "input")))


class _Builder:
    """Builds the cases of one file against its pipeline or rule library (loaded once)."""

    def __init__(self, path: Path, target: Path, report: Report) -> None:
        from cep.config import is_rule_library
        _register_test_kit()
        self.file = str(path)
        self.report = report
        self.library = target if is_rule_library(target) else None
        self.templates: dict[str, Any] = {}
        self.pipeline: Pipeline | None = None
        try:
            if self.library is not None:
                self.templates = load_rule_library(target)
            else:
                self.pipeline = load_pipeline(target)
        except UserError as exc:
            report.add(exc.problems)

    def build(self, case: Case, path: KeyPath) -> BuiltCase | None:
        subject = f'case "{case.name}"'
        errors = len(self.report.problems)
        events = self._events(case, path, subject)
        pipeline = self._pipeline_of(case, path, subject)
        if pipeline is None:
            return None
        feed = case.feed or self._only_source(pipeline, path, subject)
        if feed is None:
            return None
        fed = _Feeding(pipeline, feed)
        checks = self._checks(case, path, subject, fed)
        if fed.unknown:
            self.report.error(path + ("feed",), f"{subject}: feed: no node {feed!r}",
                              did_you_mean(feed, fed.nodes, "nodes"))
        if len(self.report.problems) > errors or events is None:
            return None
        return BuiltCase(self.file, case.name, self.report.locate(path),
                         fed.pipeline(case_observers(checks)), fed.source, events, checks)

    # -- the pipeline ----------------------------------------------------------------------
    def _pipeline_of(self, case: Case, path: KeyPath, subject: str) -> Pipeline | None:
        if self.library is None:
            if case.rule is not None:
                self.report.error(path + ("rule",), f"{subject}: 'rule:' is for rule libraries",
                                  "in a pipeline, name the node the input goes into with feed:")
            return self.pipeline
        rule = case.rule if case.rule is not None else self._only_template(path, subject)
        if rule is None:
            return None
        rule = RuleUnderTest(use=rule) if isinstance(rule, str) else rule
        if rule.use not in self.templates:
            self.report.error(path + ("rule",), f"{subject}: rule: no template {rule.use!r} in "
                                                f"{self.library.name}", did_you_mean(rule.use, self.templates, "templates"))
            return None
        spec: dict[str, Any] = {"use": rule.use, "from": INPUT, "with": dict(rule.with_)}
        if rule.partition_by is not None:
            spec["partition_by"] = rule.partition_by
        document = {"version": 1, "name": f"test-{rule.use}", "imports": [self.library.name],
                    "sources": {INPUT: {"type": "list"}}, "rules": {rule.use: spec}}
        try:
            return load_pipeline_text(yaml.safe_dump(document, sort_keys=False), self.library.name,
                                      self.library.parent)
        except UserError as exc:
            where = self.report.locate(path + ("rule",))
            self.report.add(Problem(f"{subject}: rule: {p.message}", where, p.hint) for p in exc.problems)
            return None

    def _only_template(self, path: KeyPath, subject: str) -> str | None:
        if len(self.templates) == 1:
            return next(iter(self.templates))
        self.report.error(path, f"{subject}: name the template it runs with rule:",
                          f"templates: {', '.join(self.templates)}")
        return None

    def _only_source(self, pipeline: Pipeline, path: KeyPath, subject: str) -> str | None:
        if len(pipeline.sources) == 1:
            return next(iter(pipeline.sources))
        self.report.error(path, f"{subject}: name the node the input goes into with feed:",
                          f"the pipeline has {len(pipeline.sources)} sources: {', '.join(pipeline.sources)}")
        return None

    # -- the input ---------------------------------------------------------------------------
    def _events(self, case: Case, path: KeyPath, subject: str) -> list[Record] | None:
        try:
            clock = Clock(day_start(case.date if case.date is not None else "1970-01-01"),
                          parse_duration(case.step if case.step is not None else "1s"))
        except ValueError as exc:
            self.report.error(path + ("date" if "date" in str(exc) else "step",), f"{subject}: {exc}")
            return None
        columns = list(case.columns or DEFAULT_COLUMNS)
        events: list[Record] = []
        ok = True
        for index, step in enumerate(case.input):
            where = path + ("input", index)
            try:
                if isinstance(step, Advance):
                    clock.advance(step.advance)
                    continue
                events.append(self._event(step, columns, case.instrument, clock))
            except ValueError as exc:
                self.report.error(where, f"{subject}: input[{index}]: {exc}")
                ok = False
        return events if ok else None

    @staticmethod
    def _event(step: Any, columns: list[str], instrument: str | None, clock: Clock) -> Record:
        if isinstance(step, list):
            if len(step) != len(columns):
                raise ValueError(f"{len(step)} values for {len(columns)} columns ({', '.join(columns)})")
            step = dict(zip(columns, step))
        written = {ALIASES.get(k, k): v for k, v in step.items()}
        record = {"timestamp": clock.at(written.pop("timestamp", None))}
        if instrument is not None and "instrument" not in written:
            record["instrument"] = instrument
        record.update(written)
        return record

    # -- the expectations ----------------------------------------------------------------------
    def _checks(self, case: Case, path: KeyPath, subject: str, fed: "_Feeding") -> list[Check]:
        midnight = day_start(case.date if case.date is not None else "1970-01-01")
        checks = []
        for node, written in case.expect.items():
            where = path + ("expect", node)
            spec = NodeExpectation(match=written) if isinstance(written, list) else written
            if node not in fed.nodes:
                self.report.error(where, f"{subject}: expect: no node {node!r}",
                                  did_you_mean(node, fed.nodes, "nodes"))
                continue
            if not fed.unknown and node not in fed.reached:
                self.report.error(where, f"{subject}: expect: {node!r} does not read from "
                                         f"{fed.feed!r}, so the input never reaches it",
                                  f"nodes it reaches: {', '.join(sorted(fed.reached))}")
                continue
            try:
                spec = spec.model_copy(update={
                    key: [_expected_record(r, midnight) for r in getattr(spec, key)]
                    for key in ("records", "match") if getattr(spec, key) is not None})
            except ValueError as exc:
                self.report.error(where, f"{subject}: expect.{node}: {exc}")
                continue
            collected_by = node if node in fed.base.sinks else OBSERVER + node
            checks.append(Check(node, collected_by, spec, self.report.locate(where)))
        return checks


def _expected_record(record: dict[str, Any], midnight: int) -> dict[str, Any]:
    """An expected record with short names spelled out and its time in nanoseconds."""
    spelled = {ALIASES.get(k, k): v for k, v in record.items()}
    if "timestamp" in spelled:
        value = spelled["timestamp"]
        if isinstance(value, str) and value.strip().startswith("+"):
            raise ValueError(f"an expected time is absolute ({describe(value)}): write 10:00:05 or nanoseconds")
        spelled["timestamp"] = absolute_time(value, midnight)
    return spelled


def case_observers(checks: list[Check]) -> dict[str, str]:
    """observer sink id -> the node it collects, for the checks on nodes that are not sinks."""
    return {check.collected_by: check.node for check in checks if check.collected_by != check.node}


class _Feeding:
    """A pipeline cut down to what its fed node reaches, that node fed by a list source."""

    def __init__(self, base: Pipeline, feed: str) -> None:
        self.base = base
        self.feed = feed
        self.inputs = {**{sid: () for sid in base.sources},
                       **{nid: spec.from_ for section in (base.streams, base.rules, base.sinks)
                          for nid, spec in section.items()},
                       **{vid: (spec.quotes,) for vid, spec in base.venues.items()},
                       **{oid: (*spec.from_, spec.venue) for oid, spec in base.orders.items()}}
        self.nodes = list(self.inputs)
        self.unknown = feed not in self.inputs
        self.reached = set() if self.unknown else self._complete(self._downstream(feed))
        self.source = feed if feed in base.sources else INPUT

    def _complete(self, reached: set[str]) -> set[str]:
        """`reached` less the venues and order executors missing something they need (a venue
        its quotes; an executor its venue or quotes), and what then reads nothing reached."""
        needs = {**{vid: (spec.quotes,) for vid, spec in self.base.venues.items()},
                 **{oid: (spec.venue, *((spec.quotes,) if spec.quotes else ()))
                    for oid, spec in self.base.orders.items()}}
        while True:
            lacking = {node for node in reached if node != self.feed and (
                any(need not in reached for need in needs.get(node, ()))
                or not any(i in reached for i in self.inputs[node]))}
            if not lacking:
                return reached
            reached = reached - lacking

    def _downstream(self, start: str) -> set[str]:
        reached, frontier = {start}, [start]
        while frontier:
            node = frontier.pop()
            for other, inputs in self.inputs.items():
                if node in inputs and other not in reached:
                    reached.add(other)
                    frontier.append(other)
        return reached

    def _rewired(self, nid: str, spec: Any) -> Any:
        inputs = (INPUT,) if nid == self.feed else tuple(i for i in spec.from_ if i in self.reached)
        return spec.model_copy(update={"from_": inputs})

    def pipeline(self, observers: dict[str, str]) -> Pipeline:
        base, kept = self.base, self.reached
        sources = {sid: spec for sid, spec in base.sources.items() if sid in kept}
        if self.source == INPUT:
            sources[INPUT] = SourceSpec(id=INPUT, type="list")
        sections = {name: {nid: self._rewired(nid, spec) for nid, spec in getattr(base, name).items() if nid in kept}
                    for name in ("streams", "rules", "sinks")}
        sections["sinks"].update({sid: SinkSpec(id=sid, type="collect", from_=(node,))
                                  for sid, node in observers.items()})
        sections["sinks"] = {sid: spec.model_copy(update={"delivery": None}) for sid, spec in sections["sinks"].items()}
        sections["venues"] = {vid: spec for vid, spec in base.venues.items() if vid in kept}
        sections["orders"] = {oid: self._rewired(oid, spec) for oid, spec in base.orders.items() if oid in kept}
        defaults = base.defaults.model_copy(update={"delivery": "at_most_once"})
        changed = base.model_copy(update={"sources": sources, **sections, "defaults": defaults,
                                          "deploy": {n: d for n, d in base.deploy.items() if n in kept}})
        changed._locations = base._locations
        changed._registry = base._registry
        return changed


def _register_test_kit() -> None:
    """The `list` source and `collect` sink (cep.testing) in this process's registry, before any
    pipeline is loaded: a loaded pipeline keeps a copy of the registry it was loaded with."""
    import cep.testing
    from cep.plugins import default_registry
    default_registry().register_module(cep.testing)
