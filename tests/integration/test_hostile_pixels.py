"""Every hostile string of the corpus renders exactly as the literal reference: pixels, not argv.

For each string of `devkit.hostile.HOSTILE`, one frame is rendered twice with real FFmpeg and the two
frames' MD5s (`-f framemd5`) must be equal:

- text overlay: the planner's path (its `TextFile` written where it says, its `-filter_complex` graph with the
  file's path escaped by `escape.filter_value`) against `drawtext=textfile=<a file we write>:expansion=none` with
  the same font (by file), size, colour and position, typed here with no escaping at all;
- subtitle cue: the planner's path (the cue through `subtitle_files.prepare`, its rewritten SRT written where the
  plan says, the planner's `subtitles=` with its `force_style`) against the subtitles filter reading an SRT file
  written here directly with the same cue text.

The planner's work directory has quotes, brackets, `;`, `,`, `:` and `%` in its name, so the escaped paths are
exercised too. Each rendering is also checked to differ from the bare frame: an empty rendering on both sides
would compare equal and prove nothing.

A third test puts each string straight into the graph as `drawtext=text=<escape.filter_value(string)>`: our
escaping on its own, without the file, also gives the literal frame, leading spaces included (a library that
escapes with backslashes only, without quoting, loses those: see docs/design.md).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devkit import mediagen as mg
from devkit.hostile import HOSTILE
from videojob.api.models import VideoJobSpec
from videojob.transcoder import planner
from videojob.transcoder.escape import filter_value
from videojob.transcoder.probe import probe
from videojob.transcoder.stt import sanitise_text
from videojob.transcoder.subtitle_files import prepare

pytestmark = pytest.mark.media

FONT_FILE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # what fontconfig gives for the default "DejaVu Sans"
SIZE = 28
HOSTILE_DIR = "job 'q' [x];,:%"
FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
# Leading whitespace: FFmpeg's option parser drops it unless the value is quoted (trailing spaces draw nothing).
SPACES = ["  two leading spaces", " \t"]
TEXTS = HOSTILE + SPACES
DRAW = f"expansion=none:fontfile={FONT_FILE}:fontsize={SIZE}:fontcolor=white:x=16:y=16"

# Strings whose subtitle rendering differs from the raw cue by design, with the reason.
SUBTITLE_REWRITES = {
    # A line holding "-->" reads as a timing line to SRT readers (ours among them: a cue could open a second cue),
    # so `stt.sanitise_text` writes "->" instead. The drawn text is "a -> b", not "a --> b".
    "a --> b": "SRT timing arrow in cue text is rewritten to '->'",
}


def _framemd5(argv: list[str]) -> str:
    """The MD5 of the one decoded frame that `argv` (an ffmpeg command without an output) produces."""
    out = subprocess.run([*argv, "-frames:v", "1", "-f", "framemd5", "-"], capture_output=True, check=False, timeout=60)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    lines = [line for line in out.stdout.decode().splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1, lines
    return lines[0].rsplit(",", 1)[1].strip()


def _planner_frame(plan: planner.Plan) -> str:
    """Run the plan's own inputs and filter graph, and hash the frame its `[vout]` gives (the encoder and muxer
    that follow in `plan.main` do not touch user text, and would make the comparison lossy)."""
    argv = list(plan.main[: plan.main.index("-filter_complex") + 2])
    return _framemd5([*argv, "-map", "[vout]"])


def _reference_frame(base: Path, vf: str) -> str:
    return _framemd5([*FFMPEG, "-i", str(base), "-vf", vf])


_text_references: dict[str, str] = {}


def _text_reference(base: Path, text: str, scratch: Path) -> str:
    """The literal rendering: `textfile=` with the string's bytes, `expansion=none`, nothing escaped."""
    if text not in _text_references:
        literal = scratch / "literal.txt"
        literal.write_bytes(text.encode())  # CRLF and all: drawtext reads "\r\n" as one line break
        _text_references[text] = _reference_frame(base, f"drawtext=textfile={literal}:{DRAW}")
    return _text_references[text]


@pytest.fixture(scope="module")
def base() -> Path:
    # one navy 320x120 frame without audio: the plan's graph then has only the video chain to map
    return mg.video("mkv", color="navy", size=(320, 120), fps=1, duration=1, audio=None)


@pytest.fixture(scope="module")
def bare(base: Path) -> str:
    return _framemd5([*FFMPEG, "-i", str(base)])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pixels") / HOSTILE_DIR
    path.mkdir()
    return path


def _plan(spec: dict[str, object], base: Path, workdir: Path, subtitles: Path | None = None) -> planner.Plan:
    job = VideoJobSpec.model_validate({"output": {"uri": "s3://bucket/out/"}, **spec})
    extra = {"subs": subtitles} if subtitles else {}
    return planner.plan(job, {"base": probe(base)}, {"base": base}, "cpu", workdir, extra)


@pytest.mark.parametrize("text", TEXTS, ids=[repr(t)[:40] for t in TEXTS])
def test_overlay_text_renders_as_the_literal_reference(text: str, base: Path, bare: str, workdir: Path) -> None:
    plan = _plan(
        {
            "inputs": [{"name": "base", "uri": "s3://bucket/base.mkv"}],
            "operations": [{"text": {"text": text, "position": "top-left", "size": SIZE}}],
        },
        base,
        workdir,
    )
    for file in plan.files:
        file.path.write_text(file.text, encoding="utf-8")  # as the runner does
    ours = _planner_frame(plan)
    assert ours == _text_reference(base, text, workdir.parent)
    assert ours != bare or text.isspace()


@pytest.mark.parametrize("text", TEXTS, ids=[repr(t)[:40] for t in TEXTS])
def test_filter_value_alone_keeps_any_string_literal(text: str, base: Path, bare: str, workdir: Path) -> None:
    graph = f"[0:v]drawtext=text={filter_value(text)}:{DRAW}[out]"
    ours = _framemd5([*FFMPEG, "-i", str(base), "-filter_complex", graph, "-map", "[out]"])
    assert ours == _text_reference(base, text, workdir.parent)
    assert ours != bare or text.isspace()


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(t)[:40] for t in HOSTILE])
def test_subtitle_cue_renders_as_the_literal_reference(text: str, base: Path, bare: str, workdir: Path) -> None:
    cue = "1\n00:00:00,000 --> 00:00:05,000\n{}\n"
    prepared = prepare(cue.format(text).encode(), "input subs")
    subs = workdir / "subtitles-subs.srt"
    subs.write_text(prepared.burn_text, encoding="utf-8")  # as the runner does
    plan = _plan(
        {
            "inputs": [{"name": "base", "uri": "s3://bucket/base.mkv"}, {"name": "subs", "uri": "s3://bucket/s.srt"}],
            "operations": [{"subtitles": {"input": "subs", "style": {"size": SIZE}}}],
        },
        base,
        workdir,
        subs,
    )
    ours = _planner_frame(plan)

    expected = sanitise_text(text) if text in SUBTITLE_REWRITES else text
    literal = workdir.parent / "literal.srt"
    literal.write_bytes(cue.format(expected).encode())
    reference = _reference_frame(base, f"subtitles=filename={literal}:force_style='Fontsize={SIZE}'")
    assert ours == reference
    assert ours != bare
