"""Chunked encoding's pure planning: segment boundaries, each segment's FFmpeg run, and the join. Table tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from videojob.api.models import VideoJobSpec
from videojob.errors import BadInput
from videojob.transcoder import planner
from videojob.transcoder.planner import Segment
from videojob.transcoder.probe import MediaFacts

WORK = Path("/work/job")
SOURCE = MediaFacts(
    duration=12.0,
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    has_video=True,
    width=640,
    height=360,
    fps=30.0,
    video_codec="h264",
    has_audio=True,
    audio_codec="aac",
    sample_rate=48000,
    channels=2,
    channel_layout="stereo",
)
CAM = MediaFacts(
    duration=20.0,
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    has_video=True,
    width=320,
    height=240,
    fps=25.0,
    video_codec="h264",
)
MUSIC = MediaFacts(
    duration=30.0,
    format_name="mp3",
    has_audio=True,
    audio_codec="mp3",
    sample_rate=48000,
    channels=2,
    channel_layout="stereo",
)
FACTS = {"main": SOURCE, "cam": CAM, "music": MUSIC}
PATHS = {name: WORK / "in" / name for name in FACTS}


def spec(operations: list[dict[str, Any]] | None = None, **extra: Any) -> VideoJobSpec:
    return VideoJobSpec.model_validate(
        {
            "inputs": [{"name": n, "uri": f"s3://bucket/in/{n}"} for n in FACTS],
            "operations": operations or [],
            "output": {"uri": "s3://bucket/out/", "video": {"codec": "h264", "crf": 23, "preset": "veryfast"}},
            "parallelism": 2,
            **extra,
        }
    )


def option(argv: tuple[str, ...], name: str, nth: int = 0) -> str:
    positions = [i for i, a in enumerate(argv) if a == name]
    return argv[positions[nth] + 1]


# --- boundaries ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "fps", "count", "expected"),
    [
        pytest.param(12.0, Fraction(30), 2, [(0.0, 6.0), (6.0, 6.0)], id="two equal halves"),
        pytest.param(
            301 / 30,
            Fraction(30),
            2,
            [(0.0, 5.0), (5.0, 151 / 30)],
            id="an odd number of frames: the last segment takes the extra one",
        ),
        pytest.param(3.0, Fraction(25), 4, [(0.0, 3.0)], id="too short for two segments of the minimum: one"),
        pytest.param(5.0, Fraction(25), 4, [(0.0, 2.48), (2.48, 2.52)], id="as many as the minimum length allows"),
        pytest.param(
            7.0, Fraction(30000, 1001), 2, [(0.0, 3.5035), (3.5035, 3.4965)], id="29.97 fps: the boundary is frame 105"
        ),
        pytest.param(6.0, Fraction(30), 1, [(0.0, 6.0)], id="one segment is the whole"),
    ],
)
def test_segments_split_the_duration_on_the_frame_grid(
    duration: float, fps: Fraction, count: int, expected: list[tuple[float, float]]
) -> None:
    segments = planner.plan_segments(duration, fps, count)
    assert [x for s in segments for x in (s.start, s.duration)] == pytest.approx([x for e in expected for x in e])
    assert [s.index for s in segments] == list(range(len(expected)))
    assert segments[-1].end == pytest.approx(duration)
    for segment in segments[1:]:
        assert (Fraction(segment.start) * fps).limit_denominator(1000) % 1 == 0  # on a frame


@pytest.mark.parametrize(
    ("at", "fps", "expected"),
    [
        pytest.param(0.0, Fraction(30), (0.0, 0.0), id="the start needs no seek"),
        pytest.param(6.0, Fraction(30), (6.0 - 1 / 60, 6.0), id="half a frame before the boundary frame"),
        pytest.param(6.01, Fraction(30), (6.0 - 1 / 60, 6.0), id="inside a frame: the frame on screen then"),
        pytest.param(
            6.666666, Fraction(30), (200 / 30 - 1 / 60, 200 / 30), id="a boundary rounded low still finds its frame"
        ),
        pytest.param(1.0, Fraction(25), (0.98, 1.0), id="25 fps"),
    ],
)
def test_grid_seek(at: float, fps: Fraction, expected: tuple[float, float]) -> None:
    assert planner.grid_seek(at, fps) == pytest.approx(expected)


# --- the segments' runs ----------------------------------------------------------------------------------------


TEXT = {"text": {"text": "across the join", "start": 5, "end": 7}}


def segment_plan(index: int, operations: list[dict[str, Any]] | None = None, **extra: Any) -> planner.Plan:
    job = spec(operations, **extra)
    segments = planner.segments_for(job, FACTS, 2)
    return planner.plan_segment(job, FACTS, PATHS, "cpu", WORK, segments[index])


def test_the_first_segment_reads_from_the_start_up_to_half_a_frame_before_the_boundary() -> None:
    argv = segment_plan(0, [TEXT]).main
    assert "-ss" not in argv[: argv.index("-i")]
    assert float(option(argv, "-t")) == pytest.approx(6.0 - 1 / 60)  # the input's limit
    graph = option(argv, "-filter_complex")
    assert graph.startswith("[0:v:0]setpts=PTS-STARTPTS[v1]")
    assert "between(t\\,5\\,7)" in graph  # the text's own times: the graph runs on the source's timeline
    assert graph.endswith("format=yuv420p,setpts=PTS-STARTPTS[vout]")
    assert "-an" in argv and "-map" in argv and "[aout]" not in graph
    assert option(argv, "-f", 1) == "mp4"
    assert argv[-1] == "file:/work/job/out/segment-00000.mp4"


def test_a_later_segment_seeks_and_puts_its_frames_back_at_their_source_times() -> None:
    argv = segment_plan(1, [TEXT]).main
    assert float(option(argv, "-ss")) == pytest.approx(6.0 - 1 / 60)
    assert argv[argv.index("-ss") + 2] == "-i"  # the last segment reads to the end: no input limit
    graph = option(argv, "-filter_complex")
    assert graph.startswith("[0:v:0]setpts=PTS-STARTPTS+6/TB[v1]")
    assert "between(t\\,5\\,7)" in graph
    assert option(argv, "-t") == "6"  # the output's length


def test_a_segment_has_no_sound_and_leaves_audio_operations_to_the_join() -> None:
    job = [{"audio": {"input": "music", "mode": "mix", "volume": 0.5}}]
    argv = segment_plan(1, job).main
    assert "music" not in " ".join(argv)
    assert "amix" not in option(argv, "-filter_complex")


@pytest.mark.parametrize(
    ("pip_start", "segment", "seek", "shift"),
    [
        pytest.param(8, 1, None, "+8/TB", id="starting after the boundary: no seek"),
        pytest.param(2, 1, 4 - 1 / 50, "+6/TB", id="running across it: from its frame on screen at the boundary"),
        pytest.param(2, 0, None, "+2/TB", id="in the first segment: as in one pass"),
    ],
)
def test_pip_across_a_boundary(pip_start: float, segment: int, seek: float | None, shift: str) -> None:
    argv = segment_plan(segment, [{"pip": {"input": "cam", "start": pip_start}}]).main
    cam = argv.index("file:/work/job/in/cam")
    cam_options = argv[argv.index("file:/work/job/in/main") + 1 : cam]
    if seek is None:
        assert "-ss" not in cam_options
    else:
        assert float(cam_options[cam_options.index("-ss") + 1]) == pytest.approx(seek)
    assert f"setpts=PTS-STARTPTS{shift},scale=" in option(argv, "-filter_complex")


def test_a_trimmed_input_seeks_from_its_trim() -> None:
    job = VideoJobSpec.model_validate(
        {
            "inputs": [{"name": "main", "uri": "s3://bucket/main", "trim": {"start": 1, "duration": 10}}],
            "output": {"uri": "s3://bucket/out/"},
            "parallelism": 2,
        }
    )
    segments = planner.segments_for(job, FACTS, 2)
    assert [(s.start, s.duration) for s in segments] == [(0, 5), (5, 5)]
    first = planner.plan_segment(job, FACTS, PATHS, "cpu", WORK, segments[0]).main
    second = planner.plan_segment(job, FACTS, PATHS, "cpu", WORK, segments[1]).main
    assert option(first, "-ss") == "1" and float(option(first, "-t")) == pytest.approx(5 - 1 / 60)
    assert float(option(second, "-ss")) == pytest.approx(6 - 1 / 60)
    assert float(option(second, "-t")) == pytest.approx(10 - (5 - 1 / 60))


# --- the join ------------------------------------------------------------------------------------------------


def join_plan(operations: list[dict[str, Any]] | None = None, **output: Any) -> planner.Plan:
    job = spec(operations)
    if output:
        job = VideoJobSpec.model_validate({**job.to_wire(), "output": {**job.output.to_wire(), **output}})
    segments = planner.segments_for(job, FACTS, 2)
    files = [WORK / "segments" / planner.segment_filename(s.index) for s in segments]
    return planner.plan_join(job, FACTS, PATHS, WORK, segments, files)


def test_the_join_copies_the_picture_and_encodes_the_sound_of_the_whole_job_once() -> None:
    joined = join_plan([TEXT, {"audio": {"input": "music", "mode": "mix", "offset": 1}}])
    argv = joined.main
    assert argv[argv.index("-i") - 6 : argv.index("-i") + 2] == (
        "-protocol_whitelist",
        "file",
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        "file:/work/job/segments.ffconcat",
    )
    assert option(argv, "-c:v") == "copy" and option(argv, "-map") == "0:v:0"
    graph = option(argv, "-filter_complex")
    assert "[1:a:0]asetpts=PTS-STARTPTS" in graph and "[2:a:0]" in graph and "amix" in graph
    assert "drawtext" not in graph  # the picture was drawn by the segments
    assert option(argv, "-c:a") == "aac" and option(argv, "-t") == "12"
    assert joined.files[0].text == (
        "ffconcat version 1.0\nfile '/work/job/segments/segment-00000.mp4'\nduration 6\n"
        "file '/work/job/segments/segment-00001.mp4'\nduration 6\n"
    )
    assert joined.index_last and joined.output_filename == "output.mp4"


def test_the_join_of_h265_keeps_the_tag_players_need() -> None:
    argv = join_plan(video={"codec": "h265", "crf": 28}).main
    assert option(argv, "-tag:v") == "hvc1"


def test_the_concat_list_quotes_paths() -> None:
    text = planner.concat_list([Segment(0, 0, 1.5)], [Path("/w/it's [1].mp4")])
    assert text == "ffconcat version 1.0\nfile '/w/it'\\''s [1].mp4'\nduration 1.5\n"


# --- what cannot be chunked ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        pytest.param({"operations": [{"concat": {"inputs": ["main", "cam"]}}]}, "concat", id="concat"),
        pytest.param(
            {"operations": [{"subtitles": {"generate": {}}}]}, "generated subtitles", id="generated subtitles"
        ),
        pytest.param({"hardware": "nvidia"}, "hardware nvidia", id="nvidia"),
        pytest.param({"output": {"uri": "s3://bucket/o/", "video": {"codec": "copy"}}}, "video codec copy", id="copy"),
    ],
)
def test_parallelism_is_refused_where_segments_cannot_be_made(change: dict[str, Any], words: str) -> None:
    wire = {
        "inputs": [{"name": n, "uri": f"s3://bucket/{n}"} for n in FACTS],
        "output": {"uri": "s3://bucket/o/"},
        "parallelism": 3,
        **change,
    }
    with pytest.raises(ValidationError, match=f"parallelism above 1 cannot be used with .*: .*{words}"):
        VideoJobSpec.model_validate(wire)
    VideoJobSpec.model_validate({**wire, "parallelism": 1})  # one pod: anything goes


def test_a_first_input_without_video_cannot_be_split() -> None:
    job = VideoJobSpec.model_validate(
        {"inputs": [{"name": "music", "uri": "s3://bucket/m"}], "output": {"uri": "s3://bucket/o/"}, "parallelism": 2}
    )
    with pytest.raises(BadInput, match="no video stream"):
        planner.segments_for(job, FACTS, 2)
