"""The operator as its users run it: our Helm chart installed with helm, the operator a pod of its Deployment.

Each end-to-end test installs its own release into its own namespace (`watchNamespaces: [that namespace]`), with
the test's settings turned into the chart's values, and uninstalls it afterwards. The image is the one
`make images` built and the local environment imported into its nodes; nothing is pulled.

Restarts are real: `kill()` sends a signal to the operator's process (the container's main process, seen from
this machine, as a crash or the OOM killer would) and the kubelet restarts the container; `restart()` deletes
the pod and the Deployment makes a new one. /metrics and /healthz are read at the pod's IP, which this machine
routes to through the node's bridge; the log comes from the API server (`kubectl logs`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.containers import container_processes
from devkit.harness import NotYet
from devkit.testenv import REPO, TestEnv, WaitTimeout, wait_for

CHART = REPO / "charts" / "videojob-operator"
HELM = REPO / ".testenv" / "bin" / "helm"
OPERATOR_IMAGE = ("videojob-operator", "dev")
TRANSCODER_IMAGE = ("videojob-transcoder", "dev")
METRICS_PORT = 8080
# The operator's pod lives in the test's namespace: a label selector for every other pod there.
NOT_OPERATOR = "app.kubernetes.io/component!=operator"

# Operator setting (a Settings field) -> the chart value that sets it, for the settings tests choose.
SETTING_VALUES: dict[str, str] = {
    "namespaces": "watchNamespaces",  # the test's namespace is watched by default; a list replaces it
    "max_running": "maxRunning",
    "max_running_gpu": "maxRunningGpu",
    "max_running_per_namespace": "namespaceLimits.maxRunning",
    "namespace_max_running": "namespaceLimits.overrides",
    "fair_sharing": "fairSharing.enabled",
    "namespace_weights": "fairSharing.weights",
    "transcoder_env": "transcoder.env",
    "workdir_size_limit": "transcoder.workdirSizeLimit",
    "default_active_deadline_seconds": "transcoder.activeDeadlineSeconds",
    "stuck_timeout_seconds": "transcoder.stuckTimeoutSeconds",
    "progress_interval": "transcoder.progressInterval",
    "default_ttl_seconds": "defaultTtlSeconds",
    "s3_secret": "s3.secretName",
    "s3_endpoint_url": "s3.endpointUrl",
    "s3_auth": "s3.auth",
    "s3_role_arn": "s3.webIdentity.roleArn",
    "s3_token_audience": "s3.webIdentity.audience",
    "s3_sts_endpoint_url": "s3.webIdentity.stsEndpointUrl",
    "transcoder_service_account_annotations": "transcoder.serviceAccountAnnotations",
    "transcoder_pod": "transcoder.pod",
    "allow_http": "inputs.allowHttp",
    "allowed_hosts": "inputs.allowedHosts",
    "resync_seconds": "reconcile.resyncSeconds",
    "relist_seconds": "reconcile.relistSeconds",
    "debounce_seconds": "reconcile.debounceSeconds",
    "api_workers": "reconcile.apiWorkers",
    "worker_limit": "reconcile.workerLimit",
    "log_level": "logging.level",
    "notify_webhooks": "notifications.webhooks",
    "notify_allow_http": "notifications.allowHttp",
    "notify_allowed_networks": "notifications.allowedNetworks",
    "notify_ca_bundle": "notifications.caBundle",
    "notify_attempts": "notifications.attempts",
    "notify_max_backoff_seconds": "notifications.maxBackoffSeconds",
    "notify_max_age_seconds": "notifications.maxAgeSeconds",
    "webhook_secret_names": "notifications.secretNames",  # a chart value only: the Secrets the operator may read
    "replicas": "replicas",  # a chart value only: the Deployment's replicas
    "leader_election": "leaderElection.enabled",
}


def set_path(values: dict[str, Any], dotted: str, value: Any) -> None:
    node = values
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last] = {**node[last], **value}  # merge, so a test adds to the defaults instead of losing them
    else:
        node[last] = value


def release_values(testenv: TestEnv, namespace: str, fullname: str, **settings: Any) -> dict[str, Any]:
    """The chart's values for a test's operator: the local images, MinIO, the test's namespace and settings."""
    values: dict[str, Any] = {
        "fullnameOverride": fullname,
        # The CRD is the environment's, shared by every test's release (the session installs it): none owns it.
        "crds": {"install": False},
        "image": {"repository": OPERATOR_IMAGE[0], "tag": OPERATOR_IMAGE[1], "pullPolicy": "IfNotPresent"},
        "watchNamespaces": [namespace],
        "transcoder": {
            "image": {"repository": TRANSCODER_IMAGE[0], "tag": TRANSCODER_IMAGE[1], "pullPolicy": "IfNotPresent"},
            # The test servers and MinIO listen on this machine's private address.
            "env": {"VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "true"},
            # Two cores for everything here: a transcoder asks for a tenth of one, so the scheduler places as
            # many as the tests' concurrency limits allow.
            "resources": {
                "cpu": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
                "nvidia": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
            },
        },
        "s3": {"endpointUrl": testenv.s3_endpoint_url, "region": testenv.aws_default_region},
        "logging": {"format": "text"},
        # The operator deletes artifacts (artifactReclaimPolicy: Delete) with credentials of its own, which the
        # chart takes as extraEnv; here the MinIO Secret of the namespace it runs in (the test's).
        "extraEnv": [
            {"name": var, "valueFrom": {"secretKeyRef": {"name": "videojob-s3", "key": var}}}
            for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "1Gi"}},
    }
    for key, value in settings.items():
        if key not in SETTING_VALUES:
            raise KeyError(f"no chart value for operator setting {key!r}; known: {sorted(SETTING_VALUES)}")
        set_path(values, SETTING_VALUES[key], value)
    return values


def helm(testenv: TestEnv, *args: str, values: dict[str, Any] | None = None, timeout: float = 180) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="values-") as f:
        json.dump(values or {}, f)
        f.flush()
        argv = [str(HELM), *args, *(["-f", f.name] if values is not None else [])]
        r = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=timeout,
            env={**testenv.subprocess_env(), "KUBECONFIG": testenv.kubeconfig},
        )  # fmt: skip
    if r.returncode != 0:
        raise AssertionError(f"helm {' '.join(args[:2])} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


@dataclass
class OperatorRelease:
    """One helm release of the chart whose operator watches one namespace."""

    testenv: TestEnv
    core_v1: Any
    apps_v1: Any
    namespace: str
    log_path: Path
    values: dict[str, Any]
    release: str = "videojob-operator"
    starts: int = 0
    installed: bool = False
    _seen_logs: dict[str, str] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        return str(self.values["fullnameOverride"])

    @classmethod
    def for_testenv(
        cls, testenv: TestEnv, core_v1: Any, apps_v1: Any, namespace: str, log_path: Path, **settings: Any
    ) -> OperatorRelease:
        fullname = f"vjop-{namespace[-6:]}"  # cluster-scoped objects (ClusterRoles, PriorityClasses) are per test
        values = release_values(testenv, namespace, fullname, **settings)
        return cls(testenv, core_v1, apps_v1, namespace, log_path, values)

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> OperatorRelease:
        """Install the release (or, installed, wait for the Deployment to bring a pod back) until /healthz."""
        if not self.installed:
            helm(self.testenv, "upgrade", "--install", self.release, str(CHART), "--namespace", self.namespace,
                 values=self.values)  # fmt: skip
            self.installed = True
        else:
            self.scale(1)
        self.starts += 1
        self.wait_healthy(timeout)
        return self

    def stop(self) -> None:
        """Keep the log, then uninstall the release (helm waits for nothing; the pod gets its grace period)."""
        if not self.installed:
            return
        self.save_log()
        helm(self.testenv, "uninstall", self.release, "--namespace", self.namespace, "--wait", "--timeout", "90s")
        self.installed = False

    def scale(self, replicas: int) -> None:
        self.apps_v1.patch_namespaced_deployment_scale(self.fullname, self.namespace, {"spec": {"replicas": replicas}})

    def delete_pod(self) -> None:
        """Delete the operator's pod and return at once; the Deployment makes a new one (start() waits for it)."""
        pod = self.pod()
        assert pod is not None, "no operator pod to delete"
        self.save_log()
        self.core_v1.delete_namespaced_pod(pod.metadata.name, self.namespace)
        wait_for(lambda: (p := self.pod()) is None or p.metadata.uid != pod.metadata.uid, timeout=60,
                 message="the operator pod to be deleted")  # fmt: skip

    def restart(self, timeout: float = 120) -> OperatorRelease:
        """Delete the operator's pod; the Deployment makes a new one."""
        pod = self.pod()
        self.save_log()
        if pod is not None:
            self.core_v1.delete_namespaced_pod(pod.metadata.name, self.namespace)
            wait_for(lambda: (p := self.pod()) is None or p.metadata.uid != pod.metadata.uid, timeout=60,
                     message="the operator pod to be replaced")  # fmt: skip
        self.starts += 1
        self.wait_healthy(timeout)
        return self

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int:
        """Send `sig` to the operator's process, wait until it exited; returns -sig (as Popen.returncode would).
        The kubelet restarts the container (restartPolicy Always); start() waits for that."""
        pid = self.pid
        self.save_log()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        wait_for(lambda: not _alive(pid), timeout=timeout, message=f"operator process {pid} to exit")
        return -sig

    def signal(self, sig: int) -> None:
        """Send `sig` without waiting (for use from a watch callback)."""
        with contextlib.suppress(ProcessLookupError, AssertionError):
            os.kill(self.pid, sig)

    def wait_exited(self, pid: int, timeout: float = 30) -> None:
        wait_for(lambda: not _alive(pid), timeout=timeout, message=f"operator process {pid} to exit")

    # --- observation -----------------------------------------------------------------------------------------

    def pod(self) -> Any | None:
        """The operator's current pod (not being deleted), or None."""
        live = self.pods()
        return max(live, key=lambda p: p.metadata.creation_timestamp) if live else None

    def pods(self) -> list[Any]:
        """The operator's pods that are not being deleted (several with `replicas`)."""
        pods = self.core_v1.list_namespaced_pod(
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component=operator",
        ).items
        return [p for p in pods if p.metadata.deletion_timestamp is None]

    # --- several replicas: the leader election Lease --------------------------------------------------------

    def lease(self) -> Any | None:
        """The release's leader election Lease (named after the release's full name), or None."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            return client.CoordinationV1Api(self.core_v1.api_client).read_namespaced_lease(
                self.fullname, self.namespace
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def lease_holder(self) -> str | None:
        lease = self.lease()
        return (lease.spec.holder_identity or None) if lease is not None else None

    def ready_pods(self) -> list[Any]:
        """Live operator pods whose Ready condition is True (their /healthz answers)."""
        return [
            p for p in self.pods() if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ]

    def pid_of(self, pod_name: str) -> int:
        """The operator process of one pod's container, as this machine sees it."""
        pod = self.core_v1.read_namespaced_pod(pod_name, self.namespace)
        cs = (pod.status.container_statuses or [None])[0]
        assert cs is not None and cs.container_id and cs.state.running, f"{pod_name}: container not running"
        container = cs.container_id.split("://", 1)[-1]
        for pid in container_processes(container):
            with contextlib.suppress(OSError):
                if b"videojob-operator" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        raise AssertionError(f"no operator process in {pod_name}'s container")

    def metrics_of(self, pod: Any) -> dict[str, float]:
        """Label-free samples of one pod's /metrics (e.g. videojob_leader)."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:{METRICS_PORT}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {s.name: float(s.value) for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}

    def save_logs(self) -> None:
        """save_log for every replica (save_log keeps the newest pod's only)."""
        from kubernetes.client.exceptions import ApiException

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for pod in self.pods():
            for which in ("previous", "current"):  # a restarted container's previous log is kept by the kubelet
                try:
                    text = str(
                        self.core_v1.read_namespaced_pod_log(
                            pod.metadata.name, self.namespace, previous=which == "previous"
                        )
                    )
                except ApiException:
                    continue
                key = f"{pod.metadata.uid}/{which}"
                if self._seen_logs.get(key) != text:
                    self._seen_logs[key] = text
                    with open(self.log_path, "a") as f:
                        f.write(
                            f"\n===== pod {pod.metadata.name} ({which} container, saved "
                            f"{time.strftime('%H:%M:%S')}) =====\n{text}"
                        )

    def container_status(self) -> Any | None:
        pod = self.pod()
        if pod is None or not pod.status.container_statuses:
            return None
        return pod.status.container_statuses[0]

    @property
    def pid(self) -> int:
        """The operator's process as this machine sees it (the container's main process), waiting up to a minute
        for a container that is being (re)started."""

        def find() -> int | str:
            cs = self.container_status()
            if cs is None or not cs.container_id or not cs.state.running:
                return f"container: {cs.state if cs else 'no pod'}"
            container = cs.container_id.split("://", 1)[-1]
            for pid in container_processes(container):
                with contextlib.suppress(OSError):
                    if b"videojob-operator" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        return pid
            return f"no operator process in container {container[:12]} yet"

        found = wait_for(lambda: (v if isinstance(v := find(), int) else NotYet(v)), timeout=60,
                         message="the operator's process")  # fmt: skip
        assert isinstance(found, int)  # wait_for returns only a truthy value, and a NotYet never is
        return found

    @property
    def running(self) -> bool:
        cs = self.container_status()
        return bool(cs is not None and cs.state.running)

    @property
    def pod_ip(self) -> str:
        pod = self.pod()
        assert pod is not None and pod.status.pod_ip, "the operator pod has no IP yet"
        return str(pod.status.pod_ip)

    def wait_healthy(self, timeout: float = 120) -> None:
        def healthy() -> bool | str:
            cs = self.container_status()
            if cs is None or not cs.state.running:
                return f"container: {cs.state if cs else 'no pod yet'}"
            try:
                with urllib.request.urlopen(f"http://{self.pod_ip}:{METRICS_PORT}/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError) as e:
                return f"/healthz: {e}"

        try:
            wait_for(healthy, timeout=timeout, interval=0.3, message="operator pod /healthz")
        except WaitTimeout as e:
            raise AssertionError(f"{e}\n--- operator log ---\n{self.log_tail()}") from None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://{self.pod_ip}:{METRICS_PORT}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Sample name -> [(labels, value)], parsed with prometheus_client's parser."""
        from prometheus_client.parser import text_string_to_metric_families

        out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                out[sample.name].append((dict(sample.labels), float(sample.value)))
        return dict(out)

    def rss_bytes(self) -> int:
        """VmRSS of the operator's process."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def current_log(self) -> str:
        pod = self.pod()
        if pod is None:
            return ""
        from kubernetes.client.exceptions import ApiException

        try:
            return str(self.core_v1.read_namespaced_pod_log(pod.metadata.name, self.namespace))
        except ApiException:
            return ""

    def save_log(self) -> None:
        """Append the current container's log to log_path (a killed or deleted container's log goes with it)."""
        pod, cs = self.pod(), self.container_status()
        if pod is None or cs is None:
            return
        key = f"{pod.metadata.uid}/{cs.restart_count}"
        text = self.current_log()
        if self._seen_logs.get(key) == text:
            return
        self._seen_logs[key] = text
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(f"\n===== pod {pod.metadata.name} container start {cs.restart_count + 1} "
                    f"(saved {time.strftime('%H:%M:%S')}) =====\n{text}")  # fmt: skip

    def log_tail(self, lines: int = 60) -> str:
        saved = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        text = saved + (self.current_log() if self.installed else "")
        return "\n".join(text.splitlines()[-lines:]) or "<no operator log>"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")
