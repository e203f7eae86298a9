"""The operator's side of chunked encoding: the Indexed Job and the join Job, admission by segments, and one status
from two Jobs. Pure builders and table tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from videojob.api import runtime
from videojob.controller.admission import RunningCounts, plan_admission
from videojob.controller.jobs import build_job_manifest, build_join_manifest, job_name, join_job_name
from videojob.controller.settings import Settings
from videojob.controller.status import (
    aggregate_progress,
    attempts_of,
    chunked_view,
    derive_status,
    needs_join,
    running_slots,
)

UID = "0b6e2a3c-5d4e-4f00-9a1b-123456789abc"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def vj(
    name: str = "promo",
    parallelism: int | None = 4,
    priority: int = 5,
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "media",
            "uid": f"uid-{name}" if name != "promo" else UID,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "generation": 1,
        },
        "spec": {
            "inputs": [{"name": "in", "uri": "s3://media/in.mp4"}],
            "output": {"uri": "s3://media/out/"},
            "priority": priority,
            **({"parallelism": parallelism} if parallelism else {}),
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


# --- the Jobs ----------------------------------------------------------------------------------------------------


def test_the_segments_are_an_indexed_job_each_index_retried_alone() -> None:
    job = build_job_manifest(vj(retries=3), "cpu", Settings(), segments=4)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["backoffLimitPerIndex"] == 3 and spec["maxFailedIndexes"] == 0 and "backoffLimit" not in spec
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailJob"  # bad input: no index retries it
    labels = spec["template"]["metadata"]["labels"]
    assert labels["videojob.dev/part"] == "segments" and labels["videojob.dev/segments"] == "4"
    assert env_of(job)[runtime.ENV_PART] == "segment" and env_of(job)[runtime.ENV_SEGMENTS] == "4"
    assert job["metadata"]["name"] == job_name(vj())


def test_one_segment_is_the_ordinary_job() -> None:
    job = build_job_manifest(vj(), "cpu", Settings())
    assert "completionMode" not in job["spec"] and job["spec"]["backoffLimit"] == 2
    assert runtime.ENV_PART not in env_of(job)


def test_the_join_is_a_job_of_its_own_with_a_name_of_its_own() -> None:
    segments = build_job_manifest(vj("x" * 63), "cpu", Settings(), segments=4)
    job = build_join_manifest(vj("x" * 63), segments, Settings())
    name = job["metadata"]["name"]
    assert len(name) <= 63 and name.endswith("-join") and name != job_name(vj("x" * 63))
    assert name == join_job_name(vj("x" * 63))
    assert env_of(job)[runtime.ENV_PART] == "join" and env_of(job)[runtime.ENV_SEGMENTS] == "4"
    assert "completionMode" not in job["spec"] and job["spec"]["backoffLimit"] == 2
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-" + "x" * 63


def test_the_join_runs_the_spec_and_preset_the_segments_ran() -> None:
    admitted = vj(output={"uri": "s3://media/out/", "container": "mkv", "video": {"codec": "h265", "crf": 30}})
    preset = {"name": "archive", "kind": "VideoJobPreset", "generation": 2}
    segments = build_job_manifest(admitted, "cpu", Settings(), preset, segments=2)
    # the VideoJob itself names only its preset: the merged output is in the segments' pod template
    join = build_join_manifest(vj(output={"uri": "s3://media/out/"}), segments, Settings())
    annotations = join["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations[runtime.SPEC_ANNOTATION]
        == segments["spec"]["template"]["metadata"]["annotations"][runtime.SPEC_ANNOTATION]
    )
    assert json.loads(annotations[runtime.SPEC_ANNOTATION])["output"]["container"] == "mkv"
    assert json.loads(annotations["videojob.dev/preset"]) == preset


def test_the_platform_cannot_override_the_part_through_transcoder_env() -> None:
    settings = Settings(transcoder_env={runtime.ENV_PART: "join", runtime.ENV_COMPLETION_INDEX: "3"})
    env = env_of(build_job_manifest(vj(), "cpu", settings, segments=2))
    assert env[runtime.ENV_PART] == "segment" and runtime.ENV_COMPLETION_INDEX not in env


# --- admission -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "max_running", "queue", "admitted", "segments"),
    [
        pytest.param(0, 4, [("big", 4)], ["big"], {"big": 4}, id="all its segments when the slots are free"),
        pytest.param(
            1,
            4,
            [("big", 4), ("next", None)],
            ["big"],
            {"big": 3},
            id="as many segments as slots are free; the rest wait",
        ),
        pytest.param(
            3, 4, [("big", 4), ("next", None)], ["big"], {}, id="one free slot: it runs in one pod rather than wait"
        ),
        pytest.param(
            0,
            4,
            [("small", None), ("big", 2), ("last", None)],
            ["small", "big", "last"],
            {"big": 2},
            id="each segment counts against the limit",
        ),
        pytest.param(0, 2, [("big", 16)], ["big"], {"big": 2}, id="never more than maxRunning"),
    ],
)
def test_admission_counts_each_segment(
    running: int, max_running: int, queue: list[tuple[str, int | None]], admitted: list[str], segments: dict[str, int]
) -> None:
    pending = [vj(name, parallelism) for name, parallelism in queue]
    for order, body in enumerate(pending):
        body["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:0{order}Z"
    to_admit, _, _, slots = plan_admission(pending, RunningCounts(total=running), Settings(max_running=max_running))
    assert [body["metadata"]["name"] for body, _ in to_admit] == admitted
    assert {uid.removeprefix("uid-"): n for uid, n in slots.items()} == segments
    # segments run on CPU nodes, auto included
    assert all(hardware == "cpu" for body, hardware in to_admit if body["spec"].get("parallelism"))


# --- one status from two Jobs ------------------------------------------------------------------------------------


def segments_job(*conditions: str, segments: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "promo-abc", "uid": "job-uid", "creationTimestamp": "2026-01-01T11:00:00Z"},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {
                        "videojob.dev/hardware": "cpu",
                        "videojob.dev/part": "segments",
                        "videojob.dev/segments": str(segments),
                    }
                }
            }
        },
        "status": {"conditions": [{"type": c, "status": "True", "reason": c} for c in conditions]},
    }


def join_job(*conditions: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "promo-abc-join", "uid": "join-uid"},
        "status": {
            "conditions": [{"type": c, "status": "True", "reason": c} for c in conditions],
            **({"completionTime": "2026-01-01T11:58:00Z"} if "Complete" in conditions else {}),
        },
    }


def pod(index: str | None, state: str, exit_code: int = 0, uid: str = "", created: str = "11:10") -> dict[str, Any]:
    labels = (
        {"videojob.dev/part": "join"}
        if index is None
        else {"videojob.dev/part": "segments", "batch.kubernetes.io/job-completion-index": index}
    )
    container: dict[str, Any] = (
        {"running": {}}
        if state == "running"
        else {
            "terminated": {
                "exitCode": exit_code,
                "finishedAt": f"2026-01-01T{created}:00Z",
                **({"message": '{"ok":true,"artifacts":[]}'} if index is None and exit_code == 0 else {}),
            }
        }
    )
    phase = "Running" if state == "running" else ("Succeeded" if exit_code == 0 else "Failed")
    return {
        "metadata": {
            "uid": uid or f"pod-{index}-{created}",
            "labels": labels,
            "creationTimestamp": f"2026-01-01T{created}:00Z",
        },
        "spec": {"nodeName": "cpu-0"},
        "status": {
            "phase": phase,
            "startTime": f"2026-01-01T{created}:00Z",
            "containerStatuses": [{"name": "transcode", "state": container}],
        },
    }


@pytest.mark.parametrize(
    ("segments", "join", "pods", "phase", "reason", "slots", "wants_join"),
    [
        pytest.param(
            segments_job(),
            None,
            [pod("0", "running"), pod("1", "running")],
            "Running",
            "Running",
            2,
            False,
            id="segments encoding: one slot each",
        ),
        pytest.param(
            segments_job("Complete"),
            None,
            [pod("0", "terminated"), pod("1", "terminated")],
            "Running",
            "Joining",
            1,
            True,
            id="segments done: the operator starts the join; one slot",
        ),
        pytest.param(
            segments_job("Complete"),
            join_job(),
            [pod("0", "terminated"), pod(None, "running")],
            "Running",
            "Joining",
            1,
            False,
            id="joining",
        ),
        pytest.param(
            segments_job(),
            None,
            [pod("0", "terminated"), pod("1", "terminated")],
            "Running",
            "Joining",
            1,
            True,
            id="every segment pod succeeded, the Job not marked yet: the join starts",
        ),
        pytest.param(
            segments_job(),
            None,
            [pod("0", "terminated"), pod("1", "terminated", 1)],
            "Running",
            "Retrying",
            2,
            False,
            id="a segment pod failed and is retried: no join yet",
        ),
        pytest.param(
            segments_job(),
            None,
            [pod("0", "terminated"), pod("1", "terminated", 1), pod("1", "terminated", created="11:12")],
            "Running",
            "Joining",
            1,
            True,
            id="the retried segment succeeded: the join starts",
        ),
        pytest.param(
            segments_job(),
            join_job(),
            [pod("0", "terminated"), pod("1", "terminated"), pod(None, "running")],
            "Running",
            "Joining",
            1,
            False,
            id="joining before the Job controller marked the segments",
        ),
        pytest.param(
            segments_job(),
            join_job("Complete"),
            [pod("0", "terminated"), pod("1", "terminated"), pod(None, "terminated")],
            "Running",
            "Joining",
            1,
            False,
            id="joined before the segments were marked: succeeded only once they are (a final phase must hold)",
        ),
        pytest.param(
            segments_job("Complete"),
            join_job(),
            [pod("0", "terminated"), pod("1", "terminated"), pod(None, "terminated")],
            "Running",
            "Joining",
            1,
            False,
            id="the join's pod succeeded, its Job not marked yet: still joining, not retrying",
        ),
        pytest.param(
            segments_job("Failed"),
            None,
            [pod("0", "terminated"), pod("1", "terminated")],
            "Failed",
            "Failed",
            2,
            False,
            id="the segments Job failed though its pods succeeded: no join",
        ),
        pytest.param(
            segments_job("Complete"),
            join_job("Complete"),
            [pod("0", "terminated"), pod(None, "terminated")],
            "Succeeded",
            "Succeeded",
            1,
            False,
            id="joined: succeeded",
        ),
        pytest.param(
            segments_job("Failed"),
            None,
            [pod("0", "terminated", 65)],
            "Failed",
            "BadInput",
            2,
            False,
            id="a segment failed for good: the job fails, no join",
        ),
        pytest.param(
            segments_job("Complete"),
            join_job("Failed"),
            [pod(None, "terminated", 65)],
            "Failed",
            "BadInput",
            1,
            False,
            id="the join failed",
        ),
    ],
)
def test_a_chunked_videojob_status_from_its_two_jobs(
    segments: dict[str, Any],
    join: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    phase: str,
    reason: str,
    slots: int,
    wants_join: bool,
) -> None:
    segment_pods = [p for p in pods if p["metadata"]["labels"]["videojob.dev/part"] == "segments"]
    assert needs_join(segments, join, segment_pods) is wants_join
    view = chunked_view(segments, join, segment_pods)
    status = derive_status(vj(status={"phase": "Running"}), view, pods, NOW)
    assert (status["phase"], status["reason"]) == (phase, reason)
    assert status["jobName"] == "promo-abc"
    if phase == "Running":
        assert running_slots(view) == slots
    if phase == "Succeeded":
        assert status["completedAt"] == "2026-01-01T11:58:00Z" and status["progress"] == 100


def test_attempts_count_the_retries_of_one_segment_not_the_segments() -> None:
    started = [
        pod("0", "terminated", 75, created="11:01"),
        pod("0", "running", created="11:02"),
        pod("1", "running"),
        pod("2", "running"),
    ]
    assert attempts_of(started) == 2
    assert attempts_of([]) == 0


@pytest.mark.parametrize(
    ("pods", "read", "expected"),
    [
        pytest.param(
            [pod("0", "running", uid="a"), pod("1", "running", uid="b")],
            {"a": 50.0, "b": 30.0},
            38.0,
            id="the mean of the segments, 95 % of the whole",
        ),
        pytest.param(
            [pod("0", "terminated"), pod("1", "running", uid="b")],
            {"b": 50.0},
            71.2,
            id="a finished segment counts 100",
        ),
        pytest.param(
            [pod("0", "terminated"), pod("1", "terminated"), pod(None, "running", uid="j")],
            {"j": 40.0},
            97.0,
            id="the join is the last 5 %",
        ),
        pytest.param([pod("0", "running", uid="a")], {"a": 80.0}, 38.0, id="a segment not started counts 0"),
    ],
)
def test_progress_aggregates_the_segments(pods: list[dict[str, Any]], read: dict[str, float], expected: float) -> None:
    assert aggregate_progress(pods, read, 2) == pytest.approx(expected)
