"""Chunked encoding with the real FFmpeg, no cluster: the transcoder's segment and join parts (as the pods of a
chunked VideoJob run them, here with local files) against one pass of the same job. The result must be the same
video: frame count, duration within a frame, the sound's length, overlays drawn across the joins as in one pass,
and the same quality (PSNR against a lossless render within 0.1 dB)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devkit import mediagen as mg
from videojob.api.models import VideoJobSpec
from videojob.transcoder import runner

pytestmark = pytest.mark.media

FPS = 30
DURATION = 8.0
TEXT_BOX = (40, 20, 280, 80)  # where the text is drawn (top-left, size 40)
OPERATIONS: list[dict[str, Any]] = [
    {
        "text": {
            "text": "ACROSS THE JOIN",
            "size": 40,
            "position": "top-left",
            "box": True,
            "box_color": "red",
            "start": 3,
            "end": 5,
        }
    },
    {"pip": {"input": "cam", "position": "bottom-right", "scale": 0.3, "start": 2}},
    {"audio": {"input": "music", "mode": "mix", "offset": 1, "volume": 0.5}},
]


def job_spec(crf: int = 23, parallelism: int | None = None) -> VideoJobSpec:
    return VideoJobSpec.model_validate(
        {
            "inputs": [{"name": n, "uri": f"s3://bucket/in/{n}"} for n in ("main", "cam", "music")],
            "operations": OPERATIONS,
            "output": {"uri": "s3://bucket/out/", "video": {"codec": "h264", "crf": crf, "preset": "ultrafast"}},
            **({"parallelism": parallelism} if parallelism else {}),
        }
    )


@pytest.fixture(scope="module")
def inputs() -> dict[str, Path]:
    return {
        "main": mg.video(size=(320, 240), fps=FPS, duration=DURATION, channels=2),
        "cam": mg.video(size=(160, 120), fps=25, duration=10.0, audio=None),
        "music": mg.audio("mp3", duration=10.0),
    }


def run_whole(tmp: Path, inputs: dict[str, Path], crf: int = 23) -> Path:
    job = runner.Job(spec=job_spec(crf), workdir=tmp / "work", local_inputs=inputs, output_dir=tmp / "out")
    result = runner.run(job)
    assert result.ok
    return Path(result.artifacts[0].uri.removeprefix("file://"))


def run_chunked(tmp: Path, inputs: dict[str, Path], count: int) -> tuple[Path, list[str]]:
    spec = job_spec(parallelism=count)
    store = str(tmp / "out" / ".videojob-segments")
    messages = []
    for index in range(count):  # the Indexed Job's pods, each in its own scratch space
        part = runner.Job(
            spec=spec,
            workdir=tmp / f"work-{index}",
            local_inputs=inputs,
            output_dir=tmp / "out",
            chunking=runner.Chunking(count, index, store),
        )
        messages.append(runner.run(part).message)
    join = runner.Job(
        spec=spec,
        workdir=tmp / "work-join",
        local_inputs=inputs,
        output_dir=tmp / "out",
        chunking=runner.Chunking(count, None, store),
    )
    result = runner.run(join)
    assert result.ok and "joined" in result.message
    assert not Path(store).exists(), "the join removes the segments"
    return Path(result.artifacts[0].uri.removeprefix("file://")), messages


def streams(path: Path) -> dict[str, dict[str, str]]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,nb_read_frames,duration,start_time",
            "-of",
            "compact",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = {}
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split("|")[1:])
        found[fields["codec_type"]] = fields
    return found


def psnr(path: Path, reference: Path) -> float:
    err = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-i",
            str(reference),
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stderr
    match = re.search(r"PSNR .*average:([0-9.]+)", err)
    assert match, err[-500:]
    return float(match.group(1))


def test_two_segments_make_the_video_one_pass_makes(tmp_path: Path, inputs: dict[str, Path]) -> None:
    whole = run_whole(tmp_path / "whole", inputs)
    chunked, messages = run_chunked(tmp_path / "chunked", inputs, 2)
    assert messages == ["segment 1 of 2 (0.000 s to 4.000 s)", "segment 2 of 2 (4.000 s to 8.000 s)"]

    one, two = streams(whole), streams(chunked)
    assert two["video"]["nb_read_frames"] == one["video"]["nb_read_frames"] == str(int(DURATION * FPS))
    assert abs(float(two["video"]["duration"]) - float(one["video"]["duration"])) <= 1 / FPS
    assert float(two["video"]["start_time"]) == float(one["video"]["start_time"]) == 0
    # the sound encoded once: as long as one pass's, starting with the picture (A/V in sync)
    assert abs(float(two["audio"]["duration"]) - float(one["audio"]["duration"])) <= 0.03
    assert float(two["audio"]["start_time"]) == float(one["audio"]["start_time"])
    assert abs(mg.audio_rms_db(chunked, 3.5, 4.5) - mg.audio_rms_db(whole, 3.5, 4.5)) < 0.5  # across the join

    # the text (3 s to 5 s) and the picture-in-picture (from 2 s) span the join at 4 s: drawn as in one pass
    for at in (3.9, 4.0 - 1 / FPS, 4.0, 4.0 + 1 / FPS, 4.5):
        a, b = mg.frame_rgb(whole, at), mg.frame_rgb(chunked, at)
        assert mg.changed_fraction(a, b, TEXT_BOX) < 0.02, f"the text differs at {at} s"
        assert mg.changed_fraction(a, b, (200, 150, 320, 240)) < 0.05, f"the overlay differs at {at} s"
        red = mg.region_mean(b, (40, 20, 60, 30))
        assert red[0] > 150 and red[1] < 100, f"no text box at {at} s: {red}"
    for at in (2.9, 5.1):  # and only in its window
        red = mg.region_mean(mg.frame_rgb(chunked, at), (40, 20, 60, 30))
        assert not (red[0] > 150 and red[1] < 100 and red[2] < 100), f"text box at {at} s"

    # the same quality at the same CRF: against a lossless render of the same job
    reference = run_whole(tmp_path / "lossless", inputs, crf=0)
    assert abs(psnr(chunked, reference) - psnr(whole, reference)) < 0.1


def test_a_segment_the_video_is_too_short_for_has_nothing_to_do(tmp_path: Path, inputs: dict[str, Path]) -> None:
    chunked, messages = run_chunked(tmp_path, inputs, 5)  # 8 s make 4 segments of at least 2 s
    assert messages[4] == "no segment 4: the video makes 4"
    assert streams(chunked)["video"]["nb_read_frames"] == str(int(DURATION * FPS))
