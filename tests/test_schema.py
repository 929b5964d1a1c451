"""`cep schema`: a valid JSON Schema that every example pipeline meets and that refuses what the
loader refuses in shape (unknown keys, wrong types, unknown component types)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from cep.config import load_pipeline, pipeline_registry
from cep.config.schema import pipeline_schema
from cep.config.yamlsafe import parse_yaml, read_yaml_file
from cep.plugins import default_registry

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
SYNTHETIC = ROOT / "pipelines" / "synthetic.yaml"


def as_json(data):
    """YAML data as an editor's JSON view of it: dates and times are text."""
    return json.loads(json.dumps(data, default=str))


def errors(schema, data) -> list[tuple[list, str]]:
    validator = jsonschema.Draft202012Validator(schema)
    return [(list(error.absolute_path), error.message) for error in validator.iter_errors(as_json(data))]


@pytest.fixture(scope="module")
def schema():
    return pipeline_schema(default_registry())


def test_the_schema_is_a_valid_draft_2020_12_schema(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def refs(schema) -> set[str]:
    if isinstance(schema, dict):
        return {schema["$ref"]} if "$ref" in schema else set().union(*map(refs, schema.values()))
    if isinstance(schema, list):
        return set().union(*map(refs, schema))
    return set()


def test_every_reference_points_at_a_definition(schema):
    assert refs(schema) and {ref.removeprefix("#/$defs/") for ref in refs(schema)} <= set(schema["$defs"])


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_example_pipeline_meets_the_schema_of_its_registry(path):
    schema = pipeline_schema(pipeline_registry(load_pipeline(path)))
    assert errors(schema, read_yaml_file(path).data) == []


def test_a_local_plugin_is_unknown_to_the_schema_of_installed_components_only(schema):
    vwap = read_yaml_file(ROOT / "pipelines" / "vwap.yaml").data
    assert any(path[:4] == ["streams", "vwap50", "ops", 0] for path, _ in errors(schema, vwap))


def synthetic_with(change: str, new: str) -> dict:
    text = SYNTHETIC.read_text()
    assert change in text
    return parse_yaml(text.replace(change, new, 1)).data


@pytest.mark.parametrize("change, new, where", [
    ("name: synthetic", "name: synthetic\nsinkz: {}", []),                             # unknown top-level key
    ("    seed: 7", "    sed: 7", ["sources", "quotes"]),                                # unknown source param
    ("    count: 200000", "    count: many", ["sources", "quotes", "count"]),            # wrong type
    ("    type: synthetic", "    type: synthetik", ["sources", "quotes", "type"]),       # unknown source type
    ("      - filter: \"spread > 0\"", "      - filtr: \"spread > 0\"", ["streams", "mids", "ops", 1]),
    ("      - filter: \"spread > 0\"", "      - filter: 3", ["streams", "mids", "ops", 1, "filter"]),
    ("    with: {count: 6, direction: up, quantity: 10}", "    with: {count: six}",
     ["rules", "rising"]),                                                             # a rule's params
    ("    from: mids\n    with: {count: 6, direction: down", "    with: {count: 6, direction: down",
     ["rules", "falling"]),                                                            # missing from
    ("    type: \"null\"", "    type: \"null\"\n    delivery: twice", ["sinks", "counts", "delivery"]),
    ("name: synthetic", "name: synthetic\ndefaults: {batch_size: 0}", ["defaults", "batch_size"]),
])
def test_a_broken_pipeline_fails_the_schema_where_it_is_broken(schema, change, new, where):
    found = errors(schema, synthetic_with(change, new))
    assert found, "the schema let it through"
    assert any(path[:len(where)] == where for path, _ in found), found


def test_the_tests_section_is_described(schema):
    broken = synthetic_with("      expect:\n        rising:", "      expct:\n        rising:")
    assert any(path[:1] == ["tests"] for path, _ in errors(schema, broken))


def cep(*args):
    return subprocess.run([sys.executable, "-m", "cep.cli", "schema", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cep_schema_prints_it_and_writes_it(tmp_path):
    done = cep()
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # this process's registry may hold test plugins: not compared
    jsonschema.Draft202012Validator.check_schema(printed)
    assert errors(printed, read_yaml_file(SYNTHETIC).data) == []
    written = tmp_path / "vwap.schema.json"
    done = cep(ROOT / "pipelines" / "vwap.yaml", "-o", written)
    assert done.returncode == 0 and done.stdout == ""
    assert "spread_filter" in json.loads(written.read_text())["properties"]["streams"]["additionalProperties"][
        "properties"]["ops"]["items"]["properties"]


@pytest.mark.parametrize("args, code, message", [
    (["missing.yaml"], 2, "missing.yaml: no such pipeline file"),
    (["-o", "/nonexistent-dir/s.json"], 1, "cannot write the schema to /nonexistent-dir/s.json"),
])
def test_bad_input_is_a_message_not_a_traceback(args, code, message):
    done = cep(*args)
    assert done.returncode == code
    assert message in done.stderr and "Traceback" not in done.stderr
