"""Presets end to end: VideoJobs that take their output from a VideoJobPreset or a ClusterVideoJobPreset run on the
real cluster, and the results (ffprobe facts of the objects written) carry the preset's settings; a field the
VideoJob sets wins; a VideoJob naming a preset that does not exist waits Pending, then runs once it is created."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.harness import Diagnostics, MediaFactory, NotYet, VideoJobs, parse_s3_uri, probe
from devkit.operator_release import OperatorRelease
from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.e2e

GROUP, VERSION = "videojob.dev", "v1alpha1"
SAMPLES = REPO / "manifests" / "samples" / "presets"


def sample(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    return doc


@pytest.fixture
def cluster_preset(custom_objects: Any) -> Iterator[str]:
    """The sample ClusterVideoJobPreset web-720p under a name of this test's own (cluster-scoped names are shared),
    at a size that encodes in a moment; deleted afterwards."""
    doc = sample("web-720p.yaml")
    doc["metadata"]["name"] = f"t-web-{uuid.uuid4().hex[:6]}"
    doc["spec"]["container"] = "mkv"
    doc["spec"]["video"].update({"codec": "h265", "preset": "ultrafast", "resolution": "192x108"})
    custom_objects.create_cluster_custom_object(GROUP, VERSION, "clustervideojobpresets", doc)
    try:
        yield doc["metadata"]["name"]
    finally:
        custom_objects.delete_cluster_custom_object(GROUP, VERSION, "clustervideojobpresets", doc["metadata"]["name"])


def create_preset(custom_objects: Any, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "videojobpresets", doc
    )
    return created


def artifact(status: dict[str, Any], kind: str = "video") -> dict[str, Any]:
    found = [a for a in status.get("artifacts") or [] if a.get("kind", "video") == kind]
    assert len(found) == 1, status
    return found[0]


def probed(s3: Any, uri: str, tmp_path: Path) -> tuple[str, int, int]:
    """(codec, width, height) of the object's video stream, by ffprobe on a download."""
    bucket, key = parse_s3_uri(uri)
    local = tmp_path / key.replace("/", "_")
    s3.download_file(bucket, key, str(local))
    video = next(s for s in probe(local)["streams"] if s["codec_type"] == "video")
    return video["codec_name"], int(video["width"]), int(video["height"])


def test_jobs_take_their_output_from_presets_override_fields_and_wait_for_missing_ones(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    media: MediaFactory,
    bucket: str,
    s3: Any,
    custom_objects: Any,
    namespace: str,
    cluster_preset: str,
    tmp_path: Path,
) -> None:
    source = media.upload(media.video(seconds=1, size="320x240"), bucket, "in/main.mp4")
    # The sample VideoJobPreset webm-small (VP9 + Opus in WebM, 320x240), made smaller.
    small = sample("webm-small.yaml")
    small["spec"]["video"]["resolution"] = "160x96"
    namespaced = create_preset(custom_objects, namespace, small)
    run_operator(max_running=4, max_running_gpu=0)

    def job(name: str, preset: str, **output: Any) -> None:
        videojobs.create(
            name,
            {
                "hardware": "cpu",
                "retries": 0,
                "inputs": [{"name": "main", "uri": source}],
                "output": {"uri": f"s3://{bucket}/out/{name}/", "preset": preset, **output},
            },
        )

    job("from-namespace", "webm-small")
    job("from-cluster", cluster_preset)
    job("overridden", "webm-small", video={"resolution": "128x72"})
    late = f"late-{uuid.uuid4().hex[:6]}"
    job("waits", late)

    # The missing preset: Pending, not queued, the reason and message naming it.
    def waiting_for_preset() -> Any:  # the status, or NotYet (falsy) saying what it was
        status = videojobs.status("waits")
        return status if status.get("reason") == "PresetNotFound" else NotYet(status)

    status = wait_for(waiting_for_preset, timeout=60, message="the VideoJob waiting for its preset")
    assert status["phase"] == "Pending", status
    assert f"VideoJobPreset {late!r} in namespace {namespace!r}" in status["message"], status
    assert f"ClusterVideoJobPreset {late!r}" in status["message"], status
    assert "queuePosition" not in status and not status.get("jobName"), status

    for name in ("from-namespace", "from-cluster", "overridden"):
        diagnostics.wait_phase(name, "Succeeded", timeout=180)

    # A namespace's preset: its container, codecs and size, and status.preset says which version was used.
    status = videojobs.status("from-namespace")
    video = artifact(status)
    assert video["uri"] == f"s3://{bucket}/out/from-namespace/output.webm", video
    assert (video["videoCodec"], video["audioCodec"], video["width"], video["height"]) == ("vp9", "opus", 160, 96)
    assert probed(s3, video["uri"], tmp_path) == ("vp9", 160, 96)
    assert status["preset"] == {
        "kind": "VideoJobPreset",
        "name": "webm-small",
        "uid": namespaced["metadata"]["uid"],
        "resourceVersion": namespaced["metadata"]["resourceVersion"],
        "generation": namespaced["metadata"]["generation"],
    }

    # The cluster's preset, where the namespace has none of that name.
    status = videojobs.status("from-cluster")
    video = artifact(status)
    assert video["uri"].endswith("/from-cluster/output.mkv"), video
    assert probed(s3, video["uri"], tmp_path) == ("hevc", 192, 108)
    assert (status["preset"]["kind"], status["preset"]["name"]) == ("ClusterVideoJobPreset", cluster_preset)

    # A field the VideoJob sets wins; the rest stays the preset's.
    video = artifact(videojobs.status("overridden"))
    assert probed(s3, video["uri"], tmp_path) == ("vp9", 128, 72)

    # The preset appears: the waiting job joins the queue and runs with it.
    late_preset = sample("webm-small.yaml")
    late_preset["metadata"]["name"] = late
    late_preset["spec"]["video"]["resolution"] = "96x64"
    create_preset(custom_objects, namespace, late_preset)
    diagnostics.wait_phase("waits", "Succeeded", timeout=180)
    status = videojobs.status("waits")
    assert probed(s3, artifact(status)["uri"], tmp_path) == ("vp9", 96, 64)
    assert status["preset"]["name"] == late
