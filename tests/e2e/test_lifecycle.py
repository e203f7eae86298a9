"""Lifecycle end to end: cancel, delete, a missing input, a transient failure retried.

Inputs that must stay "in progress" for a while are served by an HTTP server on this machine that stalls the
download until the test releases it: the transcoder really is running in its container, blocked on a real socket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from devkit.containers import container_id, container_processes
from devkit.harness import (
    Diagnostics,
    JobRecorder,
    MediaFactory,
    NotYet,
    ScriptedHTTPServer,
    VideoJobs,
)
from devkit.operator_release import NOT_OPERATOR, OperatorRelease
from devkit.specs import encode_spec

pytestmark = pytest.mark.e2e

# The operator hands VIDEOJOB_ALLOW_HTTP to the transcoder; the harness allows private networks (this machine's).
HTTP_INPUTS = {"allow_http": True}


def running_pod(core_v1: Any, namespace: str, job_name: str) -> Any:
    pods = core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    running = [p for p in pods if container_id(p) is not None]
    return running[0] if running else None


def gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def start_stalled_job(
    name: str,
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    http_server: ScriptedHTTPServer,
    media: MediaFactory,
    bucket: str,
    core_v1: Any,
    namespace: str,
) -> tuple[dict[str, Any], Any, str]:
    """A VideoJob Running with its transcoder process alive, blocked on the input download; with its pod and the
    id of its container."""
    uri = http_server.hold(f"/{name}.mp4", media.video().read_bytes()).uri
    run_operator(**HTTP_INPUTS)
    videojobs.create(name, encode_spec(uri, f"s3://{bucket}/out/{name}/", hardware="cpu"))
    obj = diagnostics.wait_phase(name, "Running", timeout=90)
    job_name = obj["status"]["jobName"]
    pod = diagnostics.wait(
        lambda: running_pod(core_v1, namespace, job_name), timeout=60, message=f"a running pod of Job {job_name}"
    )
    container = container_id(pod)
    assert container is not None
    diagnostics.wait(
        lambda: http_server.arrived(f"/{name}.mp4"), timeout=60, message="the transcoder to request its input"
    )
    assert container_processes(container), f"the pod's container {container} has no live process"
    return obj, pod, container


def test_cancel_stops_the_running_process_and_ends_cancelled(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    http_server: ScriptedHTTPServer,
    media: MediaFactory,
    bucket: str,
    core_v1: Any,
    batch_v1: Any,
    namespace: str,
) -> None:
    obj, pod, container = start_stalled_job(
        "cancel-me", run_operator, videojobs, diagnostics, http_server, media, bucket, core_v1, namespace
    )
    job_name = obj["status"]["jobName"]

    videojobs.patch_spec("cancel-me", {"cancel": True})

    cancelled = diagnostics.wait_phase("cancel-me", "Cancelled", timeout=60)
    diagnostics.wait(
        lambda: not container_processes(container),
        timeout=60,
        message=f"the cancelled pod's processes (container {container[:12]}) to be gone",
    )
    diagnostics.wait(
        lambda: gone(lambda: batch_v1.read_namespaced_job(job_name, namespace)),
        timeout=60,
        message=f"Job {job_name} deleted after cancel",
    )
    diagnostics.wait(
        lambda: gone(lambda: core_v1.read_namespaced_pod(pod.metadata.name, namespace)),
        timeout=60,
        message=f"pod {pod.metadata.name} deleted after cancel",
    )
    conditions = {c["type"]: c for c in cancelled["status"].get("conditions", [])}
    assert any(c["status"] == "True" and "ancel" in (c["type"] + c["reason"]) for c in conditions.values()), (
        f"no condition says Cancelled: {conditions}"
    )
    assert cancelled["status"].get("completedAt"), diagnostics.report(["cancel-me"])


def test_deleting_a_videojob_removes_its_job_and_pods(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    http_server: ScriptedHTTPServer,
    media: MediaFactory,
    bucket: str,
    core_v1: Any,
    batch_v1: Any,
    namespace: str,
) -> None:
    obj, pod, container = start_stalled_job(
        "delete-me", run_operator, videojobs, diagnostics, http_server, media, bucket, core_v1, namespace
    )
    job_name = obj["status"]["jobName"]
    job = batch_v1.read_namespaced_job(job_name, namespace)
    owners = [(r.kind, r.name, r.uid) for r in job.metadata.owner_references or []]
    assert ("VideoJob", "delete-me", obj["metadata"]["uid"]) in owners, owners

    videojobs.delete("delete-me")

    diagnostics.wait(lambda: gone(lambda: videojobs.get("delete-me")), timeout=60, message="VideoJob delete-me gone")
    diagnostics.wait(
        lambda: gone(lambda: batch_v1.read_namespaced_job(job_name, namespace)),
        timeout=60,
        message=f"Job {job_name} garbage-collected",
    )
    diagnostics.wait(
        lambda: gone(lambda: core_v1.read_namespaced_pod(pod.metadata.name, namespace)),
        timeout=90,
        message=f"pod {pod.metadata.name} garbage-collected",
    )
    diagnostics.wait(
        lambda: not container_processes(container),
        timeout=30,
        message=f"the pod's processes (container {container[:12]}) gone",
    )


def test_missing_input_fails_with_the_uri_and_spends_no_retries(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    job_recorder: JobRecorder,
    bucket: str,
    core_v1: Any,
    namespace: str,
) -> None:
    missing = f"s3://{bucket}/in/there-is-no-such-file.mp4"
    run_operator()
    videojobs.create("missing-input", encode_spec(missing, f"s3://{bucket}/out/missing/", retries=3, hardware="cpu"))

    failed = diagnostics.wait_phase("missing-input", "Failed", timeout=120)

    status = failed["status"]
    context = diagnostics.report(["missing-input"])
    assert missing in (status.get("message") or ""), f"the message does not name the URI\n{context}"
    assert status.get("attempts") == 1, f"retries were spent on a missing input\n{context}"
    jobs = job_recorder.by_owner().get("missing-input", [])
    assert len(jobs) == 1, f"expected one Job, saw {[j.name for j in jobs]}"
    pods = core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={jobs[0].name}").items
    assert len(pods) == 1, f"the Job ran {len(pods)} pods for a missing input (retries spent)\n{context}"
    assert status.get("reason"), f"no reason in the status\n{context}"


def test_transient_failure_is_retried_and_succeeds(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    http_server: ScriptedHTTPServer,
    media: MediaFactory,
    bucket: str,
    core_v1: Any,
    s3: Any,
    namespace: str,
) -> None:
    # The input's server answers 503 Service Unavailable (a real transient failure on a real socket) until the
    # first attempt's pod has failed, then serves the file: the retry must succeed.
    path = "/flaky.mp4"
    http_server.fail_status[path] = 503
    uri = http_server.add(path, media.video().read_bytes())
    run_operator(**HTTP_INPUTS)
    videojobs.create("flaky", encode_spec(uri, f"s3://{bucket}/out/flaky/", retries=2, hardware="cpu"))

    def first_pod_failed() -> Any:
        pods = core_v1.list_namespaced_pod(namespace, label_selector=NOT_OPERATOR).items
        failed = [p for p in pods if p.status.phase == "Failed"]
        return failed[0] if failed else NotYet([(p.metadata.name, p.status.phase) for p in pods])

    pod = diagnostics.wait(first_pod_failed, timeout=180, interval=0.5, message="the first attempt to fail on 503")
    exit_codes = [cs.state.terminated.exit_code for cs in pod.status.container_statuses or [] if cs.state.terminated]
    assert 503 in http_server.hits(path), http_server.requests
    del http_server.fail_status[path]

    done = diagnostics.wait_phase("flaky", "Succeeded", timeout=180)

    status = done["status"]
    assert status.get("attempts") == 2, (
        f"expected 2 attempts (first exit codes {exit_codes}), got {status.get('attempts')}\n"
        f"{diagnostics.report(['flaky'])}"
    )
    assert http_server.hits(path)[-1] == 200, http_server.requests
    artifacts = status.get("artifacts") or []
    assert artifacts, "no artifacts"
    bucket_name, _, key = artifacts[0]["uri"][len("s3://") :].partition("/")
    head = s3.head_object(Bucket=bucket_name, Key=key)
    assert head["ContentLength"] == artifacts[0]["size"]
