"""Every operation on real media, in the runner's local mode (no S3, no cluster): ffprobe facts of the result and
a measurement that proves the effect (pixels at seams and in overlay regions, audio levels in time windows).

Media come from devkit/mediagen.py (320x240, 10 fps, 2 s, lavfi sources). Encoders run at ultrafast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devkit import mediagen as mg
from videojob.api.models import VideoJobSpec
from videojob.api.runtime import TranscodeResult
from videojob.errors import BadInput
from videojob.transcoder import runner
from videojob.transcoder.probe import MediaFacts, probe

pytestmark = pytest.mark.media

FRAME = 0.1  # seconds: one frame at the test media's 10 fps
FAST = {"codec": "h264", "preset": "ultrafast"}
RED, BLUE, LIME, NAVY = (255, 0, 0), (0, 0, 255), (0, 255, 0), (0, 0, 128)
CLI = Path(sys.executable).with_name("videojob-transcode")


class RecordingReporter:
    """A real reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def report(self, percent: float) -> None:
        self.values.append(percent)


def transcode(
    tmp_path: Path,
    inputs: dict[str, Path],
    operations: list[dict[str, Any]] | None = None,
    output: dict[str, Any] | None = None,
    reporter: Any = None,
) -> tuple[TranscodeResult, Path]:
    spec = VideoJobSpec.model_validate(
        {
            "inputs": [{"name": name, "uri": f"s3://bucket/in/{name}"} for name in inputs],
            "operations": operations or [],
            "output": {"uri": "s3://bucket/out/", "video": FAST, **(output or {})},
        }
    )
    out_dir = tmp_path / "out"
    job = runner.Job(
        spec=spec,
        workdir=tmp_path / "work",
        local_inputs=inputs,
        output_dir=out_dir,
        **({"reporter": reporter} if reporter else {}),
    )
    result = runner.run(job)
    assert result.ok
    return result, Path(result.artifacts[0].uri.removeprefix("file://"))


def close(color: tuple[float, float, float], expected: tuple[int, int, int], tolerance: float = 40) -> bool:
    return all(abs(c - e) <= tolerance for c, e in zip(color, expected, strict=True))


def mean_at(path: Path, at: float, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    return mg.region_mean(mg.frame_rgb(path, at), box)


def assert_duration(facts: MediaFacts, expected: float) -> None:
    assert facts.duration is not None
    assert abs(facts.duration - expected) <= max(FRAME, 0.05) + 1e-6, (facts.duration, expected)


# ---------------------------------------------------------------------------------------------------------------
# Formats in and out


@pytest.mark.parametrize("container", ["mp4", "avi", "mov", "mkv", "webm"])
def test_each_input_container_transcodes_with_its_facts(tmp_path: Path, container: str) -> None:
    source = mg.video(container, color="red", sample_rate=22050)
    result, out = transcode(
        tmp_path,
        {"clip": source},
        output={"video": {**FAST, "resolution": "160x120", "fps": 5}, "audio": {"codec": "aac", "sampleRate": 48000}},
    )
    facts = probe(out)
    assert (facts.width, facts.height, facts.fps) == (160, 120, 5.0)
    assert (facts.video_codec, facts.audio_codec, facts.sample_rate) == ("h264", "aac", 48000)
    assert_duration(facts, probe(source).duration or 0)
    assert close(mean_at(out, 1.0, (10, 10, 150, 110)), RED)
    artifact = result.artifacts[0]
    assert artifact.width == 160 and artifact.video_codec == "h264" and len(artifact.sha256) == 64
    assert artifact.size == out.stat().st_size


@pytest.mark.parametrize(
    ("output", "video_codec", "audio_codec", "format_name"),
    [
        (
            {
                "container": "webm",
                "video": {"codec": "vp9", "preset": "ultrafast", "crf": 40},
                "audio": {"codec": "opus"},
            },
            "vp9",
            "opus",
            "matroska,webm",
        ),
        (
            {"container": "mkv", "video": {"codec": "h265", "preset": "ultrafast"}, "audio": {"codec": "mp3"}},
            "hevc",
            "mp3",
            "matroska,webm",
        ),
        (
            {"container": "mov", "video": {"codec": "h264", "preset": "ultrafast", "bitrate": "300k"}},
            "h264",
            "aac",
            "mov,mp4,m4a,3gp,3g2,mj2",
        ),
        (
            {
                "container": "mkv",
                "video": {"codec": "av1", "preset": "ultrafast", "crf": 50},
                "audio": {"codec": "opus"},
            },
            "av1",
            "opus",
            "matroska,webm",
        ),
        (
            {"container": "mkv", "video": {"codec": "h264", "preset": "ultrafast"}, "audio": {"codec": "copy"}},
            "h264",
            "aac",
            "matroska,webm",
        ),
        ({"container": "mkv", "video": {"codec": "copy"}, "audio": {"codec": "copy"}}, "h264", "aac", "matroska,webm"),
    ],
    ids=["webm vp9 opus", "mkv h265 mp3", "mov h264 bitrate", "mkv av1 opus", "audio copy", "remux (both copy)"],
)
def test_output_codecs_and_containers(
    tmp_path: Path, output: dict[str, Any], video_codec: str, audio_codec: str, format_name: str
) -> None:
    _, out = transcode(tmp_path, {"clip": mg.video("mp4", color="blue", duration=1.0)}, output=output)
    facts = probe(out)
    assert (facts.video_codec, facts.audio_codec, facts.format_name) == (video_codec, audio_codec, format_name)
    assert_duration(facts, 1.0)
    assert close(mean_at(out, 0.5, (20, 20, 300, 220)), BLUE)


def test_thumbnail_is_a_scaled_jpeg_of_the_result(tmp_path: Path) -> None:
    result, _ = transcode(
        tmp_path, {"clip": mg.video("mp4", color="lime")}, output={"thumbnail": {"at": 1, "width": 64}}
    )
    thumb = result.artifacts[1]
    assert thumb.kind == "thumbnail" and thumb.uri.endswith("/output.jpg") and thumb.content_type == "image/jpeg"
    path = Path(thumb.uri.removeprefix("file://"))
    facts = probe(path, formats=None)
    assert (facts.width, facts.height, facts.video_codec) == (64, 48, "mjpeg")
    assert close(mean_at(path, 0, (8, 8, 56, 40)), LIME)


# ---------------------------------------------------------------------------------------------------------------
# Operations


def test_concat_normalises_and_shows_each_source_at_its_seam(tmp_path: Path) -> None:
    red = mg.video("mp4", color="red", sample_rate=44100)
    blue = mg.video("avi", color="blue", size=(160, 120), fps=15, sample_rate=22050, channels=2)
    green = mg.video("mkv", color="lime", size=(640, 360), audio=None)
    inputs = {"red": red, "blue": blue, "green": green}
    _, out = transcode(tmp_path, inputs, [{"concat": {"inputs": ["red", "blue", "green"]}}])
    facts = probe(out)
    durations = [probe(p).duration or 0 for p in inputs.values()]
    assert_duration(facts, sum(durations))
    assert (facts.width, facts.height, facts.fps, facts.sample_rate, facts.channels) == (320, 240, 10.0, 44100, 1)
    seam1, seam2 = durations[0], durations[0] + durations[1]
    center = (100, 80, 220, 160)
    assert close(mean_at(out, seam1 - 0.15, center), RED)
    assert close(mean_at(out, seam1 + 0.15, center), BLUE)
    assert close(mean_at(out, seam2 - 0.15, center), BLUE)
    assert close(mean_at(out, seam2 + 0.15, center), LIME)
    # the 16:9 part is letterboxed into 4:3, not stretched
    assert close(mean_at(out, seam2 + 0.5, (0, 0, 320, 20)), (0, 0, 0), tolerance=20)
    # the sound follows its picture: the silent part is silent
    assert mg.audio_rms_db(out, 0.2, seam1 - 0.2) > -40
    assert mg.audio_rms_db(out, seam2 + 0.2, seam2 + durations[2] - 0.2) < -60


@pytest.mark.parametrize("fmt", ["m4a", "aac", "wav"])
def test_audio_replace_has_the_new_audios_level(tmp_path: Path, fmt: str) -> None:
    base = mg.video("mp4", color="navy", volume=0.5)
    quiet = mg.audio(fmt, volume=0.05, duration=3.0)
    _, out = transcode(tmp_path, {"base": base, "music": quiet}, [{"audio": {"input": "music", "mode": "replace"}}])
    facts = probe(out)
    assert_duration(facts, 2.0)
    assert facts.has_audio and facts.sample_rate == 44100
    new_level, old_level = mg.audio_rms_db(quiet, 0.2, 1.8), mg.audio_rms_db(base, 0.2, 1.8)
    level = mg.audio_rms_db(out, 0.2, 1.8)
    assert abs(level - new_level) < 1.5, (level, new_level)
    assert old_level - level > 15


def test_audio_mix_raises_the_level_after_the_offset_only(tmp_path: Path) -> None:
    base = mg.video("mp4", color="navy", volume=0.1)
    music = mg.audio("mp3", volume=0.5, frequency=880)
    _, out = transcode(
        tmp_path,
        {"base": base, "music": music},
        [{"audio": {"input": "music", "mode": "mix", "offset": 1.0, "volume": 1.0}}],
    )
    assert_duration(probe(out), 2.0)
    original = mg.audio_rms_db(base, 0.1, 0.9)
    before, after = mg.audio_rms_db(out, 0.1, 0.9), mg.audio_rms_db(out, 1.15, 1.9)
    assert abs(before - original) < 1.0, (before, original)
    assert after - before > 6, (before, after)


def _noop_and(tmp_path: Path, inputs: dict[str, Path], operations: list[dict[str, Any]]) -> tuple[Path, Path]:
    _, plain = transcode(tmp_path / "plain", inputs)
    _, done = transcode(tmp_path / "done", inputs, operations)
    return plain, done


def test_text_changes_pixels_only_in_its_region_and_window(tmp_path: Path) -> None:
    inputs = {"base": mg.video("mp4", color="navy")}
    plain, done = _noop_and(
        tmp_path,
        inputs,
        [
            {
                "text": {
                    "text": "Launch",
                    "size": 40,
                    "position": "top-left",
                    "color": "yellow",
                    "box": True,
                    "start": 0.5,
                    "end": 1.5,
                }
            }
        ],
    )
    region, elsewhere = (0, 0, 200, 80), (0, 120, 320, 240)
    during = mg.frame_rgb(plain, 1.0), mg.frame_rgb(done, 1.0)
    assert mg.changed_fraction(*during, region) > 0.3
    assert mg.changed_fraction(*during, elsewhere) < 0.01
    for t in (0.2, 1.8):
        assert mg.changed_fraction(mg.frame_rgb(plain, t), mg.frame_rgb(done, t), (0, 0, 320, 240)) < 0.01
    assert_duration(probe(done), 2.0)


@pytest.mark.parametrize("fmt", ["srt", "vtt", "ass"])
def test_subtitles_change_pixels_only_while_a_cue_is_on(tmp_path: Path, fmt: str) -> None:
    subs = mg.subtitles(fmt, [(0.5, 1.3, "Hello subtitles")])
    base = mg.video("mp4", color="navy")
    plain, done = _noop_and(tmp_path, {"base": base, "subs": subs}, [{"subtitles": {"input": "subs"}}])
    bottom, top = (0, 150, 320, 240), (0, 0, 320, 100)
    during = mg.frame_rgb(plain, 0.9), mg.frame_rgb(done, 0.9)
    assert mg.changed_fraction(*during, bottom) > 0.02
    assert mg.changed_fraction(*during, top) < 0.01
    for t in (0.2, 1.7):
        assert mg.changed_fraction(mg.frame_rgb(plain, t), mg.frame_rgb(done, t), (0, 0, 320, 240)) < 0.01


def test_subtitles_are_emitted_as_srt_and_vtt(tmp_path: Path) -> None:
    subs = mg.subtitles("ass", [(0.5, 1.3, "Hello {\\i1}there{\\i0}")])
    result, _ = transcode(
        tmp_path,
        {"base": mg.video("mp4", color="navy"), "subs": subs},
        [{"subtitles": {"input": "subs", "burn": False, "emit": ["srt", "vtt"]}}],
    )
    srt, vtt = (Path(a.uri.removeprefix("file://")) for a in result.artifacts[1:])
    assert srt.read_text() == "1\n00:00:00,500 --> 00:00:01,300\nHello there\n"
    assert vtt.read_text().startswith("WEBVTT") and "00:00:00.500 --> 00:00:01.300\nHello there" in vtt.read_text()


def test_pip_region_shows_the_overlaid_source(tmp_path: Path) -> None:
    base = mg.video("mp4", color="red")
    cam = mg.video("webm", color="lime", audio=None)
    _, out = transcode(
        tmp_path,
        {"base": base, "cam": cam},
        [{"pip": {"input": "cam", "position": "top-right", "scale": 0.25, "margin": 16, "start": 0.5}}],
    )
    inside = (320 - 16 - 80 + 8, 16 + 8, 320 - 16 - 8, 16 + 60 - 8)  # an 80x60 overlay, 8 px in from its edges
    assert close(mean_at(out, 1.2, inside), LIME)
    assert close(mean_at(out, 0.2, inside), RED)  # not yet on
    assert close(mean_at(out, 1.2, (20, 100, 200, 220)), RED)  # elsewhere untouched
    assert_duration(probe(out), 2.0)


def test_chain_of_every_operation(tmp_path: Path) -> None:
    inputs = {
        "intro": mg.video("mp4", color="red", duration=1.0),
        "main": mg.video("mov", color="blue", duration=2.0, sample_rate=48000),
        "music": mg.audio("wav", volume=0.5, frequency=660, duration=4.0),
        "subs": mg.subtitles("vtt", [(0.2, 0.8, "First"), (1.5, 2.5, "Second")]),
        "cam": mg.video("webm", color="lime", duration=3.0),
    }
    result, out = transcode(
        tmp_path,
        inputs,
        [
            {"concat": {"inputs": ["intro", "main"]}},
            {"audio": {"input": "music", "mode": "mix", "offset": 1.5, "volume": 1.0, "fadeIn": 0.1}},
            {"text": {"text": "Launch day", "position": "bottom-left", "size": 24, "box": True, "end": 2.0}},
            {"subtitles": {"input": "subs", "emit": ["vtt"]}},
            {"pip": {"input": "cam", "position": "top-right", "scale": 0.25, "start": 1.0}},
        ],
        output={"container": "mkv", "video": {**FAST, "resolution": "240x180"}, "thumbnail": {"at": 2.5}},
    )
    facts = probe(out)
    assert_duration(facts, 3.0)
    assert (facts.width, facts.height, facts.fps, facts.video_codec, facts.audio_codec) == (240, 180, 10, "h264", "aac")
    assert [a.kind for a in result.artifacts] == ["video", "thumbnail", "subtitles"]
    middle = (90, 70, 150, 110)
    assert close(mean_at(out, 0.5, middle), RED) and close(mean_at(out, 2.0, middle), BLUE)
    pip = (240 * 3 // 4 - 12 + 8, 12 + 8, 240 - 12 - 8, 12 + 45 - 6)  # 60x45 at 240x180, margin 16*0.75
    assert close(mean_at(out, 2.5, pip), LIME)
    assert mg.audio_rms_db(out, 1.7, 2.9) - mg.audio_rms_db(out, 0.2, 1.4) > 3


# ---------------------------------------------------------------------------------------------------------------
# Progress and the command line


def test_progress_is_monotonic_from_zero_to_a_hundred(tmp_path: Path) -> None:
    long_clip = mg.video("mp4", duration=12.0, fps=25, size=(320, 240))
    reporter = RecordingReporter()
    transcode(tmp_path, {"clip": long_clip}, output={"video": {"codec": "h264", "preset": "medium"}}, reporter=reporter)
    values = reporter.values
    assert values[0] == 0.0 and values[-1] == 100.0
    assert values == sorted(values)
    assert any(0 < v < 100 for v in values), values


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VIDEOJOB_PROGRESS": "none", **(env or {})}
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )


def _spec_file(tmp_path: Path, spec: dict[str, Any]) -> Path:
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


SIMPLE: dict[str, Any] = {
    "inputs": [{"name": "clip", "uri": "s3://bucket/in/clip.mp4"}],
    "output": {"uri": "s3://bucket/out/", "name": "result", "video": FAST},
}


def test_cli_local_mode_writes_the_output_and_the_result(tmp_path: Path) -> None:
    spec = _spec_file(tmp_path, {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob", "spec": SIMPLE})
    done = _cli(
        "--local",
        "--spec",
        str(spec),
        "--input",
        f"clip={mg.video('mp4')}",
        "--output-dir",
        str(tmp_path / "o"),
        "--result",
        str(tmp_path / "result.json"),
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "result.mp4").is_file()
    result = TranscodeResult.model_validate_json((tmp_path / "result.json").read_text())
    assert result.ok and result.artifacts[0].duration == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    ("make_input", "hardware", "code", "reason"),
    [
        (lambda d: d / "notes.txt", "cpu", 65, "UnreadableMedia"),
        (lambda d: mg.video("mp4"), "nvidia", 69, "NvencUnavailable"),
    ],
    ids=["not media is bad input", "nvenc without a gpu is unsupported"],
)
def test_cli_failures_exit_with_the_contract_code_and_one_line(
    tmp_path: Path, make_input: Any, hardware: str, code: int, reason: str
) -> None:
    (tmp_path / "notes.txt").write_text("just some notes\n")
    spec = _spec_file(tmp_path, SIMPLE)
    started = time.monotonic()
    done = _cli(
        "--local",
        "--spec",
        str(spec),
        "--input",
        f"clip={make_input(tmp_path)}",
        "--hardware",
        hardware,
        "--output-dir",
        str(tmp_path / "o"),
        env={"VIDEOJOB_RESULT_PATH": str(tmp_path / "r.json")},
    )
    assert done.returncode == code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"videojob-transcode: {reason}: "), done.stderr
    assert time.monotonic() - started < 30
    result = TranscodeResult.model_validate_json((tmp_path / "r.json").read_text())
    assert not result.ok and result.reason == reason


@pytest.mark.parametrize(
    ("requested", "code"),
    [("auto", 0), ("nvidia", 69)],
    ids=["auto falls back to cpu", "explicit nvidia still fails"],
)
def test_nvenc_unavailable_on_the_node_the_operator_chose(tmp_path: Path, requested: str, code: int) -> None:
    """As in a pod the operator put on a GPU node (VIDEOJOB_HARDWARE=nvidia) where NVENC cannot start. This machine
    has no GPU, so h264_nvenc fails for real, as it does on nodes without an encoder engine (H100) or driver."""
    spec = _spec_file(tmp_path, SIMPLE)
    started = time.monotonic()
    done = _cli(
        "--local",
        "--spec",
        str(spec),
        "--input",
        f"clip={mg.video('mp4')}",
        "--output-dir",
        str(tmp_path / "o"),
        env={
            "VIDEOJOB_HARDWARE": "nvidia",
            "VIDEOJOB_HARDWARE_REQUESTED": requested,
            "VIDEOJOB_RESULT_PATH": str(tmp_path / "r.json"),
        },
    )
    assert done.returncode == code, done.stderr
    assert time.monotonic() - started < 30
    result = TranscodeResult.model_validate_json((tmp_path / "r.json").read_text())
    lines = done.stderr.strip().splitlines()
    if requested == "nvidia":
        assert len(lines) == 1 and lines[0].startswith("videojob-transcode: NvencUnavailable: "), done.stderr
        assert not result.ok and result.reason == "NvencUnavailable" and result.hardware is None
        assert not (tmp_path / "o" / "result.mp4").exists()
        return
    fallback = [line for line in lines if "auto falls back to CPU encoding" in line]
    assert len(fallback) == 1 and "NVENC unavailable on this node (" in fallback[0], done.stderr
    assert result.ok and result.hardware == "cpu" and "NVENC unavailable" in result.message  # the status says why
    out = tmp_path / "o" / "result.mp4"
    assert result.artifacts[0].video_codec == "h264" and result.artifacts[0].duration == pytest.approx(2.0, abs=0.05)
    assert probe(out).video_codec == "h264"
    assert b"x264 - core" in out.read_bytes()  # libx264 signs its stream; h264_nvenc would not


def test_cli_stops_ffmpeg_at_the_deadline(tmp_path: Path) -> None:
    slow = {**SIMPLE, "output": {**SIMPLE["output"], "video": {"codec": "h265", "preset": "veryslow"}}}
    spec = _spec_file(tmp_path, slow)
    started = time.monotonic()
    done = _cli(
        "--local",
        "--spec",
        str(spec),
        "--input",
        f"clip={mg.video('mp4', duration=12.0, fps=25)}",
        "--output-dir",
        str(tmp_path / "o"),
        "--timeout",
        "1",
    )
    assert done.returncode == 75
    assert "DeadlineExceeded" in done.stderr
    assert time.monotonic() - started < 20


def test_a_subtitle_input_that_is_a_playlist_is_refused(tmp_path: Path) -> None:
    playlist = tmp_path / "subs.srt"
    playlist.write_text("#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n")
    with pytest.raises(BadInput, match="input subs is not a subtitle file"):
        transcode(tmp_path, {"base": mg.video("mp4"), "subs": playlist}, [{"subtitles": {"input": "subs"}}])


SENTENCE = "hello world this is a test of subtitles"


@pytest.mark.stt
def test_generated_subtitles_from_speech_are_emitted_and_burned(tmp_path: Path) -> None:
    speech = mg.speech_wav(SENTENCE)
    speech_seconds = probe(speech).duration or 0
    base = mg.video("mp4", color="navy", duration=round(speech_seconds + 1.0, 1))
    operations: list[dict[str, Any]] = [
        {"audio": {"input": "speech", "mode": "replace", "offset": 0.5}},
        {"subtitles": {"generate": {"language": "en"}, "emit": ["srt", "vtt"], "style": {"size": 24}}},
    ]
    result, out = transcode(tmp_path, {"base": base, "speech": speech}, operations)
    assert [a.kind for a in result.artifacts] == ["video", "subtitles", "subtitles"]
    srt_path, vtt_path = (Path(a.uri.removeprefix("file://")) for a in result.artifacts[1:])
    from videojob.transcoder.stt import parse_srt, parse_vtt

    cues = parse_srt(srt_path.read_text())
    assert cues and parse_vtt(vtt_path.read_text()) == cues
    # within the speech (placed at 0.5 s), give or take Whisper's word timing (a few tenths of a second)
    assert all(c.start >= 0.5 - 0.4 and c.end <= 0.5 + speech_seconds + 0.4 for c in cues), cues
    heard = {w.strip(".,!?").lower() for c in cues for w in c.text.split()}
    spoken = set(SENTENCE.split())
    assert len(heard & spoken) >= len(spoken) / 2, heard
    _, plain = transcode(tmp_path / "plain", {"base": base})
    middle = (cues[0].start + cues[0].end) / 2
    assert mg.changed_fraction(mg.frame_rgb(plain, middle), mg.frame_rgb(out, middle), (0, 0, 320, 240)) > 0.004
