"""The operator's lifecycle on the real local environment: `videojob-operator` runs as a subprocess against the
control plane (the integration tier; the end-to-end tests install it with the chart), and the Job controller,
scheduler and kubelets run the pods it creates, in containers of the transcoder image.

The transcoder is replaced by a tiny stand-in (STAND_IN below) because these tests are about the operator: the
stand-in reads its spec like the real one, and behaves by the output name: "output" succeeds after two seconds
(long enough for the Running phase to be observed), "slow" runs until stopped, "bad" fails like a missing
input (exit 65 with a TranscodeResult). The e2e tests run the real transcoder.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.harness import OperatorProcess, install_crd
from tests.conftest import REPO, TestEnv, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

GROUP, VERSION, PLURAL = "videojob.dev", "v1alpha1", "videojobs"

STAND_IN = r"""
import json, os, sys, time
spec = json.loads(open(os.environ["VIDEOJOB_SPEC_FILE"], encoding="utf-8").read())
name = spec["output"]["name"]
result_path = os.environ["VIDEOJOB_RESULT_PATH"]
def finish(code, result):
    with open(result_path, "w") as f:
        json.dump(result, f)
    sys.exit(code)
if name == "bad":
    uri = spec["inputs"][0]["uri"]
    finish(65, {"ok": False, "reason": "InputNotFound", "message": f"{uri} does not exist"})
time.sleep(600 if name == "slow" else 2)
uri = spec["output"]["uri"] + name + ".mp4"
finish(0, {"ok": True, "artifacts": [{"uri": uri, "size": 1234, "sha256": "0" * 64, "width": 320, "height": 240}],
           "bytes_in": 1000, "bytes_out": 1234, "seconds": 2.0})
"""


def flat_metrics(text: str) -> dict[str, float]:
    """/metrics as `name{labels}` -> value, for matching labels as text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


@pytest.fixture
def operator(
    request: pytest.FixtureRequest,
    testenv: TestEnv,
    namespace: str,
    core_v1: Any,
    k8s_client: Any,
    tmp_path: Path,
    apiextensions_v1: Any,
) -> Iterator[OperatorProcess]:
    """The operator watching the test's namespace; extra settings by indirect parametrisation (env var -> value)."""
    from kubernetes import client

    install_crd(apiextensions_v1)
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="videojob-s3"),
            string_data={
                "AWS_ACCESS_KEY_ID": testenv.aws_access_key_id,
                "AWS_SECRET_ACCESS_KEY": testenv.aws_secret_access_key,
            },
        ),
    )
    scheduling = client.SchedulingV1Api(k8s_client)
    classes = [f"{namespace}-{band}" for band in ("urgent", "normal", "low")]
    for value, name in zip((3000, 2000, 1000), classes, strict=True):
        scheduling.create_priority_class(client.V1PriorityClass(metadata=client.V1ObjectMeta(name=name), value=value))
    process = OperatorProcess.for_testenv(
        testenv,
        [namespace],
        tmp_path / "operator.log",
        VIDEOJOB_TRANSCODER_COMMAND=["python3", "-c", STAND_IN],
        VIDEOJOB_PRIORITY_CLASSES={"urgent": classes[0], "normal": classes[1], "low": classes[2]},
        VIDEOJOB_LOG_FORMAT="json",
        **getattr(request, "param", {}),
    )
    try:
        process.start()
        yield process
    finally:
        process.stop()
        for name in classes:
            scheduling.delete_priority_class(name)
        sys.stderr.write(f"\n--- operator log (tail) ---\n{process.log_tail()}\n")


def videojob(name: str, output: str = "output", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {
            "inputs": [{"name": "main", "uri": "s3://media/in/main.mp4"}],
            "output": {"uri": f"s3://media/out/{name}/", "name": output},
            **spec,
        },
    }


def get_vj(custom_objects: Any, namespace: str, name: str) -> dict[str, Any]:
    return custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def events_for(core_v1: Any, namespace: str, name: str) -> list[tuple[str, str]]:
    events = core_v1.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    ordered = sorted(events, key=lambda e: (e.last_timestamp or e.event_time, e.metadata.creation_timestamp))
    return [(e.type, e.reason) for e in ordered if e.source and e.source.component == "videojob-operator"]


def test_a_videojob_goes_pending_running_succeeded(
    operator: OperatorProcess, namespace: str, custom_objects: Any, batch_v1: Any, core_v1: Any, testenv: TestEnv
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, videojob("promo", priority=2, hardware="cpu", retries=3)
    )
    seen: list[str] = []

    def phase() -> str | None:
        status = get_vj(custom_objects, namespace, "promo").get("status") or {}
        if status.get("phase") and (not seen or seen[-1] != status["phase"]):
            seen.append(status["phase"])
        return status.get("phase") if status.get("phase") in ("Succeeded", "Failed") else None

    jobs = wait_for(
        lambda: batch_v1.list_namespaced_job(namespace).items, timeout=30, interval=0.1, message="the Job to be created"
    )
    assert len(jobs) == 1
    job = jobs[0]
    vj = get_vj(custom_objects, namespace, "promo")
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller, owner.block_owner_deletion) == (
        "VideoJob",
        "promo",
        vj["metadata"]["uid"],
        True,
        True,
    )
    assert job.metadata.labels["app.kubernetes.io/managed-by"] == "videojob-operator"
    assert job.metadata.labels["videojob.dev/uid"] == vj["metadata"]["uid"]
    assert job.spec.backoff_limit == 3
    assert [r.action for r in job.spec.pod_failure_policy.rules] == ["FailJob", "Ignore"]
    pod_spec = job.spec.template.spec
    assert pod_spec.priority_class_name == f"{namespace}-urgent"
    assert pod_spec.service_account_name == "videojob-transcoder"
    container = pod_spec.containers[0]
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.capabilities.drop == ["ALL"]
    env = {e.name: e for e in container.env}
    assert "VIDEOJOB_SPEC" not in env and env["VIDEOJOB_SPEC_FILE"].value == "/etc/videojob/spec.json"
    copy = json.loads(job.spec.template.metadata.annotations["videojob.dev/spec"])
    assert copy["inputs"] == vj["spec"]["inputs"] and "priority" not in copy, "what the transcoder reads"
    assert pod_spec.automount_service_account_token is False
    assert env["AWS_ACCESS_KEY_ID"].value_from.secret_key_ref.name == "videojob-s3"

    assert wait_for(phase, timeout=90, interval=0.1, message="the VideoJob to finish") == "Succeeded", seen
    assert seen[-2:] == ["Running", "Succeeded"], f"phases observed: {seen}"
    status = get_vj(custom_objects, namespace, "promo")["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True" and conditions["Admitted"]["status"] == "True"
    assert conditions["Running"]["status"] == conditions["Failed"]["status"] == "False"
    assert all(c["observedGeneration"] == 1 for c in conditions.values())
    assert status["attempts"] == 1
    assert status["node"] == "cpu-0" and status["hardware"] == "cpu"
    assert status["progress"] == 100
    assert status["artifacts"][0]["uri"] == "s3://media/out/promo/output.mp4"
    assert status["startedAt"] <= status["completedAt"]
    assert "queuePosition" not in status

    # The transcoder's SA holds no rights (no Role) and mounts no token: progress came from the pod's log.
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(batch_v1.api_client)
    assert [r.metadata and r.metadata.name for r in rbac.list_namespaced_role(namespace).items] == []
    assert (
        core_v1.read_namespaced_service_account("videojob-transcoder", namespace).automount_service_account_token
        is False
    )

    def transition_events() -> list[str] | None:
        reasons = [reason for _, reason in events_for(core_v1, namespace, "promo")]
        return reasons if {"Admitted", "Started", "Succeeded"} <= set(reasons) else None

    reasons = wait_for(transition_events, timeout=15, message="Admitted, Started and Succeeded Events")
    assert len(reasons) == len(set(reasons)), f"one Event per transition, none twice: {reasons}"

    kubectl_wait = subprocess.run(
        [
            str(testenv.dir / "bin" / "kubectl"),
            "wait",
            "-n",
            namespace,
            "--for=condition=Succeeded",
            "videojob/promo",
            "--timeout=10s",
        ],
        env=testenv.subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert kubectl_wait.returncode == 0, kubectl_wait.stderr

    def total(metrics: dict[str, float], name: str, *labels: str) -> float:
        """The sum of `name`'s series that carry every one of `labels` (`key="value"`)."""
        return sum(v for k, v in metrics.items() if k.split("{")[0] == name and all(lb in k for lb in labels))

    def metrics_show_it() -> dict[str, float] | None:
        metrics = flat_metrics(operator.metrics_text())
        here = f'videojob_namespace="{namespace}"'
        return metrics if total(metrics, "videojob_videojobs", here, 'phase="Succeeded"') == 1 else None

    metrics = wait_for(metrics_show_it, timeout=15, message="metrics to show the VideoJob")
    assert total(metrics, "videojob_finished_total", 'phase="Succeeded"', 'reason="Succeeded"') == 1
    assert total(metrics, "videojob_jobs_created_total") == 1
    assert total(metrics, "videojob_output_bytes_total", f'videojob_namespace="{namespace}"') == 1234
    assert total(metrics, "videojob_admission_wait_seconds_count", 'priority="2"') == 1


def test_bad_input_fails_at_once_with_the_reason(
    operator: OperatorProcess, namespace: str, custom_objects: Any, core_v1: Any
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, videojob("broken", output="bad", retries=3, hardware="cpu")
    )

    def failed() -> dict[str, Any] | None:
        status = get_vj(custom_objects, namespace, "broken").get("status") or {}
        return status if status.get("phase") == "Failed" else None

    status = wait_for(failed, timeout=90, message="the VideoJob to fail")
    assert status["reason"] == "InputNotFound"
    assert "s3://media/in/main.mp4" in status["message"]
    assert status["attempts"] == 1, "exit code 65 is never retried (podFailurePolicy FailJob)"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Failed"] == "True"
    wait_for(
        lambda: ("Warning", "Failed") in events_for(core_v1, namespace, "broken"),
        timeout=15,
        message="a Warning Event for the failure",
    )


def test_cancel_stops_the_job(
    operator: OperatorProcess, namespace: str, custom_objects: Any, batch_v1: Any, core_v1: Any
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, videojob("long", output="slow", hardware="cpu")
    )
    wait_for(
        lambda: (get_vj(custom_objects, namespace, "long").get("status") or {}).get("phase") == "Running",
        timeout=60,
        message="the VideoJob to run",
    )
    custom_objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "long", {"spec": {"cancel": True}})
    wait_for(
        lambda: (get_vj(custom_objects, namespace, "long").get("status") or {}).get("phase") == "Cancelled",
        timeout=30,
        message="the VideoJob to be Cancelled",
    )
    wait_for(lambda: not batch_v1.list_namespaced_job(namespace).items, timeout=30, message="the Job to go")
    wait_for(
        lambda: not core_v1.list_namespaced_pod(namespace).items,
        timeout=60,
        message="its pod to be stopped and removed",
    )


def test_restart_adopts_jobs_and_never_duplicates(
    operator: OperatorProcess, namespace: str, custom_objects: Any, batch_v1: Any
) -> None:
    operator.stop()
    operator.env["VIDEOJOB_MAX_RUNNING"] = "1"
    operator.start()
    for index, priority in enumerate((5, 5, 1)):
        custom_objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, videojob(f"job{index}", output="slow", hardware="cpu", priority=priority)
        )
    first = wait_for(lambda: batch_v1.list_namespaced_job(namespace).items, timeout=30, message="a Job")
    operator.kill(signal.SIGKILL)

    def statuses() -> dict[str, dict[str, Any]]:
        items = custom_objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return {i["metadata"]["name"]: i.get("status") or {} for i in items}

    operator.start()

    def converged() -> dict[str, dict[str, Any]] | None:
        s = statuses()
        running = [n for n, st in s.items() if st.get("jobName")]
        queued = {n: st.get("queuePosition") for n, st in s.items() if not st.get("jobName")}
        return s if len(running) == 1 and sorted(queued.values(), key=str) == [1, 2] else None

    final = wait_for(converged, timeout=30, message="one admitted, two queued with positions 1 and 2")
    jobs = batch_v1.list_namespaced_job(namespace).items
    assert len(jobs) == 1, [j.metadata.name for j in jobs]
    assert jobs[0].metadata.uid == first[0].metadata.uid, "the Job made before the kill was adopted"
    admitted = next(n for n, st in final.items() if st.get("jobName"))
    priorities = {"job0": 5, "job1": 5, "job2": 1}
    waiting = sorted((n for n in priorities if n != admitted), key=lambda n: (priorities[n], n))
    assert [final[n]["queuePosition"] for n in waiting] == [1, 2], "positions follow priority, then age and name"
    assert jobs[0].metadata.labels["videojob.dev/name"] == admitted


def test_bad_settings_stop_the_operator_with_a_clear_message(testenv: TestEnv) -> None:
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "videojob-operator")],
        env={**testenv.subprocess_env(), "VIDEOJOB_MAX_RUNNING": "none"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "VIDEOJOB_MAX_RUNNING" in result.stderr


def phase_of(custom_objects: Any, namespace: str, name: str) -> str | None:
    return (get_vj(custom_objects, namespace, name).get("status") or {}).get("phase")


@pytest.mark.parametrize("operator", [{"VIDEOJOB_MAX_RUNNING_GPU": "1"}], indirect=True, ids=["one GPU slot"])
def test_nvidia_lands_on_the_gpu_node_and_auto_falls_back_to_cpu(
    operator: OperatorProcess, namespace: str, custom_objects: Any, batch_v1: Any, core_v1: Any
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, videojob("gpu", output="slow", hardware="nvidia")
    )
    wait_for(lambda: phase_of(custom_objects, namespace, "gpu") == "Running", timeout=60, message="GPU job running")
    status = get_vj(custom_objects, namespace, "gpu")["status"]
    assert (status["node"], status["hardware"]) == ("gpu-0", "nvidia")
    pod_spec = batch_v1.read_namespaced_job(status["jobName"], namespace).spec.template.spec
    assert pod_spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in pod_spec.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert pod_spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"

    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, videojob("auto"))
    wait_for(
        lambda: phase_of(custom_objects, namespace, "auto") == "Succeeded",
        timeout=60,
        message="the auto job to succeed on CPU while the GPU is busy",
    )
    status = get_vj(custom_objects, namespace, "auto")["status"]
    assert (status["node"], status["hardware"]) == ("cpu-0", "cpu")
    custom_objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "gpu", {"spec": {"cancel": True}})
    wait_for(lambda: phase_of(custom_objects, namespace, "gpu") == "Cancelled", timeout=30, message="cancelled")


@pytest.mark.parametrize("operator", [{"VIDEOJOB_MAX_RUNNING": "1"}], indirect=True, ids=["one slot"])
def test_queue_positions_follow_priority_and_move_with_it(
    operator: OperatorProcess, namespace: str, custom_objects: Any, batch_v1: Any
) -> None:
    create = custom_objects.create_namespaced_custom_object
    create(GROUP, VERSION, namespace, PLURAL, videojob("first", output="slow", hardware="cpu"))
    wait_for(lambda: batch_v1.list_namespaced_job(namespace).items, timeout=30, message="the first Job")
    create(GROUP, VERSION, namespace, PLURAL, videojob("a", output="slow", hardware="cpu", priority=5))
    create(GROUP, VERSION, namespace, PLURAL, videojob("b", output="slow", hardware="cpu", priority=5))
    create(GROUP, VERSION, namespace, PLURAL, videojob("c", output="slow", hardware="cpu", priority=1))

    def positions(expected: dict[str, int]) -> Any:
        def check() -> dict[str, Any] | None:
            got = {n: (get_vj(custom_objects, namespace, n).get("status") or {}).get("queuePosition") for n in expected}
            return got if got == expected else None

        return check

    wait_for(positions({"c": 1, "a": 2, "b": 3}), timeout=30, message="priority 1 ahead of older priority 5 jobs")
    # a was created before c (or in the same second, and "a" < "c"): at the same priority it goes first.
    patch = custom_objects.patch_namespaced_custom_object
    patch(GROUP, VERSION, namespace, PLURAL, "a", {"spec": {"priority": 1}})
    wait_for(positions({"a": 1, "c": 2, "b": 3}), timeout=30, message="raising a's priority moves it up")
    assert len(batch_v1.list_namespaced_job(namespace).items) == 1, "maxRunning 1 holds"

    patch(GROUP, VERSION, namespace, PLURAL, "first", {"spec": {"cancel": True}})
    wait_for(
        lambda: get_vj(custom_objects, namespace, "a")["status"].get("jobName"),
        timeout=30,
        message="a admitted when the slot frees",
    )
    wait_for(positions({"c": 1, "b": 2}), timeout=30, message="the queue moves up")
    for name in ("a", "b", "c"):
        patch(GROUP, VERSION, namespace, PLURAL, name, {"spec": {"cancel": True}})


def test_deleting_a_videojob_removes_its_job_and_pods(
    operator: OperatorProcess, namespace: str, custom_objects: Any, batch_v1: Any, core_v1: Any
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, videojob("doomed", output="slow", hardware="cpu")
    )
    wait_for(lambda: phase_of(custom_objects, namespace, "doomed") == "Running", timeout=60, message="running")
    vj = get_vj(custom_objects, namespace, "doomed")
    assert not vj["metadata"].get("finalizers"), "no finalizer when artifacts are retained: deletion never waits"
    custom_objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "doomed")
    wait_for(lambda: not batch_v1.list_namespaced_job(namespace).items, timeout=60, message="the Job collected")
    wait_for(lambda: not core_v1.list_namespaced_pod(namespace).items, timeout=60, message="the pod stopped")


@pytest.mark.parametrize("operator", [{"VIDEOJOB_DEFAULT_TTL_SECONDS": "2"}], indirect=True, ids=["2 s TTL"])
def test_finished_videojobs_are_deleted_after_their_ttl(
    operator: OperatorProcess, namespace: str, custom_objects: Any
) -> None:
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, videojob("brief", hardware="cpu"))
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, videojob("kept", hardware="cpu", ttlSecondsAfterFinished=3600)
    )
    wait_for(lambda: phase_of(custom_objects, namespace, "kept") == "Succeeded", timeout=60, message="kept succeeds")

    def brief_gone() -> bool:
        items = custom_objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return "brief" not in {i["metadata"]["name"] for i in items}

    wait_for(brief_gone, timeout=30, message="the VideoJob with the 2 s default TTL to be deleted")
    assert phase_of(custom_objects, namespace, "kept") == "Succeeded", "its own TTL of an hour keeps it"


def test_artifact_reclaim_policy_delete_removes_the_artifacts(
    operator: OperatorProcess, namespace: str, custom_objects: Any, s3: Any, bucket: str
) -> None:
    body = videojob("reclaim", hardware="cpu", artifactReclaimPolicy="Delete")
    body["spec"]["output"]["uri"] = f"s3://{bucket}/out/reclaim/"
    body["spec"]["output"]["thumbnail"] = {"at": 0}  # its output names: output.mp4 and output.jpg
    uid = custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)["metadata"]["uid"]
    # what its transcoder would have written (the stand-in writes nothing): its uid in the object's metadata
    s3.put_object(Bucket=bucket, Key="out/reclaim/output.mp4", Body=b"artifact", Metadata={"videojob-uid": uid})
    # at one of its names, but another VideoJob's object; and something else under its prefix
    s3.put_object(Bucket=bucket, Key="out/reclaim/output.jpg", Body=b"x", Metadata={"videojob-uid": "another"})
    s3.put_object(Bucket=bucket, Key="out/reclaim/not-an-artifact.txt", Body=b"someone else's")
    wait_for(
        lambda: (
            "videojob.dev/artifacts"
            in (get_vj(custom_objects, namespace, "reclaim")["metadata"].get("finalizers") or [])
        ),
        timeout=30,
        message="the artifact finalizer",
    )
    wait_for(lambda: phase_of(custom_objects, namespace, "reclaim") == "Succeeded", timeout=60, message="success")
    custom_objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "reclaim")

    def keys() -> set[str]:
        return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}

    def reclaimed() -> bool:
        items = custom_objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        return not items and "out/reclaim/output.mp4" not in keys()

    wait_for(reclaimed, timeout=30, message="the VideoJob gone and its artifact deleted")
    assert keys() == {"out/reclaim/output.jpg", "out/reclaim/not-an-artifact.txt"}, (
        "only its own objects at its output names are deleted, never another's, never the prefix"
    )


def test_a_job_refused_by_a_quota_is_retried_until_it_fits(
    operator: OperatorProcess, namespace: str, custom_objects: Any, batch_v1: Any, core_v1: Any
) -> None:
    core_v1.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-jobs"}, "spec": {"hard": {"count/jobs.batch": "0"}}}
    )
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, videojob("held", hardware="cpu"))

    def blocked() -> dict[str, Any] | None:
        status = get_vj(custom_objects, namespace, "held").get("status") or {}
        return status if status.get("reason") == "JobCreateFailed" else None

    status = wait_for(blocked, timeout=30, message="the refusal in the status")
    assert status["phase"] == "Pending" and "quota" in status["message"], status
    assert not batch_v1.list_namespaced_job(namespace).items
    core_v1.delete_namespaced_resource_quota("no-jobs", namespace)
    wait_for(
        lambda: phase_of(custom_objects, namespace, "held") == "Succeeded",
        timeout=90,
        message="admitted once the quota is gone, with backoff, and finished",
    )
    assert len(batch_v1.list_namespaced_job(namespace).items) == 1
