"""Acceptance of the local environment: the real Job controller, scheduler and garbage collector, the node agent
running pods as local processes, and MinIO, all driven through the Kubernetes API.

Pods ignore their image: the agent runs `command` as a local process, so the containers here run this
interpreter (the project's venv Python, which has boto3) with a short script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config
from kubernetes.client import BatchV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from tests.conftest import REPO, TESTENV_SCRIPT, TestEnv, load_testenv, wait_for

pytestmark = pytest.mark.integration

PY = sys.executable  # absolute path: the agent runs the command on this machine

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# Writes its pid (and NVIDIA_VISIBLE_DEVICES) to argv[1], then runs until the file argv[2] exists.
WAIT_FOR_FILE = """
import os, pathlib, sys, time
pathlib.Path(sys.argv[1]).write_text(f"{os.getpid()} {os.environ.get('NVIDIA_VISIBLE_DEVICES', '')}")
release = pathlib.Path(sys.argv[2])
while not release.exists():
    time.sleep(0.1)
"""


# ---------------------------------------------------------------------------------------------------------------
# helpers


def container(command: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": "ignored.invalid/python:3.11", "command": command, **extra}


def job_manifest(name: str, pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", **pod_spec}}, **spec},
    }


def pod_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"restartPolicy": "Never", **spec}}


def job_pods(core_v1: CoreV1Api, namespace: str, job: str) -> list[Any]:
    return core_v1.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items


def describe_pods(testenv: TestEnv, pods: list[Any]) -> str:
    lines = []
    for p in pods:
        states = [(s.name, s.state.to_dict()) for s in p.status.container_statuses or []]
        lines.append(f"{p.metadata.name} on {p.spec.node_name}: {p.status.phase} {states}")
        lines.append(f"  log: {testenv.pod_log(p)[-2000:]!r}")
    return "\n".join(lines)


def job_finished(batch_v1: BatchV1Api, namespace: str, name: str) -> str | None:
    """'Complete' or 'Failed' once the Job has that condition (status True), else None."""
    job = batch_v1.read_namespaced_job_status(name, namespace)
    for c in job.status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return c.type
    return None


def pod_phase(core_v1: CoreV1Api, namespace: str, name: str) -> str:
    return core_v1.read_namespaced_pod_status(name, namespace).status.phase


def process_running(pid: int, marker: str) -> bool:
    """True while `pid` runs (a zombie counts as stopped) and its command line contains `marker`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat[stat.rfind(")") + 2 :].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def read_pid(path: Path) -> int | None:
    """The pid written by WAIT_FOR_FILE into `path`, once it is there."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text.split()[0]) if text else None


# ---------------------------------------------------------------------------------------------------------------
# Jobs


UPLOAD = """
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"], region_name=os.environ["AWS_DEFAULT_REGION"])
body = f"{os.environ['GREETING']} from {os.environ['POD_NAMESPACE']}/{os.environ['POD_NAME']}".encode()
s3.put_object(Bucket=os.environ["BUCKET"], Key=os.environ["KEY"], Body=body)
print(f"uploaded {len(body)} bytes to {os.environ['BUCKET']}/{os.environ['KEY']}")
"""


def test_job_uploads_to_minio_with_secret_credentials(
    testenv: TestEnv, core_v1: CoreV1Api, batch_v1: BatchV1Api, namespace: str, bucket: str, s3: Any
) -> None:
    greeting = f"hello-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespaced_secret(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-credentials"},
            "stringData": {
                "access-key": testenv.aws_access_key_id,
                "secret-key": testenv.aws_secret_access_key,
                "greeting": greeting,
            },
        },
    )

    def secret_env(var: str, key: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": "s3-credentials", "key": key}}}

    def field_env(var: str, path: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [
        secret_env("AWS_ACCESS_KEY_ID", "access-key"),
        secret_env("AWS_SECRET_ACCESS_KEY", "secret-key"),
        secret_env("GREETING", "greeting"),
        {"name": "AWS_DEFAULT_REGION", "value": testenv.aws_default_region},
        {"name": "S3_ENDPOINT_URL", "value": testenv.s3_endpoint_url},
        {"name": "BUCKET", "value": bucket},
        {"name": "KEY", "value": "out/hello.txt"},
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ]
    batch_v1.create_namespaced_job(
        namespace, job_manifest("upload", {"containers": [container([PY, "-c", UPLOAD], env=env)]}, backoffLimit=0)
    )

    outcome = wait_for(lambda: job_finished(batch_v1, namespace, "upload"), timeout=120, message="Job upload to finish")
    pods = job_pods(core_v1, namespace, "upload")
    assert outcome == "Complete", describe_pods(testenv, pods)
    assert len(pods) == 1
    pod = pods[0]
    assert pod.status.phase == "Succeeded"
    assert pod.spec.node_name in ("cpu-0", "gpu-0")
    body = s3.get_object(Bucket=bucket, Key="out/hello.txt")["Body"].read().decode()
    assert body == f"{greeting} from {namespace}/{pod.metadata.name}"
    assert "uploaded" in testenv.pod_log(pod)


def test_failing_job_is_retried_until_backoff_limit(
    testenv: TestEnv, core_v1: CoreV1Api, batch_v1: BatchV1Api, namespace: str
) -> None:
    fail = [PY, "-c", "import sys; print('failing on purpose'); sys.exit(3)"]
    batch_v1.create_namespaced_job(namespace, job_manifest("fails", {"containers": [container(fail)]}, backoffLimit=2))

    # The Job controller waits 10 s, then 20 s, between the retries.
    outcome = wait_for(lambda: job_finished(batch_v1, namespace, "fails"), timeout=180, message="Job fails to end")
    pods = job_pods(core_v1, namespace, "fails")
    assert outcome == "Failed", describe_pods(testenv, pods)
    job = batch_v1.read_namespaced_job_status("fails", namespace)
    failed = next(c for c in job.status.conditions if c.type == "Failed")
    assert failed.reason == "BackoffLimitExceeded"
    assert job.status.failed == 3
    assert len(pods) == 3, describe_pods(testenv, pods)
    for p in pods:
        assert p.status.phase == "Failed", describe_pods(testenv, pods)
        (cs,) = p.status.container_statuses
        assert cs.state.terminated is not None and cs.state.terminated.exit_code == 3, describe_pods(testenv, pods)
        assert "failing on purpose" in testenv.pod_log(p)


# Writes its pid to <argv[1]>/<pod name>, then runs until stopped.
RUN_UNTIL_STOPPED = """
import os, pathlib, sys, time
pathlib.Path(sys.argv[1], os.environ["POD_NAME"]).write_text(str(os.getpid()))
while True:
    time.sleep(0.1)
"""


def test_job_deleted_in_background_loses_its_pods(
    testenv: TestEnv, core_v1: CoreV1Api, batch_v1: BatchV1Api, namespace: str, tmp_path: Path
) -> None:
    marker = f"gc-{uuid.uuid4().hex[:8]}"
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    command = [PY, "-c", RUN_UNTIL_STOPPED, str(pid_dir), marker]
    pod_env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    batch_v1.create_namespaced_job(
        namespace,
        job_manifest(
            "sleepers",
            {"containers": [container(command, env=pod_env)], "terminationGracePeriodSeconds": 5},
            parallelism=2,
            completions=2,
        ),
    )

    def both_running() -> list[Any] | None:
        pods = job_pods(core_v1, namespace, "sleepers")
        running = [p for p in pods if p.status.phase == "Running" and (pid_dir / p.metadata.name).exists()]
        return pods if len(running) == 2 else None

    pods = wait_for(both_running, timeout=60, message="two running pods of Job sleepers")
    pids = [read_pid(pid_dir / p.metadata.name) for p in pods]
    assert all(pid and process_running(pid, marker) for pid in pids)

    batch_v1.delete_namespaced_job("sleepers", namespace, propagation_policy="Background")
    wait_for(
        lambda: not job_pods(core_v1, namespace, "sleepers"),
        timeout=60,
        message="the garbage collector to remove the Job's pods",
    )
    with pytest.raises(ApiException) as e:
        batch_v1.read_namespaced_job("sleepers", namespace)
    assert e.value.status == 404
    assert not [pid for pid in pids if pid and process_running(pid, marker)], "pod processes survived their pods"


# ---------------------------------------------------------------------------------------------------------------
# Scheduling on the GPU node


def test_gpu_pods_are_placed_on_the_gpu_node_one_at_a_time(
    testenv: TestEnv, core_v1: CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    release = tmp_path / "release"

    def gpu_pod(name: str) -> dict[str, Any]:
        command = [PY, "-c", WAIT_FOR_FILE, str(tmp_path / f"{name}.started"), str(release)]
        return pod_manifest(
            name,
            tolerations=[GPU_TOLERATION],
            terminationGracePeriodSeconds=2,
            containers=[container(command, resources={"limits": {"nvidia.com/gpu": "1"}})],
        )

    core_v1.create_namespaced_pod(namespace, gpu_pod("gpu-first"))
    wait_for(
        lambda: pod_phase(core_v1, namespace, "gpu-first") == "Running" and (tmp_path / "gpu-first.started").exists(),
        timeout=60,
        message="gpu-first to run",
    )
    first = core_v1.read_namespaced_pod("gpu-first", namespace)
    assert first.spec.node_name == "gpu-0"
    started = (tmp_path / "gpu-first.started").read_text().split()
    assert len(started) == 2 and started[1], "NVIDIA_VISIBLE_DEVICES not set for a pod on gpu-0"

    core_v1.create_namespaced_pod(namespace, gpu_pod("gpu-second"))

    def unschedulable() -> Any:
        pod = core_v1.read_namespaced_pod_status("gpu-second", namespace)
        cond = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
        if cond and cond.status == "False" and cond.reason == "Unschedulable":
            return cond
        return None

    cond = wait_for(unschedulable, timeout=60, message="gpu-second to be Unschedulable")
    assert "nvidia.com/gpu" in (cond.message or ""), cond.message
    second = core_v1.read_namespaced_pod("gpu-second", namespace)
    assert second.status.phase == "Pending" and not second.spec.node_name
    assert pod_phase(core_v1, namespace, "gpu-first") == "Running"
    assert not (tmp_path / "gpu-second.started").exists()

    release.touch()
    wait_for(lambda: pod_phase(core_v1, namespace, "gpu-first") == "Succeeded", timeout=60, message="gpu-first done")
    wait_for(
        lambda: pod_phase(core_v1, namespace, "gpu-second") == "Succeeded",
        timeout=90,
        message="gpu-second to be scheduled and run once the GPU is free",
    )
    second = core_v1.read_namespaced_pod("gpu-second", namespace)
    assert second.spec.node_name == "gpu-0"
    assert (tmp_path / "gpu-second.started").exists()


def test_pod_without_gpu_toleration_stays_off_the_gpu_node(core_v1: CoreV1Api, namespace: str) -> None:
    command = [PY, "-c", "print('plain pod')"]
    core_v1.create_namespaced_pod(namespace, pod_manifest("plain", containers=[container(command)]))
    wait_for(lambda: pod_phase(core_v1, namespace, "plain") == "Succeeded", timeout=60, message="plain pod to run")
    assert core_v1.read_namespaced_pod("plain", namespace).spec.node_name == "cpu-0"


# ---------------------------------------------------------------------------------------------------------------
# Pod deletion


SIGTERM_AWARE = """
import os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    out.with_suffix(".sigterm").write_text("SIGTERM")
    sys.exit(0)
if sys.argv[3] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
out.write_text(str(os.getpid()))
while True:
    time.sleep(0.1)
"""


@pytest.mark.parametrize(("behaviour", "grace"), [("exit", 10), ("ignore", 3)])
def test_deleting_a_running_pod_stops_its_process_within_the_grace_period(
    core_v1: CoreV1Api, namespace: str, tmp_path: Path, behaviour: str, grace: int
) -> None:
    marker = f"del-{uuid.uuid4().hex[:8]}"
    pid_file = tmp_path / "pod.pid"
    command = [PY, "-c", SIGTERM_AWARE, str(pid_file), marker, behaviour]
    core_v1.create_namespaced_pod(
        namespace, pod_manifest("victim", terminationGracePeriodSeconds=grace, containers=[container(command)])
    )
    wait_for(
        lambda: pod_phase(core_v1, namespace, "victim") == "Running" and read_pid(pid_file),
        timeout=60,
        message="pod victim to run and write its pid",
    )
    pid = read_pid(pid_file)
    assert pid and process_running(pid, marker)

    t0 = time.monotonic()
    core_v1.delete_namespaced_pod("victim", namespace)
    # The process must be gone by the end of the grace period (plus the agent's reaction time).
    wait_for(lambda: not process_running(pid, marker), timeout=grace + 5, message=f"process {pid} to stop")
    elapsed = time.monotonic() - t0
    if behaviour == "exit":
        assert pid_file.with_suffix(".sigterm").exists(), "the process got no SIGTERM"
        assert elapsed < grace, f"a process that exits on SIGTERM took {elapsed:.1f}s"
    else:
        assert elapsed >= grace - 1, f"killed after {elapsed:.1f}s, before its {grace}s grace period"

    def pod_gone() -> bool:
        try:
            core_v1.read_namespaced_pod("victim", namespace)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    wait_for(pod_gone, timeout=30, message="pod victim to be removed from the API")


# ---------------------------------------------------------------------------------------------------------------
# The environment itself: `down` leaves no process behind


def _tree(pid: int) -> set[int]:
    """pid and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rfind(")") + 2 :].split()[1]), []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(children.get(p, []))
    return out


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def test_testenv_down_leaves_no_process(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second, independent environment (hack/testenv.py --dir): up, run a pod with a child process, down."""
    env_dir = tmp_path_factory.mktemp("env2")
    work = tmp_path_factory.mktemp("env2-work")

    def testenv_cmd(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "TESTENV_DIR"}
        return subprocess.run(
            [PY, str(TESTENV_SCRIPT), "--dir", str(env_dir), *args],
            capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=300,
        )  # fmt: skip

    r = testenv_cmd("up")
    try:
        assert r.returncode == 0, f"up failed:\n{r.stdout}\n{r.stderr}"
        again = testenv_cmd("up")
        assert again.returncode == 0 and "already up" in again.stdout, again.stdout + again.stderr
        env2 = load_testenv(env_dir)
        api = CoreV1Api(config.new_client_from_config(config_file=env2.kubeconfig))
        marker = f"orphan-{uuid.uuid4().hex[:8]}"
        # The pod starts a child that would outlive a careless shutdown of its parent.
        script = (
            "import subprocess, sys, time, pathlib\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)', sys.argv[2]])\n"
            "pathlib.Path(sys.argv[1]).write_text(str(child.pid))\n"
            "while True: time.sleep(1)\n"
        )
        api.create_namespaced_pod(
            "default", pod_manifest("long", containers=[container([PY, "-c", script, str(work / "child"), marker])])
        )
        child_pid = wait_for(lambda: read_pid(work / "child"), timeout=90, message="env2 pod to start its child")
        assert process_running(child_pid, marker)
        state = json.loads((env_dir / "state.json").read_text())
        pids: set[int] = set()
        for comp in state["components"].values():
            pids |= _tree(comp["pid"])
        assert child_pid in pids, "the pod's child is not a descendant of the environment's processes"
    finally:
        down = testenv_cmd("down")
    assert down.returncode == 0, down.stdout + down.stderr
    survivors = sorted(p for p in pids if _running(p))
    assert not survivors, f"processes left after down: {survivors}"
    assert not process_running(child_pid, marker)
    assert [p.name for p in env_dir.iterdir()] == [], "down left files behind"
    assert testenv_cmd("status", "--quiet").returncode == 3
