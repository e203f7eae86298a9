"""Chaos on the real cluster: VideoJobs run while a fault hits the operator, a node, MinIO, the API server or etcd,
while five namespaces compete under per-namespace limits, and while a namespace editor forges what they can.

Each scenario prints one row (tests/e2e/chaos.py: submitted / succeeded / failed right / lost / duplicate Jobs /
wrong final / converge) and fails unless nothing is lost, duplicated or wrong. `make test` runs the short sizes;
`make chaos` (VIDEOJOB_CHAOS=full) the full ones, and prints the table at the end of the session.
Faults are real: components of hack/testenv.py stopped and started (`testenv.py restart`) or frozen with SIGSTOP
(`testenv.py pause`), the operator's container SIGKILLed and its pod deleted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from devkit.harness import GROUP, PLURAL, VERSION, MediaFactory, VideoJobs
from devkit.operator_release import OperatorRelease
from devkit.specs import copy_spec
from tests.conftest import TESTENV_SCRIPT, TestEnv, wait_for
from tests.e2e.chaos import FULL, Chaos, Planned, Row, in_background, table

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

SEED = 20261129  # the moments of the faults are random, but the same on every run


def size(full: int, short: int) -> int:
    return full if FULL else short


def run_testenv(testenv: TestEnv, *args: str) -> str:
    r = subprocess.run([sys.executable, str(TESTENV_SCRIPT), "--dir", str(testenv.dir), *args],
                       capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if r.returncode != 0:
        raise AssertionError(f"testenv.py {' '.join(args)} failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    return r.stdout.strip()


def fault_by_testenv(testenv: TestEnv, note: str, *args: str) -> Callable[[], str]:
    """A fault made by hack/testenv.py (`restart ...`, `pause ...`); it returns `note` for the table."""

    def fault() -> str:
        run_testenv(testenv, *args)
        return note

    return fault


def assert_clean(row: Row, fault: dict[str, Any]) -> None:
    print(f"\n{table([row])}")
    assert "error" not in fault, f"the fault itself failed: {fault['error']!r}"
    assert row.clean, f"{row.scenario}: {row.problems}\n{table([row])}"


@pytest.fixture
def clip_uri(media: MediaFactory, bucket: str) -> str:
    return media.upload(media.video(seconds=2.0), bucket, "in/clip.mp4")


@pytest.fixture
def chaos(
    testenv: TestEnv, batch_v1: Any, s3: Any, bucket: str, clip_uri: str, videojobs: VideoJobs
) -> Iterator[Chaos]:
    with Chaos(testenv, batch_v1, s3, bucket, clip_uri, {videojobs.namespace: videojobs}) as c:
        yield c


def wait_running(chaos: Chaos, timeout: float = 180) -> None:
    wait_for(lambda: chaos.running() >= 1, timeout=timeout, interval=0.5, message="a VideoJob running")


def run_fault_scenario(
    name: str, chaos: Chaos, fault: Callable[[], str], good: int, bad: int, timeout: float = 600
) -> None:
    chaos.submit(name, good=good, bad=bad, hardware="cpu", retries=3)
    wait_running(chaos)
    with in_background(fault) as result:
        pass
    row = chaos.score(name, result.get("note", "?"), result["ended"], timeout)
    assert_clean(row, result)


# --- the operator ----------------------------------------------------------------------------------------------


def test_the_leader_killed_again_and_again_loses_nothing(
    run_operator: Callable[..., OperatorRelease], chaos: Chaos
) -> None:
    op = run_operator(max_running=4, replicas=2)
    kills = size(10, 2)
    rng = random.Random(SEED)  # noqa: S311 (moments of faults, not secrets)

    def ready_holder() -> str | None:
        holder = op.lease_holder()
        return holder if holder and holder in {p.metadata.name for p in op.ready_pods()} else None

    def leader() -> str:
        return wait_for(ready_holder, timeout=120, interval=0.2, message="a Ready replica holding the Lease")

    def fault() -> str:
        for i in range(kills):
            time.sleep(rng.uniform(1.0, 6.0))
            victim = leader()
            if i % 2:
                op.core_v1.delete_namespaced_pod(victim, op.namespace)  # a drain, an eviction: it hands over
            else:
                os.kill(op.pid_of(victim), signal.SIGKILL)  # a crash: the Lease must run out
        leader()
        return f"the leader of 2 replicas SIGKILLed or its pod deleted {kills}x at random moments"

    run_fault_scenario("leader-kill", chaos, fault, good=size(48, 6), bad=size(2, 1))


# --- the platform ----------------------------------------------------------------------------------------------


def test_a_node_restarted_mid_job_loses_nothing(
    run_operator: Callable[..., OperatorRelease], chaos: Chaos, testenv: TestEnv
) -> None:
    run_operator(max_running=4)
    run_fault_scenario(
        "node-restart",
        chaos,
        fault_by_testenv(
            testenv,
            "kubelet and containerd of cpu-0 down 5 s",
            "restart",
            "kubelet-cpu-0",
            "containerd-cpu-0",
            "--down",
            "5",
        ),
        good=size(20, 4),
        bad=size(2, 1),
    )


def test_minio_restarted_mid_upload_loses_nothing(
    run_operator: Callable[..., OperatorRelease], chaos: Chaos, testenv: TestEnv
) -> None:
    run_operator(max_running=4)
    run_fault_scenario(
        "minio-restart",
        chaos,
        fault_by_testenv(testenv, "MinIO down 5 s", "restart", "minio", "--down", "5"),
        good=size(20, 4),
        bad=size(2, 1),
    )


def test_the_api_server_restarted_loses_nothing(
    run_operator: Callable[..., OperatorRelease], chaos: Chaos, testenv: TestEnv
) -> None:
    run_operator(max_running=4)
    run_fault_scenario(
        "apiserver-restart",
        chaos,
        fault_by_testenv(testenv, "kube-apiserver down 3 s", "restart", "kube-apiserver", "--down", "3"),
        good=size(20, 4),
        bad=size(2, 1),
    )


def test_etcd_paused_loses_nothing(
    run_operator: Callable[..., OperatorRelease], chaos: Chaos, testenv: TestEnv
) -> None:
    run_operator(max_running=4)
    run_fault_scenario(
        "etcd-pause",
        chaos,
        fault_by_testenv(testenv, "etcd frozen (SIGSTOP) 20 s", "pause", "etcd", "20"),
        good=size(20, 4),
        bad=size(2, 1),
    )


# --- tenants ---------------------------------------------------------------------------------------------------


def test_namespaces_competing_under_limits_lose_nothing(
    run_operator: Callable[..., OperatorRelease],
    chaos: Chaos,
    more_namespaces: Callable[..., list[str]],
    custom_objects: Any,
    namespace: str,
) -> None:
    extra = more_namespaces(size(4, 2), "chaos")
    limit = 2
    for name in extra:
        chaos.add_namespace(VideoJobs(custom_objects, name))
    run_operator(namespaces=[namespace, *extra], max_running=size(6, 4), max_running_per_namespace=limit)
    most: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            counts: dict[str, int] = {}
            for (ns, _), status in chaos.phases().items():
                if status.get("jobName") and status.get("phase") not in ("Succeeded", "Failed", "Cancelled"):
                    counts[ns] = counts.get(ns, 0) + 1
            for ns, n in counts.items():
                most[ns] = max(most.get(ns, 0), n)
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    total = size(100, 15)
    chaos.submit("tenants", good=total - size(5, 1), bad=size(5, 1), hardware="cpu")
    try:
        row = chaos.score("namespaces", "", started, timeout=900)
    finally:
        stop.set()
        sampler.join(10)
    row.fault = (
        f"{len(chaos.namespaces)} namespaces at once, limit {limit} each: at most "
        f"{max(most.values(), default=0)} running in one"
    )
    assert max(most.values(), default=0) <= limit, most
    assert len(most) == len(chaos.namespaces), f"some namespace never ran: {most}"
    assert_clean(row, {})


def test_forgeries_by_a_namespace_editor_are_refused_or_without_effect(
    run_operator: Callable[..., OperatorRelease],
    chaos: Chaos,
    videojobs: VideoJobs,
    namespace: str,
    rbac_v1: Any,
    testenv: TestEnv,
    core_v1: Any,
    batch_v1: Any,
) -> None:
    from kubernetes import client, config

    user = f"editor-{uuid.uuid4().hex[:6]}"
    rbac_v1.create_namespaced_role_binding(namespace, {
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    })  # fmt: skip
    editor = config.new_client_from_config(config_file=testenv.kubeconfig)
    editor.set_default_header("Impersonate-User", user)
    as_editor = client.CustomObjectsApi(editor)
    editor_core, editor_batch = client.CoreV1Api(editor), client.BatchV1Api(editor)
    run_operator(max_running=2)
    chaos.submit("forged", good=size(6, 3), bad=1, hardware="cpu")
    wait_running(chaos)
    target = next(p.name for p in chaos.planned if p.good)
    uid = videojobs.get(target)["metadata"]["uid"]
    outcomes: list[str] = []

    def attempt(what: str, call: Callable[[], Any]) -> None:
        try:
            call()
        except ApiException as e:
            assert e.status == 403, f"{what}: {e.status} {e.reason}"
            outcomes.append(f"{what}: refused")
        else:
            outcomes.append(f"{what}: accepted")

    forged_status = {
        "status": {
            "phase": "Succeeded",
            "reason": "Succeeded",
            "progress": 100,
            "artifacts": [{"uri": "s3://other-tenant/precious.mp4", "size": 1}],
        }
    }
    attempt(
        "status Succeeded",
        lambda: as_editor.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, target, forged_status
        ),
    )
    labels = {"videojob.dev/uid": uid, "app.kubernetes.io/managed-by": "videojob-operator"}
    pod: Any = {
        "metadata": {"name": f"forged-{uid[:8]}", "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "videojob-testenv/pause:3.10"}]},
    }  # fmt: skip
    attempt("pod claiming the VideoJob", lambda: editor_core.create_namespaced_pod(namespace, pod))
    job: Any = {
        "metadata": {"name": f"forged-job-{uid[:8]}", "labels": labels},
        "spec": {"suspend": True, "template": {"metadata": {"labels": labels}, "spec": {
            "restartPolicy": "Never", "containers": [{"name": "x", "image": "videojob-testenv/pause:3.10"}]}}},
    }  # fmt: skip
    attempt("Job claiming the VideoJob", lambda: editor_batch.create_namespaced_job(namespace, job))
    attempt("status set at create", lambda: as_editor.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob",
                                            "metadata": {"name": "forged-create"}, **forged_status,
                                            "spec": copy_spec(chaos.input_uri, f"s3://{chaos.bucket}/out/forged-create/",
                                                              hardware="cpu")}))  # fmt: skip
    chaos.planned.append(Planned("forged-create", videojobs, True))  # its status is the operator's: it runs
    started = time.monotonic()
    row = chaos.score("forgeries", "", started, timeout=600)
    row.fault = "; ".join(outcomes) + " (each accepted one without effect: every VideoJob ended as it should)"
    assert outcomes[0] == "status Succeeded: refused", outcomes
    assert_clean(row, {})
    try:
        editor.close()
    finally:
        for kind, delete in (("pod", core_v1.delete_namespaced_pod), ("job", batch_v1.delete_namespaced_job)):
            name = f"forged-{uid[:8]}" if kind == "pod" else f"forged-job-{uid[:8]}"
            try:
                delete(name, namespace, propagation_policy="Background")
            except ApiException as e:
                if e.status != 404:
                    raise
