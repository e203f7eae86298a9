"""What a person watching sees: conditions that `kubectl wait` understands, Events on every transition, metrics,
and finished VideoJobs cleaned up after their TTL with their artifacts kept (or deleted when the spec asks).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from devkit.harness import Diagnostics, HeldInput, MediaFactory, NotYet, ScriptedHTTPServer, VideoJobs
from devkit.operator_release import OperatorRelease
from devkit.specs import VideoJobWrapper, encode_spec
from tests.conftest import TestEnv
from videojob.controller.status import parse_time

pytestmark = pytest.mark.e2e


def metric(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lbls, v in samples.get(name, []) if all(lbls.get(k) == want for k, want in labels.items()))


def test_kubectl_wait_events_and_metrics_follow_a_job(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    http_server: ScriptedHTTPServer,
    bucket: str,
    core_v1: Any,
    namespace: str,
    testenv: TestEnv,
) -> None:
    held = held_input("watched")
    uri = held.uri
    op = run_operator(allow_http=True)
    videojobs.create("watched", encode_spec(uri, f"s3://{bucket}/out/watched/", hardware="cpu"))
    diagnostics.wait_phase("watched", "Running", timeout=90)
    diagnostics.wait(lambda: http_server.arrived("/watched.mp4"), timeout=60, message="the input requested")
    running = op.metrics()
    assert metric(running, "videojob_videojobs", videojob_namespace=namespace, phase="Running") == 1, running.get(
        "videojob_videojobs"
    )
    (build,) = running["videojob_build_info"]
    assert build[1] == 1 and build[0]["version"], build

    # The real kubectl, waiting on the condition the operator sets, as a user would script it.
    kubectl = testenv.dir / "bin" / "kubectl"
    waiter = subprocess.Popen(
        [
            str(kubectl),
            "--kubeconfig",
            testenv.kubeconfig,
            "-n",
            namespace,
            "wait",
            "--for=condition=Succeeded",
            "videojob/watched",
            "--timeout=120s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    held.release()
    out, _ = waiter.communicate(timeout=150)
    assert waiter.returncode == 0, f"kubectl wait failed: {out}\n{diagnostics.report(['watched'])}"
    assert "condition met" in out, out

    done = videojobs.get("watched")
    assert done["status"]["phase"] == "Succeeded"

    def events_posted() -> bool | NotYet:
        events = core_v1.list_namespaced_event(namespace, field_selector="involvedObject.name=watched").items
        reasons = [e.reason for e in sorted(events, key=lambda e: e.metadata.creation_timestamp)]
        return all(expected in reasons for expected in ("Admitted", "Started", "Succeeded")) or NotYet(reasons)

    # Events are posted beside the status writes (a status write never waits for its Events), so the Succeeded
    # Event may follow the status that `kubectl wait` saw by a moment.
    diagnostics.wait(events_posted, timeout=30, message="the Admitted, Started and Succeeded Events")

    def counted() -> bool:
        samples = op.metrics()
        return (
            metric(samples, "videojob_videojobs", videojob_namespace=namespace, phase="Succeeded") == 1
            and metric(
                samples,
                "videojob_finished_total",
                videojob_namespace=namespace,
                phase="Succeeded",
                reason="Succeeded",
                hardware="cpu",
            )
            == 1
            and metric(samples, "videojob_jobs_created_total") >= 1
            and metric(samples, "videojob_input_bytes_total", videojob_namespace=namespace) > 0
            and metric(samples, "videojob_output_bytes_total", videojob_namespace=namespace) > 0
            and metric(samples, "videojob_encode_speed_ratio_count", hardware="cpu") == 1
            and metric(samples, "videojob_admission_wait_seconds_count", priority="5") == 1
        )

    diagnostics.wait(counted, timeout=30, message=f"metrics to count the success:\n{op.metrics_text()[:3000]}")


def test_ttl_deletes_the_finished_videojob_keeps_its_artifacts_and_spares_gitops_ones(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    media: MediaFactory,
    bucket: str,
    s3: Any,
    batch_v1: Any,
    namespace: str,
) -> None:
    source = media.upload(media.video(), bucket, "in/ttl.mp4")
    op = run_operator()
    videojobs.create(
        "short-lived", encode_spec(source, f"s3://{bucket}/out/ttl/", hardware="cpu", ttlSecondsAfterFinished=4)
    )
    # The same, as Argo CD syncs it (annotation tracking), with a shorter TTL: deleting it would only make selfHeal
    # create it again, and it would encode again.
    tracking = f"media:videojob.dev/VideoJob:{namespace}/in-git"
    videojobs.create_object(
        VideoJobWrapper("in-git", source, f"s3://{bucket}/out/ttl-git/")
        .hardware("cpu")
        .ttl(1)
        .annotation("argocd.argoproj.io/tracking-id", tracking)
        .obj()
    )
    done = diagnostics.wait_phase("short-lived", "Succeeded", timeout=120)
    in_git = diagnostics.wait_phase("in-git", "Succeeded", timeout=120)
    artifact = done["status"]["artifacts"][0]
    job_name = done["status"]["jobName"]
    in_git_at, done_at = parse_time(in_git["status"]["completedAt"]), parse_time(done["status"]["completedAt"])
    assert in_git_at and done_at, (in_git["status"], done["status"])
    assert in_git_at + timedelta(seconds=1) <= done_at + timedelta(seconds=4), "in-git's TTL must run out first"

    def deleted() -> bool:
        try:
            videojobs.get("short-lived")
        except ApiException as e:
            return e.status == 404
        return False

    diagnostics.wait(deleted, timeout=60, message="the VideoJob deleted after its TTL")
    # A pass after the one that deleted short-lived (which was past in-git's TTL too) counts one Succeeded VideoJob,
    # the tracked one: the TTL left it alone.
    diagnostics.wait(
        lambda: metric(op.metrics(), "videojob_videojobs", videojob_namespace=namespace, phase="Succeeded") == 1,
        timeout=60,
        message="a pass after the TTL deletion; in-git must still be counted",
    )
    assert videojobs.get("in-git")["status"]["phase"] == "Succeeded"
    _, _, key = artifact["uri"][len("s3://") :].partition("/")
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == artifact["size"], "artifact not kept"

    def job_gone() -> bool:
        try:
            batch_v1.read_namespaced_job(job_name, namespace)
        except ApiException as e:
            return e.status == 404
        return False

    diagnostics.wait(job_gone, timeout=60, message=f"Job {job_name} garbage-collected with its VideoJob")


def test_reclaim_policy_delete_removes_artifacts_with_the_videojob(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    media: MediaFactory,
    bucket: str,
    s3: Any,
) -> None:
    source = media.upload(media.video(), bucket, "in/reclaim.mp4")
    run_operator()
    videojobs.create(
        "reclaimed", encode_spec(source, f"s3://{bucket}/out/reclaim/", hardware="cpu", artifactReclaimPolicy="Delete")
    )
    done = diagnostics.wait_phase("reclaimed", "Succeeded", timeout=120)
    keys = [a["uri"][len(f"s3://{bucket}/") :] for a in done["status"]["artifacts"]]
    assert keys and all(s3.head_object(Bucket=bucket, Key=k) for k in keys)

    videojobs.delete("reclaimed")

    def gone() -> bool:
        try:
            videojobs.get("reclaimed")
        except ApiException as e:
            return e.status == 404
        return False

    diagnostics.wait(gone, timeout=60, message="the VideoJob deleted (after its artifacts)")
    left = s3.list_objects_v2(Bucket=bucket, Prefix="out/reclaim/").get("Contents", [])
    assert not left, f"artifacts left behind: {[o['Key'] for o in left]}"
