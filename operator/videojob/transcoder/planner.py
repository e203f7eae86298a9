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

import math
import re
from collections.abc import Mapping, Sequence
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
    "mov": "mov",
    "mp4": "mov",
    "m4a": "mov",
    "matroska": "matroska",
    "webm": "matroska",
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


@dataclass(frozen=True)
class Segment:
    """One part of a chunked encode: `duration` seconds of the result from `start` (seconds on the result's timeline,
    which is the first input's timeline after its trim). Boundaries lie on the result's frame grid."""

    index: int
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


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


def grid_seek(at: float, fps: Fraction) -> tuple[float, float]:
    """(where to seek, the time of the first frame kept) to start at the frame on screen at `at` seconds, on a
    grid of `fps` frames from 0: half a frame early, so that rounding never drops that frame or keeps the one
    before it (FFmpeg's accurate seek keeps the frames from the seek point on)."""
    if at <= 0:
        return 0.0, 0.0
    frame = math.floor(Fraction(at) * fps + Fraction(1, 1000))  # `at` may be a boundary rounded a bit low
    first = frame / fps
    return float(max(Fraction(0), first - 1 / (2 * fps))), float(first)


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
    # A chunked encode's segment: the graph runs on the source's absolute timestamps, for this window only
    window: Segment | None = None
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

    def open_input(self, name: str, seek: float = 0.0, limit: float | None = None) -> int:
        """Add `-i` for an input (once per use: each use decodes independently) and return its index. `seek`
        seconds into the used part (after the trim), for at most `limit` seconds: a segment's window."""
        spec_input = self.spec.input(name)
        facts = self.facts[name]
        options, url = source_args(self.paths[name])
        args = [*options, "-f", demuxer_for(facts, name)]
        trim_start = spec_input.trim.start if spec_input.trim is not None else 0.0
        length = spec_input.trim.duration if spec_input.trim is not None else None
        if length is not None:
            length -= seek
        if limit is not None:
            length = limit if length is None else min(length, limit)
        if trim_start + seek > 0:
            args += ["-ss", number(trim_start + seek)]
        if length is not None:
            args += ["-t", number(length)]
        args += ["-i", url]
        self.input_args += args
        self.n_inputs += 1
        return self.n_inputs - 1

    def source(
        self, name: str, want_video: bool, want_audio: bool = True, window: Segment | None = None
    ) -> tuple[str | None, str | None, float]:
        """Open an input and start its chains at time 0, or with a `window` at the window's start (the timestamps
        a single pass would give those frames): (video pad, audio pad, seconds the whole job uses of it).

        A stream that is not wanted gets no chain: an unconnected chain makes FFmpeg refuse the whole graph."""
        facts = self.facts[name]
        duration = trimmed_duration(facts, self.spec.input(name))
        if window is None or (window.start <= 0 and window.end >= duration):
            index, shift = self.open_input(name), ""
        else:
            fps = to_fraction(facts.fps)
            seek, first = grid_seek(window.start, fps)
            limit = grid_seek(window.end, fps)[0] - seek if window.end < duration - 1e-6 else None
            index, shift = self.open_input(name, seek, limit), f"+{number(first)}/TB" if first > 0 else ""
        video = (
            self.add([f"{index}:v:0"], f"setpts=PTS-STARTPTS{shift}", self.label("v"))
            if want_video and facts.has_video
            else None
        )
        audio = (
            self.add([f"{index}:a:0"], "asetpts=PTS-STARTPTS", self.label("a"))
            if want_audio and facts.has_audio
            else None
        )
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
    video, audio, duration = graph.source(name, want_video, want_audio, graph.window)
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
            pads.append(
                graph.add(
                    [video],
                    f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                    f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps_text(fps)},format=yuv420p,"
                    f"trim=duration={d},setpts=PTS-STARTPTS",
                    graph.label("cv"),
                )
            )
        if with_audio:
            if audio is None:  # a silent part still needs an audio segment for concat
                pads.append(
                    graph.add(
                        [], f"anullsrc=r={sample_rate}:cl={filter_value(layout)},atrim=duration={d}", graph.label("ca")
                    )
                )
            else:
                pads.append(
                    graph.add(
                        [audio],
                        f"{_audio_format(sample_rate, layout)},atrim=duration={d},apad=whole_dur={d},"
                        "asetpts=PTS-STARTPTS",
                        graph.label("ca"),
                    )
                )
    v, a = (1 if want_video else 0), (1 if with_audio else 0)
    outs = ([graph.label("v")] if want_video else []) + ([graph.label("a")] if with_audio else [])
    graph.chains.append(
        "".join(f"[{p}]" for p in pads) + f"concat=n={len(op.inputs)}:v={v}:a={a}" + "".join(f"[{o}]" for o in outs)
    )
    video_out = outs[0] if want_video else ""
    audio_out = outs[-1] if with_audio else None
    return _Stream(video_out, audio_out, width, height, fps, sample_rate, layout, total)


def _audio(graph: _Graph, stream: _Stream, op: Audio) -> None:
    facts = graph.facts[op.input]
    if not facts.has_audio:
        raise BadInput(
            f"input {op.input}: audio operation needs an audio stream, and it has none", reason=Reason.NO_AUDIO
        )
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
    # In a segment from S, the overlay starts with the frame a single pass shows at S
    seek = first = 0.0
    if graph.window is not None and graph.window.start > op.start:
        seek, first = grid_seek(graph.window.start - op.start, to_fraction(facts.fps))
    index = graph.open_input(op.input, seek)
    width = even(stream.width * op.scale)
    shift = f"+{number(op.start + first)}/TB" if op.start + first > 0 else ""
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
    if graph.window is not None:
        filters.append("setpts=PTS-STARTPTS")  # a segment file starts at 0; the join puts it in its place
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
            if graph.window is None:  # a segment has no sound: the join encodes it once for the whole result
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
    spec: VideoJobSpec,
    facts: Mapping[str, MediaFacts],
    paths: Mapping[str, Path | Streamed],
    op_index: int,
    wav: Path,
) -> tuple[str, ...]:
    graph = _Graph(spec, facts, paths)
    stream, _, _ = _walk(graph, want_video=False, workdir=wav.parent, subtitle_paths={}, stop_at=op_index)
    if stream.audio is None:
        raise BadInput(f"operations[{op_index}]: there is no audio to transcribe at this point", reason=Reason.NO_AUDIO)
    graph.add([stream.audio], f"aresample={STT_SAMPLE_RATE},aformat=channel_layouts=mono", "aout")
    return tuple(
        [
            *ffmpeg_head(),
            *graph.input_args,
            "-filter_complex",
            ";".join(graph.chains),
            "-map",
            "[aout]",
            "-vn",
            "-c:a",
            "pcm_s16le",
            "-f",
            "wav",
            f"file:{wav}",
        ]
    )


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

    thumbnail, thumbnail_path = _thumbnail(spec, stream, output, workdir)
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


def _thumbnail(
    spec: VideoJobSpec, stream: _Stream, output: Path, workdir: Path
) -> tuple[tuple[str, ...] | None, Path | None]:
    """The FFmpeg run that takes the thumbnail from the result, and where it writes it."""
    out = spec.output
    if out.thumbnail is None:
        return None, None
    extension = encoders.EXTENSIONS[out.container]
    thumbnail_path = workdir / "out" / f"{out.name}.jpg"
    # the last frame starts one frame interval before the end: a seek past its start finds no frame at all
    frame = 1 / float(to_fraction(out.video.fps) if out.video.fps else stream.fps)
    at = min(out.thumbnail.at, max(0.0, stream.duration - max(0.1, frame)))
    scale = ["-vf", f"scale={out.thumbnail.width}:-2"] if out.thumbnail.width else []
    thumbnail = (
        *ffmpeg_head(),
        "-protocol_whitelist",
        "file",
        "-f",
        "mov" if extension in ("mp4", "mov") else "matroska",
        "-ss",
        number(at),
        "-i",
        f"file:{output}",
        "-frames:v",
        "1",
        *scale,
        "-q:v",
        "3",
        "-f",
        "image2",
        "-update",
        "1",
        f"file:{thumbnail_path}",
    )
    return thumbnail, thumbnail_path


# ---------------------------------------------------------------------------------------------------------------
# Chunked encoding: segments of the picture encoded apart (one pod each), joined by stream copy with the sound
# encoded once. Every pod plans the same segments from the same probe, so they agree without talking.

MIN_SEGMENT_SECONDS = 2.0  # shorter segments cost more in start-up (probe, seek, encoder) than they save
SEGMENT_CONTAINER = "mp4"  # holds every video codec we encode, with exact timestamps (Matroska's are milliseconds)


def plan_segments(
    duration: float, fps: Fraction, count: int, min_seconds: float = MIN_SEGMENT_SECONDS
) -> tuple[Segment, ...]:
    """`duration` seconds split into at most `count` segments of about equal length, each at least `min_seconds`
    long (fewer segments when the video is short), their boundaries on the frame grid of `fps`."""
    frames = max(1, round(Fraction(duration) * fps))
    n = max(1, min(count, int(duration // min_seconds), frames))
    starts = [Fraction(i * frames // n) / fps for i in range(n)]
    ends = [*starts[1:], Fraction(duration)]
    return tuple(Segment(i, float(a), float(b - a)) for i, (a, b) in enumerate(zip(starts, ends, strict=True)))


def result_grid(spec: VideoJobSpec, facts: Mapping[str, MediaFacts]) -> tuple[float, Fraction]:
    """(seconds, frame rate) of the result: what `plan_segments` splits."""
    first = spec.inputs[0]
    if first.name not in facts or not facts[first.name].has_video:
        raise BadInput(f"input {first.name}: the first input has no video stream", reason=Reason.NO_VIDEO)
    fps = to_fraction(spec.output.video.fps) if spec.output.video.fps else to_fraction(facts[first.name].fps)
    return trimmed_duration(facts[first.name], first), fps


def segments_for(spec: VideoJobSpec, facts: Mapping[str, MediaFacts], count: int) -> tuple[Segment, ...]:
    """The segments of a job split `count` ways (see plan_segments)."""
    problem = spec.chunking_problem()
    if problem is not None:
        raise BadInput(f"spec.parallelism: {problem}", reason=Reason.NOT_CHUNKABLE)
    duration, fps = result_grid(spec, facts)
    return plan_segments(duration, fps, count)


def segment_filename(index: int) -> str:
    return f"segment-{index:05d}.{SEGMENT_CONTAINER}"


def plan_segment(
    spec: VideoJobSpec,
    facts: Mapping[str, MediaFacts],
    paths: Mapping[str, Path | Streamed],
    hardware: str,
    workdir: Path,
    segment: Segment,
    subtitle_paths: Mapping[str, Path] | None = None,
) -> Plan:
    """The FFmpeg run for one segment's picture: the whole graph on the source's own timestamps (so a text, a
    subtitle or an overlay that spans a boundary is drawn exactly as in one pass), for the segment's frames only,
    no sound; a new encoder, so the segment starts with a keyframe. Arguments as for `plan`."""
    out = spec.output
    resolved = encoders.resolve_hardware(str(hardware), out.video.codec)
    graph = _Graph(spec, facts, paths, window=segment)
    stream, files, _ = _walk(graph, True, workdir, subtitle_paths or {}, want_audio=False)
    video = _finish_video(graph, stream, spec)
    filename = segment_filename(segment.index)
    output = workdir / "out" / filename
    argv = [
        *ffmpeg_head(),
        *graph.input_args,
        "-filter_complex",
        ";".join(graph.chains),
        "-map",
        f"[{video}]",
        *encoders.video_options(out.video, resolved, SEGMENT_CONTAINER),
        "-an",
        "-t",
        number(segment.duration),
        "-map_metadata",
        "-1",
        "-sn",
        "-dn",
        "-f",
        SEGMENT_CONTAINER,
        "-progress",
        "pipe:1",
        "-nostats",
        f"file:{output}",
    ]
    return Plan(
        main=tuple(argv),
        output=output,
        output_filename=filename,
        content_type="video/mp4",
        duration=segment.duration,
        hardware=resolved,
        files=tuple(files),
        filter_graph=";".join(graph.chains),
    )


def concat_list(segments: Sequence[Segment], files: Sequence[Path]) -> str:
    """The concat demuxer's list: each file with its exact duration (the next one starts there)."""
    lines = ["ffconcat version 1.0"]
    for segment, path in zip(segments, files, strict=True):
        lines += ["file '" + str(path).replace("'", "'\\''") + "'", f"duration {number(segment.duration)}"]
    return "\n".join(lines) + "\n"


def plan_join(
    spec: VideoJobSpec,
    facts: Mapping[str, MediaFacts],
    paths: Mapping[str, Path | Streamed],
    workdir: Path,
    segments: Sequence[Segment],
    segment_files: Sequence[Path],
) -> Plan:
    """The FFmpeg run that makes the result of a chunked job: the segments' picture joined by stream copy (the
    concat demuxer, no re-encoding) and the sound of the whole job (audio operations included) encoded once, so
    that nothing is heard twice, lost or clicks at a join. Then the thumbnail and emitted subtitles, as `plan`."""
    out = spec.output
    audio_copy = out.audio.codec == AudioCodec.COPY
    graph = _Graph(spec, facts, paths, n_inputs=1)  # input 0 is the list of segments
    stream, _, _ = _walk(graph, want_video=False, workdir=workdir, subtitle_paths={}, want_audio=not audio_copy)
    listing = TextFile(workdir / "segments.ffconcat", concat_list(segments, segment_files))
    maps = ["-map", "0:v:0"]
    if audio_copy:
        maps += ["-map", "1:a:0?"]
    elif stream.audio is not None:
        maps += ["-map", f"[{graph.add([stream.audio], 'anull', 'aout')}]"]
    filter_graph = ";".join(graph.chains)
    extension = encoders.EXTENSIONS[out.container]
    output_filename = f"{out.name}.{extension}"
    output = workdir / "out" / output_filename
    index_last = Container(out.container) in (Container.MP4, Container.MOV)
    argv = [
        *ffmpeg_head(),
        "-protocol_whitelist",
        "file",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        f"file:{listing.path}",
        *graph.input_args,
    ]
    if filter_graph:
        argv += ["-filter_complex", filter_graph]
    argv += [*maps, "-c:v", "copy"]
    if out.video.codec == VideoCodec.H265 and index_last:
        argv += ["-tag:v", "hvc1"]
    if stream.audio is not None or audio_copy:
        argv += encoders.audio_options(out.audio)
    argv += ["-t", number(stream.duration), "-map_metadata", "-1", "-sn", "-dn"]
    argv += encoders.muxer_options(out.container, faststart=not index_last)
    argv += ["-progress", "pipe:1", "-nostats", f"file:{output}"]
    thumbnail, thumbnail_path = _thumbnail(spec, stream, output, workdir)
    return Plan(
        main=tuple(argv),
        output=output,
        output_filename=output_filename,
        content_type=encoders.CONTENT_TYPES[out.container],
        duration=stream.duration,
        hardware="cpu",
        files=(listing,),
        emitted=_emitted(spec),
        thumbnail=thumbnail,
        thumbnail_path=thumbnail_path,
        filter_graph=filter_graph or None,
        index_last=index_last,
    )
