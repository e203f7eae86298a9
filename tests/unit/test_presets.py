"""Presets: the merge of a VideoJob's output with its preset, the resolution of the name, and what the operator
builds from them (the Job's spec and annotation, the status). Pure functions, table-driven."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from videojob.api import runtime
from videojob.api.models import Output, VideoJobPresetSpec, VideoJobSpec
from videojob.api.presets import apply_preset, merged_output
from videojob.controller.index import slim_job
from videojob.controller.jobs import ANNOTATION_PRESET, build_job_manifest
from videojob.controller.presets import find_preset, resolve
from videojob.controller.settings import Settings
from videojob.controller.status import derive_status

URI = "s3://bucket/out/"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

WEB_720P: dict[str, Any] = {
    "description": "H.264 720p for the web",
    "container": "mkv",
    "video": {"codec": "h264", "crf": 23, "preset": "veryfast", "resolution": "1280x720"},
    "audio": {"codec": "aac", "bitrate": "128k"},
    "thumbnail": {"at": 1, "width": 320},
}


def preset_spec(**fields: Any) -> VideoJobPresetSpec:
    return VideoJobPresetSpec.model_validate(fields)


# ---------------------------------------------------------------------------------------------------------------
# merge


@pytest.mark.parametrize(
    ("preset", "output", "expected"),
    [
        pytest.param(
            WEB_720P,
            {"uri": URI},
            {
                "uri": URI,
                "container": "mkv",
                "video": WEB_720P["video"],
                "audio": WEB_720P["audio"],
                "thumbnail": {"at": 1, "width": 320},
            },
            id="a job that sets nothing gets every field of the preset but its description",
        ),
        pytest.param(
            WEB_720P,
            {"uri": URI, "video": {"resolution": "640x360"}},
            {
                "uri": URI,
                "container": "mkv",
                "video": {"codec": "h264", "crf": 23, "preset": "veryfast", "resolution": "640x360"},
                "audio": WEB_720P["audio"],
                "thumbnail": {"at": 1, "width": 320},
            },
            id="a field the job sets overrides the preset's and the object's other fields stay",
        ),
        pytest.param(
            WEB_720P,
            {"uri": URI, "video": {"bitrate": "2M"}},
            {
                "uri": URI,
                "container": "mkv",
                "video": {"codec": "h264", "bitrate": "2M", "preset": "veryfast", "resolution": "1280x720"},
                "audio": WEB_720P["audio"],
                "thumbnail": {"at": 1, "width": 320},
            },
            id="a job's bitrate replaces the preset's crf (rate control is one choice)",
        ),
        pytest.param(
            {"video": {"bitrate": "4M"}},
            {"uri": URI, "video": {"crf": 30}},
            {"uri": URI, "video": {"crf": 30}},
            id="a job's crf replaces the preset's bitrate",
        ),
        pytest.param(
            WEB_720P,
            {"uri": URI, "container": "mp4", "name": "clip", "overwrite": True, "thumbnail": {"at": 5}},
            {
                "uri": URI,
                "container": "mp4",
                "name": "clip",
                "overwrite": True,
                "video": WEB_720P["video"],
                "audio": WEB_720P["audio"],
                "thumbnail": {"at": 5, "width": 320},
            },
            id="scalars replace, thumbnail merges field by field, name and overwrite are the job's",
        ),
        pytest.param(
            {},
            {"uri": URI, "video": {"codec": "vp9"}},
            {"uri": URI, "video": {"codec": "vp9"}},
            id="an empty preset changes nothing",
        ),
        pytest.param(
            {"audio": {"codec": "opus"}},
            {"uri": URI, "preset": "x"},
            {"uri": URI, "audio": {"codec": "opus"}},
            id="the preset's name is not carried into the merged output",
        ),
    ],
)
def test_merged_output(preset: dict[str, Any], output: dict[str, Any], expected: dict[str, Any]) -> None:
    assert merged_output(preset_spec(**preset), output) == expected


@pytest.mark.parametrize(
    ("preset", "output", "field", "message"),
    [
        pytest.param(
            {"container": "webm", "video": {"codec": "vp9"}, "audio": {"codec": "opus"}},
            {"video": {"codec": "h264"}},
            "output",
            "container webm needs video codec vp9 or av1",
            id="a job's h264 under a webm preset",
        ),
        pytest.param(
            {"video": {"codec": "h264"}},
            {"video": {"crf": 60}},
            "output",
            "video.crf of h264 and h265",
            id="a crf that the preset's codec does not take",
        ),
        pytest.param(
            {"video": {"codec": "copy"}},
            {"video": {"resolution": "640x360"}},
            "output.video",
            "codec copy cannot be combined",
            id="a resolution over a copy preset",
        ),
        pytest.param(
            {"audio": {"codec": "opus"}},
            {"audio": {"sampleRate": 44100}},
            "output.audio",
            "codec opus supports sampleRate",
            id="a sample rate the preset's codec cannot encode",
        ),
    ],
)
def test_invalid_merges_name_the_field(
    preset: dict[str, Any], output: dict[str, Any], field: str, message: str
) -> None:
    spec = VideoJobSpec.model_validate(
        {"inputs": [{"name": "in", "uri": "s3://bucket/in.mp4"}], "output": {"uri": URI, "preset": "p", **output}}
    )
    with pytest.raises(ValidationError) as caught:
        apply_preset(spec, preset_spec(**preset))
    error = caught.value.errors()[0]
    assert ".".join(str(p) for p in error["loc"]) == field
    assert message in error["msg"]


def test_a_job_may_leave_to_its_preset_what_it_could_not_leave_to_the_defaults() -> None:
    """`container: webm` alone is refused without a preset (the default codecs are h264 and aac), accepted with one:
    the preset may supply vp9 and opus, which the operator checks after the merge."""
    with pytest.raises(ValidationError, match="container webm"):
        Output.model_validate({"uri": URI, "container": "webm"})
    Output.model_validate({"uri": URI, "container": "webm", "preset": "webm-vp9"})
    merged = apply_preset(
        VideoJobSpec.model_validate(
            {
                "inputs": [{"name": "in", "uri": "s3://bucket/in.mp4"}],
                "output": {"uri": URI, "container": "webm", "preset": "webm-vp9"},
            }
        ),
        preset_spec(video={"codec": "vp9"}, audio={"codec": "opus"}),
    )
    assert (merged.output.container, merged.output.video.codec, merged.output.audio.codec) == ("webm", "vp9", "opus")
    assert merged.output.preset is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"container": "webm"}, "container webm needs", id="webm with the default codecs"),
        pytest.param({"video": {"crf": 55}}, "crf of h264 and h265", id="crf 55 with the default h264"),
        pytest.param({"video": {"crf": 20, "bitrate": "2M"}}, "mutually exclusive", id="crf and bitrate"),
        pytest.param({"description": "line\nbreak"}, "control characters", id="a description with a newline"),
    ],
)
def test_a_preset_must_be_a_complete_output_on_its_own(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        preset_spec(**fields)


# ---------------------------------------------------------------------------------------------------------------
# resolution


def preset_body(name: str, namespace: str | None, spec: dict[str, Any], version: str = "7") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{namespace}-{name}", "resourceVersion": version, "generation": 2}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, "spec": spec}


def videojob(output: dict[str, Any], namespace: str = "media") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "clip",
            "namespace": namespace,
            "uid": "vj-uid",
            "generation": 1,
            "resourceVersion": "10",
            "creationTimestamp": "2026-01-02T03:04:00Z",
        },
        "spec": VideoJobSpec.model_validate(
            {"inputs": [{"name": "in", "uri": "s3://bucket/in.mp4"}], "output": output}
        ).model_dump(mode="json", by_alias=True, exclude_unset=True),
    }


OURS = preset_body("web", "media", {"video": {"codec": "h265"}})
THEIRS = preset_body("web", "other", {"video": {"codec": "vp9"}, "container": "mkv"})
CLUSTER = preset_body("web", None, {"video": {"codec": "av1"}, "container": "mkv"})


@pytest.mark.parametrize(
    ("namespaced", "cluster", "expected"),
    [
        pytest.param([OURS, THEIRS], [CLUSTER], OURS, id="the namespace's preset shadows the cluster's"),
        pytest.param([THEIRS], [CLUSTER], CLUSTER, id="another namespace's preset is never used"),
        pytest.param([], [CLUSTER], CLUSTER, id="the cluster's when the namespace has none"),
        pytest.param([THEIRS], [], None, id="none at all"),
    ],
)
def test_find_preset(
    namespaced: list[dict[str, Any]], cluster: list[dict[str, Any]], expected: dict[str, Any] | None
) -> None:
    by_name = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in namespaced}
    assert find_preset("web", "media", by_name, {b["metadata"]["name"]: b for b in cluster}) is expected


def test_resolve_merges_and_records_which_preset_in_which_version() -> None:
    vj = videojob({"uri": URI, "preset": "web", "video": {"resolution": "640x360"}})
    resolution = resolve(vj, VideoJobSpec.model_validate(vj["spec"]), CLUSTER)
    assert resolution.waiting is None and resolution.problem is None and resolution.body is not None
    assert resolution.snapshot == {
        "kind": "ClusterVideoJobPreset",
        "name": "web",
        "uid": "uid-None-web",
        "resourceVersion": "7",
        "generation": 2,
    }
    output = resolution.body["spec"]["output"]
    assert (output["container"], output["video"]["codec"], output["video"]["resolution"]) == ("mkv", "av1", "640x360")
    assert "preset" not in output
    assert resolution.body["metadata"] == vj["metadata"]


def test_a_missing_preset_waits_with_a_message_naming_it() -> None:
    vj = videojob({"uri": URI, "preset": "web-4k"})
    resolution = resolve(vj, VideoJobSpec.model_validate(vj["spec"]), None)
    assert resolution.body is None and resolution.problem is None
    assert resolution.waiting is not None
    assert "VideoJobPreset 'web-4k' in namespace 'media'" in resolution.waiting
    assert "ClusterVideoJobPreset 'web-4k'" in resolution.waiting
    status = derive_status(vj, None, [], NOW, preset_missing=resolution.waiting)
    assert (status["phase"], status["reason"], status["message"]) == ("Pending", "PresetNotFound", resolution.waiting)
    assert "queuePosition" not in status


def test_an_invalid_merge_fails_naming_the_preset_and_the_field() -> None:
    vj = videojob({"uri": URI, "preset": "web", "video": {"crf": 60}})
    resolution = resolve(vj, VideoJobSpec.model_validate(vj["spec"]), OURS)  # h265: crf 0-51
    assert resolution.body is None and resolution.problem is not None
    assert resolution.problem.startswith("output merged with VideoJobPreset media/web is invalid: output: ")
    assert "video.crf of h264 and h265 is 0 to 51" in resolution.problem
    status = derive_status(vj, None, [], NOW, problem=resolution.problem)
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec")


# ---------------------------------------------------------------------------------------------------------------
# what the operator builds


def test_the_job_carries_the_merged_spec_and_the_preset_it_came_from() -> None:
    vj = videojob({"uri": URI, "preset": "web", "audio": {"bitrate": "96k"}})
    resolution = resolve(vj, VideoJobSpec.model_validate(vj["spec"]), OURS)
    assert resolution.body is not None and resolution.snapshot is not None
    job = build_job_manifest(resolution.body, "cpu", Settings(), resolution.snapshot)
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    handed_over = json.loads(annotations[runtime.SPEC_ANNOTATION])
    assert handed_over["output"]["video"]["codec"] == "h265"
    assert handed_over["output"]["audio"] == {"codec": "aac", "bitrate": "96k"}
    assert "preset" not in handed_over["output"], "the transcoder gets nothing left to resolve"
    assert json.loads(annotations[ANNOTATION_PRESET]) == resolution.snapshot

    # The status records the preset from the Job itself (its template cannot change), also after a restart.
    created = {**job, "metadata": {**job["metadata"], "uid": "job-uid", "creationTimestamp": "2026-01-02T03:04:05Z"}}
    status = derive_status(vj, slim_job(created), [], NOW)
    assert status["preset"] == resolution.snapshot
    assert derive_status(vj, None, [], NOW).get("preset") is None


def test_without_a_preset_the_job_has_no_preset_annotation() -> None:
    vj = videojob({"uri": URI})
    job = build_job_manifest(vj, "cpu", Settings())
    assert ANNOTATION_PRESET not in job["spec"]["template"]["metadata"]["annotations"]


def test_outputs_of_a_job_with_a_preset_cover_every_container_it_may_get() -> None:
    """The operator decides what a VideoJob owns from its spec alone; with a preset, the container and thumbnail
    are the preset's, so every container's name counts (all under the job's own prefix and name)."""
    spec = VideoJobSpec.model_validate(videojob({"uri": URI, "name": "clip", "preset": "web"})["spec"])
    assert runtime.output_uris(spec) == [f"{URI}clip.{ext}" for ext in ("mp4", "mkv", "webm", "mov", "jpg")]
    merged = apply_preset(spec, preset_spec(container="mov"))
    assert runtime.output_uris(merged) == [f"{URI}clip.mov"]
