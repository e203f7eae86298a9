"""Every sample VideoJob in manifests/samples/ runs for real and its artifacts are what the spec asked for.

The samples read their inputs from s3://videojob-samples/in/...; this test generates media for every key a
sample names (by its extension: video, audio, subtitles; speech when the sample generates subtitles) and uploads
it, then applies the sample into the test's namespace, waits for Succeeded, downloads each artifact and checks it
with ffprobe against the status (size, sha256, duration, size in pixels, codecs) and the spec.

`hardware: auto` samples run with maxRunningGpu 0 so they take the CPU path: the local GPU node has no real
NVENC. A `hardware: nvidia` sample is expected to end Failed with an NVENC reason here (as in test_gpu.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.harness import (
    Diagnostics,
    MediaFactory,
    VideoJobs,
    ensure_bucket,
    parse_s3_uri,
    probe,
    sha256_file,
)
from devkit.operator_release import OperatorRelease
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

SAMPLES_DIR = REPO / "manifests" / "samples"
SAMPLES_BUCKET = "videojob-samples"
VIDEO_EXT = {"mp4", "mov", "mkv", "webm", "avi"}
AUDIO_EXT = {"mp3", "wav", "aac", "m4a", "ogg", "opus"}
SUBTITLE_EXT = {"srt", "vtt", "ass", "ssa"}
CODEC_NAMES = {"h264": "h264", "h265": "hevc", "vp9": "vp9", "av1": "av1", "aac": "aac", "mp3": "mp3", "opus": "opus"}


def load_samples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(SAMPLES_DIR.glob("*.yaml")):
        for index, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d):
            if doc.get("kind") == "VideoJob":
                out.append((f"{path.stem}#{index}" if index else path.stem, doc))
    return out


SAMPLES = load_samples()


def test_there_are_samples_and_the_readme_names_their_inputs() -> None:
    assert SAMPLES, f"no VideoJob samples in {SAMPLES_DIR}"
    readme = SAMPLES_DIR / "README.md"
    assert readme.exists(), f"{readme} is missing: it lists the input objects the samples need"
    text = readme.read_text()
    missing = sorted({key for _, doc in SAMPLES for key in sample_keys(doc) if key not in text})
    assert not missing, f"{readme} does not list these input keys of s3://{SAMPLES_BUCKET}/: {missing}"


def sample_keys(doc: dict[str, Any]) -> list[str]:
    keys = []
    for item in doc["spec"]["inputs"]:
        if item["uri"].startswith(f"s3://{SAMPLES_BUCKET}/"):
            keys.append(parse_s3_uri(item["uri"])[1])
    return keys


def needs_speech(doc: dict[str, Any]) -> bool:
    return any("generate" in (op.get("subtitles") or {}) for op in doc["spec"].get("operations", []))


def make_input(media: MediaFactory, key: str, speech: bool) -> Path:
    ext = key.rsplit(".", 1)[-1].lower()
    if ext in VIDEO_EXT:
        # AVI inputs differ in size and rate from the others, so concat has something to normalise.
        size, fps = ("240x180", 15) if ext == "avi" else ("320x240", 25)
        path = media.video(seconds=3.0, size=size, fps=fps, container=ext)
        return media.with_speech(path) if speech else path
    if ext in AUDIO_EXT:
        return media.audio(seconds=3.0, fmt=ext)
    if ext in SUBTITLE_EXT:
        return media.subtitles(ext)
    raise AssertionError(f"sample input key {key!r}: no generator for .{ext}")


def check_artifact(artifact: dict[str, Any], spec: dict[str, Any], tmp: Path, s3: Any, context: str) -> None:
    bucket, key = parse_s3_uri(artifact["uri"])
    local = tmp / key.replace("/", "_")
    s3.download_file(bucket, key, str(local))
    assert local.stat().st_size == artifact["size"], f"size of {artifact['uri']} differs from status\n{context}"
    assert sha256_file(local) == artifact["sha256"], f"sha256 of {artifact['uri']} differs from status\n{context}"
    kind = artifact.get("kind", "video")
    if kind == "subtitles":
        text = local.read_text(errors="replace")
        assert "-->" in text, f"{artifact['uri']} holds no cues:\n{text[:500]}"
        return
    facts = probe(local)
    streams = facts["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]
    assert video, f"{artifact['uri']}: no video stream ({facts})"
    if kind == "thumbnail":
        assert video[0]["codec_name"] in ("mjpeg", "png"), video[0]["codec_name"]
        width = (spec["output"].get("thumbnail") or {}).get("width")
        if width:
            assert video[0]["width"] == width, f"thumbnail width {video[0]['width']}, spec {width}"
        return
    out = spec["output"]
    duration = float(facts["format"]["duration"])
    assert duration > 0.3, f"{artifact['uri']}: duration {duration}\n{context}"
    if artifact.get("duration") is not None:
        assert abs(duration - artifact["duration"]) < 0.25, f"duration {duration} vs status {artifact['duration']}"
    vcodec = (out.get("video") or {}).get("codec", "h264")
    if vcodec != "copy":
        assert video[0]["codec_name"] == CODEC_NAMES[vcodec], f"video codec {video[0]['codec_name']}, spec {vcodec}"
    resolution = (out.get("video") or {}).get("resolution")
    if resolution:
        assert f"{video[0]['width']}x{video[0]['height']}" == resolution, f"{video[0]['width']}x{video[0]['height']}"
    if artifact.get("width"):
        assert (video[0]["width"], video[0]["height"]) == (artifact["width"], artifact["height"])
    fps = (out.get("video") or {}).get("fps")
    if fps:
        num, _, den = video[0]["avg_frame_rate"].partition("/")
        measured = float(num) / float(den or 1)
        assert abs(measured - fps) < 0.5, f"frame rate {measured}, spec {fps}"
    audio = [s for s in streams if s["codec_type"] == "audio"]
    audio_spec = out.get("audio") or {}
    acodec = audio_spec.get("codec", "aac")
    if audio and acodec != "copy":
        assert audio[0]["codec_name"] == CODEC_NAMES[acodec], f"audio codec {audio[0]['codec_name']}, spec {acodec}"
        if audio_spec.get("channels"):
            assert audio[0]["channels"] == audio_spec["channels"], f"{audio[0]['channels']} audio channels"
        if audio_spec.get("sampleRate"):
            assert int(audio[0]["sample_rate"]) == audio_spec["sampleRate"], f"sample rate {audio[0]['sample_rate']}"
    container = out.get("container", "mp4")
    assert key.endswith(f".{container}"), f"{artifact['uri']} does not end with .{container}"
    format_names = facts["format"]["format_name"]
    expected_format = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}[container]
    assert expected_format in format_names, f"container {format_names}, spec {container}"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("sample", [doc for _, doc in SAMPLES], ids=[name for name, _ in SAMPLES])
def test_sample_videojob_succeeds_with_checked_artifacts(
    sample: dict[str, Any],
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    media: MediaFactory,
    s3: Any,
    tmp_path: Path,
) -> None:
    ensure_bucket(s3, SAMPLES_BUCKET)
    speech = needs_speech(sample)
    for key in sample_keys(sample):
        media.upload(make_input(media, key, speech), SAMPLES_BUCKET, key)
    nvidia = sample["spec"].get("hardware") == "nvidia"
    run_operator(max_running_gpu=1 if nvidia else 0)
    name = sample["metadata"]["name"]
    videojobs.create_object(sample)

    if nvidia:  # no NVENC on this machine: the expected outcome is a clear failure (see test_gpu.py)
        failed = diagnostics.wait_phase(name, "Failed", timeout=300)
        text = f"{failed['status'].get('reason')} {failed['status'].get('message')}"
        assert re.search(r"nvenc|gpu|cuda|nvidia", text, re.I), text
        return

    done = diagnostics.wait_phase(name, "Succeeded", timeout=600)
    status = done["status"]
    context = diagnostics.report([name])
    assert status.get("progress") == 100, f"progress {status.get('progress')}\n{context}"
    artifacts = status.get("artifacts") or []
    assert any(a.get("kind", "video") == "video" for a in artifacts), f"no video artifact\n{context}"
    prefix = sample["spec"]["output"]["uri"].rstrip("/") + "/"
    for artifact in artifacts:
        assert artifact["uri"].startswith(prefix), f"{artifact['uri']} is not under {prefix}"
        check_artifact(artifact, sample["spec"], tmp_path, s3, context)
    emitted = {
        fmt for op in sample["spec"].get("operations", []) for fmt in (op.get("subtitles") or {}).get("emit", [])
    }
    got = {a["uri"].rsplit(".", 1)[-1] for a in artifacts if a.get("kind") == "subtitles"}
    assert emitted <= got, f"subtitles {sorted(emitted)} asked, {sorted(got)} stored\n{context}"
    if sample["spec"]["output"].get("thumbnail"):
        assert any(a.get("kind") == "thumbnail" for a in artifacts), f"no thumbnail\n{context}"
