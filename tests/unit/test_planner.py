"""The planner and its helpers are pure: spec + facts in, FFmpeg argument lists out. Table tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from videojob.api.conditions import Reason
from videojob.api.models import AudioOutput, VideoJobSpec, VideoOutput
from videojob.api.runtime import TranscodeResult
from videojob.errors import BadInput, TranscodeError, Transient, Unsupported
from videojob.transcoder import encoders, planner
from videojob.transcoder.probe import MediaFacts
from videojob.transcoder.progress import ProgressParser, Throttled
from videojob.transcoder.runner import classify_failure, output_uri, result_json

WORK = Path("/work/job")
MP4 = MediaFacts(
    duration=2.0,
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    has_video=True,
    width=320,
    height=240,
    fps=10.0,
    video_codec="h264",
    has_audio=True,
    audio_codec="aac",
    sample_rate=44100,
    channels=1,
    channel_layout="mono",
)
AVI = MediaFacts(
    duration=3.0,
    format_name="avi",
    has_video=True,
    width=160,
    height=120,
    fps=15.0,
    video_codec="mpeg4",
    has_audio=True,
    audio_codec="mp3",
    sample_rate=22050,
    channels=2,
    channel_layout="stereo",
)
SILENT_MKV = MediaFacts(
    duration=1.5,
    format_name="matroska,webm",
    has_video=True,
    width=640,
    height=360,
    fps=30000 / 1001,
    video_codec="vp9",
)
MP3 = MediaFacts(
    duration=5.0,
    format_name="mp3",
    has_audio=True,
    audio_codec="mp3",
    sample_rate=48000,
    channels=2,
    channel_layout="stereo",
)
HLS = MediaFacts(duration=2.0, format_name="hls", has_video=True, width=320, height=240, fps=10.0)
FACTS = {"a": MP4, "b": AVI, "c": SILENT_MKV, "music": MP3, "hls": HLS}
PATHS = {name: WORK / "in" / name for name in FACTS}
SUBS = {"subs": WORK / "subtitles-subs.srt"}


def spec(
    operations: list[dict[str, Any]] | None = None,
    output: dict[str, Any] | None = None,
    inputs: list[dict[str, Any]] | None = None,
) -> VideoJobSpec:
    names = [*FACTS, "subs"]
    return VideoJobSpec.model_validate(
        {
            "inputs": inputs or [{"name": n, "uri": f"s3://bucket/in/{n}"} for n in names],
            "operations": operations or [],
            "output": {"uri": "s3://bucket/out/", **(output or {})},
        }
    )


def make(
    operations: list[dict[str, Any]] | None = None,
    output: dict[str, Any] | None = None,
    hardware: str = "cpu",
    **kw: Any,
) -> planner.Plan:
    return planner.plan(spec(operations, output, **kw), FACTS, PATHS, hardware, WORK, SUBS)


def option(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


# ---------------------------------------------------------------------------------------------------------------
# Encoders


@pytest.mark.parametrize(
    ("video", "hardware", "container", "expected"),
    [
        pytest.param(
            {"codec": "h264", "crf": 20, "preset": "veryfast"},
            "cpu",
            "mp4",
            ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"],
            id="h264 on cpu is libx264 with crf",
        ),
        pytest.param(
            {"codec": "h265", "bitrate": "2M"},
            "cpu",
            "mp4",
            ["-c:v", "libx265", "-preset", "medium", "-x265-params", "log-level=error", "-b:v", "2M", "-tag:v", "hvc1"],
            id="h265 in mp4 gets the hvc1 tag",
        ),
        pytest.param(
            {"codec": "h265"},
            "cpu",
            "mkv",
            ["-c:v", "libx265", "-preset", "medium", "-x265-params", "log-level=error"],
            id="h265 in mkv has no tag",
        ),
        pytest.param(
            {"codec": "vp9", "crf": 30, "preset": "ultrafast"},
            "cpu",
            "webm",
            [
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-row-mt",
                "1",
                "-crf",
                "30",
                "-b:v",
                "0",
            ],
            id="vp9 crf needs -b:v 0",
        ),
        pytest.param(
            {"codec": "vp9"},
            "cpu",
            "webm",
            ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "2", "-row-mt", "1", "-crf", "32", "-b:v", "0"],
            id="vp9 without rate control gets a default crf",
        ),
        pytest.param(
            {"codec": "av1", "crf": 35, "preset": "fast"},
            "cpu",
            "mkv",
            ["-c:v", "libsvtav1", "-preset", "8", "-crf", "35"],
            id="av1 is svt-av1 with its own presets",
        ),
        pytest.param(
            {"codec": "h264", "crf": 23, "preset": "slow"},
            "nvidia",
            "mp4",
            ["-c:v", "h264_nvenc", "-preset", "p5", "-rc", "vbr", "-cq", "23", "-b:v", "0"],
            id="h264 on nvidia is nvenc with cq",
        ),
        pytest.param(
            {"codec": "h265", "bitrate": "4M", "preset": "ultrafast"},
            "nvidia",
            "mov",
            ["-c:v", "hevc_nvenc", "-preset", "p1", "-b:v", "4M", "-tag:v", "hvc1"],
            id="h265 on nvidia is hevc_nvenc with p1 for ultrafast",
        ),
        pytest.param({"codec": "copy"}, "cpu", "mp4", ["-c:v", "copy"], id="copy is copy"),
    ],
)
def test_video_options(
    video: dict[str, Any], hardware: encoders.ResolvedHardware, container: str, expected: list[str]
) -> None:
    assert encoders.video_options(VideoOutput.model_validate(video), hardware, container) == expected


@pytest.mark.parametrize(
    ("requested", "codec", "expected"),
    [
        ("cpu", "h264", "cpu"),
        ("nvidia", "h264", "nvidia"),
        ("nvidia", "h265", "nvidia"),
        ("auto", "h264", "nvidia"),
        ("auto", "vp9", "cpu"),
        ("auto", "av1", "cpu"),
        ("nvidia", "copy", "cpu"),
    ],
)
def test_resolve_hardware(requested: str, codec: str, expected: str) -> None:
    assert encoders.resolve_hardware(requested, codec) == expected


@pytest.mark.parametrize("codec", ["vp9", "av1"])
def test_nvenc_cannot_do_vp9_or_av1(codec: str) -> None:
    with pytest.raises(Unsupported, match="cannot be encoded with NVENC") as info:
        encoders.resolve_hardware("nvidia", codec)
    assert info.value.exit_code == 69


@pytest.mark.parametrize(
    ("audio", "expected"),
    [
        ({"codec": "aac", "bitrate": "128k"}, ["-c:a", "aac", "-b:a", "128k"]),
        ({"codec": "mp3", "channels": 2, "sampleRate": 44100}, ["-c:a", "libmp3lame", "-ac", "2", "-ar", "44100"]),
        ({"codec": "opus"}, ["-c:a", "libopus", "-ar", "48000"]),
        ({"codec": "opus", "sampleRate": 16000}, ["-c:a", "libopus", "-ar", "16000"]),
        ({"codec": "copy"}, ["-c:a", "copy"]),
    ],
    ids=["aac with bitrate", "mp3 with channels and rate", "opus at 48k", "opus at 16k", "copy"],
)
def test_audio_options(audio: dict[str, Any], expected: list[str]) -> None:
    assert encoders.audio_options(AudioOutput.model_validate(audio)) == expected


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ("mp4", ["-f", "mp4", "-movflags", "+faststart"]),
        ("mov", ["-f", "mov", "-movflags", "+faststart"]),
        ("mkv", ["-f", "matroska"]),
        ("webm", ["-f", "webm"]),
    ],
)
def test_muxer(container: str, expected: list[str]) -> None:
    assert encoders.muxer_options(container) == expected


# ---------------------------------------------------------------------------------------------------------------
# Command shape


def test_plain_transcode_shape() -> None:
    p = make()
    argv = p.main
    assert all(isinstance(a, str) for a in argv)
    assert argv[:6] == ("ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error")
    assert argv.count("-i") == 1
    i = argv.index("-i")
    assert argv[i - 4 : i] == ("-protocol_whitelist", "file", "-f", "mov")
    assert argv[i + 1] == f"file:{PATHS['a']}"
    assert argv[-4:] == ("-progress", "pipe:1", "-nostats", f"file:{WORK / 'out' / 'output.mp4'}")
    assert option(argv, "-map") == "[vout]"
    assert "[aout]" in argv
    assert option(argv, "-t") == "2"
    assert p.duration == 2.0 and p.output_filename == "output.mp4" and p.content_type == "video/mp4"
    assert p.thumbnail is None and p.files == () and p.transcriptions == ()


@pytest.mark.parametrize(
    ("output", "pieces"),
    [
        (
            {"video": {"resolution": "1280x720"}},
            ["scale=1280:720:force_original_aspect_ratio=decrease", "pad=1280:720:(ow-iw)/2:(oh-ih)/2"],
        ),
        ({"video": {"fps": 29.97}}, ["fps=2997/100"]),
        ({"video": {"fps": 30}}, ["fps=30,format=yuv420p[vout]"]),
    ],
    ids=["resolution scales and pads", "fractional fps", "integer fps"],
)
def test_output_size_and_rate(output: dict[str, Any], pieces: list[str]) -> None:
    graph = make(output=output).filter_graph or ""
    for piece in pieces:
        assert piece in graph


def test_trim_becomes_input_seek() -> None:
    p = make(inputs=[{"name": "a", "uri": "s3://bucket/a", "trim": {"start": 0.5, "duration": 1}}])
    argv = p.main
    assert argv[argv.index("-ss") + 1] == "0.5" and argv[argv.index("-t") + 1] == "1"
    assert argv.index("-ss") < argv.index("-i")
    assert p.duration == 1.0


def test_trim_past_the_end_is_bad_input() -> None:
    with pytest.raises(BadInput, match="past its end"):
        make(inputs=[{"name": "a", "uri": "s3://bucket/a", "trim": {"start": 5}}])


@pytest.mark.parametrize(("start", "ok"), [(1.9, True), (1.95, False), (1.99, False)])
def test_a_trim_that_leaves_less_than_one_frame_is_bad_input(start: float, ok: bool) -> None:
    """The 10 fps input's last frame starts at 1.9 s: FFmpeg's accurate seek drops it for any later start."""
    inputs = [{"name": "a", "uri": "s3://bucket/a", "trim": {"start": start}}]
    if ok:
        assert make(inputs=inputs).duration == pytest.approx(2.0 - start)
        return
    with pytest.raises(BadInput, match=r"input a: trim start .* leaves less than one frame") as info:
        make(inputs=inputs)
    assert info.value.reason == "BadTrim"


@pytest.mark.parametrize(
    "operation",
    [{"text": {"text": "late", "start": 2}}, {"pip": {"input": "b", "start": 3}}],
    ids=["text", "pip"],
)
def test_an_overlay_starting_after_the_end_is_bad_input(operation: dict[str, Any]) -> None:
    kind = next(iter(operation))
    with pytest.raises(BadInput, match=rf"operations\[0\]\.{kind}\.start .* at or past the end of the video \(2 s\)"):
        make([operation])


ODD = MediaFacts(
    duration=2.0, format_name="matroska,webm", has_video=True, width=321, height=241, fps=10.0, video_codec="h264"
)


@pytest.mark.parametrize(
    ("operations", "output", "piece"),
    [
        ([], {}, "crop=320:240:0:0,format=yuv420p[vout]"),
        ([{"text": {"text": "x"}}], {}, "crop=320:240:0:0,format=yuv420p[vout]"),
        ([{"concat": {"inputs": ["odd", "a"]}}], {}, "pad=320:240:(ow-iw)/2:(oh-ih)/2"),
        ([], {"video": {"resolution": "640x480"}}, "pad=640:480"),
    ],
    ids=["plain", "text", "concat target is even", "explicit resolution"],
)
def test_odd_input_sizes_become_even(operations: list[dict[str, Any]], output: dict[str, Any], piece: str) -> None:
    odd_spec = VideoJobSpec.model_validate(
        {
            "inputs": [{"name": "odd", "uri": "s3://bucket/odd"}, {"name": "a", "uri": "s3://bucket/a"}],
            "operations": operations,
            "output": {"uri": "s3://bucket/out/", **output},
        }
    )
    p = planner.plan(odd_spec, {"odd": ODD, "a": MP4}, {"odd": WORK / "odd", "a": WORK / "a"}, "cpu", WORK)
    assert piece in (p.filter_graph or "")
    assert "321" not in (p.filter_graph or "") and "241" not in (p.filter_graph or "")


@pytest.mark.parametrize(
    ("first", "output", "refused"),
    [
        ("a", {"container": "webm", "video": {"codec": "copy"}, "audio": {"codec": "opus"}}, "video is h264"),
        ("c", {"container": "webm", "video": {"codec": "vp9"}, "audio": {"codec": "copy"}}, None),  # no audio
        ("a", {"container": "webm", "video": {"codec": "vp9"}, "audio": {"codec": "copy"}}, "audio is aac"),
        ("c", {"container": "mov", "video": {"codec": "copy"}}, "video is vp9"),
        ("c", {"container": "mp4", "video": {"codec": "copy"}}, None),
        ("b", {"container": "mkv", "video": {"codec": "copy"}, "audio": {"codec": "copy"}}, None),
        ("a", {"container": "mp4", "video": {"codec": "copy"}, "audio": {"codec": "copy"}}, None),
    ],
    ids=[
        "h264 into webm",
        "webm without audio",
        "aac into webm",
        "vp9 into mov",
        "vp9 into mp4",
        "mkv takes all",
        "h264 aac into mp4",
    ],
)
def test_copy_refuses_a_codec_the_container_cannot_hold(
    first: str, output: dict[str, Any], refused: str | None
) -> None:
    inputs = [{"name": first, "uri": f"s3://bucket/{first}"}]
    if refused is None:
        assert option(make(output=output, inputs=inputs).main, "-c:v")
        return
    with pytest.raises(BadInput, match=rf"copy: input {first}'s {refused}, which a .* file cannot hold") as info:
        make(output=output, inputs=inputs)
    assert info.value.reason == "CodecNotSupportedByContainer"


@pytest.mark.parametrize(("fps", "at"), [(None, "1.9"), (0.5, "0"), (4, "1.75")])
def test_thumbnail_is_clamped_to_the_start_of_the_last_frame(fps: float | None, at: str) -> None:
    video = {"fps": fps} if fps else {}
    p = make(output={"thumbnail": {"at": 100}, "video": video})
    assert p.thumbnail is not None and option(p.thumbnail, "-ss") == at


def test_a_playlist_or_other_container_is_refused() -> None:
    with pytest.raises(BadInput, match="container 'hls' is not accepted"):
        make(inputs=[{"name": "hls", "uri": "s3://bucket/x.avi"}])


@pytest.mark.parametrize(
    ("facts", "demuxer"),
    [
        (MP4, "mov"),
        (AVI, "avi"),
        (SILENT_MKV, "matroska"),
        (MP3, "mp3"),
        (MediaFacts(duration=1, format_name="wav"), "wav"),
        (MediaFacts(duration=1, format_name="aac"), "aac"),
    ],
)
def test_demuxer_is_forced_from_the_facts(facts: MediaFacts, demuxer: str) -> None:
    assert planner.demuxer_for(facts, "x") == demuxer


# ---------------------------------------------------------------------------------------------------------------
# Operations in the graph


def test_concat_normalises_to_the_first_input() -> None:
    p = make([{"concat": {"inputs": ["a", "b", "c"]}}])
    graph = p.filter_graph or ""
    assert graph.count("scale=320:240:force_original_aspect_ratio=decrease,pad=320:240") == 3
    assert graph.count(",fps=10,") == 3
    assert graph.count("aformat=sample_fmts=fltp:sample_rates=44100:channel_layouts=\\'mono\\'") == 2
    assert "anullsrc=r=44100:cl=\\'mono\\',atrim=duration=1.5" in graph  # c has no audio: silence of its length
    assert "concat=n=3:v=1:a=1" in graph
    assert p.duration == pytest.approx(6.5)
    assert p.main.count("-i") == 3


@pytest.mark.parametrize(
    ("audio", "present", "absent"),
    [
        (
            {"input": "music", "mode": "mix", "offset": 0.5, "volume": 0.3},
            [
                "volume=0.3",
                "adelay=delays=500:all=1",
                "amix=inputs=2:duration=first:dropout_transition=0:normalize=0",
                "atrim=duration=1.5",
            ],
            ["afade"],
        ),
        ({"input": "music", "mode": "replace"}, ["apad=whole_dur=2,atrim=duration=2"], ["amix", "adelay"]),
        ({"input": "music", "fadeIn": 0.5, "fadeOut": 1}, ["afade=t=in:st=0:d=0.5", "afade=t=out:st=1:d=1"], []),
    ],
    ids=["mix with offset and volume", "replace drops the original", "fades fit the heard length"],
)
def test_audio_operation(audio: dict[str, Any], present: list[str], absent: list[str]) -> None:
    graph = make([{"audio": audio}]).filter_graph or ""
    assert "aformat=sample_fmts=fltp:sample_rates=44100:channel_layouts=\\'mono\\',volume=" in graph
    for piece in present:
        assert piece in graph
    for piece in absent:
        assert piece not in graph


def test_audio_offset_past_the_end_is_bad_input() -> None:
    with pytest.raises(BadInput, match="past the end of the video"):
        make([{"audio": {"input": "music", "offset": 2}}])


@pytest.mark.parametrize(
    ("position", "x", "y"),
    [
        ("top-left", "16+0", "16+0"),
        ("top-center", "(w-text_w)/2+0", "16+0"),
        ("center", "(w-text_w)/2+0", "(h-text_h)/2+0"),
        ("bottom-right", "w-text_w-16+0", "h-text_h-16+0"),
        ("center-left", "16+0", "(h-text_h)/2+0"),
    ],
)
def test_text_positions(position: str, x: str, y: str) -> None:
    assert planner.text_position(position, 0, 0) == (x, y)


def test_text_offsets_are_signed() -> None:
    assert planner.text_position("top-left", -5, 7) == ("16-5", "16+7")


def test_text_is_written_to_a_file_and_read_with_textfile() -> None:
    p = make(
        [
            {
                "text": {
                    "text": "it's 50%: [x]; {y}",
                    "color": "#FF000080",
                    "box": True,
                    "border": 2,
                    "start": 1,
                    "end": 1.5,
                    "font": "DejaVu Sans-Bold",
                    "size": 24,
                }
            }
        ]
    )
    graph = p.filter_graph or ""
    assert p.files == (planner.TextFile(WORK / "text-0.txt", "it's 50%: [x]; {y}"),)
    assert "it's" not in graph and "50%" not in graph
    for piece in [
        "drawtext=textfile=\\'/work/job/text-0.txt\\'",
        "expansion=none",
        "font=\\'DejaVu Sans\\\\-Bold\\'",
        "fontsize=24",
        "fontcolor=0xFF000080",
        "box=1:boxcolor=0x00000099:boxborderw=6",
        "borderw=2:bordercolor=0x000000FF",
        "enable=\\'between(t\\,1\\,1.5)\\'",
    ]:
        assert piece in graph


def test_subtitles_from_an_input_are_burned_from_the_checked_copy() -> None:
    p = make(
        [
            {
                "subtitles": {
                    "input": "subs",
                    "style": {
                        "size": 20,
                        "color": "yellow",
                        "outline": 2,
                        "outlineColor": "#00000080",
                        "font": "DejaVu Serif",
                    },
                }
            }
        ]
    )
    graph = p.filter_graph or ""
    assert "subtitles=filename=\\'/work/job/subtitles-subs.srt\\'" in graph
    assert (
        "force_style=\\'Fontname=DejaVu Serif\\,Fontsize=20\\,PrimaryColour=&H0000FFFF\\,BorderStyle=1\\,"
        "Outline=2\\,OutlineColour=&H7F000000\\'"
    ) in graph
    assert p.main.count("-i") == 1  # the subtitle file is not an FFmpeg input


def test_generated_subtitles_plan_a_transcription_of_the_stream_so_far() -> None:
    p = make(
        [
            {"audio": {"input": "music", "mode": "replace"}},
            {"subtitles": {"generate": {"language": "en"}, "emit": ["srt", "vtt"]}},
        ]
    )
    (step,) = p.transcriptions
    assert step.op_index == 1 and step.language == "en" and step.model == "bundled"
    assert step.srt == WORK / "generated-1.srt" and step.wav == WORK / "speech-1.wav"
    extract = step.extract
    assert "[aout]" in extract and extract[-3:] == ("-f", "wav", f"file:{step.wav}")
    assert "drawtext" not in option(extract, "-filter_complex") and "volume=1" in option(extract, "-filter_complex")
    assert "subtitles=filename=\\'/work/job/generated-1.srt\\'" in (p.filter_graph or "")
    assert [(e.fmt, e.filename) for e in p.emitted] == [("srt", "output.srt"), ("vtt", "output.vtt")]


def test_emit_only_subtitles_do_not_touch_the_picture() -> None:
    p = make(
        [
            {"subtitles": {"input": "subs", "burn": False, "emit": ["srt"]}},
            {"subtitles": {"input": "subs", "burn": False, "emit": ["srt"]}},
        ]
    )
    assert "subtitles=" not in (p.filter_graph or "")
    assert [e.filename for e in p.emitted] == ["output.srt", "output-2.srt"]


@pytest.mark.parametrize(
    ("pip", "pieces"),
    [
        ({"input": "b", "scale": 0.25}, ["scale=80:-2", "overlay=x=main_w-overlay_w-16:y=16:eof_action=pass"]),
        (
            {"input": "b", "position": "bottom-left", "margin": 4, "scale": 0.5, "start": 1, "end": 1.8},
            [
                "setpts=PTS-STARTPTS+1/TB",
                "scale=160:-2",
                "overlay=x=4:y=main_h-overlay_h-4",
                "enable=\\'between(t\\,1\\,1.8)\\'",
            ],
        ),
    ],
    ids=["top-right quarter width", "bottom-left during a window, starting at its start"],
)
def test_pip(pip: dict[str, Any], pieces: list[str]) -> None:
    p = make([{"pip": pip}])
    for piece in pieces:
        assert piece in (p.filter_graph or "")
    assert p.main.count("-i") == 2


def test_pip_of_audio_only_is_bad_input() -> None:
    with pytest.raises(BadInput, match="picture-in-picture needs video"):
        make([{"pip": {"input": "music"}}])


def test_video_copy_maps_the_stream_without_a_video_graph() -> None:
    p = make([{"audio": {"input": "music", "mode": "replace"}}], output={"video": {"codec": "copy"}})
    assert option(p.main, "-map") == "0:v:0"
    assert option(p.main, "-c:v") == "copy"
    assert "setpts=PTS-STARTPTS[" not in (p.filter_graph or "").replace("asetpts", "")


def test_thumbnail_is_a_second_command_on_the_result() -> None:
    p = make(output={"thumbnail": {"at": 5, "width": 160}, "container": "mkv"})
    assert p.thumbnail is not None
    assert p.thumbnail[p.thumbnail.index("-i") + 1] == f"file:{WORK / 'out' / 'output.mkv'}"
    assert option(p.thumbnail, "-ss") == "1.9"  # clamped inside the 2 s result
    assert option(p.thumbnail, "-vf") == "scale=160:-2"
    assert p.thumbnail[-1] == f"file:{WORK / 'out' / 'output.jpg'}"


def test_nvidia_plan_uses_nvenc_and_refuses_vp9() -> None:
    assert option(make(hardware="nvidia").main, "-c:v") == "h264_nvenc"
    with pytest.raises(Unsupported):
        make(output={"container": "webm", "video": {"codec": "vp9"}, "audio": {"codec": "opus"}}, hardware="nvidia")
    assert (
        option(
            make(
                output={"container": "webm", "video": {"codec": "vp9"}, "audio": {"codec": "opus"}}, hardware="auto"
            ).main,
            "-c:v",
        )
        == "libvpx-vp9"
    )


# ---------------------------------------------------------------------------------------------------------------
# Progress, failures, results


def test_progress_parser_reads_blocks_and_never_goes_back() -> None:
    parser = ProgressParser(duration=4.0)
    seen = []
    lines = [
        "frame=1",
        "out_time_us=N/A",
        "progress=continue",
        "out_time_us=1000000",
        "out_time_ms=1000000",
        "progress=continue",
        "out_time_us=500000",
        "progress=continue",
        "out_time_ms=3000000",
        "progress=continue",
        "out_time_us=9000000",
        "progress=continue",
        "progress=end",
    ]
    for line in lines:
        value = parser.feed(line)
        if value is not None:
            seen.append(value)
    assert seen == [0.0, 25.0, 25.0, 75.0, 99.9, 100.0]
    assert parser.done


def test_throttle_passes_first_and_last_and_waits_between() -> None:
    now = [0.0]

    class Recorder:
        def __init__(self) -> None:
            self.values: list[float] = []

        def report(self, percent: float) -> None:
            self.values.append(percent)

    recorder = Recorder()
    throttled = Throttled(recorder, interval=5.0, clock=lambda: now[0])
    for t, percent in [(0, 0.0), (1, 10.0), (4.9, 20.0), (5.0, 30.0), (6, 40.0), (6.5, 100.0), (7, 100.0)]:
        now[0] = t
        throttled.report(percent)
    assert recorder.values == [0.0, 30.0, 100.0]


@pytest.mark.parametrize(
    ("returncode", "stderr", "kind", "reason"),
    [
        (
            1,
            ["[h264_nvenc @ 0x1] Cannot load libcuda.so.1", "Error initializing output stream"],
            Unsupported,
            "NvencUnavailable",
        ),
        (
            1,
            ["[h264_nvenc @ 0x1] OpenEncodeSessionEx failed: unsupported device (2): (no details)"],
            Unsupported,
            "NvencUnavailable",
        ),
        (1, ["[hevc_nvenc @ 0x1] No capable devices found"], Unsupported, "NvencUnavailable"),
        (-9, ["frame= 10"], Transient, "FFmpegKilled"),
        (1, ["in.mp4: Invalid data found when processing input"], BadInput, "FFmpegFailed"),
        (
            1,
            [
                "[mov @ 0x55] vp9 only supported in MP4.",
                "Could not write header for output file #0 (incorrect codec parameters ?): Invalid argument",
                "Error initializing output stream 0:0 -- ",
            ],
            BadInput,
            "CodecNotSupportedByContainer",
        ),
        (
            1,
            [
                "[mp4 @ 0x55] Could not find tag for codec pcm_s16le in stream #0, codec not currently supported in "
                "container",
                "Error initializing output stream 0:1 -- ",
            ],
            BadInput,
            "CodecNotSupportedByContainer",
        ),
    ],
    ids=[
        "no libcuda",
        "no encoder engine",
        "no capable device",
        "killed",
        "bad media",
        "muxer refuses codec",
        "muxer has no tag",
    ],
)
def test_classify_failure(returncode: int, stderr: list[str], kind: type, reason: str) -> None:
    error = classify_failure(returncode, stderr)
    assert isinstance(error, kind) and error.reason == reason
    assert "\n" not in str(error)


NVENC_GONE = Unsupported(
    "NVENC is not available on this node: OpenEncodeSessionEx failed", reason=Reason.NVENC_UNAVAILABLE
)


@pytest.mark.parametrize(
    ("requested", "error", "expected"),
    [
        ("auto", NVENC_GONE, "cpu"),
        ("auto", classify_failure(1, ["[h264_nvenc @ 0x1] Cannot load libcuda.so.1"]), "cpu"),
        ("nvidia", NVENC_GONE, None),  # asked for NVENC explicitly: the clear failure stays
        ("cpu", NVENC_GONE, None),
        (None, NVENC_GONE, None),  # an older operator that does not say what was asked
        ("auto", Unsupported("no nvidia encoder for vp9", reason=Reason.CODEC_NOT_SUPPORTED_BY_NVENC), None),
        ("auto", BadInput("ffmpeg cannot process the input", reason=Reason.FFMPEG_FAILED), None),
        ("auto", Transient("ffmpeg was killed", reason=Reason.FFMPEG_KILLED), None),
    ],
    ids=["auto+nvenc", "auto+no libcuda", "nvidia", "cpu", "unset", "auto+codec", "auto+bad input", "auto+killed"],
)
def test_fallback_hardware(requested: str | None, error: TranscodeError, expected: str | None) -> None:
    assert encoders.fallback_hardware(requested, error) == expected


def test_the_fallback_plan_is_the_cpu_plan() -> None:
    fallback = encoders.fallback_hardware("auto", NVENC_GONE)
    assert fallback is not None
    first, again = make(hardware="auto"), make(hardware=fallback)
    assert (first.hardware, option(first.main, "-c:v")) == ("nvidia", "h264_nvenc")
    assert (again.hardware, option(again.main, "-c:v")) == ("cpu", "libx264")
    assert again.main == make(hardware="cpu").main


@pytest.mark.parametrize("hardware", ["cpu", "nvidia", None])
def test_result_says_the_hardware_used_and_old_results_still_parse(hardware: str | None) -> None:
    result = TranscodeResult.model_validate({"ok": True, **({"hardware": hardware} if hardware else {})})
    text = result_json(result)
    assert TranscodeResult.model_validate_json(text).hardware == hardware
    assert ('"hardware"' in text) == (hardware is not None)  # absent when unknown: results stay as before
    with pytest.raises(ValueError):
        TranscodeResult.model_validate({"ok": True, "hardware": "auto"})  # always the hardware really used


def test_result_json_stays_under_the_termination_message_limit() -> None:
    artifact = {
        "uri": "s3://bucket/" + "k" * 200,
        "size": 1,
        "sha256": "0" * 64,
        "duration": 1.0,
        "width": 1,
        "height": 1,
        "videoCodec": "h264",
        "audioCodec": "aac",
        "contentType": "video/mp4",
    }
    result = TranscodeResult.model_validate({"ok": False, "message": "x" * 1024, "artifacts": [artifact] * 20})
    text = result_json(result)
    assert len(text.encode()) < 4096
    parsed = TranscodeResult.model_validate_json(text)
    assert 0 < len(parsed.artifacts) < 20 and "more artifacts not listed" in parsed.message


@pytest.mark.parametrize(
    ("prefix", "uri"),
    [("s3://b/out/", "s3://b/out/x.mp4"), ("s3://b/out", "s3://b/out/x.mp4"), ("s3://bkt", "s3://bkt/x.mp4")],
)
def test_output_uri(prefix: str, uri: str) -> None:
    assert output_uri(prefix, "x.mp4") == uri
