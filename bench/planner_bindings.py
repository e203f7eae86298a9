"""Plan time of our planner against the same plans built on typed-ffmpeg (issue 14; see docs/design.md).

The table is the planner's own test table: every `planner.plan()` call that succeeds while
tests/unit/test_planner.py and the argv tests of tests/integration/test_hostile_strings.py run, recorded by
running them under pytest (no FFmpeg is started). Each call is then timed with

- ours: `videojob.transcoder.planner.plan`, the `_Graph` of f-strings escaped by `transcoder/escape.py`;
- typed-ffmpeg: `plan_typed` below, a port of the planner's graph-building half onto typed-ffmpeg's typed filter
  methods (`.drawtext(...)`, `ffmpeg.filters.concat(...)`, `.compile()`), sharing everything else (models,
  facts, encoders, checks) with ours, so the difference is the graph and its escaping.

typed-ffmpeg is not a dependency. Install it beside the project, not into it (it and ffmpeg-python both install a
top-level `ffmpeg` package):

    .venv/bin/pip install --target /tmp/typed-ffmpeg typed-ffmpeg==4.6.2
    PYTHONPATH=/tmp/typed-ffmpeg .venv/bin/python bench/planner_bindings.py [--repeat 20] [--check]

`--check` also renders a few plans both ways with real FFmpeg and compares the frames (framemd5), to show the port
builds equivalent graphs. Without typed-ffmpeg it prints our timing alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "operator"), str(REPO)]

from videojob.api.models import (  # noqa: E402
    Audio,
    AudioCodec,
    AudioMode,
    Concat,
    PictureInPicture,
    Subtitles,
    Text,
    VideoCodec,
    VideoJobSpec,
)
from videojob.transcoder import encoders, planner  # noqa: E402
from videojob.transcoder.escape import ffmpeg_color, fontconfig_name, number  # noqa: E402
from videojob.transcoder.probe import MediaFacts  # noqa: E402

Call = tuple[tuple[Any, ...], dict[str, Any]]


def record_table() -> list[Call]:
    """The planner's test table: the arguments of every successful plan() call of its tests."""
    import pytest

    calls: list[Call] = []
    real = planner.plan

    def recording(*args: Any, **kwargs: Any) -> planner.Plan:
        result = real(*args, **kwargs)
        calls.append((args, kwargs))
        return result

    planner.plan = recording
    try:
        code = pytest.main(
            [
                "-q",
                "-p",
                "no:cacheprovider",
                "--no-header",
                "-o",
                "addopts=",
                str(REPO / "tests/unit/test_planner.py"),
                str(REPO / "tests/integration/test_hostile_strings.py"),
                "-k",
                "test_planner or never_changes_the_command",
            ]
        )
    finally:
        planner.plan = real
    if code != 0:
        raise SystemExit(f"the planner's tests failed (pytest exit {code}): nothing to time")
    return calls


# ---------------------------------------------------------------------------------------------------------------
# The planner's graph half on typed-ffmpeg


def _typed() -> Any:
    import ffmpeg

    if not hasattr(ffmpeg, "filters") or not hasattr(ffmpeg.filters, "concat"):
        raise ImportError("the `ffmpeg` package found is not typed-ffmpeg")
    return ffmpeg


@dataclass
class _T:
    """Where the chain stands (planner._Stream with typed-ffmpeg streams instead of pad labels)."""

    video: Any
    audio: Any
    width: int
    height: int
    fps: Fraction
    sample_rate: int
    layout: str
    duration: float


class _TypedGraph:
    def __init__(self, spec: VideoJobSpec, facts: Mapping[str, MediaFacts], paths: Mapping[str, Path]) -> None:
        self.ff = _typed()
        self.spec, self.facts, self.paths = spec, facts, paths

    def open_input(self, name: str) -> Any:
        trim = self.spec.input(name).trim
        options: dict[str, Any] = {"f": planner.demuxer_for(self.facts[name], name)}
        if trim is not None and trim.start > 0:
            options["ss"] = number(trim.start)
        if trim is not None and trim.duration is not None:
            options["t"] = number(trim.duration)
        return self.ff.input(f"file:{self.paths[name]}", **options, extra_options={"protocol_whitelist": "file"})

    def source(self, name: str, want_video: bool, want_audio: bool = True) -> tuple[Any, Any, float]:
        facts = self.facts[name]
        duration = planner.trimmed_duration(facts, self.spec.input(name))
        source = self.open_input(name)
        video = source.video.setpts(expr="PTS-STARTPTS") if want_video and facts.has_video else None
        audio = source.audio.asetpts(expr="PTS-STARTPTS") if want_audio and facts.has_audio else None
        return video, audio, duration


def _aformat(stream: Any, sample_rate: int, layout: str) -> Any:
    return stream.aformat(sample_fmts="fltp", sample_rates=sample_rate, channel_layouts=layout)


def _base(g: _TypedGraph, want_video: bool, want_audio: bool) -> _T:
    ops = g.spec.operations
    if ops and isinstance(ops[0].body, Concat):
        return _concat(g, ops[0].body, want_video)
    name = g.spec.inputs[0].name
    f = g.facts[name]
    video, audio, duration = g.source(name, want_video, want_audio)
    rate, layout = planner._first_audio(g.spec, g.facts, [name])
    return _T(video, audio, f.width or 0, f.height or 0, planner.to_fraction(f.fps), rate, layout, duration)


def _concat(g: _TypedGraph, op: Concat, want_video: bool) -> _T:
    first = g.facts[op.inputs[0]]
    width, height = planner.even_floor(first.width or 0), planner.even_floor(first.height or 0)
    fps = planner.to_fraction(first.fps)
    rate, layout = planner._first_audio(g.spec, g.facts, list(op.inputs))
    with_audio = any(g.facts[n].has_audio for n in op.inputs)
    parts: list[Any] = []
    total = 0.0
    for name in op.inputs:
        video, audio, duration = g.source(name, want_video)
        total += duration
        if want_video:
            parts.append(
                video.scale(w=width, h=height, force_original_aspect_ratio="decrease")
                .pad(width=width, height=height, x="(ow-iw)/2", y="(oh-ih)/2")
                .setsar(sar=1)
                .fps(fps=planner.fps_text(fps))
                .format(pix_fmts="yuv420p")
                .trim(duration=duration)
                .setpts(expr="PTS-STARTPTS")
            )
        if with_audio:
            if audio is None:
                parts.append(g.ff.sources.anullsrc(sample_rate=rate, channel_layout=layout).atrim(duration=duration))
            else:
                parts.append(
                    _aformat(audio, rate, layout)
                    .atrim(duration=duration)
                    .apad(whole_dur=duration)
                    .asetpts(expr="PTS-STARTPTS")
                )
    node = g.ff.filters.concat(*parts, n=len(op.inputs), v=int(want_video), a=int(with_audio))
    return _T(
        node.video(0) if want_video else None,
        node.audio(0) if with_audio else None,
        width,
        height,
        fps,
        rate,
        layout,
        total,
    )


def _audio(g: _TypedGraph, stream: _T, op: Audio) -> None:
    _video, audio, length = g.source(op.input, want_video=False)
    heard = min(length, stream.duration - op.offset)
    added = _aformat(audio, stream.sample_rate, stream.layout).volume(volume=op.volume)
    if op.fade_in > 0:
        added = added.afade(type="in", start_time=0, duration=min(op.fade_in, heard))
    if op.fade_out > 0:
        fade = min(op.fade_out, heard)
        added = added.afade(type="out", start_time=max(0.0, heard - fade), duration=fade)
    added = added.atrim(duration=heard)
    if op.offset > 0:
        added = added.adelay(delays=round(op.offset * 1000), all=True)
    added = added.apad(whole_dur=stream.duration).atrim(duration=stream.duration)
    if op.mode == AudioMode.REPLACE or stream.audio is None:
        stream.audio = added  # the old chain is no longer reachable from an output: the library leaves it out
    else:
        stream.audio = g.ff.filters.amix(
            stream.audio, added, inputs=2, duration="first", dropout_transition=0, normalize=False
        )


def _enable(start: float, end: float | None) -> str | None:
    if end is not None:
        return f"between(t,{number(start)},{number(end)})"
    return f"gte(t,{number(start)})" if start > 0 else None


def _text(stream: _T, op: Text, path: Path) -> None:
    x, y = planner.text_position(op.position, op.offset_x, op.offset_y)
    options: dict[str, Any] = {}
    if op.box:
        options |= {"box": True, "boxcolor": ffmpeg_color(op.box_color), "boxborderw": max(4, op.size // 4)}
    if op.border > 0:
        options |= {"borderw": op.border, "bordercolor": ffmpeg_color(op.border_color)}
    stream.video = stream.video.drawtext(
        textfile=str(path),
        expansion="none",
        font=fontconfig_name(op.font),
        fontsize=op.size,
        fontcolor=ffmpeg_color(op.color),
        x=x,
        y=y,
        enable=_enable(op.start, op.end),
        **options,
    )


def _subtitles(stream: _T, op: Subtitles, path: Path) -> None:
    style = planner.subtitle_force_style(op.style)
    options = {"force_style": style} if style else {}
    stream.video = stream.video.subtitles(filename=str(path), **options)


def _pip(g: _TypedGraph, stream: _T, op: PictureInPicture) -> None:
    shift = f"+{number(op.start)}/TB" if op.start > 0 else ""
    small = (
        g.open_input(op.input)
        .video.setpts(expr=f"PTS-STARTPTS{shift}")
        .scale(w=planner.even(stream.width * op.scale), h=-2)
        .setsar(sar=1)
        .format(pix_fmts="yuv420p")
    )
    x, y = planner.pip_position(op.position, op.margin)
    stream.video = stream.video.overlay(
        small, x=x, y=y, eof_action="pass", format="auto", enable=_enable(op.start, op.end)
    )


def _finish_video(stream: _T, spec: VideoJobSpec) -> Any:
    video = spec.output.video
    out = stream.video
    if video.size is not None:
        w, h = video.size
        out = (
            out.scale(w=w, h=h, force_original_aspect_ratio="decrease")
            .pad(width=w, height=h, x="(ow-iw)/2", y="(oh-ih)/2")
            .setsar(sar=1)
        )
    elif stream.width % 2 or stream.height % 2:
        out = out.crop(out_w=planner.even_floor(stream.width), out_h=planner.even_floor(stream.height), x=0, y=0)
    if video.fps is not None:
        out = out.fps(fps=planner.fps_text(planner.to_fraction(video.fps)))
    return out.format(pix_fmts="yuv420p")


def _walk(
    g: _TypedGraph,
    want_video: bool,
    workdir: Path,
    subtitle_paths: Mapping[str, Path],
    stop_at: int | None = None,
    want_audio: bool = True,
) -> tuple[_T, list[int]]:
    stream = _base(g, want_video, want_audio)
    generated: list[int] = []
    ops = g.spec.operations if stop_at is None else g.spec.operations[:stop_at]
    for index, op in enumerate(ops):
        body = op.body
        if isinstance(body, Subtitles) and body.generate is not None:
            generated.append(index)
        if isinstance(body, Audio):
            _audio(g, stream, body)
        elif not want_video or isinstance(body, Concat):
            continue
        elif isinstance(body, Text):
            _text(stream, body, workdir / f"text-{index}.txt")
        elif isinstance(body, Subtitles) and body.burn:
            path = planner.generated_srt(workdir, index) if body.generate else subtitle_paths[body.input or ""]
            _subtitles(stream, body, path)
        elif isinstance(body, PictureInPicture):
            _pip(g, stream, body)
    return stream, generated


def _options(argv: list[str]) -> dict[str, Any]:
    """Our encoder/muxer argv fragments as typed-ffmpeg's extra_options ("-sn" alone is a flag)."""
    options: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        key = argv[i].removeprefix("-")
        value = argv[i + 1] if i + 1 < len(argv) else "-"
        if not value.startswith("-") or value == "-1":
            options[key], i = value, i + 2
        else:
            options[key], i = True, i + 1  # typed-ffmpeg writes True as the bare flag (None would drop it)
    return options


def _head(ff: Any, out: Any) -> Any:
    return out.global_args(hide_banner=True, stdin=False, y=True, loglevel="error")


def plan_typed(
    spec: VideoJobSpec,
    facts: Mapping[str, MediaFacts],
    paths: Mapping[str, Path],
    hardware: str,
    workdir: Path,
    subtitle_paths: Mapping[str, Path] | None = None,
) -> tuple[tuple[str, ...], ...]:
    """The main command and the speech-extraction commands of planner.plan(), built with typed-ffmpeg."""
    subtitle_paths = subtitle_paths or {}
    out = spec.output
    resolved = encoders.resolve_hardware(str(hardware), out.video.codec)
    video_copy, audio_copy = out.video.codec == VideoCodec.COPY, out.audio.codec == AudioCodec.COPY
    g = _TypedGraph(spec, facts, paths)
    stream, generated = _walk(g, not video_copy, workdir, subtitle_paths, want_audio=not audio_copy)
    planner.check_copy_fits_container(spec, facts)
    first = g.open_input(spec.inputs[0].name) if video_copy or audio_copy else None
    # `first` is opened whenever a stream is copied from it.
    streams = [first.video if video_copy and first is not None else _finish_video(stream, spec)]
    if audio_copy and first is not None:
        streams.append(first.audio)
    elif stream.audio is not None:
        streams.append(stream.audio.anull())
    tail = [*encoders.video_options(out.video, resolved, out.container)]
    if stream.audio is not None or audio_copy:
        tail += encoders.audio_options(out.audio)
    tail += ["-t", number(stream.duration), "-map_metadata", "-1", "-sn", "-dn", *encoders.muxer_options(out.container)]
    output = workdir / "out" / f"{out.name}.{encoders.EXTENSIONS[out.container]}"
    main_out = g.ff.output(*streams, filename=f"file:{output}", extra_options=_options(tail))
    main = _head(g.ff, main_out).global_args(progress="pipe:1", stats=False).compile()
    commands = [tuple(main)]
    for i in generated:
        wav = workdir / f"speech-{i}.wav"
        sub = _TypedGraph(spec, facts, paths)
        upto, _ = _walk(sub, False, workdir, {}, stop_at=i)
        audio = upto.audio.aresample(sample_rate=planner.STT_SAMPLE_RATE).aformat(channel_layouts="mono")
        extract = g.ff.output(audio, filename=f"file:{wav}", extra_options={"vn": True, "c:a": "pcm_s16le", "f": "wav"})
        commands.append(tuple(_head(g.ff, extract).compile()))
    return tuple(commands)


# ---------------------------------------------------------------------------------------------------------------
# Timing and checking


def best_of(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def check(workdir: Path) -> list[tuple[str, bool]]:
    """A few plans rendered both ways on real media: the frame at 1 s must be the same (framemd5)."""
    from devkit import mediagen as mg
    from videojob.transcoder.probe import probe

    inputs = {
        "a": mg.video("mp4"),
        "b": mg.video("avi", size=(160, 120), fps=15, duration=3),
        "music": mg.audio("mp3", duration=5),
    }
    text = workdir / "text-1.txt"
    text.write_text("it's 50%: [x]; {y}", encoding="utf-8")
    cases = {
        "concat, then text with box and border": [
            {"concat": {"inputs": ["a", "b"]}},
            {"text": {"text": "-", "box": True, "border": 2, "start": 0.5, "end": 1.5, "size": 24}},
        ],
        "audio mix, then pip during a window": [
            {"audio": {"input": "music", "offset": 0.5, "volume": 0.3}},
            {"pip": {"input": "b", "scale": 0.5, "start": 0.5, "end": 1.8, "position": "bottom-left"}},
        ],
    }
    results = []
    for name, operations in cases.items():
        spec = VideoJobSpec.model_validate(
            {
                "inputs": [{"name": n, "uri": f"s3://bucket/{n}"} for n in inputs],
                "operations": operations,
                "output": {"uri": "s3://bucket/out/", "video": {"resolution": "320x240"}},
            }
        )
        facts = {n: probe(p) for n, p in inputs.items()}
        hashes = []
        for argv in (
            planner.plan(spec, facts, inputs, "cpu", workdir).main,
            plan_typed(spec, facts, inputs, "cpu", workdir)[0],
        ):
            graph_end = argv.index("-filter_complex") + 2
            maps = [x for i, a in enumerate(argv) if a == "-map" for x in ("-map", argv[i + 1])]  # video first
            run = [*argv[:graph_end], *maps, "-ss", "1", "-frames:v", "1", "-f", "framemd5", "-"]
            done = subprocess.run(run, capture_output=True, text=True, check=True)
            hashes.append(next(line.rsplit(",", 1)[1] for line in done.stdout.splitlines() if line.startswith("0,")))
        results.append((name, hashes[0] == hashes[1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed passes over the table (best and median shown)")
    parser.add_argument("--check", action="store_true", help="render a few plans both ways and compare frames")
    args = parser.parse_args()
    table = record_table()
    print(f"\nplanner test table: {len(table)} plan() calls")

    def ours() -> None:
        for a, kw in table:
            planner.plan(*a, **kw)

    rows = [("ours (planner.plan)", best_of(ours, args.repeat))]
    try:
        _typed()
    except ImportError as e:
        print(f"typed-ffmpeg not importable ({e}): see this file's docstring to compare")
    else:

        def typed() -> None:
            for a, kw in table:
                plan_typed(*a, **kw)

        rows.append(("typed-ffmpeg (plan_typed)", best_of(typed, args.repeat)))
    base = min(rows[0][1])
    print(f"{'':28} {'best ms':>9} {'median ms':>10} {'per plan us':>12} {'ratio':>6}")
    for name, times in rows:
        best = min(times)
        print(
            f"{name:28} {best * 1e3:9.1f} {statistics.median(times) * 1e3:10.1f} "
            f"{best / len(table) * 1e6:12.0f} {best / base:6.1f}x"
        )
    if args.check and len(rows) > 1:
        with tempfile.TemporaryDirectory() as tmp:
            for name, same in check(Path(tmp)):
                print(f"check: {name}: {'same frame' if same else 'DIFFERENT frame'}")


if __name__ == "__main__":
    main()
