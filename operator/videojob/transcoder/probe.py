"""What ffprobe says about a media file, as a small frozen record.

`parse_ffprobe` is pure (the JSON of `ffprobe -print_format json -show_format -show_streams` in, `MediaFacts`
out) and unit-tested; `probe` runs ffprobe on a local file, or on an input the runner streams (`Streamed`), with
an argument list and raises BadInput naming the file when ffprobe cannot read it as media. `source_args` is how
FFmpeg and ffprobe open either kind, with only the protocols it needs.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from videojob.api.conditions import Reason
from videojob.errors import BadInput
from videojob.transcoder.childenv import child_env

FFPROBE = "ffprobe"
PROBE_TIMEOUT = 60.0  # seconds: ffprobe reads headers (and a little data), never the whole file
# Formats ffprobe recognises for subtitle and image files: a file of these is "media" only for its own purpose.
SUBTITLE_FORMATS = frozenset({"srt", "webvtt", "ass", "subrip"})
# Demuxers an input may be opened with (FFmpeg's -format_whitelist): playlists (hls, dash), concat scripts,
# image sequences and the like, which make FFmpeg open further files, are refused before they are parsed.
INPUT_FORMATS = "mov,matroska,avi,mp3,aac,wav,ogg,flac"


@dataclass(frozen=True)
class MediaFacts:
    """The facts about one file that planning and checking need. Times in seconds, rates in Hz / frames per s."""

    duration: float | None
    format_name: str
    has_video: bool = False
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    pixel_format: str | None = None
    has_audio: bool = False
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    channel_layout: str | None = None
    bit_rate: int | None = None
    size: int | None = None
    nb_frames: int | None = None
    subtitle_codec: str | None = None

    @property
    def formats(self) -> tuple[str, ...]:
        """ffprobe's format names: "mov,mp4,m4a,3gp,3g2,mj2" → ("mov", "mp4", ...)."""
        return tuple(self.format_name.split(","))

    @property
    def is_subtitles(self) -> bool:
        return not self.has_video and not self.has_audio and self.subtitle_codec is not None


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if result == result and result not in (float("inf"), float("-inf")) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rate(value: Any) -> float | None:
    """ "30000/1001" → 29.97; "0/0" (unknown) → None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        rate = Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None


def _first(streams: list[dict[str, Any]], codec_type: str) -> dict[str, Any] | None:
    """The first stream of a type, skipping cover art (an attached picture is a "video" stream of one frame)."""
    for stream in streams:
        if stream.get("codec_type") != codec_type:
            continue
        if codec_type == "video" and (stream.get("disposition") or {}).get("attached_pic"):
            continue
        return stream
    return None


def parse_ffprobe(data: dict[str, Any]) -> MediaFacts:
    """MediaFacts from ffprobe's JSON. Missing fields become None; a file without any stream raises ValueError."""
    fmt = data.get("format") or {}
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    if not streams:
        raise ValueError("no media streams")
    video = _first(streams, "video")
    audio = _first(streams, "audio")
    subtitle = _first(streams, "subtitle")
    duration = _float(fmt.get("duration"))
    if duration is None:  # some containers (raw streams, WebM written live) only know stream durations
        durations = [d for s in streams if (d := _float(s.get("duration"))) is not None]
        duration = max(durations) if durations else None
    fps = None
    if video is not None:
        # avg_frame_rate is what a player sees; r_frame_rate is the timebase guess (e.g. 1000 for WebM).
        fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    return MediaFacts(
        duration=duration,
        format_name=str(fmt.get("format_name") or ""),
        has_video=video is not None,
        width=_int(video.get("width")) if video else None,
        height=_int(video.get("height")) if video else None,
        fps=fps,
        video_codec=video.get("codec_name") if video else None,
        pixel_format=video.get("pix_fmt") if video else None,
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        sample_rate=_int(audio.get("sample_rate")) if audio else None,
        channels=_int(audio.get("channels")) if audio else None,
        channel_layout=audio.get("channel_layout") if audio else None,
        bit_rate=_int(fmt.get("bit_rate")),
        size=_int(fmt.get("size")),
        nb_frames=_int(video.get("nb_frames")) if video else None,
        subtitle_codec=subtitle.get("codec_name") if subtitle else None,
    )


@dataclass(frozen=True)
class Streamed:
    """An input the runner serves to FFmpeg from its loopback server (`videojob.streaming.InputServer`)."""

    url: str  # http://127.0.0.1:<port>/<token>/<n>


# What FFmpeg may open for a streamed input: plain HTTP to the loopback server, nothing else. `-http_proxy ""`
# keeps an http_proxy variable in the environment from sending those requests elsewhere.
STREAMED_PROTOCOLS = "http,tcp"


def source_args(source: Path | Streamed) -> tuple[list[str], str]:
    """(options before `-i`, the URL) for opening an input with only the protocol it needs. `file:` keeps a local
    name like "concat:x" from being read as a protocol."""
    if isinstance(source, Streamed):
        return ["-protocol_whitelist", STREAMED_PROTOCOLS, "-http_proxy", ""], source.url
    return ["-protocol_whitelist", "file"], f"file:{source}"


def ffprobe_argv(path: Path | Streamed, formats: str | None = INPUT_FORMATS) -> list[str]:
    """The ffprobe command for a local file or a streamed input. `formats` limits the demuxers (None: any, for
    files we made ourselves)."""
    whitelist = ["-format_whitelist", formats] if formats else []
    options, url = source_args(path if isinstance(path, Streamed) else Path(path))
    return [
        FFPROBE,
        "-v",
        "error",
        *options,
        *whitelist,
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        url,
    ]


def probe(path: Path | Streamed, label: str | None = None, formats: str | None = INPUT_FORMATS) -> MediaFacts:
    """Probe a local file or a streamed input. Raises BadInput naming `label` (or the file) when it is not
    readable media."""
    name = label or str(path)
    try:
        completed = subprocess.run(
            ffprobe_argv(path, formats),
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            env=child_env(),  # no credentials for ffprobe
        )
    except subprocess.TimeoutExpired:
        raise _timed_out(name) from None
    return _facts(name, formats, completed.returncode, completed.stdout, completed.stderr)


def start_probe(path: Path | Streamed, formats: str | None = INPUT_FORMATS) -> subprocess.Popen[bytes]:
    """`probe` in two steps: ffprobe started now, its answer read by `finish_probe`. The runner starts it on a
    streamed input before that input is opened, so that ffprobe loads FFmpeg's libraries (most of its time)
    while the runner still sets up its S3 client. Raises OSError if ffprobe cannot be started."""
    return subprocess.Popen(
        ffprobe_argv(path, formats),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),  # no credentials for ffprobe
    )


def finish_probe(process: subprocess.Popen[bytes], name: str, formats: str | None = INPUT_FORMATS) -> MediaFacts:
    """What `probe` says, from the ffprobe `start_probe(path, formats)` started; errors name `name` (what `probe`
    calls its label). It gets PROBE_TIMEOUT from now."""
    try:
        stdout, stderr = process.communicate(timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise _timed_out(name) from None
    return _facts(name, formats, process.returncode, stdout, stderr)


def _timed_out(name: str) -> BadInput:
    return BadInput(f"{name}: ffprobe did not finish within {PROBE_TIMEOUT:.0f} s", reason=Reason.UNREADABLE_MEDIA)


def _facts(name: str, formats: str | None, returncode: int, stdout: bytes, stderr: bytes) -> MediaFacts:
    error = stderr.decode("utf-8", "replace").strip().splitlines()
    detail = error[-1] if error else f"ffprobe exit status {returncode}"
    if returncode != 0:
        accepted = " (accepted containers: MP4, MOV, MKV, WebM, AVI, MP3, AAC, WAV, Ogg, FLAC)" if formats else ""
        raise BadInput(f"{name} is not readable media{accepted}: {detail}", reason=Reason.UNREADABLE_MEDIA)
    try:
        return parse_ffprobe(json.loads(stdout or b"{}"))
    except (ValueError, json.JSONDecodeError) as e:
        raise BadInput(f"{name} is not readable media: {e}", reason=Reason.UNREADABLE_MEDIA) from None
