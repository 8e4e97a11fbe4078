"""schema/ferry.schema.json against the example and invalid configs.

Every examples/configs/*.yaml must pass the schema. Every tests/config/invalid/*.yaml must fail
it, unless it carries a `# schema: passes` line: those are errors only the loader can find
(references to unknown services, duplicate names or keys, ...). A file that is not even valid
YAML counts as rejected.

Run: /usr/bin/python3 -m pytest tests/config
"""

import json
import pathlib

import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schema" / "ferry.schema.json").read_text())
EXAMPLES = sorted((ROOT / "examples" / "configs").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "config" / "invalid").glob("*.yaml"))


class KeysAsText(yaml.SafeLoader):
    """YAML 1.1 values, as Ferry's loader sees them (a plain `yes` is a boolean, so Ferry refuses
    it as text), but keys are text, as Ferry and YAML 1.2 tools (editors) read them: in a
    policy's `retry`, `on` is the key "on", not the boolean true that PyYAML makes of it."""

    def construct_mapping(self, node, deep=False):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:bool":
                key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep)


def load(path):
    return yaml.load(path.read_text(), Loader=KeysAsText)


def validator():
    cls = jsonschema.validators.validator_for(SCHEMA)
    cls.check_schema(SCHEMA)
    return cls(SCHEMA)


def schema_detectable(path):
    return not any(line.startswith("# schema: passes") for line in path.read_text().splitlines())


def test_schema_is_valid_and_strict():
    validator()

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node.get("additionalProperties") is not None, f"{where}: not strict"
            for name, prop in node.get("properties", {}).items():
                assert "description" in prop, f"{where}.{name}: no description"
            for key, value in node.items():
                if key not in ("if", "then", "else", "not"):  # conditions, not definitions
                    walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(SCHEMA, "$")


def test_there_are_examples_and_invalid_configs():
    assert len(EXAMPLES) >= 2
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_schema(path):
    validator().validate(load(path) or {})


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_config_has_expectation(path):
    assert path.read_text().startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"


@pytest.mark.parametrize("path", [p for p in INVALID if schema_detectable(p)], ids=lambda p: p.name)
def test_invalid_config_fails_schema(path):
    try:
        document = load(path)
    except yaml.YAMLError:
        return  # not YAML at all: rejected before any schema
    errors = list(validator().iter_errors(document))
    assert errors, f"{path.name} passes the schema but is marked schema-detectable"


@pytest.mark.parametrize("path", [p for p in INVALID if not schema_detectable(p)], ids=lambda p: p.name)
def test_loader_only_config_passes_schema(path):
    # Guards the marker: if the schema learns to catch one of these, drop its `# schema: passes`.
    validator().validate(load(path))
