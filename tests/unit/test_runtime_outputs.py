"""The objects a job writes, derived from its spec alone (runtime.output_names): the planner writes exactly these,
so the operator can tell a job's own artifacts from anything else a result names, and what it may delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from videojob.api.models import VideoJobSpec
from videojob.api.runtime import output_names, output_uris
from videojob.transcoder import planner
from videojob.transcoder.probe import MediaFacts

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


def spec(output: dict[str, Any], operations: list[dict[str, Any]] | None = None) -> VideoJobSpec:
    return VideoJobSpec.model_validate(
        {
            "inputs": [{"name": "base", "uri": "s3://bucket/base.mp4"}, {"name": "subs", "uri": "s3://bucket/s.srt"}],
            "operations": operations or [],
            "output": {"uri": "s3://bucket/out/promo", **output},
        }
    )


@pytest.mark.parametrize(
    ("the_spec", "names"),
    [
        pytest.param(spec({}), ["output.mp4"], id="the main file only"),
        pytest.param(
            spec({"name": "cut", "container": "mkv", "thumbnail": {"at": 1}}),
            ["cut.mkv", "cut.jpg"],
            id="named, another container, a thumbnail",
        ),
        pytest.param(
            spec({"container": "webm", "video": {"codec": "vp9"}, "audio": {"codec": "opus"}}),
            ["output.webm"],
            id="webm",
        ),
        pytest.param(
            spec(
                {},
                [
                    {"subtitles": {"input": "subs", "emit": ["srt", "vtt"]}},
                    {"subtitles": {"input": "subs", "burn": False, "emit": ["srt"]}},
                ],
            ),
            ["output.mp4", "output.srt", "output.vtt", "output-2.srt"],
            id="emitted subtitles, twice srt",
        ),
    ],
)
def test_the_planner_writes_exactly_the_outputs_the_spec_names(the_spec: VideoJobSpec, names: list[str]) -> None:
    assert output_names(the_spec) == names
    subtitle_paths = {"subs": WORK / "subtitles-subs.srt"}
    plan = planner.plan(the_spec, FACTS, {"base": WORK / "in" / "base"}, "cpu", WORK, subtitle_paths)
    planned = [plan.output_filename]
    planned += [plan.thumbnail_path.name] if plan.thumbnail_path is not None else []
    planned += [emitted.filename for emitted in plan.emitted]
    assert planned == names
    assert output_uris(the_spec) == [f"s3://bucket/out/promo/{name}" for name in names]
