"""Status derivation: phases, conditions, failure reasons, the minimal patch, and the Events of a transition."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from videojob.api.models import VideoJobStatus
from videojob.controller.status import (
    derive_status,
    failure,
    precise,
    reason_word,
    status_patch,
    stops_its_job,
    transition_events,
    ttl_exempt,
    ttl_remaining,
)

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SHA = "a" * 64
OUTPUTS = ["s3://m/out/output.mp4", "s3://m/out/output.jpg"]  # what the spec of vj() writes (runtime.output_uris)


def vj(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": "promo",
            "namespace": "media",
            "uid": "u1",
            "generation": 3,
            "creationTimestamp": "2026-01-01T11:00:00Z",
        },
        "spec": {"inputs": [{"name": "in", "uri": "s3://m/in.mp4"}], "output": {"uri": "s3://m/out/"}, **spec},
    }
    if status is not None:
        body["status"] = status
    return body


def job(*conditions: tuple[str, str], hardware: str = "cpu", completion: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [
            {
                "type": t,
                "status": "True",
                "reason": r,
                "message": f"job {r}",
                "lastTransitionTime": "2026-01-01T11:59:00Z",
            }
            for t, r in conditions
        ]
    }
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": "promo-abc", "labels": {"videojob.dev/hardware": hardware}}, "status": status}


def pod(
    state: str,
    exit_code: int = 0,
    message: str | None = None,
    node: str = "cpu-0",
    created: str = "2026-01-01T11:50:00Z",
    oom: bool = False,
) -> dict[str, Any]:
    phase = {"running": "Running", "waiting": "Pending"}.get(state, "Succeeded" if exit_code == 0 else "Failed")
    container_state: dict[str, Any]
    if state == "terminated":
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "finishedAt": created,
            "reason": "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error"),
        }
        if message is not None:
            terminated["message"] = message
        container_state = {"terminated": terminated}
    elif state == "running":
        container_state = {"running": {"startedAt": created}}
    else:
        container_state = {"waiting": {"reason": "ContainerCreating"}}
    return {
        "metadata": {"name": f"promo-abc-{created[-3:-1]}", "creationTimestamp": created},
        "spec": {"nodeName": node},
        "status": {
            "phase": phase,
            "startTime": created,
            "containerStatuses": [{"name": "transcode", "state": container_state}],
        },
    }


def result(ok: bool = True, **kw: Any) -> str:
    body: dict[str, Any] = {"ok": ok, **kw}
    if ok:
        body.setdefault("artifacts", [{"uri": "s3://m/out/output.mp4", "size": 10, "sha256": SHA, "width": 320}])
    return json.dumps(body)


def conditions_of(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


@pytest.mark.parametrize(
    ("body", "the_job", "pods", "position", "phase", "reason", "true_conditions"),
    [
        pytest.param(vj(), None, [], 3, "Pending", "Queued", set(), id="new: queued with its position"),
        pytest.param(
            vj({"phase": "Pending"}), job(), [], None, "Pending", "Admitted", {"Admitted"}, id="Job created, no pod yet"
        ),
        pytest.param(
            vj({"phase": "Pending"}),
            job(),
            [pod("running")],
            None,
            "Running",
            "Running",
            {"Admitted", "Running"},
            id="pod running",
        ),
        pytest.param(
            vj({"phase": "Running"}),
            job(("Complete", "Completed")),
            [pod("terminated", 0, result())],
            None,
            "Succeeded",
            "Succeeded",
            {"Admitted", "Succeeded"},
            id="Job complete",
        ),
        pytest.param(
            vj({"phase": "Running"}),
            job(("SuccessCriteriaMet", "CompletionsReached")),
            [pod("terminated", 0, result())],
            None,
            "Succeeded",
            "Succeeded",
            {"Admitted", "Succeeded"},
            id="success criteria met counts as success",
        ),
        pytest.param(
            vj({"phase": "Running"}),
            job(("Failed", "PodFailurePolicy")),
            [pod("terminated", 65, result(False, reason="InputNotFound", message="s3://m/in.mp4 missing"))],
            None,
            "Failed",
            "InputNotFound",
            {"Admitted", "Failed"},
            id="bad input: the transcoder's reason",
        ),
        pytest.param(
            vj({"phase": "Running"}),
            job(("FailureTarget", "DeadlineExceeded")),
            [pod("running")],
            None,
            "Failed",
            "DeadlineExceeded",
            {"Admitted", "Failed"},
            id="deadline exceeded",
        ),
        pytest.param(
            vj({"phase": "Running"}, cancel=True),
            job(),
            [pod("running")],
            None,
            "Cancelled",
            "Cancelled",
            {"Admitted", "Cancelled"},
            id="cancel while running",
        ),
        pytest.param(vj(cancel=True), None, [], 1, "Cancelled", "Cancelled", {"Cancelled"}, id="cancel while queued"),
        pytest.param(
            vj({"phase": "Running", "jobName": "promo-abc"}),
            None,
            [],
            None,
            "Failed",
            "JobDeleted",
            {"Admitted", "Failed"},
            id="the Job vanished",
        ),
        pytest.param(
            vj({"phase": "Running", "attempts": 1}),
            job(),
            [pod("terminated", 75)],
            None,
            "Running",
            "Retrying",
            {"Admitted", "Running"},
            id="between retries stays Running",
        ),
        pytest.param(
            vj({"phase": "Succeeded", "jobName": "promo-abc"}),
            None,
            [],
            4,
            "Succeeded",
            "Succeeded",
            {"Admitted", "Succeeded"},
            id="terminal phases are sticky",
        ),
        pytest.param(vj(), None, [], None, "Failed", "InvalidSpec", {"Failed"}, id="an operator-level problem"),
    ],
)
def test_phases(
    body: dict[str, Any],
    the_job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    position: int | None,
    phase: str,
    reason: str,
    true_conditions: set[str],
) -> None:
    problem = "http:// is not allowed" if reason == "InvalidSpec" else None
    if body.get("status", {}).get("phase") == "Succeeded":
        body["status"].update(reason="Succeeded", message="done", completedAt="2026-01-01T11:59:00Z")
    status = derive_status(body, the_job, pods, NOW, queue_position=position, problem=problem)
    VideoJobStatus.model_validate(status)  # the result fits the CRD's status schema
    assert status["phase"] == phase
    assert status["reason"] == reason
    finished = phase in ("Succeeded", "Failed", "Cancelled")
    # Finished is True whatever the outcome; Succeeded is Unknown until there is one.
    assert {t for t, s in conditions_of(status).items() if s == "True"} == true_conditions | (
        {"Finished"} if finished else set()
    )
    outcome = "True" if phase == "Succeeded" else "False" if finished else "Unknown"
    assert conditions_of(status)["Succeeded"] == outcome
    if finished:
        assert next(c for c in status["conditions"] if c["type"] == "Finished")["reason"] == phase
    assert [c["type"] for c in status["conditions"]] == [
        "Admitted",
        "Running",
        "Succeeded",
        "Failed",
        "Cancelled",
        "Finished",
    ]
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert ("queuePosition" in status) == (phase == "Pending" and the_job is None and position is not None)


def test_success_fills_artifacts_progress_and_times() -> None:
    status = derive_status(
        vj({"phase": "Running", "progress": 40}),
        job(("Complete", "Completed"), completion="2026-01-01T11:59:30Z"),
        [pod("terminated", 0, result(bytes_in=5, bytes_out=10))],
        NOW,
        outputs=OUTPUTS,
    )
    assert status["progress"] == 100
    assert status["artifacts"][0]["uri"] == "s3://m/out/output.mp4" and status["artifacts"][0]["width"] == 320
    assert status["completedAt"] == "2026-01-01T11:59:30Z"
    assert status["startedAt"] == "2026-01-01T11:50:00Z"
    assert status["attempts"] == 1 and status["node"] == "cpu-0" and status["hardware"] == "cpu"
    assert status["jobName"] == "promo-abc"


@pytest.mark.parametrize(
    ("placed", "result_hardware", "expected"),
    [("nvidia", None, "nvidia"), ("nvidia", "nvidia", "nvidia"), ("nvidia", "cpu", "cpu"), ("cpu", "cpu", "cpu")],
    ids=["old transcoder: the placement", "NVENC used", "auto fell back to CPU", "cpu"],
)
def test_finished_status_says_which_hardware_encoded(placed: str, result_hardware: str | None, expected: str) -> None:
    extra: dict[str, Any] = {"hardware": result_hardware} if result_hardware else {}
    done = derive_status(
        vj({"phase": "Running", "hardware": placed}),
        job(("Complete", "Completed"), hardware=placed),
        [pod("terminated", 0, result(**extra), node="gpu-0")],
        NOW,
    )
    assert done["hardware"] == expected
    # later passes see the same Job label again; the finished status keeps what the result said
    again = derive_status(vj(done), job(("Complete", "Completed"), hardware=placed), [], NOW)
    assert again["hardware"] == expected


def test_running_records_node_attempts_and_start() -> None:
    status = derive_status(vj({"phase": "Pending"}), job(hardware="nvidia"), [pod("running", node="gpu-0")], NOW)
    assert (status["node"], status["attempts"], status["hardware"]) == ("gpu-0", 1, "nvidia")
    assert status["startedAt"] == "2026-01-01T11:50:00Z"


def test_attempts_count_started_pods_only() -> None:
    pods = [
        pod("terminated", 75, created="2026-01-01T11:50:01Z"),
        pod("running", created="2026-01-01T11:51:02Z"),
        pod("waiting", created="2026-01-01T11:52:03Z"),
    ]
    assert derive_status(vj({"phase": "Running"}), job(), pods, NOW)["attempts"] == 2


@pytest.mark.parametrize(
    ("the_job", "pods", "reason", "in_message"),
    [
        pytest.param(
            job(("Failed", "PodFailurePolicy")),
            [pod("terminated", 65, result(False, reason="InputNotFound", message="s3://b/k not found"))],
            "InputNotFound",
            "s3://b/k not found",
            id="the transcoder's result wins",
        ),
        pytest.param(
            job(("Failed", "BackoffLimitExceeded")),
            [pod("terminated", 75)],
            "TransientError",
            "no retries left",
            id="exit code without a message",
        ),
        pytest.param(
            job(("Failed", "PodFailurePolicy")),
            [pod("terminated", 69, "NVENC not available")],
            "Unsupported",
            "NVENC not available",
            id="plain-text termination message",
        ),
        pytest.param(
            job(("Failed", "BackoffLimitExceeded")),
            [pod("terminated", 137, oom=True)],
            "OOMKilled",
            "memory",
            id="out of memory",
        ),
        pytest.param(
            job(("Failed", "BackoffLimitExceeded")),
            [pod("terminated", 3)],
            "TranscoderExited",
            "code 3",
            id="an unknown exit code",
        ),
        pytest.param(
            job(("Failed", "DeadlineExceeded")),
            [pod("terminated", 143)],
            "DeadlineExceeded",
            "job",
            id="the deadline outranks the exit code",
        ),
        pytest.param(
            {**job(("Failed", "DeadlineExceeded")), "spec": {"activeDeadlineSeconds": 1}},
            [],
            "DeadlineExceeded",
            "activeDeadlineSeconds 1 s",
            id="the deadline message names the limit",
        ),
        pytest.param(
            job(("Failed", "BackoffLimitExceeded")),
            [],
            "BackoffLimitExceeded",
            "job",
            id="no pods left: the Job's reason",
        ),
        pytest.param(
            job(("Failed", "BackoffLimitExceeded")),
            [
                pod("terminated", 75, result(False, reason="S3 error!"), created="2026-01-01T11:50:01Z"),
                pod("terminated", 75, result(False, reason="Timeout"), created="2026-01-01T11:55:01Z"),
            ],
            "Timeout",
            "Timeout",
            id="the last attempt's reason",
        ),
    ],
)
def test_failure(the_job: dict[str, Any], pods: list[dict[str, Any]], reason: str, in_message: str) -> None:
    got_reason, message = failure(the_job, pods)
    assert got_reason == reason
    assert in_message in message


@pytest.mark.parametrize(
    ("text", "word"), [("S3 error!", "S3error"), ("", "Failed"), ("9lives", "Failed"), ("Ok:done,", "Ok:done")]
)
def test_reason_word(text: str, word: str) -> None:
    assert reason_word(text) == word


def test_last_transition_time_is_kept_when_status_does_not_change() -> None:
    first = derive_status(vj({"phase": "Pending"}), job(), [pod("running")], NOW)
    later = NOW + timedelta(minutes=5)
    second = derive_status(vj(first), job(), [pod("running")], later)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["Running"] == "2026-01-01T12:00:00Z"
    done = derive_status(vj(second), job(("Complete", "Completed")), [pod("terminated", 0, result())], later)
    times = {c["type"]: c["lastTransitionTime"] for c in done["conditions"]}
    assert times["Running"] == times["Succeeded"] == "2026-01-01T12:05:00Z"
    assert times["Admitted"] == "2026-01-01T12:00:00Z"


def test_status_patch_is_minimal() -> None:
    old = {"phase": "Running", "progress": 42.5, "queuePosition": 2, "node": "cpu-0"}
    new = {"phase": "Running", "progress": 42.5, "node": "cpu-0"}
    assert status_patch(old, new) == {"queuePosition": None}
    assert status_patch(old, {**new, "progress": 50.0}) == {"progress": 50.0, "queuePosition": None}
    assert status_patch(old, {**new, "phase": "Succeeded", "progress": 100}) == {
        "phase": "Succeeded",
        "progress": 100,
        "queuePosition": None,
    }
    assert status_patch(None, {"phase": "Pending", "progress": 0}) == {"phase": "Pending", "progress": 0}
    assert status_patch(new, dict(new)) == {}


def test_a_second_pass_patches_nothing() -> None:
    first = derive_status(vj({"phase": "Pending"}), job(), [pod("running")], NOW)
    second = derive_status(vj(first), job(), [pod("running")], NOW + timedelta(seconds=7))
    assert status_patch(first, second) == {}


def phases(*steps: dict[str, Any]) -> list[list[str]]:
    return [[reason for _, reason, _ in transition_events(a, b)] for a, b in itertools.pairwise(steps)]


def test_events_per_transition() -> None:
    queued = {"phase": "Pending", "queuePosition": 1, "message": "position 1"}
    admitted = {"phase": "Pending", "jobName": "j", "hardware": "cpu"}
    running = {"phase": "Running", "jobName": "j", "attempts": 1, "node": "cpu-0"}
    retry = {"phase": "Running", "jobName": "j", "attempts": 2, "node": "cpu-0"}
    done = {"phase": "Succeeded", "jobName": "j", "attempts": 2, "message": "1 artifact(s) written"}
    assert phases({}, queued, admitted, running, retry, done) == [
        ["Queued"],
        ["Admitted"],
        ["Started"],
        ["Retrying"],
        ["Succeeded"],
    ]
    assert transition_events(running, running) == []


def test_a_pending_job_stuck_on_its_configuration_gets_one_warning() -> None:
    admitted = {"phase": "Pending", "jobName": "j", "reason": "Admitted"}
    stuck = {
        "phase": "Pending",
        "jobName": "j",
        "reason": "CreateContainerConfigError",
        "message": 'secret "s3" not found',
    }
    assert transition_events(admitted, stuck) == [("Warning", "CreateContainerConfigError", 'secret "s3" not found')]
    assert transition_events(stuck, stuck) == []
    assert phases({}, {"phase": "Pending", "reason": "Queued"}, admitted) == [["Queued"], ["Admitted"]]


def test_a_job_too_fast_to_be_seen_running_still_gets_started() -> None:
    reasons = [
        r
        for _, r, _ in transition_events(
            {"phase": "Pending", "jobName": "j"}, {"phase": "Succeeded", "jobName": "j", "attempts": 1}
        )
    ]
    assert reasons == ["Started", "Succeeded"]


def test_failed_event_is_a_warning_with_the_reason() -> None:
    events = transition_events(
        {"phase": "Running", "attempts": 1, "jobName": "j"},
        {"phase": "Failed", "attempts": 1, "jobName": "j", "reason": "BadInput", "message": "no such key"},
    )
    assert events == [("Warning", "Failed", "BadInput: no such key")]


@pytest.mark.parametrize(
    ("status", "spec_ttl", "default", "remaining"),
    [
        pytest.param({"phase": "Running"}, None, 60, None, id="running jobs are kept"),
        pytest.param({"phase": "Succeeded", "completedAt": "2026-01-01T11:59:00Z"}, None, 600, 540.0, id="default TTL"),
        pytest.param(
            {"phase": "Failed", "completedAt": "2026-01-01T11:59:00Z"},
            30,
            600,
            -30.0,
            id="the VideoJob's own TTL, expired",
        ),
        pytest.param(
            {"phase": "Succeeded", "completedAt": "2026-01-01T11:59:00Z"}, None, None, None, id="no TTL keeps it"
        ),
    ],
)
def test_ttl(status: dict[str, Any], spec_ttl: int | None, default: int | None, remaining: float | None) -> None:
    body = vj(status) if spec_ttl is None else vj(status, ttlSecondsAfterFinished=spec_ttl)
    assert ttl_remaining(body, default, NOW) == remaining


@pytest.mark.parametrize(
    ("annotations", "labels", "kept"),
    [
        pytest.param({}, {}, False, id="an untracked VideoJob is deleted by its TTL"),
        pytest.param(
            {"argocd.argoproj.io/tracking-id": "media:videojob.dev/VideoJob:media/promo"},
            {},
            True,
            id="Argo CD annotation tracking keeps it (selfHeal would re-create and re-encode it)",
        ),
        pytest.param({}, {"app.kubernetes.io/instance": "media"}, True, id="Argo CD label tracking keeps it"),
        pytest.param({}, {"kustomize.toolkit.fluxcd.io/name": "media"}, True, id="Flux keeps it"),
        pytest.param({"videojob.dev/ttl": "Keep"}, {}, True, id="the Keep annotation keeps an untracked one"),
        pytest.param(
            {"videojob.dev/ttl": "Delete"},
            {"app.kubernetes.io/instance": "media"},
            False,
            id="the Delete annotation deletes a tracked one",
        ),
        pytest.param({"videojob.dev/ttl": "sometimes"}, {}, False, id="an unknown value changes nothing"),
    ],
)
def test_ttl_leaves_gitops_managed_videojobs_alone(
    annotations: dict[str, str], labels: dict[str, str], kept: bool
) -> None:
    body = vj({"phase": "Succeeded", "completedAt": "2026-01-01T11:59:00Z"}, ttlSecondsAfterFinished=1)
    body["metadata"] = {**body["metadata"], "annotations": annotations, "labels": labels}
    assert (ttl_exempt(body) is not None) is kept
    assert ttl_remaining(body, None, NOW) == (None if kept else -59.0)


@pytest.mark.parametrize(
    ("pod_status", "reason", "in_message"),
    [
        pytest.param(
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/2 nodes: Insufficient nvidia.com/gpu",
                    }
                ],
            },
            "Unschedulable",
            "nvidia.com/gpu",
            id="waiting for a GPU",
        ),
        pytest.param(
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "transcode",
                        "state": {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": 'secret "videojob-s3" not found',
                            }
                        },
                    }
                ],
            },
            "CreateContainerConfigError",
            "videojob-s3",
            id="its credentials Secret is missing",
        ),
        pytest.param(
            {
                "phase": "Pending",
                "containerStatuses": [{"name": "transcode", "state": {"waiting": {"reason": "ContainerCreating"}}}],
            },
            "Admitted",
            "waiting for its pod",
            id="just starting",
        ),
    ],
)
def test_a_waiting_pod_says_why(pod_status: dict[str, Any], reason: str, in_message: str) -> None:
    waiting_pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T11:50:00Z"},
        "spec": {},
        "status": pod_status,
    }
    status = derive_status(vj({"phase": "Pending"}), job(), [waiting_pod], NOW)
    assert (status["phase"], status["reason"]) == ("Pending", reason)
    assert in_message in status["message"]


def _waiting_on(reason: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T11:50:00Z"},
        "spec": {},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "transcode", "state": {"waiting": {"reason": reason, "message": f"{reason}: x"}}}
            ],
        },
    }


@pytest.mark.parametrize(
    ("waiting", "job_age", "timeout", "phase"),
    [
        ("CreateContainerConfigError", 600, 300, "Failed"),
        ("ImagePullBackOff", 600, 300, "Failed"),
        ("CreateContainerConfigError", 200, 300, "Pending"),
        ("CreateContainerConfigError", 600, None, "Pending"),
        ("ContainerCreating", 600, 300, "Pending"),
    ],
    ids=["missing Secret past the timeout", "image past the timeout", "not yet", "never", "only slow"],
)
def test_a_job_stuck_on_its_configuration_fails_after_the_timeout(
    waiting: str, job_age: int, timeout: int | None, phase: str
) -> None:
    stuck_job = job()
    stuck_job["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=job_age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = derive_status(vj({"phase": "Pending"}), stuck_job, [_waiting_on(waiting)], NOW, stuck_timeout=timeout)
    assert status["phase"] == phase
    assert stops_its_job(status) == (phase == "Failed")
    if phase == "Failed":
        assert status["reason"] == waiting and f"gave up after {timeout} s" in status["message"]
        assert status["completedAt"]


@pytest.mark.parametrize(
    ("status", "stops"),
    [
        ({"phase": "Cancelled", "reason": "Cancelled"}, True),
        ({"phase": "Failed", "reason": "CreateContainerConfigError"}, True),
        ({"phase": "Failed", "reason": "BadInput"}, False),
        ({"phase": "Running", "reason": "Running"}, False),
    ],
    ids=["cancelled", "stuck", "failed by its transcoder: the Job ends by itself", "running"],
)
def test_which_statuses_stop_their_job(status: dict[str, Any], stops: bool) -> None:
    assert stops_its_job(status) == stops


def test_a_job_that_cannot_be_created_yet_says_why() -> None:
    status = derive_status(vj(), None, [], NOW, queue_position=1, blocked="403 Forbidden: exceeded quota")
    assert (status["phase"], status["reason"]) == ("Pending", "JobCreateFailed")
    assert "exceeded quota" in status["message"]


def test_a_job_without_pods_for_long_points_at_its_events() -> None:
    young, old = job(), job()
    young["metadata"]["creationTimestamp"] = "2026-01-01T11:59:50Z"
    old["metadata"]["creationTimestamp"] = "2026-01-01T11:58:00Z"
    assert derive_status(vj({"phase": "Pending"}), young, [], NOW)["reason"] == "Admitted"
    status = derive_status(vj({"phase": "Pending"}), old, [], NOW)
    assert status["reason"] == "NoPod" and "kubectl describe job promo-abc" in status["message"]


@pytest.mark.parametrize(
    ("recorded", "arrival", "expected"),
    [
        pytest.param(
            None,
            "2026-01-01T11:00:00.000042Z",
            "2026-01-01T11:00:00.000042Z",
            id="the operator's precise arrival is recorded",
        ),
        pytest.param(
            "2026-01-01T11:00:00.000007Z",
            "2026-01-01T11:00:00.000042Z",
            "2026-01-01T11:00:00.000007Z",
            id="a recorded queuedAt is kept (it orders the queue after a restart)",
        ),
        pytest.param(None, None, "2026-01-01T11:00:00Z", id="no arrival known: the creation time"),
    ],
)
def test_queued_at(recorded: str | None, arrival: str | None, expected: str) -> None:
    old = {"phase": "Pending", "queuedAt": recorded} if recorded else None
    new = derive_status(vj(old), None, [], NOW, queue_position=1, queued_at=arrival)
    assert new["queuedAt"] == expected
    VideoJobStatus.model_validate(new)  # the schema's 64 characters fit


@pytest.mark.parametrize(
    ("completed_at", "left"),
    [
        pytest.param("2026-01-01T11:00:00Z", 3600.0 - 3600.0, id="an RFC 3339 time"),
        pytest.param("2026-01-01T11:00:00", 0.0, id="a naive time (written by hand) is read as UTC"),
        pytest.param("2026-01-01T13:00:00+01:00", 3600.0, id="an offset is honoured"),
        pytest.param("0001-01-01T00:00:00+01:00", None, id="a time before year 1 in UTC is no time"),
        pytest.param("not a time", None, id="not a time: kept"),
    ],
)
def test_ttl_remaining_of_any_written_completed_at(completed_at: str, left: float | None) -> None:
    """A naive completedAt made ttl_remaining raise TypeError, which stopped every reconcile pass."""
    body = vj({"phase": "Succeeded", "completedAt": completed_at}, ttlSecondsAfterFinished=3600)
    assert ttl_remaining(body, None, NOW) == left


# --- nothing in the status decides the phase unless its Job bears it out ------------------------------------------

FORGED = {
    "phase": "Succeeded",
    "reason": "Succeeded",
    "message": "done",
    "completedAt": "2026-01-01T11:59:00Z",
    "jobName": "promo-abc",
    "attempts": 1,
    "artifacts": [{"uri": "s3://other-tenant/their/file.mp4", "size": 1, "sha256": SHA}],
}


@pytest.mark.parametrize(
    ("old", "the_job", "pods", "phase"),
    [
        pytest.param(
            FORGED,
            job(),
            [pod("running")],
            "Running",
            id="a forged Succeeded while its Job runs: Running (its slot stays taken)",
        ),
        pytest.param(
            {**FORGED, "phase": "Failed", "reason": "BadInput"},
            job(),
            [pod("running")],
            "Running",
            id="a forged Failed while its Job runs: Running",
        ),
        pytest.param(
            {**FORGED, "phase": "Cancelled"},
            job(),
            [pod("running")],
            "Running",
            id="a forged Cancelled without spec.cancel: Running",
        ),
        pytest.param(
            {**FORGED, "phase": "Failed"},
            job(("Complete", "Completed")),
            [pod("terminated", 0, result())],
            "Succeeded",
            id="a forged Failed of a Job that completed: Succeeded",
        ),
        pytest.param(
            FORGED,
            job(("Failed", "BackoffLimitExceeded")),
            [pod("terminated", 75)],
            "Failed",
            id="a forged Succeeded of a Job that failed: Failed",
        ),
        pytest.param(FORGED, None, [], "Succeeded", id="the Job is gone: the recorded phase stands (nothing runs)"),
        pytest.param(
            {**FORGED, "artifacts": []},
            job(("Complete", "Completed")),
            [pod("terminated", 0, result())],
            "Succeeded",
            id="a recorded Succeeded its Job bears out stands",
        ),
    ],
)
def test_a_terminal_phase_stands_only_when_its_job_bears_it_out(
    old: dict[str, Any], the_job: dict[str, Any] | None, pods: list[dict[str, Any]], phase: str
) -> None:
    status = derive_status(vj(dict(old)), the_job, pods, NOW, outputs=OUTPUTS)
    VideoJobStatus.model_validate(status)
    assert status["phase"] == phase
    if phase == "Running":
        assert status["artifacts"] == [] and "completedAt" not in status, "nothing of the forged finish is kept"
        assert conditions_of(status)["Finished"] == "False"
        events = transition_events(old, status)
        assert ("Warning", "StatusCorrected") in [(kind, reason) for kind, reason, _ in events]
    assert all(a["uri"] in OUTPUTS for a in status["artifacts"]), "never another tenant's object"


@pytest.mark.parametrize(
    ("artifacts", "kept"),
    [
        pytest.param([{"uri": "s3://m/out/output.mp4", "size": 1, "sha256": SHA}], 1, id="its own output: kept"),
        pytest.param(
            [{"uri": "s3://other-tenant/their/file.mp4", "size": 1, "sha256": SHA}], 0, id="another bucket: left out"
        ),
        pytest.param(
            [{"uri": "s3://m/out/../../other/file.mp4", "size": 1, "sha256": SHA}],
            0,
            id="a path that climbs out of its prefix: left out",
        ),
        pytest.param(
            [{"uri": "s3://m/out/output.mp4/x", "size": 1, "sha256": SHA}],
            0,
            id="under its prefix but not a file it writes: left out",
        ),
        pytest.param([{"uri": "s3://m/out/output.mp4", "size": 1, "sha256": SHA}] * 20, 1, id="duplicates once"),
    ],
)
def test_the_artifacts_of_a_pods_result_are_only_objects_its_spec_writes(
    artifacts: list[dict[str, Any]], kept: int
) -> None:
    status = derive_status(
        vj({"phase": "Running"}),
        job(("Complete", "Completed")),
        [pod("terminated", 0, json.dumps({"ok": True, "artifacts": artifacts}))],
        NOW,
        outputs=OUTPUTS,
    )
    VideoJobStatus.model_validate(status)
    assert status["phase"] == "Succeeded" and len(status["artifacts"]) == kept
    if kept < len({a["uri"] for a in artifacts}):
        assert "left out" in status["message"]


def test_a_result_that_is_not_a_transcode_result_is_ignored() -> None:
    huge = json.dumps({"ok": True, "artifacts": [{"uri": "s3://m/out/output.mp4", "size": -1, "sha256": "x"}]})
    status = derive_status(
        vj({"phase": "Running"}), job(("Complete", "Completed")), [pod("terminated", 0, huge)], NOW, outputs=OUTPUTS
    )
    assert status["artifacts"] == [] and "no readable result" in status["message"]


def test_hardware_comes_from_the_jobs_template_not_its_editable_labels() -> None:
    """A tenant may relabel their Job (`hardware: cpu`) to free a GPU slot; the pod template cannot change."""
    relabelled = job(hardware="cpu")
    relabelled["spec"] = {"template": {"metadata": {"labels": {"videojob.dev/hardware": "nvidia"}}}}
    status = derive_status(vj({"phase": "Running"}), relabelled, [pod("running")], NOW, outputs=OUTPUTS)
    assert status["hardware"] == "nvidia"


@pytest.mark.parametrize(
    ("reported", "phase", "progress"),
    [
        pytest.param(42.5, "Running", 42.5, id="what the running pod printed last"),
        pytest.param(100.0, "Running", 99.9, id="100 only once the job succeeded"),
        pytest.param(None, "Running", 40, id="nothing read yet: the last value stays"),
    ],
)
def test_progress_comes_from_the_running_pods_log(reported: float | None, phase: str, progress: float) -> None:
    status = derive_status(vj({"phase": "Running", "progress": 40}), job(), [pod("running")], NOW, progress=reported)
    assert (status["phase"], status["progress"]) == (phase, progress)


@pytest.mark.parametrize(
    ("leftovers", "named"),
    [
        pytest.param(["s3://m/out/output.mp4"], True, id="an output it could not delete is named"),
        pytest.param(["s3://other-tenant/x.mp4"], False, id="a URI that is not its output is not repeated"),
        pytest.param([], False, id="nothing left"),
    ],
)
def test_a_failed_job_names_what_it_could_not_delete(leftovers: list[str], named: bool) -> None:
    message = json.dumps(
        {"ok": False, "reason": "StorageUnavailable", "message": "S3 went away", "leftovers": leftovers}
    )
    status = derive_status(
        vj({"phase": "Running"}),
        job(("Failed", "BackoffLimitExceeded")),
        [pod("terminated", 75, message)],
        NOW,
        outputs=OUTPUTS,
    )
    assert status["phase"] == "Failed" and status["reason"] == "StorageUnavailable"
    assert ("could not delete" in status["message"]) is named
    assert "other-tenant" not in status["message"]


_CREATED = {"metadata": {"name": "j", "creationTimestamp": "2026-01-01T12:00:00Z"}}  # NOW
_COMPLETE = {
    **_CREATED,
    "status": {"completionTime": "2026-01-01T12:00:00Z", "conditions": [{"type": "Complete", "status": "True"}]},
}


@pytest.mark.parametrize(
    ("phase", "job", "seconds", "stuck", "until"),
    [
        ("Pending", _CREATED, 1, 120, NOW + timedelta(seconds=30)),
        ("Pending", _CREATED, 30, 120, NOW + timedelta(seconds=30)),
        ("Pending", _CREATED, 31, 120, NOW + timedelta(seconds=120)),
        ("Pending", _CREATED, 31, None, "forever"),
        ("Pending", _CREATED, 121, 120, "forever"),
        ("Pending", {"metadata": {"name": "j"}}, 1, 120, "now"),
        ("Pending", None, 1, 120, "forever"),
        ("Running", _CREATED, 1, 120, "forever"),
        ("Succeeded", _CREATED, 1, 120, "forever"),
        ("Running", _COMPLETE, 1, 120, NOW + timedelta(seconds=60)),
        ("Succeeded", _COMPLETE, 1, 120, "forever"),
    ],
    ids=[
        "admitted: until its Job has had no pod for NO_POD_AFTER",
        "at that moment: not yet past it",
        "then until the stuck timeout",
        "no stuck timeout",
        "past both",
        "a Job without a creation time: every pass",
        "queued, no Job: nothing reads the clock",
        "running",
        "finished",
        "its Job complete, its pod's result not seen: until RESULT_WAIT after the completion",
        "its Job complete and the phase final",
    ],
)
def test_a_derived_status_holds_until_the_clock_can_change_it(
    phase: str, job: dict[str, Any] | None, seconds: int, stuck: float | None, until: Any
) -> None:
    from videojob.controller.status import FOREVER, NO_POD_AFTER, derived_until

    assert NO_POD_AFTER == 30
    now = NOW + timedelta(seconds=seconds)
    expected = {"forever": FOREVER, "now": now}.get(until, until) if isinstance(until, str) else until
    assert derived_until({"phase": phase}, job, now, stuck) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-01-01T12:00:05Z", "2026-01-01T12:00:05.000000Z", id="to the second"),
        pytest.param("2026-01-01T12:00:05.000000Z", "2026-01-01T12:00:05.000000Z", id="already precise"),
        pytest.param("2026-01-01T14:00:05.250000+02:00", "2026-01-01T12:00:05.250000Z", id="an offset"),
        pytest.param("2026-01-01T12:00:05.25", "2026-01-01T12:00:05.250000Z", id="no zone is UTC"),
        pytest.param("2026-13-01T12:00:05.000000Z", None, id="precise in form, no date"),
        pytest.param("0001-01-01T00:00:00.000000Z", "1-01-01T00:00:00.000000Z", id="year 1 as strftime writes it"),
        pytest.param("soon", None, id="not a time"),
        pytest.param(17, None, id="not a string"),
    ],
)
def test_precise(text: Any, expected: str | None) -> None:
    """The form in which arrival times compare as strings; a recorded queuedAt is already in it and is returned as
    it is, without a cache entry for each of 10,000 VideoJobs."""
    assert precise(text) == expected
    if expected == text:
        assert precise(text) is text


@pytest.mark.parametrize(
    ("reason", "pods", "phase", "expected"),
    [
        pytest.param("PodFailurePolicy", [], "Running", "waiting to see its pod's exit", id="no pod seen yet: waits"),
        pytest.param("BackoffLimitExceeded", [pod("running")], "Running", "waiting", id="its pod seen still running"),
        pytest.param(
            "PodFailurePolicy",
            [pod("terminated", 65, result(False, reason="InputNotFound", message="s3://m/in.mp4 missing"))],
            "Failed",
            "InputNotFound",
            id="seen: the transcoder's reason",
        ),
        pytest.param(
            "DeadlineExceeded", [], "Failed", "DeadlineExceeded", id="stopped by its deadline: no pod says why"
        ),
    ],
)
def test_a_failed_job_waits_a_while_for_its_pods_exit(
    reason: str, pods: list[dict[str, Any]], phase: str, expected: str
) -> None:
    failed = job(("Failed", reason))
    failed["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T11:59:50Z"
    status = derive_status(vj({"phase": "Running"}), failed, pods, NOW, outputs=OUTPUTS)
    assert status["phase"] == phase and expected in (status["reason"] if phase == "Failed" else status["message"])


def _chunked(part: str, state: str, index: str = "0") -> dict[str, Any]:
    body = pod(state, 0, result() if part == "join" else None)
    body["metadata"]["labels"] = {"videojob.dev/part": part, "batch.kubernetes.io/job-completion-index": index}
    return body


_SEGMENTS_JOB = job(("Complete", "Completed"), completion="2026-01-01T11:59:50Z")
_SEGMENTS_JOB["spec"] = {
    "template": {"metadata": {"labels": {"videojob.dev/part": "segments", "videojob.dev/segments": "2"}}}
}


@pytest.mark.parametrize(
    ("completed", "pods", "phase", "message"),
    [
        pytest.param("11:59:50", [], "Running", "waiting to see its pod's result", id="no pod seen yet: waits"),
        pytest.param(
            "11:59:50", [pod("running")], "Running", "waiting to see its pod's result", id="its pod seen still running"
        ),
        pytest.param("11:59:50", [pod("terminated", 0, result())], "Succeeded", "1 artifact(s) written", id="seen"),
        pytest.param(
            "11:59:50",
            [pod("terminated", 0, "not json")],
            "Succeeded",
            "no readable result",
            id="seen, its result unreadable: no use waiting",
        ),
        pytest.param("11:59:00", [], "Succeeded", "no readable result", id="RESULT_WAIT after the completion: final"),
        pytest.param(None, [], "Succeeded", "no readable result", id="no completion time: nothing to wait from"),
    ],
)
def test_a_complete_job_waits_a_while_for_its_pods_result(
    completed: str | None, pods: list[dict[str, Any]], phase: str, message: str
) -> None:
    """After the API server restarted, the Jobs' watch can come back before the pods' (CI saw it): the Job says
    Complete while the pod that holds the result (its artifacts) is not seen yet, and a Succeeded is final."""
    from videojob.controller.status import RESULT_WAIT

    assert RESULT_WAIT == 60
    complete = job(("Complete", "Completed"), completion=f"2026-01-01T{completed}Z" if completed else None)
    if completed is None:
        del complete["status"]["conditions"][0]["lastTransitionTime"]
    status = derive_status(vj({"phase": "Running"}), complete, pods, NOW, outputs=OUTPUTS)
    VideoJobStatus.model_validate(status)
    assert status["phase"] == phase and message in status["message"]
    assert len(status["artifacts"]) == (1 if "artifact(s)" in message else 0)


@pytest.mark.parametrize(
    ("pods", "phase"),
    [
        pytest.param(
            [_chunked("segments", "terminated"), _chunked("segments", "terminated", "1")], "Running", id="segments only"
        ),
        pytest.param(
            [_chunked("segments", "terminated"), _chunked("join", "terminated")], "Succeeded", id="the join seen"
        ),
    ],
)
def test_a_chunked_videojobs_result_is_its_joins(pods: list[dict[str, Any]], phase: str) -> None:
    status = derive_status(vj({"phase": "Running"}), _SEGMENTS_JOB, pods, NOW, outputs=OUTPUTS)
    assert status["phase"] == phase
