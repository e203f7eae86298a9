"""Hostile user strings never change the FFmpeg command, and render as text; hostile inputs are refused.

Text overlays reach FFmpeg only as a file read with `textfile=` (and `expansion=none`); subtitle content only as
a subtitle file we parsed and rewrote. So for every hostile string the whole argument list must be byte for byte
the one planned for a harmless string. A few are rendered for real: FFmpeg succeeds and pixels change in the
text's region. Input URIs and files that would make FFmpeg open something else are refused before FFmpeg runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from devkit import mediagen as mg
from devkit.hostile import HOSTILE
from videojob.api.models import VideoJobSpec
from videojob.errors import BadInput
from videojob.inputs import InputPolicy, check_uri
from videojob.transcoder import planner, runner
from videojob.transcoder.probe import MediaFacts
from videojob.transcoder.subtitle_files import prepare

pytestmark = pytest.mark.media

assert len(HOSTILE) >= 30

WORK = Path("/work/job")
FACTS = {
    "base": MediaFacts(
        duration=2.0,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        has_video=True,
        width=320,
        height=240,
        fps=10.0,
        video_codec="h264",
        has_audio=True,
        sample_rate=44100,
        channels=1,
    )
}
PATHS = {"base": WORK / "in" / "base"}


def text_spec(text: str) -> VideoJobSpec:
    return VideoJobSpec.model_validate(
        {
            "inputs": [{"name": "base", "uri": "s3://bucket/base.mp4"}],
            "operations": [{"text": {"text": text, "position": "top-left", "size": 28, "start": 0.5, "end": 1.5}}],
            "output": {"uri": "s3://bucket/out/"},
        }
    )


def subtitle_spec() -> VideoJobSpec:
    return VideoJobSpec.model_validate(
        {
            "inputs": [{"name": "base", "uri": "s3://bucket/base.mp4"}, {"name": "subs", "uri": "s3://bucket/s.srt"}],
            "operations": [{"subtitles": {"input": "subs"}}],
            "output": {"uri": "s3://bucket/out/"},
        }
    )


def srt_with(text: str) -> bytes:
    return f"1\n00:00:00,500 --> 00:00:01,300\n{text}\n".encode()


BENIGN_TEXT_PLAN = planner.plan(text_spec("x"), FACTS, PATHS, "cpu", WORK)


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(t)[:40] for t in HOSTILE])
def test_overlay_text_never_changes_the_command(text: str) -> None:
    plan = planner.plan(text_spec(text), FACTS, PATHS, "cpu", WORK)
    assert plan.main == BENIGN_TEXT_PLAN.main
    (written,) = plan.files
    assert written.text == text.replace("\r\n", "\n")
    assert written.path == BENIGN_TEXT_PLAN.files[0].path


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(t)[:40] for t in HOSTILE])
def test_subtitle_text_never_changes_the_command(text: str) -> None:
    prepared = prepare(srt_with(text), "input subs")
    assert prepared.burn_suffix == ".srt"
    assert prepared.cues and all(c.start == 0.5 and c.end == 1.3 for c in prepared.cues[:1])
    paths = {"subs": WORK / "subtitles-subs.srt"}
    plan = planner.plan(subtitle_spec(), FACTS, PATHS, "cpu", WORK, paths)
    benign = planner.plan(subtitle_spec(), FACTS, PATHS, "cpu", WORK, paths)
    assert plan.main == benign.main
    # what libass reads is one well-formed cue: the string cannot open a second one or change the timing
    assert prepared.burn_text.startswith("1\n00:00:00,500 --> 00:00:01,300\n")
    assert prepared.burn_text.count(" --> ") == 1


# ---------------------------------------------------------------------------------------------------------------
# Rendered for real


def _render(tmp_path: Path, inputs: dict[str, Path], operations: list[dict[str, Any]]) -> Path:
    spec = VideoJobSpec.model_validate(
        {
            "inputs": [{"name": n, "uri": f"s3://bucket/{n}"} for n in inputs],
            "operations": operations,
            "output": {"uri": "s3://bucket/out/", "video": {"codec": "h264", "preset": "ultrafast"}},
        }
    )
    result = runner.run(runner.Job(spec=spec, workdir=tmp_path / "w", local_inputs=inputs, output_dir=tmp_path / "o"))
    assert result.ok
    return Path(result.artifacts[0].uri.removeprefix("file://"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _render(tmp_path_factory.mktemp("plain"), {"base": mg.video("mp4", color="navy")}, [])


RENDERED = [
    "it's: [x]; a,b \\ %{pts}",
    "🎬 مرحبا שלום",
    "line one\nline two",
    "textfile=/etc/passwd",
    "x',drawtext=text='pwned",
    "A" * 1000,
]


@pytest.mark.parametrize("text", RENDERED, ids=[repr(t)[:30] for t in RENDERED])
def test_hostile_overlay_text_renders(tmp_path: Path, plain: Path, text: str) -> None:
    out = _render(
        tmp_path,
        {"base": mg.video("mp4", color="navy")},
        [{"text": {"text": text, "position": "top-left", "size": 28, "start": 0.5, "end": 1.5}}],
    )
    region = (0, 0, 320, 90)
    assert mg.changed_fraction(mg.frame_rgb(plain, 1.0), mg.frame_rgb(out, 1.0), region) > 0.03
    assert mg.changed_fraction(mg.frame_rgb(plain, 1.0), mg.frame_rgb(out, 1.0), (0, 160, 320, 240)) < 0.01


def test_expansion_syntax_stays_literal(tmp_path: Path) -> None:
    """`%{pts}` expanded would print the time, different in every frame; literal, the pixels stay the same."""
    out = _render(
        tmp_path,
        {"base": mg.video("mp4", color="navy")},
        [{"text": {"text": "%{pts} %{n}", "position": "top-left", "size": 28}}],
    )
    early, late = mg.frame_rgb(out, 0.3), mg.frame_rgb(out, 1.7)
    assert mg.changed_fraction(early, late, (0, 0, 320, 90)) < 0.005


@pytest.mark.parametrize("text", ["{\\an8}it's: [x]; %{pts}", "🎬 مرحبا\nsecond line", "a --> b <i>c</i>"])
def test_hostile_subtitle_text_renders(tmp_path: Path, plain: Path, text: str) -> None:
    subs = tmp_path / "hostile.srt"
    subs.write_bytes(srt_with(text))
    out = _render(
        tmp_path,
        {"base": mg.video("mp4", color="navy"), "subs": subs},
        [{"subtitles": {"input": "subs", "style": {"size": 28}}}],
    )
    # small text on a whole frame: a few hundred pixels when on, none when off
    assert mg.changed_fraction(mg.frame_rgb(plain, 0.9), mg.frame_rgb(out, 0.9), (0, 0, 320, 240)) > 0.004
    assert mg.changed_fraction(mg.frame_rgb(plain, 1.7), mg.frame_rgb(out, 1.7), (0, 0, 320, 240)) < 0.0005


# ---------------------------------------------------------------------------------------------------------------
# Inputs that would make FFmpeg open something else


REFUSED_URIS = [
    "file:///etc/passwd",
    "concat:/etc/passwd|/etc/hosts",
    "subfile:,start,0,end,0,:/etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254/latest/meta-data/",
    "https://127.0.0.1/video.mp4",
    "https://[::1]/video.mp4",
    "https://10.0.0.1/video.mp4",
    "hls+http://example.com/x.m3u8",
    "pipe:0",
    "data:video/mp4;base64,AAAA",
    "ftp://example.com/x.mp4",
    "s3://bucket/../secret.mp4",
    "s3://bucket//etc/passwd",
]


@pytest.mark.parametrize("uri", REFUSED_URIS)
def test_input_uris_are_refused(uri: str) -> None:
    with pytest.raises(BadInput, match="refused"):
        check_uri(uri, InputPolicy(allow_http=True))


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "concat:a|b", "subfile:,start,0,end,0,:x", "pipe:0"])
def test_the_spec_itself_refuses_non_storage_uris(uri: str) -> None:
    with pytest.raises(ValidationError):
        VideoJobSpec.model_validate({"inputs": [{"name": "a", "uri": uri}], "output": {"uri": "s3://bucket/out/"}})


@pytest.mark.parametrize(
    "content",
    [
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
        "ffconcat version 1.0\nfile '/etc/passwd'\n",
    ],
    ids=["hls playlist named .avi", "concat script named .avi"],
)
def test_playlists_and_scripts_disguised_as_media_are_refused(tmp_path: Path, content: str) -> None:
    disguised = tmp_path / "movie.avi"
    disguised.write_text(content)
    with pytest.raises(BadInput, match="input base is not readable media"):
        _render(tmp_path, {"base": disguised}, [])
