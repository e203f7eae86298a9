"""VideoJob spec + probed input facts → FFmpeg argument lists. Pure: no files, no processes, no clock.

One FFmpeg run does the whole chain with a single `-filter_complex` graph:

    inputs (trimmed with -ss/-t, demuxer forced; only the `file` protocol, or `http,tcp` to the runner's
            loopback server for a streamed input)
      → concat (each part scaled/padded to the first's size, its frame rate, sample rate and channel layout)
      → audio (replace or mix: volume, fades, adelay offset)
      → text (drawtext reading a file we write: user text never enters the graph)
      → subtitles (libass on a file we checked and rewrote)
      → pip (overlay, scaled relative to the frame width, in a corner, during a time window)
      → output size / fps → encoders of the chosen hardware → muxer

User-controlled strings reach the graph only as file paths we chose (escaped with `escape.filter_value` all the
same), validated tokens (numbers, colours as 0xRRGGBBAA, font names through fontconfig escaping). The plan says
which text files to write first (`files`), which speech to transcribe first (`transcriptions`) and which
subtitle files to emit as artifacts (`emitted`); the runner does those, then runs `main`, then `thumbnail`.
An MP4 or MOV result is written with its index at the end (`index_last`): the runner moves it to the front while
uploading (`mp4.faststart_layout`), so that the samples upload while FFmpeg still writes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from videojob.api.conditions import Reason
from videojob.api.models import (
    Audio,
    AudioCodec,
    AudioMode,
    Concat,
    Container,
    Corner,
    Input,
    PictureInPicture,
    Position,
    Subtitles,
    SubtitleStyle,
    Text,
    VideoCodec,
    VideoJobSpec,
)
from videojob.errors import BadInput
from videojob.transcoder import encoders
from videojob.transcoder.escape import ass_color, ffmpeg_color, filter_value, fontconfig_name, number
from videojob.transcoder.probe import MediaFacts, Streamed, source_args

FFMPEG = "ffmpeg"
MARGIN = 16  # pixels between text and the frame edge
DEFAULT_FPS = Fraction(25)
DEFAULT_SAMPLE_RATE = 48000
DEFAULT_LAYOUT = "stereo"
STT_SAMPLE_RATE = 16000  # what Whisper works at

# Demuxers an input may be read with, by the format names ffprobe reports. Anything else (hls, concat, image2,
# tty, ...) can make FFmpeg open further files, and is refused.
DEMUXERS = {
    "mov": "mov", "mp4": "mov", "m4a": "mov",
    "matroska": "matroska", "webm": "matroska",
    "avi": "avi",
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
    "ogg": "ogg",
    "flac": "flac",
}
# Codecs a copied stream may have in each container (WebM's rule: VP8/VP9/AV1, Vorbis/Opus), and codecs (or codec
# name prefixes) FFmpeg 5.1's muxers refuse; Matroska holds anything.
COPY_ALLOWED: dict[tuple[Container, str], frozenset[str]] = {
    (Container.WEBM, "video"): frozenset({"vp8", "vp9", "av1"}),
    (Container.WEBM, "audio"): frozenset({"opus", "vorbis"}),
}
COPY_REFUSED: dict[tuple[Container, str], tuple[str, ...]] = {
    (Container.MP4, "audio"): ("pcm_",),
    (Container.MOV, "video"): ("vp8", "vp9"),
    (Container.MOV, "audio"): ("opus", "vorbis"),
}
_LAYOUT = re.compile(r"^[a-z0-9.()+]{1,32}$")


@dataclass(frozen=True)
class TextFile:
    """A file the runner writes before FFmpeg runs (drawtext's `textfile=`)."""

    path: Path
    text: str


@dataclass(frozen=True)
class Transcription:
    """Speech to transcribe before the main run: `extract` writes the stream's audio (as it is at that point of
    the chain) to `wav`; the runner transcribes it and writes the cues to `srt`, which the main graph burns."""

    op_index: int
    extract: tuple[str, ...]
    wav: Path
    srt: Path
    language: str
    model: str


@dataclass(frozen=True)
class EmittedSubtitles:
    """A subtitle artifact: the cues of operation `op_index` (its input, or its transcription) as `fmt`."""

    op_index: int
    fmt: str  # "srt" | "vtt"
    filename: str
    source_input: str | None  # the subtitle input's name, or None when generated


@dataclass(frozen=True)
class Plan:
    main: tuple[str, ...]
    output: Path
    output_filename: str
    content_type: str
    duration: float  # expected seconds of the result: the base of the progress percentage
    hardware: encoders.ResolvedHardware
    files: tuple[TextFile, ...] = ()
    transcriptions: tuple[Transcription, ...] = ()
    emitted: tuple[EmittedSubtitles, ...] = ()
    thumbnail: tuple[str, ...] | None = None
    thumbnail_path: Path | None = None
    filter_graph: str | None = None
    index_last: bool = False  # an MP4/MOV written with moov at the end: the runner moves it to the front


# ---------------------------------------------------------------------------------------------------------------
# Small pure helpers


def demuxer_for(facts: MediaFacts, name: str) -> str:
    for fmt in facts.formats:
        if fmt in DEMUXERS:
            return DEMUXERS[fmt]
    raise BadInput(
        f"input {name}: container {facts.format_name or 'unknown'!r} is not accepted "
        "(MP4, MOV, MKV, WebM, AVI, MP3, AAC, WAV, Ogg, FLAC)",
        reason=Reason.UNSUPPORTED_CONTAINER,
    )


def trimmed_duration(facts: MediaFacts, spec_input: Input) -> float:
    """Seconds of an input that the job uses (after its trim)."""
    if facts.duration is None:
        raise BadInput(f"input {spec_input.name}: its duration is unknown", reason=Reason.UNREADABLE_MEDIA)
    start = spec_input.trim.start if spec_input.trim else 0.0
    available = facts.duration - start
    if available <= 0:
        raise BadInput(
            f"input {spec_input.name}: trim start {number(start)} s is past its end ({number(facts.duration)} s)",
            reason=Reason.BAD_TRIM,
        )
    if facts.has_video and facts.fps and available < 1 / facts.fps - 1e-6:
        # FFmpeg's accurate seek drops a frame that starts before the trim start: nothing of the picture is left
        raise BadInput(
            f"input {spec_input.name}: trim start {number(start)} s leaves less than one frame "
            f"({number(1 / facts.fps)} s) before its end ({number(facts.duration)} s)",
            reason=Reason.BAD_TRIM,
        )
    if spec_input.trim and spec_input.trim.duration is not None:
        return min(available, spec_input.trim.duration)
    return available


def check_copy_fits_container(spec: VideoJobSpec, facts: Mapping[str, MediaFacts]) -> None:
    """A copied stream keeps its codec: refuse, naming the field, a codec the output container cannot hold (the
    muxer would fail after the inputs were fetched, with a message about "incorrect codec parameters")."""
    out = spec.output
    first = facts[spec.inputs[0].name]
    container = Container(out.container)
    copied = []
    if out.video.codec == VideoCodec.COPY and first.video_codec:
        copied.append(("video", first.video_codec))
    if out.audio.codec == AudioCodec.COPY and first.has_audio and first.audio_codec:
        copied.append(("audio", first.audio_codec))
    for kind, codec in copied:
        allowed = COPY_ALLOWED.get((container, kind))
        refused = COPY_REFUSED.get((container, kind), ())
        if (allowed is not None and codec not in allowed) or any(codec.startswith(r) for r in refused):
            raise BadInput(
                f"output.{kind}.codec copy: input {spec.inputs[0].name}'s {kind} is {codec}, which a "
                f"{container.value} file cannot hold; re-encode it (choose a codec) or pick another container",
                reason=Reason.CODEC_NOT_SUPPORTED_BY_CONTAINER,
            )


def fps_text(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}" if fps.denominator != 1 else str(fps.numerator)


def to_fraction(fps: float | None) -> Fraction:
    if not fps or fps <= 0:
        return DEFAULT_FPS
    return Fraction(fps).limit_denominator(1001)


def layout_of(facts: MediaFacts) -> str:
    if facts.channel_layout and _LAYOUT.match(facts.channel_layout):
        return facts.channel_layout
    return "mono" if facts.channels == 1 else DEFAULT_LAYOUT


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def even_floor(value: int) -> int:
    """The even size at most `value`: 4:2:0 video (and libx264/libx265) has no odd widths or heights."""
    return max(2, value - value % 2)


def enable_window(start: float, end: float | None) -> str | None:
    """drawtext/overlay `enable=` expression (escaped), or None when always on."""
    if end is not None:
        return filter_value(f"between(t,{number(start)},{number(end)})")
    if start > 0:
        return filter_value(f"gte(t,{number(start)})")
    return None


def text_position(position: Position | str, offset_x: int, offset_y: int) -> tuple[str, str]:
    """drawtext x/y expressions for a position preset plus pixel offsets (tokens: no escaping needed)."""
    vertical, _, horizontal = Position(position).value.partition("-")
    if Position(position) == Position.CENTER:
        vertical, horizontal = "center", "center"
    x = {"left": f"{MARGIN}", "center": "(w-text_w)/2", "right": f"w-text_w-{MARGIN}"}[horizontal]
    y = {"top": f"{MARGIN}", "center": "(h-text_h)/2", "bottom": f"h-text_h-{MARGIN}"}[vertical]
    return f"{x}{offset_x:+d}", f"{y}{offset_y:+d}"


def pip_position(corner: Corner | str, margin: int) -> tuple[str, str]:
    vertical, _, horizontal = Corner(corner).value.partition("-")
    x = f"{margin}" if horizontal == "left" else f"main_w-overlay_w-{margin}"
    y = f"{margin}" if vertical == "top" else f"main_h-overlay_h-{margin}"
    return x, y


def subtitle_force_style(style: SubtitleStyle | None) -> str | None:
    """libass `force_style`: only validated tokens (integers, &HAABBGGRR colours, a checked family name)."""
    if style is None:
        return None
    parts: list[str] = []
    if style.font is not None:
        parts.append(f"Fontname={style.font}")  # pattern [A-Za-z0-9 _-]: no ',' or '=' can reach libass
    if style.size is not None:
        parts.append(f"Fontsize={style.size}")
    if style.color is not None:
        parts.append(f"PrimaryColour={ass_color(style.color)}")
    if style.outline is not None:
        parts.append(f"BorderStyle=1,Outline={style.outline}")
    if style.outline_color is not None:
        parts.append(f"OutlineColour={ass_color(style.outline_color)}")
    return ",".join(parts) or None


def ffmpeg_head() -> list[str]:
    return [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]


# ---------------------------------------------------------------------------------------------------------------
# The graph


@dataclass
class _Stream:
    """Where the chain stands: the current video and audio pads and what they carry."""

    video: str
    audio: str | None
    width: int
    height: int
    fps: Fraction
    sample_rate: int
    layout: str
    duration: float


@dataclass
class _Graph:
    spec: VideoJobSpec
    facts: Mapping[str, MediaFacts]
    paths: Mapping[str, Path | Streamed]
    input_args: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    n_inputs: int = 0
    n_labels: int = 0

    def label(self, prefix: str) -> str:
        self.n_labels += 1
        return f"{prefix}{self.n_labels}"

    def add(self, sources: list[str], filters: str, out: str) -> str:
        self.chains.append("".join(f"[{s}]" for s in sources) + filters + f"[{out}]")
        return out

    def open_input(self, name: str) -> int:
        """Add `-i` for an input (once per use: each use decodes independently) and return its index."""
        spec_input = self.spec.input(name)
        facts = self.facts[name]
        options, url = source_args(self.paths[name])
        args = [*options, "-f", demuxer_for(facts, name)]
        if spec_input.trim is not None:
            if spec_input.trim.start > 0:
                args += ["-ss", number(spec_input.trim.start)]
            if spec_input.trim.duration is not None:
                args += ["-t", number(spec_input.trim.duration)]
        args += ["-i", url]
        self.input_args += args
        self.n_inputs += 1
        return self.n_inputs - 1

    def source(self, name: str, want_video: bool, want_audio: bool = True) -> tuple[str | None, str | None, float]:
        """Open an input and start its chains at time 0: (video pad, audio pad, seconds used).

        A stream that is not wanted gets no chain: an unconnected chain makes FFmpeg refuse the whole graph."""
        facts = self.facts[name]
        duration = trimmed_duration(facts, self.spec.input(name))
        index = self.open_input(name)
        video = self.add([f"{index}:v:0"], "setpts=PTS-STARTPTS", self.label("v")) if want_video and facts.has_video \
            else None
        audio = self.add([f"{index}:a:0"], "asetpts=PTS-STARTPTS", self.label("a")) if want_audio and facts.has_audio \
            else None
        return video, audio, duration


def _audio_format(sample_rate: int, layout: str) -> str:
    return f"aformat=sample_fmts=fltp:sample_rates={sample_rate}:channel_layouts={filter_value(layout)}"


def _first_audio(spec: VideoJobSpec, facts: Mapping[str, MediaFacts], names: list[str]) -> tuple[int, str]:
    for name in names:
        f = facts[name]
        if f.has_audio and f.sample_rate:
            return f.sample_rate, layout_of(f)
    return DEFAULT_SAMPLE_RATE, DEFAULT_LAYOUT


def _base(graph: _Graph, want_video: bool, want_audio: bool = True) -> _Stream:
    spec, facts = graph.spec, graph.facts
    ops = spec.operations
    if ops and isinstance(ops[0].body, Concat):
        return _concat(graph, ops[0].body, want_video)
    name = spec.inputs[0].name
    f = facts[name]
    if not f.has_video:
        raise BadInput(f"input {name}: the first input has no video stream", reason=Reason.NO_VIDEO)
    video, audio, duration = graph.source(name, want_video, want_audio)
    sample_rate, layout = _first_audio(spec, facts, [name])
    return _Stream(video or "", audio, f.width or 0, f.height or 0, to_fraction(f.fps), sample_rate, layout, duration)


def _concat(graph: _Graph, op: Concat, want_video: bool) -> _Stream:
    facts = graph.facts
    first = facts[op.inputs[0]]
    for name in op.inputs:
        if not facts[name].has_video:
            raise BadInput(f"input {name}: concat needs video, and it has no video stream", reason=Reason.NO_VIDEO)
    width, height, fps = even_floor(first.width or 0), even_floor(first.height or 0), to_fraction(first.fps)
    sample_rate, layout = _first_audio(graph.spec, facts, list(op.inputs))
    with_audio = any(facts[n].has_audio for n in op.inputs)
    pads: list[str] = []
    total = 0.0
    for name in op.inputs:
        video, audio, duration = graph.source(name, want_video)
        total += duration
        d = number(duration)
        if want_video:
            assert video is not None
            pads.append(graph.add(
                [video],
                f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps_text(fps)},format=yuv420p,"
                f"trim=duration={d},setpts=PTS-STARTPTS",
                graph.label("cv"),
            ))
        if with_audio:
            if audio is None:  # a silent part still needs an audio segment for concat
                pads.append(graph.add(
                    [], f"anullsrc=r={sample_rate}:cl={filter_value(layout)},atrim=duration={d}", graph.label("ca")
                ))
            else:
                pads.append(graph.add(
                    [audio],
                    f"{_audio_format(sample_rate, layout)},atrim=duration={d},apad=whole_dur={d},asetpts=PTS-STARTPTS",
                    graph.label("ca"),
                ))
    v, a = (1 if want_video else 0), (1 if with_audio else 0)
    outs = ([graph.label("v")] if want_video else []) + ([graph.label("a")] if with_audio else [])
    graph.chains.append("".join(f"[{p}]" for p in pads) + f"concat=n={len(op.inputs)}:v={v}:a={a}"
                        + "".join(f"[{o}]" for o in outs))
    video_out = outs[0] if want_video else ""
    audio_out = outs[-1] if with_audio else None
    return _Stream(video_out, audio_out, width, height, fps, sample_rate, layout, total)


def _audio(graph: _Graph, stream: _Stream, op: Audio) -> None:
    facts = graph.facts[op.input]
    if not facts.has_audio:
        raise BadInput(f"input {op.input}: audio operation needs an audio stream, and it has none",
                       reason=Reason.NO_AUDIO)
    if op.offset >= stream.duration:
        raise BadInput(
            f"audio offset {number(op.offset)} s is at or past the end of the video ({number(stream.duration)} s)",
            reason=Reason.BAD_OFFSET,
        )
    _video, audio, length = graph.source(op.input, want_video=False)
    assert audio is not None
    heard = min(length, stream.duration - op.offset)  # seconds of the added audio that end up in the result
    filters = [_audio_format(stream.sample_rate, stream.layout), f"volume={number(op.volume)}"]
    if op.fade_in > 0:
        filters.append(f"afade=t=in:st=0:d={number(min(op.fade_in, heard))}")
    if op.fade_out > 0:
        fade = min(op.fade_out, heard)
        filters.append(f"afade=t=out:st={number(max(0.0, heard - fade))}:d={number(fade)}")
    filters.append(f"atrim=duration={number(heard)}")
    if op.offset > 0:
        filters.append(f"adelay=delays={round(op.offset * 1000)}:all=1")
    duration = number(stream.duration)
    filters.append(f"apad=whole_dur={duration},atrim=duration={duration}")
    added = graph.add([audio], ",".join(filters), graph.label("aa"))
    if op.mode == AudioMode.REPLACE or stream.audio is None:
        if stream.audio is not None:  # every pad of the graph must lead somewhere: the old sound ends here
            graph.chains.append(f"[{stream.audio}]anullsink")
        stream.audio = added
    else:
        # normalize=0: the original keeps its level, the added audio comes on top (amix halves both otherwise)
        stream.audio = graph.add(
            [stream.audio, added], "amix=inputs=2:duration=first:dropout_transition=0:normalize=0", graph.label("a")
        )


def _text(graph: _Graph, stream: _Stream, op: Text, text_path: Path) -> None:
    x, y = text_position(op.position, op.offset_x, op.offset_y)
    options = [
        f"textfile={filter_value(str(text_path))}",
        "expansion=none",  # %{...} in the text stays literal
        f"font={filter_value(fontconfig_name(op.font))}",
        f"fontsize={op.size}",
        f"fontcolor={ffmpeg_color(op.color)}",
        f"x={x}",
        f"y={y}",
    ]
    if op.box:
        options += ["box=1", f"boxcolor={ffmpeg_color(op.box_color)}", f"boxborderw={max(4, op.size // 4)}"]
    if op.border > 0:
        options += [f"borderw={op.border}", f"bordercolor={ffmpeg_color(op.border_color)}"]
    enable = enable_window(op.start, op.end)
    if enable:
        options.append(f"enable={enable}")
    stream.video = graph.add([stream.video], "drawtext=" + ":".join(options), graph.label("v"))


def _subtitles(graph: _Graph, stream: _Stream, op: Subtitles, path: Path) -> None:
    options = [f"filename={filter_value(str(path))}"]
    style = subtitle_force_style(op.style)
    if style:
        options.append(f"force_style={filter_value(style)}")
    stream.video = graph.add([stream.video], "subtitles=" + ":".join(options), graph.label("v"))


def _pip(graph: _Graph, stream: _Stream, op: PictureInPicture) -> None:
    facts = graph.facts[op.input]
    if not facts.has_video:
        raise BadInput(f"input {op.input}: picture-in-picture needs video, and it has none", reason=Reason.NO_VIDEO)
    index = graph.open_input(op.input)
    width = even(stream.width * op.scale)
    shift = f"+{number(op.start)}/TB" if op.start > 0 else ""
    small = graph.add(
        [f"{index}:v:0"], f"setpts=PTS-STARTPTS{shift},scale={width}:-2,setsar=1,format=yuv420p", graph.label("p")
    )
    x, y = pip_position(op.position, op.margin)
    options = [f"x={x}", f"y={y}", "eof_action=pass", "format=auto"]
    enable = enable_window(op.start, op.end)
    if enable:
        options.append(f"enable={enable}")
    stream.video = graph.add([stream.video, small], "overlay=" + ":".join(options), graph.label("v"))


def _finish_video(graph: _Graph, stream: _Stream, spec: VideoJobSpec) -> str:
    video = spec.output.video
    filters: list[str] = []
    size = video.size
    if size is not None:
        w, h = size
        filters.append(f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1")
    elif stream.width % 2 or stream.height % 2:
        # an odd-sized input keeps its size otherwise, and yuv420p encoders refuse it: drop the last column/row
        filters.append(f"crop={even_floor(stream.width)}:{even_floor(stream.height)}:0:0")
    if video.fps is not None:
        filters.append(f"fps={fps_text(to_fraction(video.fps))}")
    filters.append("format=yuv420p")  # what every player and every encoder here takes
    return graph.add([stream.video], ",".join(filters), "vout")


# ---------------------------------------------------------------------------------------------------------------
# Plans


def _walk(
    graph: _Graph,
    want_video: bool,
    workdir: Path,
    subtitle_paths: Mapping[str, Path],
    stop_at: int | None = None,
    want_audio: bool = True,
) -> tuple[_Stream, list[TextFile], list[int]]:
    """Build the chain of operations [0, stop_at). Returns the stream, text files, and generated-subtitle ops."""
    spec = graph.spec
    stream = _base(graph, want_video, want_audio)
    files: list[TextFile] = []
    generated: list[int] = []
    ops = spec.operations if stop_at is None else spec.operations[:stop_at]
    for index, op in enumerate(ops):
        body = op.body
        if isinstance(body, Concat):
            continue  # the base
        if isinstance(body, (Text, PictureInPicture)) and body.start >= stream.duration:
            # it would never be on screen: a job that silently leaves it out is a wrong result
            kind = "text" if isinstance(body, Text) else "pip"
            raise BadInput(
                f"operations[{index}].{kind}.start {number(body.start)} s is at or past the end of the video "
                f"({number(stream.duration)} s)",
                reason=Reason.BAD_TIMING,
            )
        if isinstance(body, Subtitles) and body.generate is not None:
            generated.append(index)
        if isinstance(body, Audio):
            _audio(graph, stream, body)
        elif not want_video:
            continue
        elif isinstance(body, Text):
            path = workdir / f"text-{index}.txt"
            files.append(TextFile(path, body.text.replace("\r\n", "\n").replace("\r", "\n")))
            _text(graph, stream, body, path)
        elif isinstance(body, Subtitles):
            if body.generate is not None:
                path = generated_srt(workdir, index)
            else:
                assert body.input is not None
                path = subtitle_paths[body.input]
            if body.burn:
                _subtitles(graph, stream, body, path)
        elif isinstance(body, PictureInPicture):
            _pip(graph, stream, body)
    return stream, files, generated


def generated_srt(workdir: Path, op_index: int) -> Path:
    return workdir / f"generated-{op_index}.srt"


def subtitle_inputs(spec: VideoJobSpec) -> list[str]:
    """Inputs used only as subtitle files: the runner checks and rewrites them instead of probing them."""
    names: list[str] = []
    for op in spec.operations:
        if isinstance(op.body, Subtitles) and op.body.input and op.body.input not in names:
            names.append(op.body.input)
    return names


def _extract_audio(
    spec: VideoJobSpec, facts: Mapping[str, MediaFacts], paths: Mapping[str, Path | Streamed], op_index: int,
    wav: Path,
) -> tuple[str, ...]:
    graph = _Graph(spec, facts, paths)
    stream, _, _ = _walk(graph, want_video=False, workdir=wav.parent, subtitle_paths={}, stop_at=op_index)
    if stream.audio is None:
        raise BadInput(f"operations[{op_index}]: there is no audio to transcribe at this point", reason=Reason.NO_AUDIO)
    graph.add([stream.audio], f"aresample={STT_SAMPLE_RATE},aformat=channel_layouts=mono", "aout")
    return tuple([
        *ffmpeg_head(), *graph.input_args, "-filter_complex", ";".join(graph.chains),
        "-map", "[aout]", "-vn", "-c:a", "pcm_s16le", "-f", "wav", f"file:{wav}",
    ])


def plan(
    spec: VideoJobSpec,
    facts: Mapping[str, MediaFacts],
    paths: Mapping[str, Path | Streamed],
    hardware: str,
    workdir: Path,
    subtitle_paths: Mapping[str, Path] | None = None,
) -> Plan:
    """The FFmpeg runs for a job.

    `facts` and `paths` are keyed by input name and cover every input except those used only as subtitle files
    (a path is a local file, or an input the runner streams);
    `subtitle_paths` gives, for those, the checked copies the runner wrote (see `subtitle_files.prepare`).
    `hardware` is cpu, nvidia or auto. Raises BadInput / Unsupported for jobs the media or the node cannot do.
    """
    subtitle_paths = subtitle_paths or {}
    out = spec.output
    resolved = encoders.resolve_hardware(str(hardware), out.video.codec)
    video_copy = out.video.codec == VideoCodec.COPY
    audio_copy = out.audio.codec == AudioCodec.COPY

    graph = _Graph(spec, facts, paths)
    # A copied audio track is mapped straight from the input (the models forbid audio operations with it).
    stream, files, generated = _walk(graph, not video_copy, workdir, subtitle_paths, want_audio=not audio_copy)
    check_copy_fits_container(spec, facts)
    maps: list[str] = []
    if not video_copy:
        maps += ["-map", f"[{_finish_video(graph, stream, spec)}]"]
    else:
        maps += ["-map", "0:v:0"]
    if audio_copy:
        maps += ["-map", "0:a:0?"]
    elif stream.audio is not None:
        maps += ["-map", f"[{graph.add([stream.audio], 'anull', 'aout')}]"]
    filter_graph = ";".join(graph.chains)  # with a copied video, only audio chains were built

    extension = encoders.EXTENSIONS[out.container]
    output_filename = f"{out.name}.{extension}"
    output = workdir / "out" / output_filename
    argv: list[str] = [*ffmpeg_head(), *graph.input_args]
    if filter_graph:
        argv += ["-filter_complex", filter_graph]
    argv += maps
    argv += encoders.video_options(out.video, resolved, out.container)
    if stream.audio is not None or audio_copy:
        argv += encoders.audio_options(out.audio)
    argv += ["-t", number(stream.duration), "-map_metadata", "-1", "-sn", "-dn"]
    index_last = Container(out.container) in (Container.MP4, Container.MOV)
    argv += encoders.muxer_options(out.container, faststart=not index_last)
    argv += ["-progress", "pipe:1", "-nostats", f"file:{output}"]

    transcriptions = tuple(
        Transcription(
            op_index=i,
            extract=_extract_audio(spec, facts, paths, i, workdir / f"speech-{i}.wav"),
            wav=workdir / f"speech-{i}.wav",
            srt=generated_srt(workdir, i),
            language=spec.operations[i].subtitles.generate.language,  # type: ignore[union-attr]
            model=spec.operations[i].subtitles.generate.model,  # type: ignore[union-attr]
        )
        for i in generated
    )
    emitted = _emitted(spec)

    thumbnail = thumbnail_path = None
    if out.thumbnail is not None:
        thumbnail_path = workdir / "out" / f"{out.name}.jpg"
        # the last frame starts one frame interval before the end: a seek past its start finds no frame at all
        frame = 1 / float(to_fraction(out.video.fps) if out.video.fps else stream.fps)
        at = min(out.thumbnail.at, max(0.0, stream.duration - max(0.1, frame)))
        scale = ["-vf", f"scale={out.thumbnail.width}:-2"] if out.thumbnail.width else []
        thumbnail = (
            *ffmpeg_head(), "-protocol_whitelist", "file", "-f", "mov" if extension in ("mp4", "mov") else "matroska",
            "-ss", number(at), "-i", f"file:{output}", "-frames:v", "1", *scale, "-q:v", "3",
            "-f", "image2", "-update", "1", f"file:{thumbnail_path}",
        )
    return Plan(
        main=tuple(argv),
        output=output,
        output_filename=output_filename,
        content_type=encoders.CONTENT_TYPES[out.container],
        duration=stream.duration,
        hardware=resolved,
        files=tuple(files),
        transcriptions=transcriptions,
        emitted=emitted,
        thumbnail=thumbnail,
        thumbnail_path=thumbnail_path,
        filter_graph=filter_graph or None,
        index_last=index_last,
    )


def _emitted(spec: VideoJobSpec) -> tuple[EmittedSubtitles, ...]:
    emitted: list[EmittedSubtitles] = []
    counts: dict[str, int] = {}
    for index, op in enumerate(spec.operations):
        body = op.body
        if not isinstance(body, Subtitles):
            continue
        for emit in body.emit:
            fmt = str(emit)
            counts[fmt] = counts.get(fmt, 0) + 1
            suffix = "" if counts[fmt] == 1 else f"-{counts[fmt]}"
            emitted.append(EmittedSubtitles(index, fmt, f"{spec.output.name}{suffix}.{fmt}", body.input))
    return tuple(emitted)
