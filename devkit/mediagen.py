"""Tiny, deterministic test media made with FFmpeg's lavfi sources and espeak-ng, plus measurements on results.

Every generator returns the path of a file in one cache directory per test session (`VIDEOJOB_TEST_MEDIA` or a
temporary directory), named by its parameters, so asking twice costs nothing. Defaults are small on purpose:
320x240, 10 fps, 1-2 s; encoders at their fastest settings.

Measurements decode with FFmpeg too: `frame_rgb` (one frame as raw RGB24), `region_mean`, `audio_rms_db`
(RMS of a time window of decoded PCM), `probe_json`.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, FPS = 320, 240, 10

# container → (video encoder args, audio encoder args)
_CODECS: dict[str, tuple[list[str], list[str]]] = {
    "mp4": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac", "-b:a", "64k"]),
    "mov": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "aac", "-b:a", "64k"]),
    "mkv": (["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"], ["-c:a", "libmp3lame", "-b:a", "64k"]),
    "avi": (["-c:v", "mpeg4", "-q:v", "3"], ["-c:a", "libmp3lame", "-b:a", "64k"]),
    "webm": (
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"],
        ["-c:a", "libopus", "-b:a", "48k"],
    ),
}
_MUXERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "avi": "avi", "webm": "webm"}
_AUDIO = {
    "mp3": (["-c:a", "libmp3lame", "-b:a", "64k"], "mp3"),
    "m4a": (["-c:a", "aac", "-b:a", "64k"], "ipod"),
    "aac": (["-c:a", "aac", "-b:a", "64k"], "adts"),
    "wav": (["-c:a", "pcm_s16le"], "wav"),
}

_cache_dir: Path | None = None


def media_dir() -> Path:
    global _cache_dir
    if _cache_dir is None:
        configured = os.environ.get("VIDEOJOB_TEST_MEDIA")
        _cache_dir = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="videojob-media-"))
        _cache_dir.mkdir(parents=True, exist_ok=True)
    return _cache_dir


def _key(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _ffmpeg(args: Sequence[str], out: Path) -> Path:
    partial = out.with_name(out.name + ".part")
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-threads", "1", *args, str(partial)],
        check=True,
        timeout=120,
    )
    partial.replace(out)
    return out


def video(
    container: str = "mp4",
    *,
    color: str | None = None,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    fps: float = FPS,
    duration: float = 2.0,
    audio: str | None = "sine",
    frequency: int = 440,
    sample_rate: int = 44100,
    volume: float = 0.25,
    channels: int = 1,
) -> Path:
    """A clip: testsrc2 (or a solid `color`) with a sine tone (`audio="sine"`), silence ("silence") or no audio.

    `volume` scales lavfi's sine (itself 1/8 of full scale): 0.25 gives about -33 dBFS RMS.
    """
    key = _key(container, color, size, fps, duration, audio, frequency, sample_rate, volume, channels)
    out = media_dir() / f"video-{key}.{container}"
    if out.exists():
        return out
    w, h = size
    source = f"color=c={color}:s={w}x{h}:r={fps}:d={duration}" if color else f"testsrc2=s={w}x{h}:r={fps}:d={duration}"
    args = ["-f", "lavfi", "-i", source]
    video_codec, audio_codec = _CODECS[container]
    layout = "mono" if channels == 1 else "stereo"
    if audio == "sine":
        args += ["-f", "lavfi", "-i", f"sine=f={frequency}:sample_rate={sample_rate}:d={duration}"]
        filters = ["-filter:a", f"volume={volume},aformat=channel_layouts={layout}"]
    elif audio == "silence":
        args += ["-f", "lavfi", "-i", f"anullsrc=r={sample_rate}:cl={layout}:d={duration}"]
        filters = []
    else:
        filters, audio_codec = [], []
    args += [*video_codec, *filters, *(audio_codec if audio else ["-an"])]
    args += ["-t", str(duration), "-f", _MUXERS[container]]
    return _ffmpeg(args, out)


def audio(
    fmt: str = "mp3",
    *,
    frequency: int = 880,
    duration: float = 2.0,
    sample_rate: int = 44100,
    volume: float = 0.5,
    channels: int = 1,
) -> Path:
    """A sine tone as MP3, AAC (`m4a` in MP4, `aac` as ADTS) or WAV."""
    out = media_dir() / f"audio-{_key(fmt, frequency, duration, sample_rate, volume, channels)}.{fmt}"
    if out.exists():
        return out
    codec, muxer = _AUDIO[fmt]
    layout = "mono" if channels == 1 else "stereo"
    return _ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            f"sine=f={frequency}:sample_rate={sample_rate}:d={duration}",
            "-filter:a",
            f"volume={volume},aformat=channel_layouts={layout}",
            *codec,
            "-f",
            muxer,
        ],
        out,
    )


Cues = Sequence[tuple[float, float, str]]


def _ts(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def subtitles(fmt: str, cues: Cues) -> Path:
    """An SRT, VTT or ASS file with these (start, end, text) cues."""
    out = media_dir() / f"subs-{_key(fmt, tuple(cues))}.{fmt}"
    if out.exists():
        return out
    if fmt == "srt":
        text = "\n".join(f"{i}\n{_ts(s, ',')} --> {_ts(e, ',')}\n{t}\n" for i, (s, e, t) in enumerate(cues, 1))
    elif fmt == "vtt":
        text = "WEBVTT\n\n" + "\n".join(f"{_ts(s, '.')} --> {_ts(e, '.')}\n{t}\n" for s, e, t in cues)
    elif fmt == "ass":

        def ass_ts(x: float) -> str:
            cs = round(x * 100)
            return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"

        text = (
            "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 240\n\n"
            "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
            "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
            "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
            "Style: Default,DejaVu Sans,28,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,0,"
            "2,10,10,10,1\n\n"
            "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
            + "".join(f"Dialogue: 0,{ass_ts(s)},{ass_ts(e)},Default,,0,0,0,,{t}\n" for s, e, t in cues)
        )
    else:
        raise ValueError(f"unknown subtitle format {fmt}")
    out.write_text(text, encoding="utf-8")
    return out


def speech_wav(text: str, voice: str = "en", speed: int = 140) -> Path:
    """espeak-ng saying `text`, as a WAV file."""
    out = media_dir() / f"speech-{_key(text, voice, speed)}.wav"
    if not out.exists():
        partial = out.with_name(out.name + ".part.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(partial), text], check=True, timeout=60)
        partial.replace(out)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Measurements


def probe_json(path: Path) -> dict[str, Any]:
    completed = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return json.loads(completed.stdout)


def frame_rgb(path: Path, at: float) -> tuple[bytes, int, int]:
    """The frame shown at `at` seconds, as (RGB24 bytes, width, height)."""
    info = probe_json(path)
    stream = next(s for s in info["streams"] if s["codec_type"] == "video")
    w, h = int(stream["width"]), int(stream["height"])
    completed = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-ss",
            f"{at:.3f}",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = completed.stdout
    assert len(data) == w * h * 3, f"expected one {w}x{h} frame at {at} s of {path}, got {len(data)} bytes"
    return data, w, h


def region_mean(frame: tuple[bytes, int, int], box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    """Mean (r, g, b) over the pixels x0 <= x < x1, y0 <= y < y1."""
    data, w, _h = frame
    x0, y0, x1, y1 = box
    sums = [0, 0, 0]
    for y in range(y0, y1):
        row = data[(y * w + x0) * 3 : (y * w + x1) * 3]
        sums[0] += sum(row[0::3])
        sums[1] += sum(row[1::3])
        sums[2] += sum(row[2::3])
    n = max(1, (x1 - x0) * (y1 - y0))
    return sums[0] / n, sums[1] / n, sums[2] / n


def changed_fraction(
    a: tuple[bytes, int, int], b: tuple[bytes, int, int], box: tuple[int, int, int, int], threshold: int = 40
) -> float:
    """Share of pixels in `box` whose colour differs by more than `threshold` (sum over channels) between frames."""
    da, w, _ = a
    db = b[0]
    x0, y0, x1, y1 = box
    changed = 0
    for y in range(y0, y1):
        for x in range(x0, x1):
            i = (y * w + x) * 3
            if abs(da[i] - db[i]) + abs(da[i + 1] - db[i + 1]) + abs(da[i + 2] - db[i + 2]) > threshold:
                changed += 1
    return changed / max(1, (x1 - x0) * (y1 - y0))


def audio_rms_db(path: Path, start: float, end: float, sample_rate: int = 8000) -> float:
    """RMS level in dBFS of the (mono-mixed) audio between `start` and `end` seconds."""
    completed = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-vn",
            "-af",
            f"atrim=start={start}:end={end},aformat=channel_layouts=mono",
            "-ar",
            str(sample_rate),
            "-f",
            "s16le",
            "-c:a",
            "pcm_s16le",
            "-",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    samples = array.array("h")
    samples.frombytes(completed.stdout[: len(completed.stdout) // 2 * 2])
    if not samples:
        return -math.inf
    mean_square = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(mean_square / 32768**2) if mean_square > 0 else -math.inf
