"""parse_ffprobe: ffprobe's JSON → MediaFacts (pure), probe() on a file that is not media, and probes started
early (before the runner has its S3 client), whose input is served when it is opened."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from videojob import streaming
from videojob.api.models import VideoJobSpec
from videojob.errors import BadInput
from videojob.transcoder import runner
from videojob.transcoder.probe import (
    MediaFacts,
    Streamed,
    ffprobe_argv,
    finish_probe,
    parse_ffprobe,
    probe,
    start_probe,
)

MP4: dict[str, Any] = {
    "streams": [
        {
            "codec_type": "video",
            "codec_name": "h264",
            "width": 320,
            "height": 240,
            "avg_frame_rate": "10/1",
            "r_frame_rate": "10/1",
            "pix_fmt": "yuv420p",
            "nb_frames": "10",
            "duration": "1.000000",
        },
        {
            "codec_type": "audio",
            "codec_name": "aac",
            "sample_rate": "44100",
            "channels": 1,
            "channel_layout": "mono",
            "avg_frame_rate": "0/0",
            "duration": "1.000000",
        },
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "1.000000", "size": "60560", "bit_rate": "484480"},
}


def _with(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"streams": [dict(s) for s in MP4["streams"]], "format": dict(MP4["format"])}
    for key, value in changes.items():
        data[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            MP4,
            {
                "duration": 1.0,
                "width": 320,
                "height": 240,
                "fps": 10.0,
                "video_codec": "h264",
                "audio_codec": "aac",
                "sample_rate": 44100,
                "channels": 1,
                "bit_rate": 484480,
                "size": 60560,
                "nb_frames": 10,
                "has_video": True,
                "has_audio": True,
            },
            id="an mp4 with h264 and aac gives every fact",
        ),
        pytest.param(
            _with(streams=[{"codec_type": "audio", "codec_name": "mp3", "sample_rate": "48000", "channels": 2}]),
            {"has_video": False, "width": None, "fps": None, "audio_codec": "mp3", "sample_rate": 48000},
            id="an audio-only file has no video facts",
        ),
        pytest.param(
            _with(
                streams=[
                    {
                        "codec_type": "video",
                        "codec_name": "vp9",
                        "avg_frame_rate": "0/0",
                        "r_frame_rate": "30000/1001",
                        "width": 64,
                        "height": 48,
                    }
                ]
            ),
            {"fps": pytest.approx(29.97, abs=0.01), "has_audio": False},
            id="an unknown average frame rate falls back to r_frame_rate",
        ),
        pytest.param(
            _with(
                format={"format_name": "matroska,webm"},
                streams=[
                    {"codec_type": "video", "codec_name": "vp9", "duration": "2.5"},
                    {"codec_type": "audio", "codec_name": "opus", "duration": "2.4"},
                ],
            ),
            {"duration": 2.5, "formats": ("matroska", "webm")},
            id="without a container duration the longest stream's is used",
        ),
        pytest.param(
            _with(
                streams=[
                    {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
                    {"codec_type": "audio", "codec_name": "mp3", "sample_rate": "44100"},
                ]
            ),
            {"has_video": False, "has_audio": True},
            id="cover art is not a video stream",
        ),
        pytest.param(
            _with(
                format={"format_name": "srt", "duration": "N/A"},
                streams=[{"codec_type": "subtitle", "codec_name": "subrip"}],
            ),
            {"is_subtitles": True, "duration": None, "subtitle_codec": "subrip"},
            id="a subtitle file is recognised as subtitles",
        ),
        pytest.param(
            _with(format={"format_name": "mp4", "duration": "nan", "bit_rate": "N/A"}),
            {"duration": 1.0, "bit_rate": None},
            id="N/A and nan become None or a stream duration",
        ),
    ],
)
def test_parse_ffprobe(data: dict[str, Any], expected: dict[str, Any]) -> None:
    facts = parse_ffprobe(data)
    assert isinstance(facts, MediaFacts)
    for name, value in expected.items():
        assert getattr(facts, name) == value, name


def test_no_streams_is_an_error() -> None:
    with pytest.raises(ValueError, match="no media streams"):
        parse_ffprobe({"format": {"format_name": "tty"}, "streams": []})


def test_argv_reads_only_a_local_file_whatever_its_name() -> None:
    argv = ffprobe_argv(Path("concat:a.mp4|b.mp4"))
    assert argv[-1] == "file:concat:a.mp4|b.mp4"
    assert argv[argv.index("-protocol_whitelist") + 1] == "file"


def test_probe_names_the_file_that_is_not_media(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\x00\x01 definitely not media \xff" * 10)
    with pytest.raises(BadInput, match="intro is not readable media") as info:
        probe(path, label="intro")
    assert info.value.exit_code == 65


def _tone(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    """A short silent WAV file, written without FFmpeg."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return path


def test_a_probe_started_early_says_what_probe_says(tmp_path: Path) -> None:
    tone = _tone(tmp_path / "tone.wav")
    assert finish_probe(start_probe(tone), "input tone") == probe(tone, label="input tone")
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"\x00\x01 definitely not media \xff" * 10)
    with pytest.raises(BadInput) as by_probe:
        probe(notes, label="input notes")
    with pytest.raises(BadInput) as early:
        finish_probe(start_probe(notes), "input notes")
    assert str(early.value) == str(by_probe.value) and early.value.reason == by_probe.value.reason


class _Opened:
    """A streamed input as the runner opens it (an S3 object pinned by its ETag), from a local file."""

    def __init__(self, path: Path) -> None:
        self.uri = "s3://media/in/tone.wav"
        self.data = path.read_bytes()
        self.size = len(self.data)
        self.reads = 0

    def read_range(self, start: int, end: int) -> Iterator[bytes]:
        self.reads += 1
        yield self.data[start:end]


def _job(tmp_path: Path) -> runner.Job:
    spec = VideoJobSpec.model_validate(
        {"inputs": [{"name": "tone", "uri": "s3://media/in/tone.wav"}], "output": {"uri": "s3://media/out/"}}
    )
    return runner.Job(spec=spec, workdir=tmp_path / "work")


def test_an_early_probe_reads_its_input_only_when_asked(tmp_path: Path) -> None:
    """ffprobe starts before there is an S3 client; it reads the input once the input is opened and its probe is
    asked for (inputs are read in turn, as when each was probed after the last), and says what a probe says."""
    tone = _tone(tmp_path / "tone.wav")
    with streaming.InputServer() as server:
        early = runner._EarlyProbes(_job(tmp_path), ["tone"], server)
        opened = _Opened(tone)
        url = early.url("tone", opened)
        process = early.processes["tone"]
        assert process.poll() is None and opened.reads == 0, "ffprobe waits for its input"
        facts = early.probe("tone", Streamed(url))
        early.close()
    assert facts == probe(tone, label="input tone") and facts.has_audio and opened.reads >= 1


def test_an_early_probe_whose_input_is_not_opened_is_stopped(tmp_path: Path) -> None:
    with streaming.InputServer() as server:
        early = runner._EarlyProbes(_job(tmp_path), ["tone"], server)
        process = early.processes["tone"]
        early.close()  # e.g. the output bucket does not exist: the run ends before it opens its inputs
        assert process.returncode is not None and not early.processes


def test_local_inputs_get_no_early_probe(tmp_path: Path) -> None:
    job = _job(tmp_path)
    job.local_inputs = {"tone": _tone(tmp_path / "tone.wav")}
    with streaming.InputServer() as server:
        assert not runner._EarlyProbes(job, ["tone"], server).processes
