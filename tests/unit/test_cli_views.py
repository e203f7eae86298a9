"""`kubectl videojob`'s pure parts: durations, ETA, the live line, table rows, the spec built from flags."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from videojob.api.models import VideoJobSpec
from videojob.cli import views
from videojob.cli.kubectl import cli

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def vj(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "promo", "namespace": "media", "creationTimestamp": "2026-01-01T11:58:00Z"},
        "spec": {"priority": 2, **spec},
        "status": status or {},
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0s"),
        (42.9, "42s"),
        (61, "1m01s"),
        (3599, "59m59s"),
        (3600 * 2 + 240, "2h04m"),
        (86400 * 3 + 3600 * 4, "3d4h"),
        (-5, "0s"),
    ],
    ids=lambda v: str(v),
)
def test_durations_read_like_kubectl(seconds: float | None, text: str) -> None:
    assert views.human_duration(seconds) == text


@pytest.mark.parametrize(
    ("status", "eta"),
    [
        pytest.param(
            {"phase": "Running", "progress": 25, "startedAt": "2026-01-01T11:59:00Z"},
            180.0,
            id="a quarter done in a minute leaves three",
        ),
        pytest.param(
            {"phase": "Running", "progress": 0, "startedAt": "2026-01-01T11:59:00Z"}, None, id="no progress yet"
        ),
        pytest.param({"phase": "Pending", "queuePosition": 2}, None, id="queued"),
        pytest.param({"phase": "Succeeded", "progress": 100, "startedAt": "2026-01-01T11:59:00Z"}, None, id="done"),
    ],
)
def test_eta_comes_from_the_progress_since_the_start(status: dict[str, Any], eta: float | None) -> None:
    assert views.eta_seconds(vj(status), NOW) == eta


def test_the_live_line_says_where_the_job_is() -> None:
    queued = views.snapshot(vj({"phase": "Pending", "queuePosition": 3}), NOW)
    assert queued.line() == "promo  Pending    0.0%  ETA -  queue position 3" and not queued.finished
    running = views.snapshot(
        vj({"phase": "Running", "progress": 50, "startedAt": "2026-01-01T11:59:00Z", "node": "gpu-0"}), NOW
    )
    assert running.line() == "promo  Running   50.0%  ETA 1m00s  on gpu-0"
    assert views.snapshot(vj({"phase": "Failed"}), NOW).finished


def test_list_rows_and_artifact_rows() -> None:
    done = vj(
        {
            "phase": "Succeeded",
            "progress": 100,
            "startedAt": "2026-01-01T11:58:30Z",
            "completedAt": "2026-01-01T11:59:15Z",
            "hardware": "cpu",
            "artifacts": [
                {
                    "uri": "s3://m/out/output.mp4",
                    "kind": "video",
                    "size": 2_500_000,
                    "sha256": "ab" * 32,
                    "duration": 12.04,
                    "width": 1280,
                    "height": 720,
                    "videoCodec": "h264",
                    "audioCodec": "aac",
                },
                {"uri": "s3://m/out/output.srt", "kind": "subtitles", "size": 120, "sha256": "cd" * 32},
            ],
        }
    )
    assert views.list_row(done, NOW) == {
        "NAMESPACE": "media",
        "NAME": "promo",
        "PHASE": "Succeeded",
        "PROGRESS": "100%",
        "PRIORITY": "2",
        "HARDWARE": "cpu",
        "QUEUE": "-",
        "DURATION": "45s",
        "AGE": "2m00s",
        "REASON": "",
    }
    rows = views.artifact_rows(done)
    assert rows[0] == {
        "KIND": "video",
        "URI": "s3://m/out/output.mp4",
        "SIZE": "2.4 MiB",
        "DURATION": "12.0s",
        "RESOLUTION": "1280x720",
        "CODECS": "h264/aac",
        "SHA256": "abababababab",
    }
    assert rows[1]["SIZE"] == "120 B" and rows[1]["RESOLUTION"] == "-"
    failed = views.list_row(vj({"phase": "Failed", "reason": "InputNotFound"}), NOW)
    assert failed["REASON"] == "InputNotFound" and failed["DURATION"] == "-"


def test_a_spec_from_flags_is_a_valid_spec_once_uploads_are_placed(tmp_path: Path) -> None:
    spec = views.spec_from_flags(
        ["intro=./intro.mp4", "main=s3://media/in/main.avi"],
        "s3://media/out/promo/",
        texts=["Launch day"],
        concat=True,
        priority=2,
        codec="h264",
        resolution="1280x720",
        thumbnail_at=1.5,
    )
    assert [views.is_local(i["uri"]) for i in spec["inputs"]] == [True, False]
    prefix = views.default_upload_prefix(spec)
    assert prefix == "s3://media/uploads/"
    spec["inputs"][0]["uri"] = views.upload_key(prefix, "promo-x1", "intro", views.local_path("./Intro Clip.MP4"))
    assert spec["inputs"][0]["uri"] == "s3://media/uploads/promo-x1/intro/intro-clip.mp4"
    model = VideoJobSpec.model_validate(spec)
    assert [op.kind for op in model.operations] == ["concat", "text"]
    assert model.output.thumbnail is not None and model.priority == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs": [], "output": "s3://m/o/"}, "at least one --input"),
        ({"inputs": ["a=x.mp4"], "output": None}, "give --output"),
        ({"inputs": ["a"], "output": "s3://m/o/"}, "use NAME=VALUE"),
        ({"inputs": ["Main=x.mp4"], "output": "s3://m/o/"}, "lower-case"),
        ({"inputs": ["a=x.mp4"], "output": "s3://m/o/", "concat": True}, "at least two"),
    ],
)
def test_flag_mistakes_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(views.UsageError, match=message):
        views.spec_from_flags(**kwargs)


def test_names_and_retries() -> None:
    name = views.generated_name("My Holiday Video!!")
    assert name.startswith("my-holiday-video-") and len(name) <= 52
    assert len(views.generated_name("x" * 100)) <= 52
    old = vj({"phase": "Failed"}, cancel=True, inputs=[{"name": "a", "uri": "s3://m/a.mp4"}])
    old["metadata"]["labels"] = {"team": "ads"}
    old["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "x"}
    new = views.retry_of(old, "promo-retry-1")
    assert "cancel" not in new["spec"] and new["spec"]["inputs"] == old["spec"]["inputs"]
    assert new["metadata"] == {
        "name": "promo-retry-1",
        "labels": {"team": "ads"},
        "annotations": {"note": "x", "videojob.dev/retry-of": "promo"},
    }


def test_usage_errors_exit_2_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["submit", "--output", "s3://media/out/", "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: give at least one --input NAME=PATH or NAME=URI (or a manifest with -f)"
    ]


def test_a_missing_kubeconfig_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["list", "--kubeconfig", str(tmp_path / "none")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no usable kubeconfig"), result.output
