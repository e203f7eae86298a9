"""Any spec the rules accept reaches its pod: the transcoder's copy (`runtime.spec_json`, an annotation the kubelet
writes to a file) stays under `runtime.MAX_SPEC_BYTES`, within the 256 KiB an object's annotations may hold.

The spec used to travel in an environment variable, as JSON that escapes non-ASCII: a valid spec of emoji text
operations became 423,637 bytes, over Linux's 131,072-byte limit for one environment string, so it could never
start. Now the size rule (`models.MAX_SPEC_TEXT_BYTES`, a CEL rule in the CRD) bounds the free-text fields, and
these tests build the largest spec the rules allow.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from videojob.api.models import MAX_INPUTS, MAX_OPERATIONS, MAX_SPEC_TEXT_BYTES, VideoJobSpec
from videojob.api.runtime import MAX_SPEC_BYTES, TRANSCODER_SPEC_FIELDS, spec_json
from videojob.controller.jobs import build_job_manifest
from videojob.controller.settings import Settings

ANNOTATIONS_LIMIT = 256 * 1024  # what the API server allows all annotations of one object together


def largest(budget_char: str, texts: int = MAX_OPERATIONS - 1) -> dict[str, Any]:
    """Every list at its longest and every field at its widest, the free-text fields filled with `budget_char` up
    to the size rule's budget (a `"` takes 2 bytes in JSON for 1 counted: the worst case). URIs hold no
    whitespace: with a whitespace `budget_char` they are filled with "a"."""
    width = len(budget_char.encode())
    uri_char = "a" if budget_char.isspace() else budget_char
    names = [f"n{i:02d}" + "a" * 60 for i in range(MAX_INPUTS)]
    prefix = "s3://" + "b" * 63 + "/"
    output_uri = prefix + "o/"
    left = MAX_SPEC_TEXT_BYTES - len(output_uri)
    per_uri = min(2048 - len(prefix), (left // 3 // MAX_INPUTS - len(prefix)) // len(uri_char.encode()))
    inputs = []
    for name in names:
        uri = prefix + uri_char * per_uri
        left -= len(uri.encode())
        inputs.append({"name": name, "uri": uri, "trim": {"start": 86399.999999, "duration": 86399.999999}})
    operations: list[dict[str, Any]] = [{"concat": {"inputs": names}}]
    for index in range(texts):
        n = min(1000, (left - (texts - index - 1)) // width)
        text = budget_char * n if n > 0 else "a"
        left -= len(text.encode())
        operations.append(
            {
                "text": {
                    "text": text,
                    "font": "A" * 64,
                    "size": 400,
                    "color": "#ffffffff",
                    "position": "bottom-center",
                    "offsetX": -4096,
                    "offsetY": -4096,
                    "box": True,
                    "boxColor": "#ffffffff",
                    "border": 20,
                    "borderColor": "#ffffffff",
                    "start": 86399.999999,
                    "end": 86400.0,
                }
            }
        )
    assert left >= 0
    return {
        "priority": 10,
        "hardware": "nvidia",
        "inputs": inputs,
        "operations": operations,
        "output": {
            "uri": output_uri,
            "name": "A" * 128,
            "container": "mkv",
            "thumbnail": {"at": 86399.999999, "width": 7680},
        },
        "retries": 10,
        "activeDeadlineSeconds": 604800,
    }


@pytest.mark.parametrize(
    "char",
    [
        pytest.param("a", id="ASCII"),
        pytest.param('"', id="quotes (escaped: 2 bytes each)"),
        pytest.param("\n", id="newlines (escaped: 2 bytes each)"),
        pytest.param("é", id="2-byte characters"),
        pytest.param("🎬", id="emoji (4 bytes each)"),
    ],
)
def test_the_largest_spec_the_rules_allow_fits_its_annotation(char: str) -> None:
    spec = VideoJobSpec.model_validate(largest(char))
    assert spec.text_bytes() <= MAX_SPEC_TEXT_BYTES
    if len(char.encode()) == 4:
        assert spec.text_bytes() >= MAX_SPEC_TEXT_BYTES - 64, "the whole budget is used"
    size = len(spec_json(spec).encode())
    assert size <= MAX_SPEC_BYTES < ANNOTATIONS_LIMIT, size
    job = build_job_manifest(
        {"metadata": {"name": "big", "namespace": "media", "uid": "u"}, "spec": largest(char)}, "cpu", Settings()
    )
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items()) < ANNOTATIONS_LIMIT


def test_the_reviews_emoji_spec_is_refused_with_a_sentence() -> None:
    """32 text operations of 1000 emoji: 423,637 bytes in the old environment variable; over the size rule now."""
    body = {
        "inputs": [{"name": "in", "uri": "s3://media/in.mp4"}],
        "output": {"uri": "s3://media/out/"},
        "operations": [{"text": {"text": "🎬" * 1000}}] * MAX_OPERATIONS,
    }
    with pytest.raises(ValidationError, match=f"may hold {MAX_SPEC_TEXT_BYTES} bytes"):
        VideoJobSpec.model_validate(body)
    fits = {**body, "operations": [{"text": {"text": "🎬" * 1000}}] * (MAX_SPEC_TEXT_BYTES // 4000 - 1)}
    assert len(spec_json(VideoJobSpec.model_validate(fits)).encode()) <= MAX_SPEC_BYTES


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a\x00b", id="NUL"),
        pytest.param("bell\x07", id="BEL"),
        pytest.param("esc\x1b[31m", id="ESC"),
        pytest.param("form\x0cfeed", id="form feed"),
    ],
)
def test_text_may_hold_no_control_characters_but_tab_and_line_breaks(text: str) -> None:
    """A control character costs 6 bytes in JSON (\\u0007) for one counted: the size rule could not bound it."""
    body = {
        "inputs": [{"name": "in", "uri": "s3://media/in.mp4"}],
        "output": {"uri": "s3://media/out/"},
        "operations": [{"text": {"text": text}}],
    }
    with pytest.raises(ValidationError, match="no control characters"):
        VideoJobSpec.model_validate(body)
    ok = {**body, "operations": [{"text": {"text": "tab\there\r\nnext line"}}]}
    VideoJobSpec.model_validate(ok)


def _wide_strings(schema: dict[str, Any], defs: dict[str, Any], path: str, out: list[str]) -> None:
    if "$ref" in schema:
        _wide_strings(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, path, out)
        return
    for option in schema.get("anyOf", []) + schema.get("allOf", []):
        _wide_strings(option, defs, path, out)
    if schema.get("type") == "string" and "enum" not in schema and schema.get("maxLength", 10**9) > 256:
        out.append(path)
    for name, sub in (schema.get("properties") or {}).items():
        _wide_strings(sub, defs, f"{path}.{name}", out)
    if isinstance(schema.get("items"), dict):
        _wide_strings(schema["items"], defs, f"{path}[]", out)
    if isinstance(schema.get("additionalProperties"), dict):
        _wide_strings(schema["additionalProperties"], defs, f"{path}{{}}", out)


def test_every_wide_string_the_transcoder_gets_is_counted_by_the_size_rule() -> None:
    """A new field of more than 256 characters in the transcoder's copy must join the size rule (models.py) and
    `VideoJobSpec.text_bytes`, or a spec the API server accepts could outgrow its annotation."""
    schema = VideoJobSpec.model_json_schema(by_alias=False)
    wide: list[str] = []
    for name in TRANSCODER_SPEC_FIELDS:
        _wide_strings(schema["properties"][name], schema.get("$defs", {}), name, wide)
    assert sorted(set(wide)) == ["inputs[].uri", "operations[].text.text", "output.uri"]


def test_the_copy_holds_only_what_the_transcoder_reads() -> None:
    spec = VideoJobSpec.model_validate(
        {
            "inputs": [{"name": "in", "uri": "s3://media/in.mp4"}],
            "output": {"uri": "s3://media/out/"},
            "priority": 1,
            "ttlSecondsAfterFinished": 60,
        }
    )
    assert set(json.loads(spec_json(spec))) == {"inputs", "operations", "output", "hardware", "retries"}
