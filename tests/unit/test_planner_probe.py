"""parse_ffprobe: ffprobe's JSON → MediaFacts (pure), and probe() on a file that is not media."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from videojob.errors import BadInput
from videojob.transcoder.probe import MediaFacts, ffprobe_argv, parse_ffprobe, probe

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
