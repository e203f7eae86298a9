"""Specs the API models accept with media that is awkward: `videojob-transcode --local` either succeeds with the
right ffprobe facts, or exits 65 (bad input) / 69 (unsupported) with exactly one stderr line naming the problem.
Never 70 (a crash), never a traceback, never a hang (every run has a timeout).

Media are tiny (mostly 320x240, 10 fps, 2 s, from devkit/mediagen.py); a few odd-sized clips are made here because
mediagen's lavfi sources round sizes to even numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devkit import mediagen as mg
from videojob.api.models import VideoJobSpec
from videojob.transcoder.probe import probe

pytestmark = pytest.mark.media

CLI = Path(sys.executable).with_name("videojob-transcode")
FAST = {"codec": "h264", "preset": "ultrafast"}
RUN_TIMEOUT = 60  # seconds: each run takes about half a second; a hang fails the test instead of the session


def odd_clip(width: int, height: int, audio: bool = True) -> Path:
    """An H.264 (4:4:4, which allows odd sizes) clip in Matroska, 1 s."""
    out = mg.media_dir() / f"odd-{width}x{height}-{int(audio)}.mkv"
    if not out.exists():
        sound = ["-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac"] if audio else []
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-threads",
                "1",
                "-f",
                "lavfi",
                "-i",
                "color=c=red:s=320x240:r=10:d=1",
                *sound,
                "-vf",
                f"scale={width}:{height}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv444p",
                "-t",
                "1",
                "-f",
                "matroska",
                str(out),
            ],
            check=True,
            timeout=60,
        )
    return out


def surround_clip() -> Path:
    """A 1 s clip with 5.1 sound (AAC in Matroska)."""
    out = mg.media_dir() / "surround-5.1.mkv"
    if not out.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-threads",
                "1",
                "-f",
                "lavfi",
                "-i",
                "color=c=red:s=320x240:r=10:d=1",
                "-f",
                "lavfi",
                "-i",
                "sine=d=1",
                "-af",
                "aformat=channel_layouts=5.1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-c:a",
                "aac",
                "-t",
                "1",
                "-f",
                "matroska",
                str(out),
            ],
            check=True,
            timeout=60,
        )
    return out


SUBTITLE_BYTES = {
    "empty.srt": b"",
    "bom.srt": b"\xef\xbb\xbf",
    "latin1.srt": "1\n00:00:00,100 --> 00:00:01,500\nCaf\xe9 cr\xe8me\n".encode("latin-1"),
    "crlf.srt": b"1\r\n00:00:00,100 --> 00:00:01,500\r\nHello\r\n\r\n2\r\n00:00:01,600 --> 00:00:01,900\r\nWorld\r\n",
}


def clip(**kw: Any) -> Callable[[Path], Path]:
    return lambda tmp: mg.video("mp4", **kw)


def media(container: str, **kw: Any) -> Callable[[Path], Path]:
    return lambda tmp: mg.video(container, **kw)


def sound(fmt: str = "mp3", **kw: Any) -> Callable[[Path], Path]:
    return lambda tmp: mg.audio(fmt, **kw)


def subs(name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(SUBTITLE_BYTES[name])
        return path

    return make


def odd(width: int, height: int) -> Callable[[Path], Path]:
    return lambda tmp: odd_clip(width, height)


@dataclass
class Case:
    inputs: dict[str, Callable[[Path], Path]]
    operations: list[dict[str, Any]] = field(default_factory=list)
    output: dict[str, Any] = field(default_factory=dict)
    trims: dict[str, dict[str, float]] = field(default_factory=dict)
    # success: ffprobe facts of the result (duration approximate); failure: exit code, reason, text in the line
    facts: dict[str, Any] | None = None
    code: int = 0
    reason: str = ""
    says: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)  # file name → text it must contain
    marks: tuple[Any, ...] = ()


H264_AAC = {"video_codec": "h264", "audio_codec": "aac"}
PLAIN = {**H264_AAC, "width": 320, "height": 240, "fps": 10.0, "sample_rate": 44100, "channels": 1, "duration": 2.0}
ALL_16 = [f"i{n}" for n in range(16)]

CASES: dict[str, Case] = {
    # inputs without the stream an operation needs
    "first input audio-only": Case({"a": sound()}, code=65, reason="NoVideo", says="input a"),
    "pip of an audio-only input": Case(
        {"v": clip(), "a": sound()},
        [{"pip": {"input": "a"}}],
        code=65,
        reason="NoVideo",
        says="input a: picture-in-picture needs video",
    ),
    "audio op on a video-only input": Case(
        {"v": clip(), "n": clip(audio=None)}, [{"audio": {"input": "n"}}], code=65, reason="NoAudio", says="input n"
    ),
    "concat with and without audio": Case(
        {"x": clip(), "y": clip(audio=None, color="red")},
        [{"concat": {"inputs": ["x", "y"]}}],
        facts={**PLAIN, "duration": 4.0},
    ),
    "concat without then with audio": Case(
        {"y": clip(audio=None, color="red"), "x": clip()},
        [{"concat": {"inputs": ["y", "x"]}}],
        facts={**PLAIN, "duration": 4.0},
    ),
    "concat mono 44.1k + stereo 22.05k": Case(
        {"x": clip(), "y": clip(channels=2, sample_rate=22050)},
        [{"concat": {"inputs": ["x", "y"]}}],
        facts={**PLAIN, "duration": 4.0},
    ),  # normalised to the first input's rate and layout
    "concat of 16 inputs": Case(
        {n: clip(duration=0.2, color=("red", "blue")[i % 2]) for i, n in enumerate(ALL_16)},
        [{"concat": {"inputs": ALL_16}}],
        facts={**PLAIN, "duration": 3.2},
    ),
    # trims and times
    "trim start beyond the end": Case(
        {"x": clip()},
        trims={"x": {"start": 5}},
        code=65,
        reason="BadTrim",
        says="input x: trim start 5 s is past its end",
    ),
    "trim start inside the last frame": Case(
        {"x": clip()},
        trims={"x": {"start": 1.99}},
        code=65,
        reason="BadTrim",
        says="input x: trim start 1.99 s leaves less than one frame",
    ),
    "trim duration 0.001": Case(
        {"x": clip()}, trims={"x": {"duration": 0.001}}, facts={**H264_AAC, "width": 320, "duration": 0.1}
    ),  # one frame
    "text start beyond the end": Case(
        {"x": clip()},
        [{"text": {"text": "late", "start": 10}}],
        code=65,
        reason="BadTiming",
        says="operations[0].text.start 10 s",
    ),
    "pip start beyond the end": Case(
        {"x": clip(), "p": clip(color="red")},
        [{"pip": {"input": "p", "start": 10}}],
        code=65,
        reason="BadTiming",
        says="operations[0].pip.start 10 s",
    ),
    "audio offset at the end": Case(
        {"x": clip(), "m": sound()},
        [{"audio": {"input": "m", "offset": 2}}],
        code=65,
        reason="BadOffset",
        says="audio offset 2 s",
    ),
    "thumbnail beyond the end": Case({"x": clip()}, output={"thumbnail": {"at": 100}}, facts=PLAIN),
    "thumbnail beyond the end at 0.5 fps": Case(
        {"x": clip()},
        output={"video": {**FAST, "fps": 0.5}, "thumbnail": {"at": 1.5}},
        facts={**H264_AAC, "fps": 0.5, "duration": 2.0},
    ),  # was exit 70: FFmpeg found no frame after 1.5 s
    # subtitle files
    "subtitles empty": Case(
        {"x": clip(), "s": subs("empty.srt")},
        [{"subtitles": {"input": "s"}}],
        code=65,
        reason="BadSubtitles",
        says="input s is not a subtitle file",
    ),
    "subtitles only a BOM": Case(
        {"x": clip(), "s": subs("bom.srt")},
        [{"subtitles": {"input": "s"}}],
        code=65,
        reason="BadSubtitles",
        says="input s is not a subtitle file",
    ),
    "subtitles latin-1": Case(
        {"x": clip(), "s": subs("latin1.srt")},
        [{"subtitles": {"input": "s", "emit": ["srt"]}}],
        facts=PLAIN,
        artifacts={"output.srt": "Caf\u00e9 cr\u00e8me"},
    ),
    "subtitles CRLF": Case(
        {"x": clip(), "s": subs("crlf.srt")},
        [{"subtitles": {"input": "s", "emit": ["vtt"]}}],
        facts=PLAIN,
        artifacts={"output.vtt": "00:00:01.600 --> 00:00:01.900\nWorld"},
    ),
    "subtitle input that is a video": Case(
        {"x": clip(), "s": clip()},
        [{"subtitles": {"input": "s"}}],
        code=65,
        reason="BadSubtitles",
        says="input s is not a text subtitle file",
    ),
    "generated subtitles without audio": Case(
        {"x": clip(audio=None)},
        [{"subtitles": {"generate": {"language": "en"}}}],
        code=65,
        reason="NoAudio",
        says="operations[0]",
    ),
    "generated subtitles from silence": Case(
        {"x": clip(audio="silence")},
        [{"subtitles": {"generate": {"language": "en"}, "emit": ["srt"]}}],
        facts=PLAIN,
        artifacts={"output.srt": ""},
        marks=(pytest.mark.stt,),
    ),
    # sizes and rates
    "upscale to 1920x1080": Case(
        {"x": clip()},
        output={"video": {**FAST, "resolution": "1920x1080"}},
        facts={**PLAIN, "width": 1920, "height": 1080},
    ),
    "odd size 321x241 h264": Case(
        {"x": odd(321, 241)}, facts={**H264_AAC, "width": 320, "height": 240, "duration": 1.0}
    ),
    "odd size 321x241 h265": Case(
        {"x": odd(321, 241)},
        output={"video": {"codec": "h265", "preset": "ultrafast"}},
        facts={"video_codec": "hevc", "width": 320, "height": 240},
    ),
    "odd size with text": Case({"x": odd(321, 241)}, [{"text": {"text": "odd"}}], facts={"width": 320, "height": 240}),
    "odd size main and pip": Case(
        {"x": odd(321, 241), "p": odd(33, 17)},
        [{"pip": {"input": "p", "scale": 0.33}}],
        facts={"width": 320, "height": 240},
    ),
    "odd size pip on even main": Case(
        {"x": clip(), "p": odd(321, 241)},
        [{"pip": {"input": "p", "scale": 0.33}}],
        facts={"width": 320, "height": 240, "duration": 2.0},
    ),
    "odd size first in concat": Case(
        {"x": odd(321, 241), "y": clip()},
        [{"concat": {"inputs": ["x", "y"]}}],
        facts={"width": 320, "height": 240, "duration": 3.0},
    ),
    "odd size copied as it is": Case(
        {"x": odd(321, 241)},
        output={"video": {"codec": "copy"}},
        facts={"video_codec": "h264", "width": 321, "height": 241},
    ),
    "fps 0.5": Case({"x": clip()}, output={"video": {**FAST, "fps": 0.5}}, facts={**PLAIN, "fps": 0.5}),
    "fps 240": Case({"x": clip()}, output={"video": {**FAST, "fps": 240}}, facts={**PLAIN, "fps": 240.0}),
    "a one-frame input": Case(
        {"x": clip(duration=0.1)}, output={"thumbnail": {"at": 5}}, facts={**PLAIN, "duration": 0.1}
    ),
    "a one-frame pip": Case({"x": clip(), "p": clip(duration=0.1)}, [{"pip": {"input": "p"}}], facts=PLAIN),
    # containers and codecs without operations
    "webm vp9 opus": Case(
        {"x": clip()},
        output={"container": "webm", "video": {"codec": "vp9", "preset": "ultrafast"}, "audio": {"codec": "opus"}},
        facts={"video_codec": "vp9", "audio_codec": "opus", "sample_rate": 48000, "duration": 2.0},
    ),
    "mov h264 aac": Case({"x": clip()}, output={"container": "mov"}, facts=PLAIN),
    "mkv av1": Case(
        {"x": clip()},
        output={"container": "mkv", "video": {"codec": "av1", "preset": "ultrafast"}},
        facts={"video_codec": "av1", "audio_codec": "aac", "width": 320, "duration": 2.0},
    ),
    "copy h264 into webm": Case(
        {"x": clip()},
        output={"container": "webm", "video": {"codec": "copy"}, "audio": {"codec": "opus"}},
        code=65,
        reason="CodecNotSupportedByContainer",
        says="output.video.codec copy",
    ),
    "copy aac into webm": Case(
        {"x": clip()},
        output={"container": "webm", "video": {"codec": "vp9", "preset": "ultrafast"}, "audio": {"codec": "copy"}},
        code=65,
        reason="CodecNotSupportedByContainer",
        says="output.audio.codec copy",
    ),
    "copy mpeg4 from avi into webm": Case(
        {"x": media("avi")},
        output={"container": "webm", "video": {"codec": "copy"}, "audio": {"codec": "copy"}},
        code=65,
        reason="CodecNotSupportedByContainer",
        says="video is mpeg4",
    ),
    "copy vp9 from webm into mov": Case(
        {"x": media("webm")},
        output={"container": "mov", "video": {"codec": "copy"}, "audio": {"codec": "copy"}},
        code=65,
        reason="CodecNotSupportedByContainer",
        says="video is vp9",
    ),
    "copy vp9 opus from webm into mp4": Case(
        {"x": media("webm")},
        output={"video": {"codec": "copy"}, "audio": {"codec": "copy"}},
        facts={"video_codec": "vp9", "audio_codec": "opus"},
    ),
    "copy webm into webm": Case(
        {"x": media("webm")},
        output={"container": "webm", "video": {"codec": "copy"}, "audio": {"codec": "copy"}, "thumbnail": {"at": 1}},
        facts={"video_codec": "vp9", "audio_codec": "opus"},
    ),
    "audio copy of mp3 into mp4": Case(
        {"x": media("mkv")},
        output={"audio": {"codec": "copy"}},
        facts={"video_codec": "h264", "audio_codec": "mp3", "sample_rate": 44100},
    ),
    "audio copy of a silent input": Case(
        {"x": clip(audio=None)}, output={"audio": {"codec": "copy"}}, facts={"video_codec": "h264", "audio_codec": None}
    ),
    # opus at 44.1 kHz and mp3 with more than 2 channels never get here: the models and the CRD refuse them
    # (tests/data/invalid_videojobs.py)
    "aac with 8 channels": Case(
        {"x": clip()}, output={"audio": {"codec": "aac", "channels": 8}}, facts={"audio_codec": "aac", "channels": 8}
    ),
    "opus with 8 channels": Case(
        {"x": clip()},
        output={"container": "mkv", "audio": {"codec": "opus", "channels": 8}},
        facts={"audio_codec": "opus", "channels": 8},
    ),
    "mp3 from a 5.1 source is downmixed": Case(
        {"x": lambda tmp: surround_clip()},
        output={"container": "mkv", "audio": {"codec": "mp3"}},
        facts={"audio_codec": "mp3", "channels": 2},
    ),
    "aac keeps 5.1": Case({"x": lambda tmp: surround_clip()}, facts={"audio_codec": "aac", "channels": 6}),
}


def _params() -> list[Any]:
    return [pytest.param(case, id=name, marks=case.marks) for name, case in CASES.items()]


@pytest.mark.parametrize("case", _params())
def test_edge_case(tmp_path: Path, case: Case) -> None:
    spec = {
        "inputs": [
            {"name": n, "uri": f"s3://bucket/in/{n}", **({"trim": case.trims[n]} if n in case.trims else {})}
            for n in case.inputs
        ],
        "operations": case.operations,
        "output": {"uri": "s3://bucket/out/", "video": FAST, **case.output},
    }
    VideoJobSpec.model_validate(spec)  # the CRD's models accept it: only the transcoder can say no
    spec_path = tmp_path / "job.json"
    spec_path.write_text(json.dumps(spec))
    out_dir = tmp_path / "o"
    argv = [
        str(CLI),
        "--local",
        "--spec",
        str(spec_path),
        "--output-dir",
        str(out_dir),
        "--workdir",
        str(tmp_path / "w"),
        "--result",
        str(tmp_path / "result.json"),
    ]
    for name, make in case.inputs.items():
        argv += ["--input", f"{name}={make(tmp_path)}"]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        env={**os.environ, "VIDEOJOB_PROGRESS": "none"},
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == case.code, done.stderr
    if case.code:
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"videojob-transcode: {case.reason}: ") and case.says in lines[0], lines[0]
        result = json.loads((tmp_path / "result.json").read_text())
        assert result["ok"] is False and result["reason"] == case.reason
        return
    assert case.facts is not None
    container = case.output.get("container", "mp4")
    facts = probe(out_dir / f"output.{'mkv' if container == 'mkv' else container}", formats=None)
    for key, expected in case.facts.items():
        actual = getattr(facts, key)
        if key == "duration":
            assert actual == pytest.approx(expected, abs=0.1), (key, actual)
        else:
            assert actual == expected, (key, actual, facts)
    if "thumbnail" in case.output:
        thumb = probe(out_dir / "output.jpg", formats=None)
        assert thumb.video_codec == "mjpeg" and thumb.width
    for filename, text in case.artifacts.items():
        assert text in (out_dir / filename).read_text(encoding="utf-8")
