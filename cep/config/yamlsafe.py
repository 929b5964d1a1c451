"""YAML -> plain Python data, with the file position of every key.

Only `yaml.SafeLoader` ever reads user text: no Python objects, no custom tags. On top of safe
loading this module refuses what YAML silently accepts but a pipeline author never means: a key
written twice in one mapping (YAML keeps the last), and documents that are huge or expand
into huge data through aliases. Mapping keys are always strings as written (`on:` stays "on", never
True), and so are YAML 1.1's base-60 numbers: `10:00:01` is a time of day, not 36001 (as in YAML
1.2). Merge keys (`<<: *base`) work as in YAML 1.1.

Every failure is a `ConfigError` whose problems carry `file:line:col` (1-based) and a hint.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cep.errors import ConfigError, Location, Problem
from cep.config.problems import KeyPath

MAX_BYTES = 1_000_000
"""Pipelines and rule libraries are hand-written; anything larger is a mistake (or an attack)."""
MAX_VALUES = 100_000
"""How many values a document may expand to; stops alias bombs ("billion laughs")."""
MAX_DEPTH = 64
"""How deeply mappings and lists may nest."""

_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_BASE_60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_HINTS = (
    ("mapping values are not allowed", "quote a value that contains ': ', or check the indentation"),
    ("could not find expected ':'", "a key needs ': ' after it; check the indentation of this line"),
    ("found character '\\t'", "indent with spaces, not tabs"),
    ("found undefined alias", "define the anchor (&name) before using it (*name)"),
    ("expected a single document", "a pipeline file holds one document; remove the '---' separator"),
    ("did not find expected key", "check the indentation: keys of one mapping must line up"),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
    ("could not determine a constructor", "cep reads plain YAML only; remove the tag"),
)


@dataclass
class YamlDocument:
    """Data read from one YAML file and where each part of it was written.

    `keys` maps a key path to the position of the key (for list items: of the item); `values` maps
    it to the position of the value itself. The empty path is the start of the document.
    `problems` are mistakes that left the rest readable (a duplicate key: the first one is kept),
    so the caller can report them together with its own.
    """

    file: str
    data: Any
    keys: dict[KeyPath, Location] = field(default_factory=dict)
    values: dict[KeyPath, Location] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # mistakes that did not stop reading


def read_yaml_file(path: Path, what: str = "pipeline") -> YamlDocument:
    """Read and parse a YAML file; a missing, unreadable, oversized or non-UTF-8 file is a ConfigError."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(_too_big(name, size))
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(Problem(f"{name}: no such {what} file", hint="check the path")) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(Problem(f"{name}: not UTF-8 text (byte {exc.start})",
                                  hint=f"save the {what} file as UTF-8")) from None
    except OSError as exc:
        raise ConfigError(Problem(f"{name}: cannot read {what} file: {exc.strerror or exc}")) from None
    return parse_yaml(text, name)


def parse_yaml(text: str, filename: str = "<string>") -> YamlDocument:
    """Parse one YAML document safely into plain data with key and value positions."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ConfigError(_too_big(filename, size))
    loader = _BoundedLoader(text, filename)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_syntax_problem(exc, filename)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(Problem(f"invalid YAML: {exc}", Location(filename, 1, 1))) from None
    finally:
        loader.dispose()
    doc = YamlDocument(filename, None, {(): Location(filename, 1, 1)}, {(): Location(filename, 1, 1)})
    if node is not None:
        doc.data = _Builder(loader, doc).build(node, (), 0)
    return doc


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer, the one recursive step of PyYAML, stops at MAX_DEPTH levels
    with the place of the first node too deep, before Python's recursion limit is near."""

    def __init__(self, text: str, filename: str):
        super().__init__(text)
        self.filename = filename
        self.depth = -1  # the root node is at depth 0, as in `_Builder`

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ConfigError(_too_deep(_at(self.peek_event().start_mark, self.filename)))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        """Plain `10:00:01` stays text (YAML 1.1 would read it as the base-60 number 36001)."""
        if kind is ScalarNode and implicit[0] and _BASE_60.fullmatch(value):
            return _STR
        return super().resolve(kind, value, implicit)


def _too_deep(where: Location) -> Problem:
    return Problem("the document is nested too deeply", where,
                   hint=f"at most {MAX_DEPTH} levels of mappings and lists")


def is_rule_library(path: Path) -> bool:
    """Whether the file at `path` is a rule library (`templates:` and no `name:` at the top), read
    as every YAML file is: size first, nesting bounded. False if it cannot be read at all: the
    pipeline loader then reports why, with its place."""
    try:
        data = read_yaml_file(path).data
    except ConfigError:
        return False
    return isinstance(data, dict) and "templates" in data and "name" not in data


def _too_big(filename: str, size: int) -> Problem:
    return Problem(f"the file is too large ({size:,} bytes; the limit is {MAX_BYTES:,})",
                   Location(filename, 1, 1), hint="a pipeline file is hand-written configuration; "
                                                  "put data in a source file instead")


def _at(mark: Any, filename: str) -> Location:
    return Location(filename, mark.line + 1, mark.column + 1)


def _syntax_problem(exc: yaml.MarkedYAMLError, filename: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    said = f"{problem} {exc.context or ''}"
    hint = next((h for text, h in _HINTS if text in said), None)
    if hint is None and exc.context and exc.context_mark is not None:
        hint = f"{exc.context} at line {exc.context_mark.line + 1}"
    return Problem(f"invalid YAML: {problem}", _at(mark, filename) if mark else None, hint)


class _Builder:
    """Walks composed nodes into dicts, lists and scalars, recording positions on the way."""

    def __init__(self, loader: yaml.SafeLoader, doc: YamlDocument):
        self.loader = loader
        self.doc = doc
        self.count = 0

    def fail(self, node: Node, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(Problem(message, _at(node.start_mark, self.doc.file), hint))

    def build(self, node: Node, path: KeyPath, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, f"the document expands to more than {MAX_VALUES:,} values",
                            hint="aliases (*name) repeat their anchor's whole content")
        if depth > MAX_DEPTH:
            raise ConfigError(_too_deep(_at(node.start_mark, self.doc.file)))
        self.doc.values[path] = _at(node.start_mark, self.doc.file)
        if isinstance(node, ScalarNode):
            try:
                return self.loader.construct_object(node, deep=True)
            except yaml.MarkedYAMLError as exc:
                raise ConfigError(_syntax_problem(exc, self.doc.file)) from None
        if node.tag not in _COLLECTION_TAGS:
            raise self.fail(node, f"unsupported YAML tag {node.tag!r}",
                            hint="pipelines use plain mappings, lists and scalars")
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.doc.keys[path + (index,)] = _at(item.start_mark, self.doc.file)
                items.append(self.build(item, path + (index,), depth + 1))
            return items
        return self.mapping(node, path, depth)

    def mapping(self, node: MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for source in reversed(self.merge_sources(node)):  # earlier merge sources win
            result.update(self.mapping(source, path, depth))
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.key(key_node)
            if key in first_line:
                self.doc.problems.append(Problem(
                    f"duplicate key {key!r} (first at line {first_line[key]})",
                    _at(key_node.start_mark, self.doc.file),
                    hint="YAML would silently keep only the last one; remove or rename one"))
                continue
            first_line[key] = key_node.start_mark.line + 1
            self.doc.keys[path + (key,)] = _at(key_node.start_mark, self.doc.file)
            result[key] = self.build(value_node, path + (key,), depth + 1)
        return result

    def merge_sources(self, node: MappingNode) -> list[MappingNode]:
        sources: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            items = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for item in items:
                if not isinstance(item, MappingNode):
                    raise self.fail(item, "'<<' merges only mappings",
                                    hint="write '<<: *anchor' where the anchor is a mapping")
                sources.append(item)
        return sources

    def key(self, node: Node) -> str:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, "a mapping key must be a plain name, not a list or mapping")
        return str(node.value)
