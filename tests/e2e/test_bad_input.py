"""Bad input and bad configuration end to end: every case ends in a clear state, says why, and wastes no retries.

The real operator and the real transcoder run against the local environment. Each test sets up one fault for
real (a missing or wrong Secret, a bucket that does not exist, a refused URI, a deadline, a race) and checks the
VideoJob's phase, reason and message, and how many Jobs and pods were spent on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from devkit.harness import (
    Diagnostics,
    HeldInput,
    JobAdded,
    JobRecorder,
    MediaFactory,
    NotYet,
    VideoJobs,
    ensure_s3_secret,
)
from devkit.operator_release import NOT_OPERATOR, OperatorRelease
from devkit.specs import VideoJobWrapper, copy_spec
from tests.conftest import TestEnv, wait_for

pytestmark = pytest.mark.e2e

HTTP_INPUTS = {"allow_http": True}  # the harness's transcoders allow private networks (127.0.0.1)


@pytest.fixture
def input_uri(media: MediaFactory, bucket: str) -> str:
    return media.upload(media.video(), bucket, "in/tiny.mp4")


def pods_of(core_v1: Any, namespace: str, job_name: str) -> list[Any]:
    return list(core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items)


def assert_failed_once(
    status: dict[str, Any],
    reason: str,
    words: list[str],
    job_recorder: JobRecorder,
    name: str,
    core_v1: Any,
    namespace: str,
    context: str,
) -> None:
    """Failed with `reason`, the message naming each of `words`, one Job with one pod (no retry spent)."""
    assert status.get("reason") == reason, f"reason {status.get('reason')!r}, expected {reason!r}\n{context}"
    message = status.get("message") or ""
    for word in words:
        assert word in message, f"the message does not name {word!r}: {message!r}\n{context}"
    assert status.get("attempts") == 1, f"attempts {status.get('attempts')}: retries were spent\n{context}"
    jobs = job_recorder.by_owner().get(name, [])
    assert len(jobs) == 1, f"expected one Job, saw {[j.name for j in jobs]}\n{context}"
    assert len(pods_of(core_v1, namespace, jobs[0].name)) == 1, f"the Job ran more than one pod\n{context}"
    failed = {c["type"]: c for c in status.get("conditions") or []}.get("Failed") or {}
    assert failed.get("status") == "True" and failed.get("reason") == reason, f"Failed condition {failed}"


# --- credentials ------------------------------------------------------------------------------------------------


def test_a_missing_secret_says_so_while_pending_and_the_job_runs_once_it_exists(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    input_uri: str,
    bucket: str,
    core_v1: Any,
    namespace: str,
    testenv: TestEnv,
    job_recorder: JobRecorder,
) -> None:
    run_operator()
    videojobs.create(
        "no-secret",
        copy_spec(input_uri, f"s3://{bucket}/out/no-secret/", credentialsSecretRef={"name": "created-later"}),
    )

    def says_why() -> dict[str, Any] | NotYet:
        status = videojobs.status("no-secret")
        waiting = status.get("phase") == "Pending" and status.get("reason") == "CreateContainerConfigError"
        return status if waiting and "created-later" in (status.get("message") or "") else NotYet(status)

    diagnostics.wait(says_why, timeout=60, message="Pending with CreateContainerConfigError naming the Secret")

    def warning_event() -> bool | NotYet:
        events = core_v1.list_namespaced_event(namespace, field_selector="involvedObject.name=no-secret").items
        seen = [(e.type, e.reason) for e in events]
        return True if ("Warning", "CreateContainerConfigError") in seen else NotYet(seen)

    diagnostics.wait(warning_event, timeout=30, message="a Warning Event says what the VideoJob waits for")

    ensure_s3_secret(core_v1, namespace, testenv, name="created-later")

    done = diagnostics.wait_phase("no-secret", "Succeeded", timeout=120)
    assert done["status"].get("artifacts"), diagnostics.report(["no-secret"])
    assert len(job_recorder.by_owner().get("no-secret", [])) == 1


def test_a_job_stuck_on_a_missing_secret_fails_after_the_timeout_and_frees_its_slot(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    input_uri: str,
    bucket: str,
    core_v1: Any,
    namespace: str,
    job_recorder: JobRecorder,
) -> None:
    run_operator(max_running=1, stuck_timeout_seconds=3)
    videojobs.create("stuck", copy_spec(input_uri, f"s3://{bucket}/out/stuck/", credentialsSecretRef={"name": "nope"}))
    diagnostics.wait_phase("stuck", "Pending", timeout=30)
    videojobs.create("behind", copy_spec(input_uri, f"s3://{bucket}/out/behind/"))  # waits for the only slot

    failed = diagnostics.wait_phase("stuck", "Failed", timeout=60)
    status, context = failed["status"], diagnostics.report(["stuck", "behind"])
    assert status.get("reason") == "CreateContainerConfigError", context
    assert "nope" in status["message"] and "gave up after 3 s" in status["message"], context

    # the stuck Job is deleted (no pod keeps waiting for its deadline) and the next VideoJob gets the slot
    job_name = status["jobName"]
    wait_for(lambda: not pods_of(core_v1, namespace, job_name), timeout=60, message="the stuck Job's pods are gone")
    done = diagnostics.wait_phase("behind", "Succeeded", timeout=120)
    assert done["status"].get("artifacts"), context
    assert len(job_recorder.by_owner().get("stuck", [])) == 1, context


def test_wrong_credentials_fail_with_access_denied_and_no_retries(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    input_uri: str,
    bucket: str,
    core_v1: Any,
    namespace: str,
    job_recorder: JobRecorder,
) -> None:
    core_v1.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "wrong-keys"},
            "stringData": {"AWS_ACCESS_KEY_ID": "not-a-user", "AWS_SECRET_ACCESS_KEY": "not-a-password"},
        },
    )
    run_operator()
    videojobs.create(
        "denied",
        copy_spec(input_uri, f"s3://{bucket}/out/denied/", retries=3, credentialsSecretRef={"name": "wrong-keys"}),
    )

    failed = diagnostics.wait_phase("denied", "Failed", timeout=120)

    assert_failed_once(
        failed["status"],
        "StorageAccessDenied",
        [input_uri],
        job_recorder,
        "denied",
        core_v1,
        namespace,
        diagnostics.report(["denied"]),
    )


def test_a_secret_without_the_secret_key_says_which_key_is_missing(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    input_uri: str,
    bucket: str,
    core_v1: Any,
    namespace: str,
) -> None:
    core_v1.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "half-secret"},
            "stringData": {"AWS_ACCESS_KEY_ID": "someone"},
        },
    )
    run_operator()
    videojobs.create(
        "half", copy_spec(input_uri, f"s3://{bucket}/out/half/", credentialsSecretRef={"name": "half-secret"})
    )

    def says_why() -> dict[str, Any] | NotYet:
        status = videojobs.status("half")
        message = status.get("message") or ""
        named = "AWS_SECRET_ACCESS_KEY" in message and "half-secret" in message
        return status if status.get("reason") == "CreateContainerConfigError" and named else NotYet(status)

    status = diagnostics.wait(says_why, timeout=60, message="the status names the missing key and the Secret")
    assert status["phase"] == "Pending", status
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    assert conditions["Admitted"]["status"] == "True", conditions


# --- storage ----------------------------------------------------------------------------------------------------


def test_a_missing_output_bucket_fails_without_retries_and_names_the_bucket(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    input_uri: str,
    core_v1: Any,
    namespace: str,
    job_recorder: JobRecorder,
) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:10]}"
    output = f"s3://{missing}/out/"
    run_operator()
    videojobs.create("no-bucket", copy_spec(input_uri, output, retries=2))

    failed = diagnostics.wait_phase("no-bucket", "Failed", timeout=120)

    status = failed["status"]
    context = diagnostics.report(["no-bucket"])
    assert missing in (status.get("message") or ""), context
    # the platform's configuration is wrong, not the user's input; found before any transcoding
    assert status.get("reason") == "OutputBucketNotFound", context
    assert_failed_once(status, str(status.get("reason")), [], job_recorder, "no-bucket", core_v1, namespace, context)


# --- refused inputs ---------------------------------------------------------------------------------------------


def test_an_http_input_is_refused_by_the_operator_without_a_job(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    bucket: str,
    job_recorder: JobRecorder,
) -> None:
    uri = "http://media.example.com/in/clip.mp4"
    op = run_operator(allow_http=False)
    videojobs.create("plain-http", copy_spec(uri, f"s3://{bucket}/out/plain-http/"))

    failed = diagnostics.wait_phase("plain-http", "Failed", timeout=30)

    status = failed["status"]
    assert status.get("reason") == "InvalidSpec", diagnostics.report(["plain-http"])
    assert uri in status["message"] and "http://" in status["message"], status["message"]
    assert status.get("attempts") == 0 and not status.get("jobName"), status
    assert "plain-http" not in job_recorder.by_owner(), "a Job was created for a refused input"
    # The refused input did not crash the operator: its container runs, never restarted.
    diagnostics.wait(lambda: op.running, timeout=30, message="the operator's container running")
    cs = op.container_status()
    assert cs is not None and cs.restart_count == 0, cs


def test_an_https_input_on_a_private_address_fails_bad_input_naming_the_uri(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    bucket: str,
    core_v1: Any,
    namespace: str,
    job_recorder: JobRecorder,
) -> None:
    uri = "https://127.0.0.1:9/in/clip.mp4"  # nothing is contacted: the address is refused first
    run_operator(transcoder_env={"VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "false"})
    videojobs.create("private", copy_spec(uri, f"s3://{bucket}/out/private/", retries=2))

    failed = diagnostics.wait_phase("private", "Failed", timeout=90)

    status = failed["status"]
    context = diagnostics.report(["private"])
    assert "private" in status["message"], context
    # Refused by the transcoder (the operator does not know whether the platform allows private networks; it only
    # hands the setting on), at its first attempt.
    assert_failed_once(status, "BadInput", [uri], job_recorder, "private", core_v1, namespace, context)


# --- deadline, cancel, delete, namespaces -----------------------------------------------------------------------


def test_a_one_second_deadline_fails_deadline_exceeded(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    bucket: str,
    core_v1: Any,
    namespace: str,
    job_recorder: JobRecorder,
) -> None:
    held = held_input("slow")  # never released in time: the download stalls, so the run outlives its deadline
    uri = held.uri
    run_operator(**HTTP_INPUTS)
    videojobs.create_object(
        VideoJobWrapper("deadline", uri, f"s3://{bucket}/out/deadline/").copy_video().retries(2).deadline(1).obj()
    )

    try:
        failed = diagnostics.wait_phase("deadline", "Failed", timeout=90)
    finally:
        held.release()

    status = failed["status"]
    context = diagnostics.report(["deadline"])
    assert status.get("reason") == "DeadlineExceeded", context
    assert "activeDeadlineSeconds" in status["message"] and "1 s" in status["message"], context
    # A loaded node may not even start the pod within the second (attempts 0); either way nothing runs again:
    # one Job ever (the operator does not recreate it), which started at most one pod.
    assert int(status.get("attempts") or 0) <= 1, f"a deadline is not retried\n{context}"
    wait_for(job_recorder.caught_up, timeout=30, message="the Job watch caught up")
    jobs = job_recorder.by_owner().get("deadline", [])
    assert len(jobs) == 1, f"a deadline is not retried: Jobs {[j.name for j in jobs]}\n{context}"
    assert len(pods_of(core_v1, namespace, jobs[0].name)) <= 1, f"the Job ran more than one pod\n{context}"


def test_cancelling_a_queued_videojob_creates_no_job(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    bucket: str,
    job_recorder: JobRecorder,
) -> None:
    held = held_input("hold")
    uri = held.uri
    run_operator(max_running=1, **HTTP_INPUTS)
    try:
        videojobs.create("holder", copy_spec(uri, f"s3://{bucket}/out/holder/"))
        diagnostics.wait_phase("holder", ("Pending", "Running"), timeout=30)
        diagnostics.wait(lambda: videojobs.status("holder").get("jobName"), timeout=30, message="holder admitted")
        videojobs.create("queued", copy_spec(uri, f"s3://{bucket}/out/queued/"))
        diagnostics.wait(
            lambda: videojobs.status("queued").get("queuePosition") == 1, timeout=30, message="queued at position 1"
        )

        videojobs.patch_spec("queued", {"cancel": True})

        cancelled = diagnostics.wait_phase("queued", "Cancelled", timeout=30)
    finally:
        held.release()
    status = cancelled["status"]
    assert not status.get("jobName") and not status.get("queuePosition"), status
    assert status.get("completedAt") and status.get("reason") == "Cancelled", status
    assert "queued" not in job_recorder.by_owner(), "a Job was created for a VideoJob cancelled while queued"


def test_deleting_videojobs_while_their_jobs_are_created_leaves_no_job(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    input_uri: str,
    bucket: str,
    batch_v1: Any,
    core_v1: Any,
    namespace: str,
    job_recorder: JobRecorder,
) -> None:
    deleted_on_job: list[str] = []

    def delete_owner(entry: JobAdded) -> None:  # the moment its Job appears, while the operator records it
        if entry.owner and entry.owner.startswith("on-job-"):
            videojobs.delete(entry.owner)
            deleted_on_job.append(entry.owner)

    job_recorder.on_added = delete_owner
    run_operator()
    at_once = [f"at-once-{i}" for i in range(3)]
    for name in at_once:  # deleted right after it is created: before, during or after the operator sees it
        videojobs.create(name, copy_spec(input_uri, f"s3://{bucket}/out/{name}/"))
        videojobs.delete(name)
    on_job = [f"on-job-{i}" for i in range(3)]
    for name in on_job:
        videojobs.create(name, copy_spec(input_uri, f"s3://{bucket}/out/{name}/"))

    def no_videojobs_and_no_jobs() -> bool | NotYet:
        left = [o["metadata"]["name"] for o in videojobs.list()]
        jobs = [j.metadata.name for j in batch_v1.list_namespaced_job(namespace).items]
        pods = [p.metadata.name for p in core_v1.list_namespaced_pod(namespace, label_selector=NOT_OPERATOR).items]
        return True if not (left or jobs or pods) else NotYet({"videojobs": left, "jobs": jobs, "pods": pods})

    diagnostics.wait(no_videojobs_and_no_jobs, timeout=90, message="every VideoJob, Job and pod gone")
    assert sorted(deleted_on_job) == on_job, f"deleted when their Job appeared: {deleted_on_job}"
    for entry in job_recorder.snapshot():  # every Job that did get created named its (deleted) owner
        owners = entry.obj["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r.get("controller")) for r in owners] == [("VideoJob", True)], (entry.name, owners)


@pytest.fixture
def other_namespace(core_v1: Any, namespace: str) -> Iterator[str]:
    name = f"unwatched-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        try:
            core_v1.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise


def test_a_videojob_in_an_unwatched_namespace_is_left_alone(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    custom_objects: Any,
    other_namespace: str,
    bucket: str,
    batch_v1: Any,
) -> None:
    run_operator()
    elsewhere = VideoJobs(custom_objects, other_namespace)
    elsewhere.create("not-mine", copy_spec("http://media.example.com/a.mp4", f"s3://{bucket}/out/x/"))
    # A VideoJob the operator does handle, created after it: once it is done, the other one was seen too if it
    # ever would be (one watch, one pass).
    videojobs.create("mine", copy_spec("http://media.example.com/a.mp4", f"s3://{bucket}/out/y/"))
    diagnostics.wait_phase("mine", "Failed", timeout=30)

    assert "status" not in elsewhere.get("not-mine"), elsewhere.get("not-mine")
    assert not batch_v1.list_namespaced_job(other_namespace).items
