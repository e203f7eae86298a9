"""Acceptance of the local environment: the real Job controller, scheduler and garbage collector, real nodes
(a kubelet with a containerd of its own for cpu-0 and gpu-0) running pods as containers, and MinIO, all driven
through the Kubernetes API.

The containers run the images imported into the nodes (`videojob-transcoder:dev`, whose venv Python has boto3,
and `videojob-operator:dev`; never pulled) with a short `python3 -c` script. Where a test coordinates with this
machine (a release file, a "started" or "got SIGTERM" file) it mounts its tmp dir into the pod as a hostPath
volume at /host (mode 0777: the containers run as uid 65532). A container's processes run on this machine, so
"the process stopped" is checked in this machine's /proc, finding the process by a unique marker argument in its
command line (a pid written from inside would be one of the container's PID namespace).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from tests.conftest import REPO, TESTENV_SCRIPT, TestEnv, load_testenv, wait_for

pytestmark = pytest.mark.integration

TRANSCODER_IMAGE = "videojob-transcoder:dev"
OPERATOR_IMAGE = "videojob-operator:dev"
HOST_MOUNT = "/host"  # where a test's tmp dir appears in its pods

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# A container's python3 is PID 1 of its PID namespace: the kernel delivers SIGTERM from the kubelet only when a
# handler is installed, so the long-running scripts install one (exit at once) to keep deletions fast.
EXIT_ON_SIGTERM = "import signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"

# Touches /host/<argv[1]>.started, then runs until /host/release exists.
WAIT_FOR_RELEASE = (
    EXIT_ON_SIGTERM
    + f"""
import pathlib, time
host = pathlib.Path("{HOST_MOUNT}")
(host / (sys.argv[1] + ".started")).touch()
while not (host / "release").exists():
    time.sleep(0.1)
"""
)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def container(command: list[str], image: str = TRANSCODER_IMAGE, **extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "command": command, **extra}


def host_dir_volume(path: Path) -> dict[str, Any]:
    """`path` of this machine as a pod volume named `host` (made writable for the containers' uid 65532)."""
    path.chmod(0o777)
    return {"name": "host", "hostPath": {"path": str(path), "type": "Directory"}}


HOST_VOLUME_MOUNT = {"name": "host", "mountPath": HOST_MOUNT}


def job_manifest(name: str, pod_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", **pod_spec}}, **spec},
    }


def pod_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"restartPolicy": "Never", **spec}}


def job_pods(core_v1: Any, namespace: str, job: str) -> list[Any]:
    return core_v1.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items


def describe_pods(testenv: TestEnv, pods: list[Any]) -> str:
    lines = []
    for p in pods:
        states = [(s.name, s.state.to_dict()) for s in p.status.container_statuses or []]
        lines.append(f"{p.metadata.name} on {p.spec.node_name}: {p.status.phase} {states}")
        lines.append(f"  log: {testenv.pod_log(p)[-2000:]!r}")
    return "\n".join(lines)


def job_finished(batch_v1: Any, namespace: str, name: str) -> str | None:
    """'Complete' or 'Failed' once the Job has that condition (status True), else None."""
    job = batch_v1.read_namespaced_job_status(name, namespace)
    for c in job.status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return c.type
    return None


def pod_phase(core_v1: Any, namespace: str, name: str) -> str:
    return core_v1.read_namespaced_pod_status(name, namespace).status.phase


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat from the state on (state, ppid, ...), or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _running(pid: int) -> bool:
    """True while `pid` runs; a zombie counts as stopped."""
    f = _stat(pid)
    return f is not None and f[0] not in ("Z", "X")


def marked_processes(marker: str) -> list[int]:
    """This machine's running processes that have `marker` as one of their command-line arguments."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in args and _running(int(entry)):
            found.append(int(entry))
    return sorted(found)


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
    testenv: TestEnv, core_v1: Any, batch_v1: Any, namespace: str, bucket: str, s3: Any
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
        namespace,
        job_manifest("upload", {"containers": [container(["python3", "-c", UPLOAD], env=env)]}, backoffLimit=0),
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
    testenv: TestEnv, core_v1: Any, batch_v1: Any, namespace: str
) -> None:
    fail = ["python3", "-c", "import sys; print('failing on purpose'); sys.exit(3)"]
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


# Runs until stopped; argv[1] is the marker that finds it in this machine's /proc.
RUN_UNTIL_STOPPED = EXIT_ON_SIGTERM + "import time\nwhile True:\n    time.sleep(0.1)\n"


def test_job_deleted_in_background_loses_its_pods(
    testenv: TestEnv, core_v1: Any, batch_v1: Any, namespace: str
) -> None:
    marker = f"gc-{uuid.uuid4().hex[:12]}"
    command = ["python3", "-c", RUN_UNTIL_STOPPED, marker]
    batch_v1.create_namespaced_job(
        namespace,
        job_manifest(
            "sleepers",
            {"containers": [container(command)], "terminationGracePeriodSeconds": 5},
            parallelism=2,
            completions=2,
        ),
    )

    def both_running() -> list[int]:
        pods = job_pods(core_v1, namespace, "sleepers")
        running = [p for p in pods if p.status.phase == "Running"]
        procs = marked_processes(marker)
        return procs if len(running) == 2 and len(procs) == 2 else []

    pids = wait_for(both_running, timeout=90, message="two running pods of Job sleepers, and their processes")

    batch_v1.delete_namespaced_job("sleepers", namespace, propagation_policy="Background")
    wait_for(
        lambda: not job_pods(core_v1, namespace, "sleepers"),
        timeout=60,
        message="the garbage collector to remove the Job's pods",
    )
    with pytest.raises(ApiException) as e:
        batch_v1.read_namespaced_job("sleepers", namespace)
    assert e.value.status == 404
    # A pod leaves the API only once its kubelet reported its containers stopped.
    assert not [p for p in pids if _running(p)], "pod processes survived their pods"
    assert not marked_processes(marker)


# ---------------------------------------------------------------------------------------------------------------
# Scheduling on the GPU node


def test_gpu_pods_are_placed_on_the_gpu_node_one_at_a_time(
    testenv: TestEnv, core_v1: Any, namespace: str, tmp_path: Path
) -> None:
    # Only the scheduler's side of a GPU is real here: gpu-0 advertises `nvidia.com/gpu: 1` as an extended
    # resource, with no device plugin, so nothing sets NVIDIA_VISIBLE_DEVICES or hands the container a device.
    volume = host_dir_volume(tmp_path)

    def gpu_pod(name: str) -> dict[str, Any]:
        command = ["python3", "-c", WAIT_FOR_RELEASE, name]
        return pod_manifest(
            name,
            tolerations=[GPU_TOLERATION],
            terminationGracePeriodSeconds=2,
            containers=[
                container(command, resources={"limits": {"nvidia.com/gpu": "1"}}, volumeMounts=[HOST_VOLUME_MOUNT])
            ],
            volumes=[volume],
        )

    core_v1.create_namespaced_pod(namespace, gpu_pod("gpu-first"))
    # Generous: the one GPU may be held by a pod of another test for a while.
    wait_for(
        lambda: pod_phase(core_v1, namespace, "gpu-first") == "Running" and (tmp_path / "gpu-first.started").exists(),
        timeout=180,
        message="gpu-first to run",
    )
    first = core_v1.read_namespaced_pod("gpu-first", namespace)
    assert first.spec.node_name == "gpu-0"

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

    (tmp_path / "release").touch()
    wait_for(lambda: pod_phase(core_v1, namespace, "gpu-first") == "Succeeded", timeout=60, message="gpu-first done")
    wait_for(
        lambda: pod_phase(core_v1, namespace, "gpu-second") == "Succeeded",
        timeout=180,
        message="gpu-second to be scheduled and run once the GPU is free",
    )
    second = core_v1.read_namespaced_pod("gpu-second", namespace)
    assert second.spec.node_name == "gpu-0"
    assert (tmp_path / "gpu-second.started").exists()


def test_pod_without_gpu_toleration_stays_off_the_gpu_node(core_v1: Any, namespace: str) -> None:
    command = ["python3", "-c", "print('plain pod')"]
    core_v1.create_namespaced_pod(namespace, pod_manifest("plain", containers=[container(command)]))
    wait_for(lambda: pod_phase(core_v1, namespace, "plain") == "Succeeded", timeout=90, message="plain pod to run")
    assert core_v1.read_namespaced_pod("plain", namespace).spec.node_name == "cpu-0"


# ---------------------------------------------------------------------------------------------------------------
# Pod deletion


# argv[1]: "exit" (a SIGTERM handler writes /host/sigterm and exits) or "ignore"; argv[2]: the marker.
SIGTERM_AWARE = f"""
import pathlib, signal, sys, time
host = pathlib.Path("{HOST_MOUNT}")
def on_term(signum, frame):
    (host / "sigterm").write_text("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[1] == "ignore" else on_term)
(host / "started").touch()
while True:
    time.sleep(0.1)
"""


@pytest.mark.parametrize(("behaviour", "grace"), [("exit", 10), ("ignore", 3)])
def test_deleting_a_running_pod_stops_its_process_within_the_grace_period(
    core_v1: Any, namespace: str, tmp_path: Path, behaviour: str, grace: int
) -> None:
    marker = f"del-{uuid.uuid4().hex[:12]}"
    command = ["python3", "-c", SIGTERM_AWARE, behaviour, marker]
    core_v1.create_namespaced_pod(
        namespace,
        pod_manifest(
            "victim",
            terminationGracePeriodSeconds=grace,
            containers=[container(command, volumeMounts=[HOST_VOLUME_MOUNT])],
            volumes=[host_dir_volume(tmp_path)],
        ),
    )
    wait_for(
        lambda: pod_phase(core_v1, namespace, "victim") == "Running" and (tmp_path / "started").exists(),
        timeout=90,
        message="pod victim to run",
    )
    (pid,) = marked_processes(marker)

    t0 = time.monotonic()
    core_v1.delete_namespaced_pod("victim", namespace)
    # The process must be gone by the end of the grace period (plus the kubelet's reaction time).
    wait_for(lambda: not _running(pid), timeout=grace + 15, message=f"process {pid} to stop")
    elapsed = time.monotonic() - t0
    if behaviour == "exit":
        assert (tmp_path / "sigterm").exists(), "the container's process got no SIGTERM"
        assert elapsed < grace, f"a process that exits on SIGTERM took {elapsed:.1f}s"
    else:
        assert not (tmp_path / "sigterm").exists()
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
    assert not marked_processes(marker)


# ---------------------------------------------------------------------------------------------------------------
# The environment itself: `down` leaves nothing behind


def _descendants(pid: int) -> set[int]:
    """All descendants of pid (not pid itself)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (f := _stat(entry)):
            children.setdefault(int(f[1]), []).append(int(entry))
    out: set[int] = set()
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(children.get(p, []))
    return out


def _tagged(token: str) -> list[int]:
    """Running processes whose environment carries TESTENV_TOKEN=token."""
    needle = f"TESTENV_TOKEN={token}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if needle in environ and _running(int(entry)):
                out.append(int(entry))
    return out


def _mounts_under(prefixes: list[Path]) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if any(mount_point == str(p) or mount_point.startswith(f"{p}/") for p in prefixes):
            found.append(line)
    return found


def _lo_addresses() -> set[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    return set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))


def _links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


# The pod: a parent that starts a child which would outlive a careless shutdown of its parent (the child ignores
# SIGTERM and SIGHUP, in a session of its own), both with the marker (argv[1]) in their command lines.
ORPHAN_MAKER = (
    EXIT_ON_SIGTERM
    + """
import subprocess, time
child = "import signal, time\\nfor s in (signal.SIGTERM, signal.SIGHUP): signal.signal(s, signal.SIG_IGN)\\n"
child += "while True: time.sleep(1)"
subprocess.Popen(["python3", "-c", child, sys.argv[1], "child"], start_new_session=True)
while True:
    time.sleep(1)
"""
)


def test_testenv_down_leaves_no_process(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second, independent environment (hack/testenv.py --dir, no kube-proxy): up, run a pod with a child
    process, down; then nothing of it is left on this machine."""
    env_dir = tmp_path_factory.mktemp("env2")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "videojob-operator" / "containerd"

    def testenv_cmd(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "TESTENV_DIR"}
        return subprocess.run(
            [sys.executable, str(TESTENV_SCRIPT), "--dir", str(env_dir), *args],
            capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=timeout,
        )  # fmt: skip

    marker = f"orphan-{uuid.uuid4().hex[:12]}"
    state: dict[str, Any] = {}
    procs: list[int] = []
    t0 = time.monotonic()
    r = testenv_cmd("up", "--no-kube-proxy", "--images", "pause,videojob-operator")
    try:
        assert r.returncode == 0, f"up failed:\n{r.stdout}\n{r.stderr}"
        up_s = time.monotonic() - t0
        state = json.loads((env_dir / "state.json").read_text())
        again = testenv_cmd("up", "--no-kube-proxy", "--images", "pause,videojob-operator")
        assert again.returncode == 0 and "already up" in again.stdout, again.stdout + again.stderr
        assert testenv_cmd("status", "--quiet").returncode == 0
        env2 = load_testenv(env_dir)
        api_client = config.new_client_from_config(config_file=env2.kubeconfig)
        api: Any = CoreV1Api(api_client)  # as the fixtures: it is given dict bodies, which its annotations omit
        wait_for(
            lambda: api.read_namespaced_service_account("default", "default"),
            timeout=60,
            message="ServiceAccount default/default in env2",
            ignore=(ApiException,),
        )
        command = ["python3", "-c", ORPHAN_MAKER, marker]
        api.create_namespaced_pod(
            "default",
            pod_manifest("long", containers=[container(command, image=OPERATOR_IMAGE, imagePullPolicy="Never")]),
        )

        def both_started() -> list[int]:
            found = marked_processes(marker)
            return found if len(found) == 2 else []

        procs = wait_for(both_started, timeout=120, message="env2's pod and its child to run")
        api_client.close()
        parent = next(p for p in procs if (_stat(p) or ["", ""])[1] not in map(str, procs))
        child = next(p for p in procs if p != parent)
        assert (_stat(child) or ["", ""])[1] == str(parent), "the child is not the pod's process's child"
        # The containers carry no token: down finds them as descendants of the tagged containerd shims.
        shims = _tagged(state["token"])
        assert any(parent in _descendants(s) for s in shims), "the pod's process is not under a tagged process"
    finally:
        t1 = time.monotonic()
        down = testenv_cmd("down")
        down_s = time.monotonic() - t1
    assert down.returncode == 0, down.stdout + down.stderr
    sys.stderr.write(f"\n[env2] up {up_s:.1f}s, down {down_s:.1f}s\n")

    index = state["index"]
    assert not [p for p in procs if _running(p)], f"the pod's processes outlived down: {procs}"
    assert not marked_processes(marker)
    assert not _tagged(state["token"]), "processes carrying the environment's TESTENV_TOKEN outlived down"
    stores = sorted(cache.glob(f"env{index}-*"))
    assert not _mounts_under([env_dir, *stores]), "mounts left under the env dir or the containerd stores"
    assert not [p for p in env_dir.rglob("*") if p.is_file() and "netns" in str(p)], "network namespaces left"
    assert not [link for link in _links() if link.startswith(f"vj{index}-")], "bridges left"
    prefix = f"10.201.{index}."
    assert not [a for a in _lo_addresses() if a.startswith(prefix)], f"{prefix}* addresses left on lo"
    assert sorted(p.name for p in env_dir.iterdir() if p.name not in ("bin", "images")) == [], "files left"
    assert testenv_cmd("status", "--quiet").returncode == 3
