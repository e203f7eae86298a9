#!/usr/bin/env python3
"""Node agent for the local test environment. TEST/DEV TOOLING: not a kubelet, not for production.

    python hack/node_agent.py --kubeconfig PATH --state-dir DIR [--apiserver-url URL]

It registers two Nodes, `cpu-0` and `gpu-0` (gpu-0: label nvidia.com/gpu.present=true, taint
nvidia.com/gpu=present:NoSchedule, capacity nvidia.com/gpu: 1), keeps their Leases and Ready conditions fresh,
and runs every pod bound to them as local processes, so the real scheduler, Job controller and garbage collector
do their real work against it. It runs in the foreground until SIGTERM/SIGINT, then stops its pods' processes.
It writes nothing outside DIR; its own events go to stderr, one line each.

What a pod gets
- Init containers run first, in order, each must exit 0; then the containers run side by side. Each container runs
  `command` + `args` (the image is ignored, so a container without `command` fails with reason StartError) in
  its own process group, with stdout+stderr in DIR/pods/<namespace>_<name>_<uid>/logs/<container>.log.
- Environment: PATH (the agent's, with the agent's interpreter directory first, so `python3` is the project's
  interpreter), LANG=C.UTF-8, HOME=the pod dir, TMPDIR=the pod dir's tmp/, HOSTNAME=pod name,
  KUBERNETES_SERVICE_HOST/PORT (from --apiserver-url, else the kubeconfig's server), TESTENV_TOKEN when the
  agent has it (hack/testenv.py finds leftover processes by it); then envFrom and env as the kubelet does
  (value with $(VAR) expansion, secretKeyRef, configMapKeyRef, fieldRef; resourceFieldRef is not supported).
  Containers on gpu-0 that request nvidia.com/gpu get NVIDIA_VISIBLE_DEVICES=GPU-0, as a device plugin would.
- restartPolicy Never, OnFailure and Always (restart with a short back-off: 1 s doubling up to 20 s).
- Pod status is patched truthfully (phase, conditions, container states, exit codes, termination messages).
  Deletion: SIGTERM to each process group, the grace period, SIGKILL, final status, then the pod object is
  deleted with gracePeriodSeconds=0 as the kubelet does. spec.activeDeadlineSeconds: killed, Failed,
  reason DeadlineExceeded. A pod that was running when the agent stopped is reported Failed, reason
  AgentRestarted, when the agent comes back.

Paths are re-rooted (there is no mount namespace). Each pod has a root DIR/pods/<namespace>_<name>_<uid>/rootfs.
- Every volumeMount appears at rootfs/<mountPath> (a symlink to the pod's volume dir, so containers share it):
  emptyDir, configMap, secret, downwardAPI and projected (serviceAccountToken through the TokenRequest API,
  configMap, secret, downwardAPI) volumes are supported. Contents are written once, at pod start (tokens are
  refreshed at 80 % of their lifetime); later ConfigMap or Secret changes are not propagated.
- `workingDir` becomes rootfs/<workingDir> (created if missing; unset: rootfs itself).
- `terminationMessagePath` (default /dev/termination-log) becomes rootfs/<path>; containers of one pod that
  share the same path share the file.
- THE RULE: in env values, command and args, a string that equals one of the container's mountPaths, its
  workingDir or its terminationMessagePath, or starts with one of them followed by "/", is rewritten to
  rootfs + string (`/work` matches `/work` and `/work/x`, not `/workbench`; `--out=/work/x` is left alone since
  it does not start with the path). $(VAR) expansion happens first, on the original values. This is what
  lets Job manifests use ordinary absolute paths.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("node-agent")

NODE_IP = "127.0.0.1"
GPU = "nvidia.com/gpu"
GPU_DEVICE_IDS = "GPU-0"
CAPACITY = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
NODES: dict[str, dict[str, Any]] = {
    "cpu-0": {"labels": {}, "taints": [], "capacity": {}},
    "gpu-0": {
        "labels": {"nvidia.com/gpu.present": "true"},
        "taints": [{"key": GPU, "value": "present", "effect": "NoSchedule"}],
        "capacity": {GPU: "1"},
    },
}
LEASE_NS, LEASE_RENEW_S, LEASE_DURATION_S, NODE_STATUS_S = "kube-node-lease", 10, 40, 20
TICK_S = 0.2  # how often a pod worker looks at its processes
REQUEST_TIMEOUT = (5, 30)
MAX_MESSAGE, FALLBACK_LOG_BYTES, FALLBACK_LOG_LINES = 4096, 2048, 80  # the kubelet's limits
TERMINAL = ("Succeeded", "Failed")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(ts: str) -> float:
    return time.time() - dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> dict[str, Any]:
    """Call a kubernetes client method and return the JSON answer as a plain dict (camelCase keys)."""
    resp = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kw)
    return json.loads(resp.data or b"{}")


def api_error(e: BaseException) -> str:
    if isinstance(e, ApiException):
        try:
            return f"HTTP {e.status}: {json.loads(e.body)['message']}"
        except (TypeError, ValueError, KeyError):
            return f"HTTP {e.status}: {e.reason}"
    return f"{type(e).__name__}: {e}"


def expand(s: str, lookup: Callable[[str], str | None]) -> str:
    """The kubelet's $(VAR) expansion: $$ is a literal $, unknown $(VAR) is left as it is."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "$" and i + 1 < len(s):
            if s[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            end = s.find(")", i + 2) if s[i + 1] == "(" else -1
            if end != -1:
                value = lookup(s[i + 2 : end])
                out.append(s[i : end + 1] if value is None else value)
                i = end + 1
                continue
        out.append(s[i])
        i += 1
    return "".join(out)


def proc_start_time(pid: int) -> str | None:
    """Start time of a process (field 22 of /proc/PID/stat): tells a live pid from a reused one."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def killpg(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class SetupError(Exception):
    """A pod or container cannot start yet (missing Secret, ConfigMap, key...): retried, as the kubelet does."""


class Container:
    def __init__(self, spec: dict[str, Any], init: bool, waiting_reason: str) -> None:
        self.spec, self.name, self.init = spec, spec["name"], init
        self.proc: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {"waiting": {"reason": waiting_reason}}
        self.last_state: dict[str, Any] = {}
        self.starts = 0
        self.restart_at: float | None = None  # monotonic time of the next start while backing off
        self.done = False  # terminated for good
        self.exit_code: int | None = None
        self.container_id: str | None = None
        self.log_offset = 0

    def status(self) -> dict[str, Any]:
        running = "running" in self.state
        st = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": running,
            "started": running,
            "restartCount": max(self.starts - 1, 0),
            "image": self.spec.get("image", ""),
            "imageID": self.spec.get("image", ""),
        }
        if self.container_id:
            st["containerID"] = self.container_id
        return st


class PodWorker(threading.Thread):
    """Runs one pod: volumes, init containers, containers, status, deletion. Only this thread writes its status."""

    def __init__(self, agent: Agent, pod: dict[str, Any], lost: bool = False) -> None:
        meta = pod["metadata"]
        self.ns, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        super().__init__(daemon=True, name=f"pod {self.ns}/{self.pod_name}")
        self.agent, self.pod, self.lost = agent, pod, lost
        self.key = f"{self.ns}/{self.pod_name}"
        self.dir = agent.pod_dir(pod)
        self.rootfs = self.dir / "rootfs"
        self.wake, self.lock = threading.Event(), threading.Lock()
        self.deleting = self.finished = self.gone = False
        spec = pod["spec"]
        self.inits = [Container(c, True, "PodInitializing") for c in spec.get("initContainers") or []]
        first = "PodInitializing" if self.inits else "ContainerCreating"
        self.ctrs = [Container(c, False, first) for c in spec["containers"]]
        self.start_time = (pod.get("status") or {}).get("startTime") or now()
        self.final_phase: str | None = None
        self.reason = self.message = None
        self.conditions: dict[str, dict[str, Any]] = {}
        self.last_report: dict[str, Any] | None = None
        self.next_report = 0.0
        self.setup_done, self.setup_error, self.setup_retry_at = False, "", 0.0
        self.tokens: list[tuple[Path, dict[str, Any], float]] = []

    # -- called from the watch thread --
    def update(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.pod = pod
        self.wake.set()

    def begin_deletion(self) -> bool:
        """Ask the worker to stop the pod and delete it; False when the worker is already finished."""
        with self.lock:
            if self.finished:
                return False
            self.deleting = True
        self.wake.set()
        return True

    def forget(self) -> None:
        self.gone = True
        self.wake.set()

    # -- the worker thread --
    def run(self) -> None:
        try:
            self.recover() if self.lost else self.live()
        except Exception:
            log.exception("pod %s: worker failed; reporting the pod Failed", self.key)
            self.kill_all(0)
            self.final_phase, self.reason, self.message = "Failed", "AgentError", "the node agent failed running it"
            self.report_final()
        with self.lock:
            self.finished, deleting = True, self.deleting
        if deleting and not self.gone and not self.agent.stop.is_set():
            self.agent.delete_pod(self.pod)

    def live(self) -> None:
        log.info("pod %s: starting on %s", self.key, self.pod["spec"]["nodeName"])
        for sub in ("rootfs", "logs", "volumes", "pids", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        while True:
            self.wake.clear()
            spec = self.pod["spec"]
            grace = int(spec.get("terminationGracePeriodSeconds", 30))
            if self.agent.stop.is_set() or self.gone:  # agent shutting down, or pod force-deleted: no report
                self.kill_all(min(grace, 10) if not self.gone else 2)
                return
            if self.deleting:
                meta = self.pod["metadata"]
                log.info("pod %s: deleting, grace period %ss", self.key, meta.get("deletionGracePeriodSeconds", grace))
                self.kill_all(int(meta.get("deletionGracePeriodSeconds", grace)))
                ok = all(c.done and c.exit_code == 0 for c in self.ctrs)
                self.final_phase = "Succeeded" if ok else "Failed"
                break
            deadline = spec.get("activeDeadlineSeconds")
            if deadline is not None and seconds_since(self.start_time) >= int(deadline):
                log.info("pod %s: active deadline of %ss exceeded", self.key, deadline)
                self.kill_all(grace)
                self.final_phase, self.reason = "Failed", "DeadlineExceeded"
                self.message = "Pod was active on the node longer than the specified deadline"
                break
            if self.step():
                break
            self.report()
            self.wake.wait(TICK_S)
        self.report_final()

    def step(self) -> bool:
        """Move the pod forward; True once it reached a terminal phase."""
        if not self.setup_done:
            if time.monotonic() < self.setup_retry_at:
                return False
            try:
                self.setup_volumes()
                self.setup_done = True
            except (SetupError, ApiException, OSError) as e:
                msg = str(e) if isinstance(e, SetupError) else api_error(e)
                if msg != self.setup_error:
                    log.warning("pod %s: volumes not ready: %s", self.key, msg)
                self.setup_error, self.setup_retry_at = msg, time.monotonic() + 2
                for c in self.inits + self.ctrs:
                    c.state = {"waiting": {"reason": "ContainerCreating", "message": msg}}
                return False
        self.refresh_tokens()
        for c in self.inits:
            if not c.done:
                self.advance(c)
            if not c.done:
                return False
            if c.exit_code != 0:
                return True  # a failed init container that will not be restarted fails the pod
        for c in self.ctrs:
            if not c.done:
                self.advance(c)
        return all(c.done for c in self.ctrs)

    def advance(self, c: Container) -> None:
        """Reap, restart or start one container."""
        if c.proc is not None:
            rc = c.proc.poll()
            if rc is None:
                return
            self.reap(c, rc, restart_allowed=True)
        if not c.done and (c.restart_at is None or time.monotonic() >= c.restart_at):
            self.start_container(c)

    def start_container(self, c: Container) -> None:
        c.restart_at = None
        spec = c.spec
        if not spec.get("command"):
            msg = "container has no command: the node agent ignores images, so `command` is required"
            return self.terminated(c, 128, "StartError", msg, now(), restart_allowed=True)
        try:
            env, lookup = self.build_env(c)
        except (SetupError, ApiException) as e:
            msg = str(e) if isinstance(e, SetupError) else api_error(e)
            if c.state.get("waiting", {}).get("message") != msg:
                log.warning("pod %s: container %s cannot start: %s", self.key, c.name, msg)
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": msg}}
            c.restart_at = time.monotonic() + 2
            return None
        argv = [self.reroot(c, expand(s, lookup)) for s in spec["command"] + spec.get("args", [])]
        cwd = self.rootfs / spec.get("workingDir", "/").lstrip("/")
        cwd.mkdir(parents=True, exist_ok=True)
        term = self.termination_path(c)
        term.parent.mkdir(parents=True, exist_ok=True)
        term.write_bytes(b"")
        logfile = self.dir / "logs" / f"{c.name}.log"
        with open(logfile, "ab") as out:
            c.log_offset = out.tell()
            try:
                c.proc = subprocess.Popen(
                    argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                return self.terminated(c, 128, "StartError", f"{argv[0]}: {e.strerror}", now(), True)
        pid = c.proc.pid
        (self.dir / "pids" / c.name).write_text(f"{pid} {proc_start_time(pid)}\n")
        c.starts += 1
        c.container_id = f"agent://{pid}"
        c.state = {"running": {"startedAt": now()}}
        log.info("pod %s: container %s started, pid %d: %s", self.key, c.name, pid, argv)
        return None

    def reap(self, c: Container, rc: int, restart_allowed: bool) -> None:
        assert c.proc is not None
        killpg(c.proc.pid, signal.SIGKILL)  # like a runtime: nothing of the container outlives it
        code = rc if rc >= 0 else 128 - rc
        started = c.state.get("running", {}).get("startedAt", now())
        message = self.read_termination_message(c, code)
        c.proc = None
        self.terminated(c, code, "Completed" if code == 0 else "Error", message, started, restart_allowed)

    def terminated(self, c: Container, code: int, reason: str, message: str, started: str, restart_allowed: bool):
        term = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()}
        if message:
            term["message"] = message
        if c.container_id:
            term["containerID"] = c.container_id
        log.info("pod %s: container %s exited %d (%s)", self.key, c.name, code, reason)
        policy = self.pod["spec"].get("restartPolicy", "Always")
        restart = restart_allowed and (
            (policy == "Always" and not c.init) or (policy in ("OnFailure", "Always") and code != 0)
        )
        if restart:
            delay = min(2 ** max(c.starts - 1, 0), 20)
            c.last_state = {"terminated": term}
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {delay}s restarting container"}}
            c.restart_at = time.monotonic() + delay
        else:
            c.state, c.done, c.exit_code = {"terminated": term}, True, code

    def kill_all(self, grace: int) -> None:
        """SIGTERM every running process group, wait up to `grace` seconds, SIGKILL the rest."""
        running = [(c, c.proc) for c in self.inits + self.ctrs if c.proc is not None]
        for _, proc in running:
            killpg(proc.pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while any(proc.poll() is None for _, proc in running) and time.monotonic() < end:
            time.sleep(0.05)
        for c, proc in running:
            if proc.poll() is None:
                log.info("pod %s: container %s still running after %ss: SIGKILL", self.key, c.name, grace)
                killpg(proc.pid, signal.SIGKILL)
            self.reap(c, proc.wait(), restart_allowed=False)
        for c in self.inits + self.ctrs:
            c.restart_at = None
            if "terminated" not in c.state and c.last_state:  # backing off: its last run is its final state
                c.state, c.done, c.exit_code = c.last_state, True, c.last_state["terminated"]["exitCode"]

    def termination_path(self, c: Container) -> Path:
        return self.rootfs / c.spec.get("terminationMessagePath", "/dev/termination-log").lstrip("/")

    def read_termination_message(self, c: Container, code: int) -> str:
        try:
            with open(self.termination_path(c), "rb") as f:
                data = f.read(MAX_MESSAGE)
        except OSError:
            data = b""
        if not data and code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with open(self.dir / "logs" / f"{c.name}.log", "rb") as f:
                f.seek(c.log_offset)
                tail = f.read()[-FALLBACK_LOG_BYTES:]
            data = b"\n".join(tail.split(b"\n")[-FALLBACK_LOG_LINES:])
        return data.decode("utf-8", "replace")

    # -- environment and paths --
    def reroot(self, c: Container, s: str) -> str:
        spec = c.spec
        prefixes = [m["mountPath"] for m in spec.get("volumeMounts") or []]
        prefixes += [spec.get("workingDir", ""), spec.get("terminationMessagePath", "/dev/termination-log")]
        for p in (p.rstrip("/") for p in prefixes):
            if p.startswith("/") and (s == p or s.startswith(p + "/")):
                return str(self.rootfs) + s
        return s

    def build_env(self, c: Container) -> tuple[dict[str, str], Callable[[str], str | None]]:
        """The process environment (re-rooted) and the lookup for $(VAR) expansion (original values)."""
        base = {
            "PATH": self.agent.path,
            "LANG": "C.UTF-8",
            "HOME": str(self.dir),
            "TMPDIR": str(self.dir / "tmp"),
            "HOSTNAME": self.pod_name,
            **self.agent.service_env,
        }
        own: dict[str, str] = {}

        def lookup(name: str) -> str | None:
            return own.get(name, base.get(name))

        for src in c.spec.get("envFrom") or []:
            if "configMapRef" in src:
                ref = src["configMapRef"]
                data = self.agent.read_data("configmap", self.ns, ref["name"], ref.get("optional", False))
            else:
                ref = src["secretRef"]
                data = self.agent.read_data("secret", self.ns, ref["name"], ref.get("optional", False))
            for k, v in (data or {}).items():
                own[src.get("prefix", "") + k] = v.decode("utf-8", "replace")
        for e in c.spec.get("env") or []:
            if "valueFrom" not in e:
                own[e["name"]] = expand(e.get("value", ""), lookup)
            elif (value := self.value_from(e["valueFrom"])) is not None:
                own[e["name"]] = value
        env = {**base, **{k: self.reroot(c, v) for k, v in own.items()}}
        if self.agent.token:
            env["TESTENV_TOKEN"] = self.agent.token
        resources = c.spec.get("resources") or {}
        wants_gpu = int((resources.get("limits") or {}).get(GPU, (resources.get("requests") or {}).get(GPU, 0)))
        if self.pod["spec"]["nodeName"] == "gpu-0" and wants_gpu > 0:
            env["NVIDIA_VISIBLE_DEVICES"] = GPU_DEVICE_IDS
        return env, lookup

    def value_from(self, vf: dict[str, Any]) -> str | None:
        if "fieldRef" in vf:
            return self.field(vf["fieldRef"]["fieldPath"])
        for kind, ref_key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
            if ref_key in vf:
                ref = vf[ref_key]
                optional = ref.get("optional", False)
                data = self.agent.read_data(kind, self.ns, ref["name"], optional)
                if data is None:
                    return None
                if ref["key"] not in data:
                    if optional:
                        return None
                    raise SetupError(f"couldn't find key {ref['key']} in {kind} {self.ns}/{ref['name']}")
                return data[ref["key"]].decode("utf-8", "replace")
        log.warning("pod %s: unsupported env valueFrom %s: left unset", self.key, list(vf))
        return None

    def field(self, path: str) -> str:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec["nodeName"],
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": NODE_IP,
            "status.podIPs": NODE_IP,
            "status.hostIP": NODE_IP,
            "status.hostIPs": NODE_IP,
        }
        if path in simple:
            return simple[path]
        for part in ("labels", "annotations"):
            values = meta.get(part) or {}
            if path == f"metadata.{part}":
                return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
            if m := re.fullmatch(rf"metadata\.{part}\['(.+)'\]", path):
                return values.get(m[1], "")
        raise SetupError(f"unsupported fieldPath {path}")

    # -- volumes --
    def setup_volumes(self) -> None:
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        mounts = sorted(
            (m for c in self.inits + self.ctrs for m in c.spec.get("volumeMounts") or []),
            key=lambda m: m["mountPath"],
        )
        self.tokens = []
        for name in dict.fromkeys(m["name"] for m in mounts):
            if name not in volumes:
                raise SetupError(f"volume {name} is mounted but not defined")
            self.fill_volume(volumes[name], self.dir / "volumes" / name)
        for m in mounts:
            target = self.rootfs / m["mountPath"].strip("/")
            source = self.dir / "volumes" / m["name"] / m.get("subPath", "")
            if target == self.rootfs or target.is_symlink():
                continue
            if not source.exists():
                source.mkdir(parents=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)

    def fill_volume(self, vol: dict[str, Any], target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in vol:
            return
        kind = next((k for k in ("projected", "configMap", "secret", "downwardAPI") if k in vol), None)
        if kind is None:
            other = next((k for k in vol if k != "name"), "?")
            raise SetupError(f"volume {vol['name']}: type {other} is not supported by the node agent")
        # configMap, secret and downwardAPI volumes are written as a projected volume with one source
        sources = vol["projected"]["sources"] if kind == "projected" else [vol]
        mode = vol[kind].get("defaultMode") or 0o644
        for src in sources:
            files: dict[str, tuple[bytes, int]] = {}
            if "serviceAccountToken" in src:
                tok = src["serviceAccountToken"]
                files[tok["path"]] = (self.request_token(tok), mode)
                self.tokens.append((target / tok["path"], tok, time.monotonic() + 0.8 * self.token_ttl(tok)))
            elif "downwardAPI" in src:
                for item in src["downwardAPI"].get("items") or []:
                    if "fieldRef" in item:
                        value = self.field(item["fieldRef"]["fieldPath"]).encode()
                        files[item["path"]] = (value, item.get("mode", mode))
            elif "configMap" in src or "secret" in src:
                kind = "configmap" if "configMap" in src else "secret"
                ref = src.get("configMap") or src["secret"]
                optional = ref.get("optional", False)
                data = self.agent.read_data(kind, self.ns, ref.get("name") or ref.get("secretName"), optional) or {}
                items = ref.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        if optional:
                            continue
                        raise SetupError(f"{kind} {ref.get('name') or ref.get('secretName')}: no key {item['key']}")
                    files[item["path"]] = (data[item["key"]], item.get("mode", mode))
            else:
                raise SetupError(f"volume {vol['name']}: projected source {list(src)} is not supported")
            for rel, (content, fmode) in files.items():
                path = target / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.unlink(missing_ok=True)
                path.write_bytes(content)
                path.chmod(fmode)

    @staticmethod
    def token_ttl(tok: dict[str, Any]) -> int:
        return int(tok.get("expirationSeconds") or 3600)

    def request_token(self, tok: dict[str, Any]) -> bytes:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [tok["audience"]] if tok.get("audience") else [],
                "expirationSeconds": self.token_ttl(tok),
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.pod_name, "uid": self.uid},
            },
        }
        try:
            res = call(self.agent.core.create_namespaced_service_account_token, sa, self.ns, body)
        except ApiException as e:
            raise SetupError(f"token for service account {sa}: {api_error(e)}") from e
        return res["status"]["token"].encode()

    def refresh_tokens(self) -> None:
        for i, (path, tok, at) in enumerate(self.tokens):
            if time.monotonic() >= at:
                try:
                    path.write_bytes(self.request_token(tok))
                    self.tokens[i] = (path, tok, time.monotonic() + 0.8 * self.token_ttl(tok))
                except SetupError as e:
                    log.warning("pod %s: refreshing %s: %s", self.key, path.name, e)
                    self.tokens[i] = (path, tok, time.monotonic() + 10)

    # -- status --
    def condition(self, ctype: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
        status = "True" if ok else "False"
        prev = self.conditions.get(ctype)
        cond = {"type": ctype, "status": status, "lastTransitionTime": now()}
        if prev and prev["status"] == status:
            cond["lastTransitionTime"] = prev["lastTransitionTime"]
        if not ok and reason:
            cond.update(reason=reason, message=message or "")
        self.conditions[ctype] = cond
        return cond

    def phase(self) -> str:
        if self.final_phase:
            return self.final_phase
        if any(c.done and c.exit_code != 0 for c in self.inits):
            return "Failed"
        if self.ctrs and all(c.done for c in self.ctrs):
            return "Succeeded" if all(c.exit_code == 0 for c in self.ctrs) else "Failed"
        return "Running" if any(c.starts for c in self.ctrs) else "Pending"

    def status(self) -> dict[str, Any]:
        phase = self.phase()
        pending_inits = [c.name for c in self.inits if not (c.done and c.exit_code == 0)]
        unready = [c.name for c in self.ctrs if "running" not in c.state]
        why = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
        if phase in TERMINAL:
            why = ("PodCompleted", "")
        st: dict[str, Any] = {
            "phase": phase,
            "conditions": [
                self.condition("PodReadyToStartContainers", self.setup_done and phase not in TERMINAL),
                self.condition("Initialized", not pending_inits, "ContainersNotInitialized",
                               f"containers with incomplete status: [{' '.join(pending_inits)}]"),
                self.condition("ContainersReady", not unready, *why),
                self.condition("Ready", not unready, *why),
                self.condition("PodScheduled", True),
            ],
            "hostIP": NODE_IP, "hostIPs": [{"ip": NODE_IP}], "podIP": NODE_IP, "podIPs": [{"ip": NODE_IP}],
            "startTime": self.start_time,
            "containerStatuses": [c.status() for c in self.ctrs],
        }
        if self.inits:
            st["initContainerStatuses"] = [c.status() for c in self.inits]
        if self.reason:
            st.update(reason=self.reason, message=self.message)
        return st

    def report(self, status: dict[str, Any] | None = None) -> bool:
        """Patch the pod's status when it changed; True when the API has the latest one."""
        st = status or self.status()
        if st == self.last_report or self.gone:
            return True
        if time.monotonic() < self.next_report:
            return False
        body = {"metadata": {"uid": self.uid}, "status": st}  # the uid makes it a precondition, as the kubelet does
        try:
            call(self.agent.core.patch_namespaced_pod_status, self.pod_name, self.ns, body)
        except Exception as e:
            if isinstance(e, ApiException) and e.status == 404:
                self.gone = True
                return True
            log.warning("pod %s: status update failed: %s", self.key, api_error(e))
            self.next_report = time.monotonic() + 1
            return False
        if not self.last_report or self.last_report["phase"] != st["phase"]:
            log.info("pod %s: phase %s%s", self.key, st["phase"], f" ({st['reason']})" if st.get("reason") else "")
        self.last_report = st
        return True

    def report_final(self, status: dict[str, Any] | None = None) -> None:
        while not self.report(status) and not self.agent.stop.is_set():
            self.agent.stop.wait(0.5)

    def recover(self) -> None:
        """The agent restarted while this pod ran: its processes are gone (or killed here); report it Failed."""
        for f in (self.dir / "pids").glob("*"):
            pid, started = f.read_text().split()
            if proc_start_time(int(pid)) == started:
                killpg(int(pid), signal.SIGKILL)
        log.warning("pod %s: was running before the agent restarted; reporting it Failed", self.key)
        old = self.pod.get("status") or {}
        spec = self.pod["spec"]

        def lost(specs: list[dict[str, Any]], statuses: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
            by_name = {s["name"]: s for s in statuses or []}
            out = []
            for cs in specs:
                s = by_name.get(cs["name"]) or {"name": cs["name"], "image": cs.get("image", ""), "imageID": "",
                                               "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
                if "running" in s.get("state", {}):
                    s["state"] = {"terminated": {
                        "exitCode": 137, "reason": "ContainerStatusUnknown", "finishedAt": now(),
                        "message": "The container could not be located when the pod was terminated",
                        "startedAt": s["state"]["running"].get("startedAt")}}
                out.append({**s, "ready": False, "started": False})
            return out

        status = {
            "phase": "Failed",
            "reason": "AgentRestarted",
            "message": "The node agent restarted; the pod's processes are gone",
            "conditions": [self.condition(t, False, "PodCompleted", "") for t in ("ContainersReady", "Ready")],
            "containerStatuses": lost(spec["containers"], old.get("containerStatuses")),
        }
        if spec.get("initContainers"):
            status["initContainerStatuses"] = lost(spec["initContainers"], old.get("initContainerStatuses"))
        self.report_final(status)


class Agent:
    def __init__(self, kubeconfig: str, state_dir: Path, apiserver_url: str | None) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = 64
        api = client.ApiClient(cfg)
        self.core, self.coord = client.CoreV1Api(api), client.CoordinationV1Api(api)
        url = urllib.parse.urlsplit(apiserver_url or cfg.host)
        self.service_env = {
            "KUBERNETES_SERVICE_HOST": url.hostname or NODE_IP,
            "KUBERNETES_SERVICE_PORT": str(url.port or 443),
        }
        self.path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "/usr/bin:/bin")])
        self.token = os.environ.get("TESTENV_TOKEN")
        self.pods_dir = state_dir / "pods"
        self.stop = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self.deleted: set[str] = set()
        self.node_uids: dict[str, str] = {}
        self.started, self.boot_id = now(), str(uuid.uuid4())
        versions = Path(__file__).with_name("versions.env")
        found = re.search(r"^K8S_VERSION=(\S+)", versions.read_text(), re.M) if versions.exists() else None
        self.version = found[1] if found else "v0.0.0"

    def run(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        for name in NODES:
            self.retry(f"registering node {name}", lambda n=name: self.register_node(n))
        threading.Thread(target=self.heartbeat, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.watch_pods, name="watch", daemon=True).start()
        while not self.stop.wait(1):
            pass
        log.info("stopping: terminating the pods' processes")
        workers = list(self.workers.values())
        for w in workers:
            w.wake.set()
        end = time.monotonic() + 15
        for w in workers:
            w.join(timeout=max(end - time.monotonic(), 0.1))
        log.info("stopped")

    def retry(self, what: str, fn: Callable[[], Any]) -> None:
        while not self.stop.is_set():
            try:
                fn()
                return
            except Exception as e:
                log.warning("%s failed: %s", what, api_error(e))
                self.stop.wait(2)

    # -- nodes and leases --
    def node_status(self, name: str) -> dict[str, Any]:
        capacity = {**CAPACITY, **NODES[name]["capacity"]}
        t = now()
        conditions = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "node agent has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "node agent has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "node agent has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "node agent is posting ready status"),
        ]
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {"type": c, "status": s, "reason": r, "message": m, "lastHeartbeatTime": t,
                 "lastTransitionTime": self.started}
                for c, s, r, m in conditions
            ],
            "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                "bootID": self.boot_id, "kernelVersion": os.uname().release,
                "osImage": "videojob node agent (local processes)",
                "containerRuntimeVersion": "agent://0.1", "kubeletVersion": self.version, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": "amd64",
            },
        }

    def register_node(self, name: str) -> None:
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                  **NODES[name]["labels"]}
        taints = NODES[name]["taints"]
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints}, "status": self.node_status(name)}
        try:
            node = call(self.core.create_node, body)
            log.info("node %s: created", name)
        except ApiException as e:
            if e.status != 409:
                raise
            current = call(self.core.read_node, name)
            ours = {t["key"] for t in taints}
            keep = [t for t in current["spec"].get("taints") or [] if t["key"] not in ours]
            patch = {"metadata": {"labels": labels}, "spec": {"taints": keep + taints}}
            node = call(self.core.patch_node, name, patch, _content_type="application/merge-patch+json")
            log.info("node %s: updated", name)
        self.node_uids[name] = node["metadata"]["uid"]
        call(self.core.patch_node_status, name, {"status": self.node_status(name)})
        self.renew_lease(name)

    def renew_lease(self, name: str) -> None:
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_S,
                "renewTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        try:
            call(self.coord.patch_namespaced_lease, name, LEASE_NS, {"spec": spec})
        except ApiException as e:
            if e.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.node_uids[name]}
            body = {"metadata": {"name": name, "namespace": LEASE_NS, "ownerReferences": [owner]}, "spec": spec}
            call(self.coord.create_namespaced_lease, LEASE_NS, body)

    def heartbeat(self) -> None:
        last_status = time.monotonic()
        while not self.stop.wait(LEASE_RENEW_S):
            post_status = time.monotonic() - last_status >= NODE_STATUS_S - 1
            for name in NODES:
                try:
                    self.renew_lease(name)
                    if post_status:
                        call(self.core.patch_node_status, name, {"status": self.node_status(name)})
                except ApiException as e:
                    log.warning("node %s: heartbeat failed: %s", name, api_error(e))
                    if e.status == 404:
                        self.retry(f"re-registering node {name}", lambda n=name: self.register_node(n))
                except Exception as e:
                    log.warning("node %s: heartbeat failed: %s", name, api_error(e))
            if post_status:
                last_status = time.monotonic()

    # -- pods --
    def pod_dir(self, pod: dict[str, Any]) -> Path:
        m = pod["metadata"]
        return self.pods_dir / f"{m['namespace']}_{m['name']}_{m['uid']}"

    def read_data(self, kind: str, ns: str, name: str, optional: bool) -> dict[str, bytes] | None:
        """A ConfigMap's or Secret's data as bytes; None when it is missing and optional."""
        read = self.core.read_namespaced_config_map if kind == "configmap" else self.core.read_namespaced_secret
        try:
            obj = call(read, name, ns)
        except ApiException as e:
            if e.status == 404 and optional:
                return None
            if e.status == 404:
                raise SetupError(f'{kind} "{name}" not found') from e
            raise
        if kind == "secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        return data | {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}

    def delete_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if meta["uid"] in self.deleted:
            return
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            call(self.core.delete_namespaced_pod, meta["name"], meta["namespace"], body=body, grace_period_seconds=0)
            log.info("pod %s/%s: deleted", meta["namespace"], meta["name"])
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("pod %s/%s: delete failed: %s", meta["namespace"], meta["name"], api_error(e))
                return
        self.deleted.add(meta["uid"])

    def was_running(self, pod: dict[str, Any]) -> bool:
        pids = self.pod_dir(pod) / "pids"
        return (pod.get("status") or {}).get("phase") == "Running" or (pids.is_dir() and any(pids.iterdir()))

    def handle(self, kind: str, pod: dict[str, Any]) -> None:
        if pod["spec"].get("nodeName") not in NODES:
            return
        uid = pod["metadata"]["uid"]
        w = self.workers.get(uid)
        if kind == "DELETED":
            if w:
                w.forget()
                del self.workers[uid]
            self.deleted.discard(uid)
            return
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        if w is None:
            phase = (pod.get("status") or {}).get("phase")
            lost = self.was_running(pod)
            if phase in TERMINAL or (deleting and not lost):
                if deleting:
                    self.delete_pod(pod)
                return
            w = self.workers[uid] = PodWorker(self, pod, lost=lost)
            w.start()
        w.update(pod)
        if deleting and not w.begin_deletion():
            self.delete_pod(pod)

    def watch_pods(self) -> None:
        rv = None
        while not self.stop.is_set():
            try:
                if rv is None:
                    listed = call(self.core.list_pod_for_all_namespaces)
                    rv = listed["metadata"]["resourceVersion"]
                    seen = {p["metadata"]["uid"] for p in listed["items"]}
                    for uid, w in list(self.workers.items()):
                        if uid not in seen:
                            self.handle("DELETED", w.pod)
                    for pod in listed["items"]:
                        self.handle("MODIFIED", pod)
                resp = self.core.list_pod_for_all_namespaces(
                    watch=True, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=300,
                    _preload_content=False, _request_timeout=(5, 330),
                )
                for line in iter_resp_lines(resp):
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        log.warning("pod watch: %s (code %s); listing again", obj.get("message"), obj.get("code"))
                        rv = None if obj.get("code") == 410 else rv
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self.handle(event["type"], obj)
            except Exception as e:
                if isinstance(e, ApiException) and e.status == 410:
                    rv = None
                log.warning("pod watch: %s; reconnecting", api_error(e))
                self.stop.wait(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--apiserver-url", help="for the pods' KUBERNETES_SERVICE_HOST/PORT (default: the kubeconfig's)")
    args = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    agent = Agent(args.kubeconfig, args.state_dir.resolve(), args.apiserver_url)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop.set())
    agent.run()


if __name__ == "__main__":
    main()
