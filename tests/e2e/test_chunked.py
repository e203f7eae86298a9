"""Chunked encoding end to end: the chart's operator runs a VideoJob with spec.parallelism 2 as an Indexed Job of
two segment pods (real kubelets, our transcoder image, MinIO) and a join Job, and the result is one video whose
text overlay spans the join exactly as one pass draws it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devkit import mediagen as mg
from devkit.harness import Diagnostics, MediaFactory, VideoJobs, parse_s3_uri
from devkit.operator_release import OperatorRelease
from videojob.controller.jobs import join_job_name

pytestmark = pytest.mark.e2e

FPS = 25
SECONDS = 8.0  # two segments of 4 s: the join is at 4.0 s
BOX = (40, 20, 60, 30)  # inside the red box behind the text


def frame_count(path: Path) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(out.stdout.strip())


def red_box(frame: tuple[bytes, int, int]) -> bool:
    r, g, b = mg.region_mean(frame, BOX)
    return r > 150 and g < 100 and b < 100


def test_a_chunked_videojob_draws_its_text_across_the_join(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    media: MediaFactory,
    bucket: str,
    s3: Any,
    batch_v1: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    source = mg.video(size=(320, 240), fps=FPS, duration=SECONDS, channels=2)
    uri = media.upload(source, bucket, "in/chunked.mp4")
    run_operator(max_running=2)
    videojobs.create(
        "chunked",
        {
            "hardware": "cpu",
            "parallelism": 2,
            "inputs": [{"name": "main", "uri": uri}],
            "operations": [
                {
                    "text": {
                        "text": "ACROSS THE JOIN",
                        "size": 40,
                        "position": "top-left",
                        "box": True,
                        "boxColor": "red",
                        "start": 3,
                        "end": 5,
                    }
                }
            ],
            "output": {
                "uri": f"s3://{bucket}/out/chunked/",
                "video": {"codec": "h264", "crf": 23, "preset": "ultrafast"},
            },
        },
    )
    done = diagnostics.wait_phase("chunked", "Succeeded", timeout=300)
    status = done["status"]
    assert status["progress"] == 100 and "joined 2 segments" in status["message"]
    assert status["attempts"] == 1  # two segments once each, then the join: not three attempts

    jobs = {j.metadata.name: j for j in batch_v1.list_namespaced_job(namespace).items}
    segments = jobs[status["jobName"]]
    assert segments.spec.completion_mode == "Indexed" and segments.spec.completions == 2
    assert segments.spec.parallelism == 2 and segments.spec.backoff_limit_per_index == 2
    assert segments.status.succeeded == 2
    assert jobs[join_job_name(done)].status.succeeded == 1

    # the segments are gone from storage once joined
    left = s3.list_objects_v2(Bucket=bucket, Prefix="out/chunked/.videojob-segments/").get("KeyCount", 0)
    assert left == 0

    artifact = status["artifacts"][0]
    out_bucket, key = parse_s3_uri(artifact["uri"])
    result = tmp_path / "result.mp4"
    s3.download_file(out_bucket, key, str(result))
    probe = mg.probe_json(result)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    assert abs(float(video["duration"]) - SECONDS) <= 1 / FPS
    assert abs(float(audio["duration"]) - SECONDS) <= 0.05  # the sound encoded once, whole
    assert frame_count(result) == int(SECONDS * FPS)
    # the text (3 s to 5 s) on both sides of the join at 4 s, and not outside its window
    for at in (3.5, 4.0 - 1 / FPS, 4.0, 4.0 + 1 / FPS, 4.5):
        assert red_box(mg.frame_rgb(result, at)), f"no text box at {at} s"
    for at in (2.8, 5.2):
        assert not red_box(mg.frame_rgb(result, at)), f"a text box at {at} s"
