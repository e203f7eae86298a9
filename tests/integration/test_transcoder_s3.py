"""The transcoder as the pod runs it: spec from the environment, inputs from MinIO, outputs back to MinIO."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devkit import mediagen as mg
from videojob.api.runtime import TranscodeResult

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("videojob-transcode")


def run_transcoder(
    testenv: Any, tmp_path: Path, spec: dict[str, Any]
) -> tuple[subprocess.CompletedProcess[str], TranscodeResult]:
    result_path = tmp_path / "termination-log"
    env = {
        **testenv.subprocess_env(),
        "VIDEOJOB_SPEC": json.dumps(spec),
        "VIDEOJOB_HARDWARE": "cpu",
        "VIDEOJOB_WORKDIR": str(tmp_path / "work"),
        "VIDEOJOB_RESULT_PATH": str(result_path),
        "VIDEOJOB_PROGRESS": "none",
    }
    done = subprocess.run([str(CLI)], env=env, capture_output=True, text=True, timeout=120, check=False)
    return done, TranscodeResult.model_validate_json(result_path.read_text())


def test_inputs_from_s3_outputs_to_s3_with_matching_checksums(
    testenv: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    s3.upload_file(str(mg.video("mp4", color="red")), bucket, "in/intro.mp4")
    s3.upload_file(str(mg.audio("mp3")), bucket, "in/music.mp3")
    s3.upload_file(str(mg.subtitles("srt", [(0.2, 1.0, "Hi")])), bucket, "in/talk.srt")
    spec = {
        "inputs": [
            {"name": "intro", "uri": f"s3://{bucket}/in/intro.mp4"},
            {"name": "music", "uri": f"s3://{bucket}/in/music.mp3"},
            {"name": "talk", "uri": f"s3://{bucket}/in/talk.srt"},
        ],
        "operations": [
            {"audio": {"input": "music", "mode": "mix", "offset": 0.5}},
            {"subtitles": {"input": "talk", "emit": ["vtt"]}},
        ],
        "output": {
            "uri": f"s3://{bucket}/out/job1/",
            "name": "promo",
            "video": {"codec": "h264", "preset": "ultrafast"},
            "thumbnail": {"at": 1},
        },
    }
    done, result = run_transcoder(testenv, tmp_path, spec)
    assert done.returncode == 0, done.stderr
    assert result.ok and result.bytes_in > 0 and result.bytes_out > 0
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/job1/")["Contents"])
    assert keys == ["out/job1/promo.jpg", "out/job1/promo.mp4", "out/job1/promo.vtt"]
    for artifact in result.artifacts:
        key = artifact.uri.removeprefix(f"s3://{bucket}/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == artifact.sha256 and len(body) == artifact.size
    video = result.artifacts[0]
    assert video.content_type == "video/mp4" and video.duration == pytest.approx(2.0, abs=0.1)
    assert s3.head_object(Bucket=bucket, Key="out/job1/promo.mp4")["ContentType"] == "video/mp4"
    assert len((tmp_path / "termination-log").read_bytes()) < 4096


def test_a_missing_input_object_is_bad_input_naming_the_uri(testenv: Any, bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{bucket}/in/nowhere.mp4"
    spec = {"inputs": [{"name": "a", "uri": uri}], "output": {"uri": f"s3://{bucket}/out/"}}
    done, result = run_transcoder(testenv, tmp_path, spec)
    assert done.returncode == 65
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0], done.stderr
    assert not result.ok and uri in result.message
