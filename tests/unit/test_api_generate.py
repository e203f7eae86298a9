"""The CRD and docs/api.md generated from the models: no drift, a structural schema, the conventions we promise."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from videojob.api import generate, models

SAMPLES_DIR = REPO / "manifests" / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return generate.crd()


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (`.spec.inputs[*].uri`)."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if "items" in node:
        yield from nodes(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}[key]")


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does to `value` (defaults of absent fields, recursively)."""
    if node.get("type") == "object" and isinstance(value, dict):
        out = dict(value)
        for name, sub in node.get("properties", {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if node.get("type") == "array" and isinstance(value, list):
        return [apply_defaults(node["items"], item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------------
# Drift


@pytest.mark.parametrize("rel", list(generate.generated_files()), ids=str)
def test_committed_file_equals_the_generated_one(rel: Path) -> None:
    committed = REPO / rel
    assert committed.exists(), f"{rel} is missing: run `make crds`"
    assert committed.read_text() == generate.generated_files()[rel], f"{rel} is out of date: run `make crds`"


def test_chart_template_carries_the_same_crd() -> None:
    """The chart's template is crds/videojobs.yaml inside `crds.install`, with the release's labels and the keep
    policy (tests/unit/test_chart.py renders it with helm)."""
    text = (REPO / generate.CHART_CRD_PATH).read_text()
    plain = "\n".join(line for line in text.split("*/}}", 1)[1].splitlines() if "{{" not in line)
    assert yaml.safe_load(plain)["spec"] == yaml.safe_load((REPO / generate.CRD_PATH).read_text())["spec"]
    assert text.count("{{- if .Values.crds.install }}") == 1 and text.rstrip().endswith("{{- end }}")


def test_generation_is_deterministic() -> None:
    assert generate.generated_files() == generate.generated_files()


def test_check_mode_reports_drift_and_passes_when_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert generate.main(["--check", "--root", str(tmp_path)]) == 0

    crd_file = tmp_path / generate.CRD_PATH
    crd_file.write_text(crd_file.read_text().replace("maxItems: 16", "maxItems: 17", 1))
    (tmp_path / generate.DOCS_PATH).unlink()
    capsys.readouterr()
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "crds/videojobs.yaml (committed)" in err and "maxItems: 17" in err
    assert "docs/api.md: missing" in err and "make crds" in err


def test_written_files_are_the_generated_ones(tmp_path: Path) -> None:
    shutil.copytree(REPO / "crds", tmp_path / "crds")
    assert generate.main(["--root", str(tmp_path)]) == 0
    for rel, content in generate.generated_files().items():
        assert (tmp_path / rel).read_text() == content


# ---------------------------------------------------------------------------------------------------------------
# The CRD object


def test_crd_names_scope_and_version(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "videojobs.videojob.dev"
    spec = crd["spec"]
    assert spec["group"] == models.GROUP and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "VideoJob",
        "listKind": "VideoJobList",
        "plural": "videojobs",
        "singular": "videojob",
        "shortNames": ["vj"],
        "categories": ["media"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_status_subresource(crd: dict[str, Any]) -> None:
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_printer_columns(crd: dict[str, Any]) -> None:
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert [c for c in columns if "priority" not in columns[c]] == [
        "Phase",
        "Priority",
        "Progress",
        "Hardware",
        "Queue",
        "Age",
    ]
    assert columns["Priority"]["jsonPath"] == ".spec.priority"
    assert columns["Progress"]["jsonPath"] == ".status.progress"
    assert columns["Hardware"]["jsonPath"] == ".status.hardware"
    assert columns["Queue"]["jsonPath"] == ".status.queuePosition"
    assert columns["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def test_yaml_file_parses_back_to_the_crd(crd: dict[str, Any]) -> None:
    assert yaml.safe_load((REPO / generate.CRD_PATH).read_text()) == crd


# ---------------------------------------------------------------------------------------------------------------
# Structural schema


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    problems = []
    for path, node in nodes(schema):
        for key in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const", "nullable"):
            if key in node:
                problems.append(f"{path}: {key}")
        if "type" not in node:
            problems.append(f"{path}: no type")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties false")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties with additionalProperties")
        if isinstance(node.get("exclusiveMinimum"), float | int) and not isinstance(node["exclusiveMinimum"], bool):
            problems.append(f"{path}: numeric exclusiveMinimum")
    assert not problems, problems


def test_every_string_list_and_number_is_bounded(schema: dict[str, Any]) -> None:
    unbounded = []
    for path, node in nodes(schema["properties"]["spec"], ".spec"):
        kind = node["type"]
        if kind == "string" and "enum" not in node and "maxLength" not in node:
            unbounded.append(path)
        if kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        if kind in ("integer", "number") and "enum" not in node and not ("minimum" in node and "maximum" in node):
            unbounded.append(path)
    for path, node in nodes(schema["properties"]["status"], ".status"):
        if node["type"] in ("string", "array") and not {"maxLength", "maxItems", "enum"} & node.keys():
            unbounded.append(path)
    assert not unbounded, f"unbounded fields make CEL cost estimates explode: {unbounded}"


def test_every_bound_is_exact_as_a_float64(schema: dict[str, Any]) -> None:
    """The API server reads minimum/maximum as float64; 2**63-1 overflowed there and refused every value."""
    inexact = [
        (path, key, node[key])
        for path, node in nodes(schema)
        for key in ("minimum", "maximum")
        if key in node and abs(node[key]) > models.MAX_SAFE_INTEGER
    ]
    assert not inexact, inexact


def test_every_spec_field_has_a_description(schema: dict[str, Any]) -> None:
    missing = [
        path
        for path, node in nodes(schema["properties"]["spec"], ".spec")
        if not path.endswith(("[*]", "[key]")) and not node.get("description")
    ]
    assert not missing, missing


def test_status_declares_every_model_field(schema: dict[str, Any]) -> None:
    status = schema["properties"]["status"]
    assert set(status["properties"]) == {f.alias or n for n, f in models.VideoJobStatus.model_fields.items()}
    artifact = status["properties"]["artifacts"]["items"]["properties"]
    assert set(artifact) == {f.alias or n for n, f in models.Artifact.model_fields.items()}
    assert not any("default" in node for _, node in nodes(status)), "status carries no defaults"


def test_metadata_name_is_bounded(schema: dict[str, Any]) -> None:
    assert schema["properties"]["metadata"]["properties"]["name"]["maxLength"] == models.MAX_NAME_LENGTH


def test_operation_is_exactly_one_kind(schema: dict[str, Any]) -> None:
    operation = schema["properties"]["spec"]["properties"]["operations"]["items"]
    assert (operation["minProperties"], operation["maxProperties"]) == (1, 1)
    assert set(operation["properties"]) == set(models.OPERATION_KINDS)


def test_every_cel_rule_of_the_models_is_in_the_crd(schema: dict[str, Any]) -> None:
    in_crd = [rule for _, node in nodes(schema) for rule in node.get("x-kubernetes-validations", [])]
    expected: list[Any] = list(models.RESOURCE_VALIDATIONS)
    for model in (
        models.VideoJobSpec,
        models.Text,
        models.Subtitles,
        models.PictureInPicture,
        models.VideoOutput,
        models.AudioOutput,
        models.Output,
    ):
        extra = model.model_config.get("json_schema_extra")
        assert isinstance(extra, dict)
        rules = extra["x-kubernetes-validations"]
        assert isinstance(rules, list)
        expected += rules
    for rule in expected:
        assert rule in in_crd, f"rule missing from the CRD: {rule}"
    assert all(set(r) <= {"rule", "message", "fieldPath", "reason"} and r["message"] for r in in_crd)


def test_optional_fields_are_plain_and_not_required(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["inputs", "output"]
    deadline = spec["properties"]["activeDeadlineSeconds"]
    assert deadline == {
        "type": "integer",
        "minimum": 1,
        "maximum": 604_800,
        "description": "Time limit for one run; the operator's default when unset.",
    }
    fps = spec["properties"]["output"]["properties"]["video"]["properties"]["fps"]
    assert (fps["minimum"], fps["exclusiveMinimum"], fps["maximum"]) == (0, True, 240)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_crd_defaults_are_the_models_defaults(schema: dict[str, Any], path: Path) -> None:
    """What the API server stores (sample + schema defaults) is what the models make of the sample, but for the
    output fields a preset may set: the API server leaves them as the sample wrote them (the operator can then tell
    them from those left to the preset), and the models fill in the same defaults."""
    spec = yaml.safe_load(path.read_text())["spec"]
    defaulted = apply_defaults(schema["properties"]["spec"], spec)
    wire = models.VideoJobSpec.model_validate(spec).to_wire()
    assert {k: v for k, v in defaulted.items() if k != "output"} == {k: v for k, v in wire.items() if k != "output"}
    for field in ("container", "video", "audio"):
        assert defaulted["output"].get(field) == spec["output"].get(field), f"the API server defaulted output.{field}"
    assert models.VideoJobSpec.model_validate(defaulted).to_wire() == wire


# ---------------------------------------------------------------------------------------------------------------
# The conversion itself


@pytest.mark.parametrize(
    ("pydantic_node", "expected"),
    [
        (
            {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}], "default": None, "title": "X"},
            {"type": "integer", "minimum": 1},
        ),
        (
            {"anyOf": [{"$ref": "#/$defs/T"}, {"type": "null"}], "description": "use"},
            {"type": "object", "description": "use", "properties": {"a": {"type": "string"}}},
        ),
        (
            {"$ref": "#/$defs/T", "default": {}},
            {"type": "object", "default": {}, "description": "doc", "properties": {"a": {"type": "string"}}},
        ),
        (
            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 5},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 5, "exclusiveMaximum": True},
        ),
        ({"const": "x"}, {"type": "string", "enum": ["x"]}),
        ({"enum": [1, 2]}, {"type": "integer", "enum": [1, 2]}),
        (
            {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
            {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
        ),
        (
            {
                "type": "object",
                "properties": {"b": {"type": "string"}, "a": {"type": "string"}},
                "required": ["b", "a"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "required": ["a", "b"],
            },
        ),
    ],
    ids=[
        "Optional becomes the plain type",
        "Optional model keeps the field's description",
        "a $ref is inlined with its default",
        "2020-12 exclusive bounds become OpenAPI booleans",
        "const becomes a one-value enum",
        "an int enum gets type integer",
        "a map keeps additionalProperties",
        "additionalProperties false is dropped, properties sorted",
    ],
)
def test_structural_conversion(pydantic_node: dict[str, Any], expected: dict[str, Any]) -> None:
    defs = {
        "T": {
            "type": "object",
            "title": "T",
            "description": "doc",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": False,
        }
    }
    assert generate.structural(pydantic_node, defs, defaults=True) == expected


@pytest.mark.parametrize(
    "pydantic_node",
    [
        {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        {"oneOf": [{"type": "integer"}]},
        {"description": "no type"},
        {"$ref": "#/$defs/Missing"},
    ],
    ids=["a real union", "oneOf", "a node without type", "a dangling $ref"],
)
def test_structural_conversion_refuses_what_a_crd_cannot_express(pydantic_node: dict[str, Any]) -> None:
    with pytest.raises(generate.SchemaError):
        generate.structural(pydantic_node, {}, defaults=True)


def test_defaults_dropped_when_not_wanted() -> None:
    assert generate.structural({"type": "integer", "default": 3}, {}, defaults=False) == {"type": "integer"}


# ---------------------------------------------------------------------------------------------------------------
# docs/api.md


def test_docs_list_every_field_and_rule(schema: dict[str, Any]) -> None:
    docs = generate.docs_markdown()
    for section in ("spec", "status"):
        for path, node in nodes(schema["properties"][section], section):
            if path.endswith(("[*]", "[key]")) or path == section:
                continue
            name = path.rsplit(".", 1)[-1].removesuffix("[*]")
            assert f"| `{name}` |" in docs, f"{path} is not in docs/api.md"
            if node.get("description"):
                assert " ".join(node["description"].split()) in docs, f"description of {path}"
    for _, node in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"] in docs and rule["rule"] in docs
    for heading in ("### `spec.operations[].text`", "### `spec.output.video`", "### `status.conditions[]`"):
        assert heading in docs
