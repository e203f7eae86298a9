"""The VideoJob API models: what they accept, what they refuse (naming the field), and the samples' round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tests.conftest import REPO
from tests.data.full_status import FULL_STATUS
from tests.data.invalid_videojobs import INVALID, Invalid, base_job, edited
from videojob.api.models import (
    MAX_NAME_LENGTH,
    Operation,
    VideoJob,
    VideoJobSpec,
    VideoJobStatus,
    VideoOutput,
)

SAMPLES_DIR = REPO / "manifests" / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def load_sample(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, f"{path}: one VideoJob per file"
    return docs[0]


def error_paths(error: ValidationError) -> list[str]:
    """Each error as `path: message`, the path written as the API server writes it (spec.inputs[0].uri)."""
    out = []
    for e in error.errors():
        path = ""
        for step in e["loc"]:
            path += f"[{step}]" if isinstance(step, int) else (f".{step}" if path else str(step))
        out.append(f"{path}: {e['msg']}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Valid


VALID: list[tuple[str, dict[str, Any]]] = [
    ("the base job of the invalid corpus", {}),
    ("an https input", {"spec.inputs[0].uri": "https://media.example.com/v/main.mp4?sig=abc"}),
    ("an http input (allowed or not by the operator)", {"spec.inputs[0].uri": "http://media.example.com/a.mp4"}),
    ("a key with dots that are not a .. segment", {"spec.inputs[0].uri": "s3://videojob-samples/in/..a/b..c/.d.mp4"}),
    ("an output at the bucket root", {"spec.output.uri": "s3://videojob-samples"}),
    ("an output prefix without a trailing slash", {"spec.output.uri": "s3://videojob-samples/out/x"}),
    ("priority 1", {"spec.priority": 1}),
    ("priority 10", {"spec.priority": 10}),
    ("a trimmed input", {"spec.inputs[0].trim": {"start": 1.5, "duration": 2}}),
    (
        "concat first, then text",
        {"spec.operations": [{"concat": {"inputs": ["main", "intro"]}}, {"text": {"text": "x"}}]},
    ),
    ("text with end after start", {"spec.operations": [{"text": {"text": "ünïcödé ✓ 'quotes' : % \\", "end": 0.1}}]}),
    (
        "video copy with emitted-only subtitles",
        {
            "spec.operations": [{"subtitles": {"input": "subs", "burn": False, "emit": ["srt"]}}],
            "spec.output.video": {"codec": "copy"},
        },
    ),
    ("audio copy with text", {"spec.operations": [{"text": {"text": "x"}}], "spec.output.audio": {"codec": "copy"}}),
    (
        "webm with vp9 and opus",
        {
            "spec.output.container": "webm",
            "spec.output.video": {"codec": "vp9"},
            "spec.output.audio": {"codec": "opus"},
        },
    ),
    ("bitrate without crf", {"spec.output.video": {"bitrate": "4M"}}),
    ("crf 63 with vp9", {"spec.output.container": "mkv", "spec.output.video": {"codec": "vp9", "crf": 63}}),
    ("crf 51 with h265", {"spec.output.video": {"codec": "h265", "crf": 51}}),
    ("smallest and largest resolutions", {"spec.output.video": {"resolution": "16x7680"}}),
    ("a name of exactly 52 characters", {"metadata.name": "n" * MAX_NAME_LENGTH}),
    ("a credentials secret", {"spec.credentialsSecretRef": {"name": "s3-creds"}}),
    # With a preset, what depends on the fields left to it is checked after the merge, by the operator.
    ("webm left to a preset's codecs", {"spec.output.preset": "webm-vp9", "spec.output.container": "webm"}),
    ("crf 55 left to a preset's codec", {"spec.output.preset": "vp9", "spec.output.video": {"crf": 55}}),
]


@pytest.mark.parametrize(("edits"), [e for _, e in VALID], ids=[i for i, _ in VALID])
def test_valid_videojob_is_accepted(edits: dict[str, Any]) -> None:
    job = VideoJob.model_validate(edited(base_job(), edits))
    assert job.spec.inputs


# ---------------------------------------------------------------------------------------------------------------
# Invalid: the shared corpus


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_videojob_is_refused_naming_the_field(case: Invalid) -> None:
    with pytest.raises(ValidationError) as caught:
        VideoJob.model_validate(case.job())
    errors = error_paths(caught.value)
    assert any(case.model_text in e for e in errors), f"no error names {case.model_text!r}: {errors}"
    if case.says is not None:  # the models say the same sentence (without the field, which pydantic's path names)
        sentence = case.says.split(" ", 1)[1]
        assert any(sentence in e for e in errors), f"no error says {sentence!r}: {errors}"


def test_the_invalid_corpus_has_at_least_40_cases_and_each_breaks_one_valid_base() -> None:
    assert len(INVALID) >= 40
    VideoJob.model_validate(base_job())


# ---------------------------------------------------------------------------------------------------------------
# Behaviour of single models


@pytest.mark.parametrize(
    ("data", "kind", "refs"),
    [
        ({"concat": {"inputs": ["a", "b"]}}, "concat", ["a", "b"]),
        ({"audio": {"input": "m"}}, "audio", ["m"]),
        ({"text": {"text": "t"}}, "text", []),
        ({"subtitles": {"input": "s"}}, "subtitles", ["s"]),
        ({"subtitles": {"generate": {}}}, "subtitles", []),
        ({"pip": {"input": "c"}}, "pip", ["c"]),
    ],
    ids=[
        "concat reads its inputs",
        "audio reads one",
        "text reads none",
        "subtitles from a file read it",
        "generated subtitles read none",
        "pip reads one",
    ],
)
def test_operation_kind_and_input_refs(data: dict[str, Any], kind: str, refs: list[str]) -> None:
    op = Operation.model_validate(data)
    assert op.kind == kind
    assert op.input_refs() == refs
    assert op.body is getattr(op, kind)


@pytest.mark.parametrize(
    ("resolution", "size"),
    [("1280x720", (1280, 720)), ("16x16", (16, 16)), ("7680x4320", (7680, 4320)), (None, None)],
)
def test_video_output_size(resolution: str | None, size: tuple[int, int] | None) -> None:
    assert VideoOutput(resolution=resolution).size == size


def test_defaults_are_those_documented() -> None:
    spec = VideoJobSpec.model_validate(base_job()["spec"])
    assert (spec.priority, spec.hardware, spec.retries, spec.cancel) == (5, "auto", 2, False)
    assert (spec.output.container, spec.output.video.codec, spec.output.audio.codec) == ("mp4", "h264", "aac")


def test_models_are_frozen() -> None:
    spec = VideoJobSpec.model_validate(base_job()["spec"])
    with pytest.raises(ValidationError):
        spec.priority = 1  # type: ignore[misc]


def test_status_round_trips_with_every_field() -> None:
    assert VideoJobStatus.model_validate(FULL_STATUS).to_wire() == FULL_STATUS


@pytest.mark.parametrize(
    ("status", "field"),
    [
        ({"phase": "Done"}, "phase"),
        ({"progress": 101}, "progress"),
        ({"queuePosition": 0}, "queuePosition"),
        ({"hardware": "tpu"}, "hardware"),
        ({"artifacts": [{"uri": "s3://b/k", "size": 1, "sha256": "xyz"}]}, "artifacts[0].sha256"),
        (
            {"conditions": [{"type": "Ready", "status": "Maybe", "reason": "R", "lastTransitionTime": "t"}]},
            "conditions[0].status",
        ),
    ],
    ids=[
        "unknown phase",
        "progress over 100",
        "queue position 0",
        "unknown hardware",
        "bad sha256",
        "condition status not True/False/Unknown",
    ],
)
def test_invalid_status_is_refused_naming_the_field(status: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        VideoJobStatus.model_validate(status)
    errors = error_paths(caught.value)
    assert any(e.startswith(field) for e in errors), errors


# ---------------------------------------------------------------------------------------------------------------
# Samples


def test_there_is_a_sample_for_every_operation_and_a_chain_of_all() -> None:
    names = {p.stem for p in SAMPLE_FILES}
    assert {
        "transcode",
        "concat",
        "audio-mix",
        "audio-replace",
        "text",
        "subtitles-srt",
        "subtitles-generate",
        "pip",
        "chain",
    } <= names
    chain = VideoJobSpec.model_validate(load_sample(SAMPLES_DIR / "chain.yaml")["spec"])
    kinds = [op.kind for op in chain.operations]
    assert set(kinds) == {"concat", "audio", "text", "subtitles", "pip"}
    assert {op.audio.mode for op in chain.operations if op.audio} == {"mix", "replace"}
    assert {bool(op.subtitles.generate) for op in chain.operations if op.subtitles} == {True, False}


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_sample_round_trips_through_the_models(path: Path) -> None:
    sample = load_sample(path)
    job = VideoJob.model_validate(sample)
    # exclude_unset: defaults the sample does not write stay unwritten, so the dump is the sample itself.
    assert job.model_dump(mode="json", by_alias=True, exclude_unset=True) == sample
    assert job.spec.model_dump(mode="json", by_alias=True, exclude_unset=True) == sample["spec"]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_sample_follows_the_conventions_of_the_samples(path: Path) -> None:
    sample = load_sample(path)
    assert sample["metadata"]["name"] == f"sample-{path.stem}"
    assert "namespace" not in sample["metadata"], "samples go to the namespace they are applied to"
    assert sample["spec"]["output"]["uri"] == f"s3://videojob-samples/out/{path.stem}/"
    assert path.read_text().startswith("#"), "each sample starts with a comment for a first-time reader"
    readme = (SAMPLES_DIR / "README.md").read_text()
    comment = readme[: readme.index("-->")]
    for item in sample["spec"]["inputs"]:
        key = item["uri"].removeprefix("s3://videojob-samples/")
        assert key.startswith("in/") and f"\n{key}: " in comment, f"{key} is not listed at the top of README.md"


def test_kustomization_lists_every_sample() -> None:
    kustomization = yaml.safe_load((SAMPLES_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in SAMPLE_FILES)
