"""End-to-end harness: the real operator as a subprocess, the CRD, VideoJobs, Jobs and diagnostics.

Used by the e2e tests (through `tests/e2e/conftest.py`), by `bench/operator_latency.py` and by `hack/demo.py`,
so that all three run the operator the same way a person does: the `videojob-operator` console script with its
settings in environment variables, against the local environment's kubeconfig.

Nothing here fakes a component. The only test-only things are the loopback HTTP server (a real HTTP server on
127.0.0.1 whose behaviour a test scripts: stall, fail with 503, serve a file) and the finalizer clean-up after a
test stopped its operator (so that namespace deletion is not blocked by an operator that no longer runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from devkit import mediagen
from devkit.testenv import REPO, TestEnv, WaitTimeout, wait_for

GROUP = "videojob.dev"
VERSION = "v1alpha1"
PLURAL = "videojobs"
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILE = REPO / "crds" / "videojobs.yaml"
VENV_BIN = Path(sys.executable).parent
OPERATOR_BIN = VENV_BIN / "videojob-operator"
S3_SECRET = "videojob-s3"
TERMINAL = ("Succeeded", "Failed", "Cancelled")


RUNTIME_VENV = REPO / ".testenv" / "operator-venv"


def runtime_operator_argv() -> list[str]:
    """`videojob-operator` from a venv holding only the package's runtime dependencies, as the operator image
    installs it (no extras, so no `kubernetes` package, which Kopf would import whenever it is installed and
    which the dev venv has for the tests). For measuring the operator's memory as users run it. The package is
    installed editable, so the venv follows the working tree; it is rebuilt when pyproject.toml changes."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    stamp = RUNTIME_VENV / "pyproject.sha256"
    digest = hashlib.sha256(pyproject).hexdigest()
    binary = RUNTIME_VENV / "bin" / "videojob-operator"
    if not (binary.exists() and stamp.exists() and stamp.read_text() == digest):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(RUNTIME_VENV)], check=True)
        pip = [str(RUNTIME_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", str(REPO)], check=True, stdout=subprocess.DEVNULL)
        stamp.write_text(digest)
    return [str(binary)]


class NotYet:
    """A falsy value for wait_for() predicates that still says what was observed (shown when it times out)."""

    def __init__(self, observed: Any) -> None:
        self.observed = observed

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return repr(self.observed)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------------------------
# The CRD


def install_crd(apiextensions_v1: Any, path: Path = CRD_FILE, timeout: float = 60) -> dict[str, Any]:
    """Create or replace the CRD in `path` (the VideoJob's by default) and wait until it is Established."""
    from kubernetes.client.exceptions import ApiException

    if not path.exists():
        raise AssertionError(f"{path} does not exist: generate it with `python -m videojob.api.generate`")
    body = yaml.safe_load(path.read_text())
    assert body.get("kind") == "CustomResourceDefinition", f"{path}: not a CustomResourceDefinition"
    name = body["metadata"]["name"]

    def apply() -> bool:
        try:
            current = apiextensions_v1.read_custom_resource_definition(name)
        except ApiException as e:
            if e.status != 404:
                raise
            apiextensions_v1.create_custom_resource_definition(body)
            return True
        body.setdefault("metadata", {})["resourceVersion"] = current.metadata.resource_version
        try:
            apiextensions_v1.replace_custom_resource_definition(name, body)
        except ApiException as e:
            if e.status == 409:  # someone else (another test session) replaced it meanwhile: read again
                return False
            raise
        return True

    wait_for(apply, timeout=timeout, message=f"CRD {name} created or replaced")

    def established() -> Any:
        crd = apiextensions_v1.read_custom_resource_definition(name)
        conds = {c.type: c.status for c in (crd.status.conditions or [])}
        ok = conds.get("Established") == "True" and conds.get("NamesAccepted") == "True"
        return crd if ok else NotYet(conds)

    wait_for(established, timeout=timeout, message=f"CRD {name} Established")
    return body


def install_crds(apiextensions_v1: Any) -> dict[str, Any]:
    """Every CRD of crds/ (VideoJob and both preset kinds: the operator resolves presets); returns the VideoJob's."""
    for path in sorted(CRD_FILE.parent.glob("*.yaml")):
        if path != CRD_FILE:
            install_crd(apiextensions_v1, path)
    return install_crd(apiextensions_v1)


# ---------------------------------------------------------------------------------------------------------------
# The operator process


def settings_env(**settings: Any) -> dict[str, str]:
    """Turn keyword settings into VIDEOJOB_* variables.

    Keys may be variable names (`VIDEOJOB_MAX_RUNNING=1`) or Settings field names (`max_running=1`); values
    that are lists or dicts become JSON, bools become true/false.
    """
    from videojob.controller.settings import Settings

    names = Settings.env_names()
    out: dict[str, str] = {}
    for key, value in settings.items():
        var = key if key.startswith("VIDEOJOB_") else names.get(key)
        if var is None:
            raise KeyError(f"unknown operator setting {key!r}; known: {sorted(names)}")
        if isinstance(value, bool):
            out[var] = "true" if value else "false"
        elif isinstance(value, list | dict):
            out[var] = json.dumps(value)
        else:
            out[var] = str(value)
    return out


@dataclass
class OperatorProcess:
    """`videojob-operator` run as a subprocess with its own process group, log file and metrics port."""

    env: dict[str, str]
    log_path: Path
    metrics_port: int
    argv: list[str] = field(default_factory=lambda: [str(OPERATOR_BIN)])
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @classmethod
    def for_testenv(
        cls, testenv: TestEnv, namespaces: Iterable[str], log_path: Path, **settings: Any
    ) -> OperatorProcess:
        port = free_port()
        transcoder_env = {"VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "true"}
        base = {
            "VIDEOJOB_NAMESPACES": ",".join(namespaces),
            "VIDEOJOB_METRICS_PORT": str(port),
            "VIDEOJOB_S3_ENDPOINT_URL": testenv.s3_endpoint_url,
            "VIDEOJOB_S3_REGION": testenv.aws_default_region,
            # Pods are local processes whose PATH starts with the venv's bin: the console script resolves.
            "VIDEOJOB_TRANSCODER_COMMAND": json.dumps(["videojob-transcode"]),
            "VIDEOJOB_TRANSCODER_ENV": json.dumps(transcoder_env),
            "VIDEOJOB_LOG_FORMAT": "text",
            # No PriorityClasses exist in a bare environment (the chart creates them).
            "VIDEOJOB_PRIORITY_CLASSES": json.dumps({"urgent": "", "normal": "", "low": ""}),
        }
        extra = settings_env(**settings)
        if "VIDEOJOB_TRANSCODER_ENV" in extra:  # merge, so a test adds to the defaults instead of losing them
            added = json.loads(extra["VIDEOJOB_TRANSCODER_ENV"])
            extra["VIDEOJOB_TRANSCODER_ENV"] = json.dumps({**transcoder_env, **added})
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOJOB_")}
        env = {**inherited, **testenv.variables, **base, **extra, "KUBECONFIG": testenv.kubeconfig}
        env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "/usr/bin:/bin")])
        env["PYTHONUNBUFFERED"] = "1"
        return cls(env=env, log_path=log_path, metrics_port=int(env["VIDEOJOB_METRICS_PORT"]))

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the operator is not running"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60) -> OperatorProcess:
        assert not self.running, "the operator is already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== operator start #{self.starts + 1} at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=REPO,
            )
        self.starts += 1
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60) -> None:
        def healthy() -> bool | NotYet:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the operator exited with {self.proc.returncode} before it was healthy:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError) as e:
                return NotYet(f"{e}")

        try:
            wait_for(healthy, timeout=timeout, interval=0.2, message="operator /healthz")
        except WaitTimeout as e:
            raise AssertionError(f"{e}\n--- operator log ---\n{self.log_tail()}") from None

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> int:
        """Send `sig` to the operator's process group and wait for it to exit; returns the exit status."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        rc = self.proc.wait(timeout)
        return rc

    def stop(self, grace: float = 20) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; never leaves an orphan behind."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.kill(signal.SIGTERM, timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL, timeout=10)
        # anything the operator started in its group (it should start nothing) goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def restart(self, timeout: float = 60) -> OperatorProcess:
        self.stop()
        return self.start(timeout)

    # --- observation -----------------------------------------------------------------------------------------

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
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
        """VmRSS of the operator process, from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS in /proc/{self.pid}/status")

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "<no operator log>"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------------------------
# S3 and media


def ensure_s3_secret(core_v1: Any, namespace: str, testenv: TestEnv, name: str = S3_SECRET) -> None:
    """The default credentials Secret the operator hands to transcoder pods (secretKeyRef)."""
    from kubernetes.client.exceptions import ApiException

    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {
            "AWS_ACCESS_KEY_ID": testenv.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": testenv.aws_secret_access_key,
        },
    }
    try:
        core_v1.create_namespaced_secret(namespace, body)
    except ApiException as e:
        if e.status != 409:
            raise
        core_v1.replace_namespaced_secret(name, namespace, body)


def ensure_bucket(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)


def empty_and_delete_bucket(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise


def parse_s3_uri(uri: str) -> tuple[str, str]:
    assert uri.startswith("s3://"), uri
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON (format and streams) for a local file."""
    return mediagen.probe_json(path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Media: tiny generated files (FFmpeg lavfi sources, espeak-ng speech)


class MediaFactory:
    """Tiny media from devkit/mediagen.py (FFmpeg lavfi sources, espeak-ng), plus the one combination it lacks
    (a video whose sound is speech), and uploads to MinIO. mediagen caches by parameters."""

    SPEECH = "hello world this is a test of subtitles"

    def __init__(self, root: Path, s3: Any) -> None:
        self.root = root
        self.s3 = s3

    def video(
        self,
        seconds: float = 1.0,
        size: str = "160x120",
        fps: int = 15,
        audio: bool = True,
        container: str = "mp4",
        color: bool = False,
    ) -> Path:
        width, height = (int(x) for x in size.split("x"))
        return mediagen.video(
            container,
            size=(width, height),
            fps=fps,
            duration=seconds,
            audio="sine" if audio else None,
            color="blue" if color else None,
        )

    def audio(self, seconds: float = 1.0, fmt: str = "mp3") -> Path:
        return mediagen.audio(fmt, duration=seconds)

    def speech(self, text: str = SPEECH) -> Path:
        return mediagen.speech_wav(text)

    def with_speech(self, video: Path) -> Path:
        """The video with its sound replaced by espeak-ng speech (for speech-to-text)."""
        path = self.root / f"{video.stem}-speech{video.suffix}"
        if path.exists():
            return path
        acodec = {"webm": "libopus", "avi": "libmp3lame"}.get(video.suffix.lstrip("."), "aac")
        self._run(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-i",
                str(video),
                "-i",
                str(self.speech()),
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "copy",
                "-c:a",
                acodec,
                str(path),
            ]
        )
        return path

    def subtitles(self, fmt: str = "srt") -> Path:
        return mediagen.subtitles(fmt, [(0.0, 1.0, "Hello world"), (1.2, 2.5, "A second cue")])

    def upload(self, path: Path, bucket: str, key: str) -> str:
        self.s3.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"

    @staticmethod
    def _run(argv: list[str]) -> None:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        assert out.returncode == 0, f"{argv[0]} failed ({out.returncode}): {out.stderr[-2000:]}"


# ---------------------------------------------------------------------------------------------------------------
# VideoJobs


def videojob(name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob", "metadata": meta, "spec": spec}


@dataclass
class VideoJobs:
    """VideoJobs of one namespace through the CustomObjects API."""

    custom_objects: Any
    namespace: str

    def create(self, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self.create_object(videojob(name, spec, labels))

    def create_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {}).pop("namespace", None)
        return self.custom_objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, obj)

    def get(self, name: str) -> dict[str, Any]:
        return self.custom_objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def list(self) -> list[dict[str, Any]]:
        res = self.custom_objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
        return res["items"]

    def patch_spec(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.custom_objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": patch}
        )

    def delete(self, name: str) -> None:
        self.custom_objects.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def phases(self) -> dict[str, str | None]:
        return {o["metadata"]["name"]: (o.get("status") or {}).get("phase") for o in self.list()}

    def strip_finalizers(self) -> None:
        """Test clean-up only: after a test stopped its operator, nothing would remove the operator's finalizers
        and the namespace could not be deleted."""
        from kubernetes.client.exceptions import ApiException

        for obj in self.list():
            if obj["metadata"].get("finalizers"):
                with contextlib.suppress(ApiException):
                    self.custom_objects.patch_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        self.namespace,
                        PLURAL,
                        obj["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )


def describe_videojob(obj: dict[str, Any]) -> str:
    st = obj.get("status") or {}
    conds = [
        f"{c.get('type')}={c.get('status')} ({c.get('reason')}: {c.get('message', '')[:200]})"
        for c in st.get("conditions", [])[-4:]
    ]
    return (
        f"{obj['metadata']['name']}: phase={st.get('phase')} reason={st.get('reason')} "
        f"message={st.get('message')!r} attempts={st.get('attempts')} queuePosition={st.get('queuePosition')} "
        f"job={st.get('jobName')} hardware={st.get('hardware')} node={st.get('node')} progress={st.get('progress')} "
        f"conditions={conds}"
    )


# ---------------------------------------------------------------------------------------------------------------
# Watching Jobs: every Job ever created, by owner


@dataclass
class JobAdded:
    uid: str
    name: str
    owner: str | None  # the owning VideoJob's name
    created: str  # creationTimestamp (second resolution)
    seen: float  # time.monotonic() when the watch delivered ADDED
    obj: dict[str, Any]  # the Job as the watch delivered it


class JobRecorder:
    """Watches batch/v1 Jobs of a namespace in a thread and records each Job (by uid) the first time it is seen.

    Distinct uids per VideoJob is the honest count of Jobs ever created for it: a re-list after an expired
    watch sees the same uid again, a duplicate Job has a new uid.
    """

    def __init__(self, batch_v1: Any, namespace: str) -> None:
        self.batch_v1 = batch_v1
        self.namespace = namespace
        self.added: list[JobAdded] = []
        self._uids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"jobs-{namespace}", daemon=True)
        self.on_added: Callable[[JobAdded], None] | None = None

    def __enter__(self) -> JobRecorder:
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError(f"the Job watch in {self.namespace} did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _record(self, job: dict[str, Any]) -> None:
        meta = job["metadata"]
        owner = next((r["name"] for r in meta.get("ownerReferences") or [] if r.get("kind") == "VideoJob"), None)
        entry = JobAdded(
            uid=meta["uid"],
            name=meta["name"],
            owner=owner,
            created=meta.get("creationTimestamp") or "",
            seen=time.monotonic(),
            obj=job,
        )
        with self._lock:
            if entry.uid in self._uids:
                return
            self._uids.add(entry.uid)
            self.added.append(entry)
        if self.on_added is not None:
            self.on_added(entry)

    def _run(self) -> None:
        # Plain JSON, not the client's models: turning every Job event into a V1Job cost the benchmark client
        # more CPU than the operator it measures (bench/operator_latency.py shares two cores with it).
        from kubernetes.client.exceptions import ApiException

        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    listed = self.batch_v1.list_namespaced_job(self.namespace, _preload_content=False)
                    lst = json.loads(listed.data)
                    for job in lst["items"]:
                        self._record(job)
                    rv = lst["metadata"]["resourceVersion"]
                    self._ready.set()
                rv = self._watch(rv)
            except ApiException as e:
                if e.status == 410:
                    rv = None  # expired: re-list (uids dedupe what was seen already)
                    continue
                self._error = e
                time.sleep(0.5)  # the API server hiccupped; the watch resumes
            except Exception as e:  # keep watching; report at the end
                self._error = e
                time.sleep(0.5)  # the API server hiccupped; the watch resumes

    def _watch(self, rv: str) -> str | None:
        """One watch request (2 s) from `rv`; the resourceVersion to go on from, None to list again."""
        response = self.batch_v1.list_namespaced_job(
            self.namespace,
            watch=True,
            resource_version=rv,
            timeout_seconds=2,
            allow_watch_bookmarks=True,
            _preload_content=False,
        )
        try:
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    response.close()
                    if obj.get("code") == 410:
                        return None  # expired: re-list (uids dedupe what was seen already)
                    raise RuntimeError(f"the Job watch failed: {obj.get('message')}")
                rv = obj["metadata"]["resourceVersion"]
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._record(obj)
                if self._stop.is_set():
                    response.close()  # not read to its end: not back into the pool
                    return rv
        finally:
            response.release_conn()
        return rv

    def snapshot(self) -> list[JobAdded]:
        with self._lock:
            return list(self.added)

    def by_owner(self) -> dict[str | None, list[JobAdded]]:
        out: dict[str | None, list[JobAdded]] = defaultdict(list)
        for entry in self.snapshot():
            out[entry.owner].append(entry)
        return dict(out)

    def duplicates(self) -> dict[str | None, list[str]]:
        return {owner: [e.name for e in jobs] for owner, jobs in self.by_owner().items() if len(jobs) > 1}

    def caught_up(self) -> bool | NotYet:
        """Whether the watch has recorded every Job the API server lists now (for wait_for: after that, a count
        of Jobs per VideoJob misses none that exists)."""
        listed = {job.metadata.uid for job in self.batch_v1.list_namespaced_job(self.namespace).items}
        with self._lock:
            missing = listed - self._uids
        return True if not missing else NotYet({"not yet recorded": sorted(missing)})


# ---------------------------------------------------------------------------------------------------------------
# Diagnostics for failure messages


class OperatorLog(Protocol):
    """What diagnostics read of an operator: its log, whether it runs as a process or as a Helm release's pod."""

    log_path: Path

    def log_tail(self, lines: int = 60) -> str: ...


@dataclass
class Diagnostics:
    """Everything worth reading when an e2e assertion fails, as one string."""

    testenv: TestEnv
    namespace: str
    videojobs: VideoJobs
    batch_v1: Any
    core_v1: Any
    operator: OperatorLog | None = None

    def pod_logs(self, lines: int = 15, limit: int = 6) -> str:
        """The last lines of the newest pods' containers (kubectl logs), the operator's excepted."""
        from kubernetes.client.exceptions import ApiException

        out = []
        try:
            pods = self.core_v1.list_namespaced_pod(self.namespace).items
        except ApiException as e:
            return f"<could not list pods: {e.reason}>"
        pods = [p for p in pods if (p.metadata.labels or {}).get("app.kubernetes.io/component") != "operator"]
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp)[-limit:]:
            for c in pod.spec.containers:
                try:
                    text = self.core_v1.read_namespaced_pod_log(
                        pod.metadata.name, self.namespace, container=c.name, tail_lines=lines
                    )
                except ApiException as e:
                    text = f"<no log: {e.reason}>"
                out.append(f"--- pod {pod.metadata.name} ({pod.spec.node_name}) {c.name} ---\n{text}")
        return "\n".join(out) or "<no pod logs>"

    def report(self, names: Iterable[str] | None = None, operator_lines: int = 60) -> str:
        parts = []
        try:
            wanted = set(names) if names is not None else None
            objs = [o for o in self.videojobs.list() if wanted is None or o["metadata"]["name"] in wanted]
            parts.append("--- VideoJobs ---\n" + "\n".join(describe_videojob(o) for o in objs[:30]))
            jobs = self.batch_v1.list_namespaced_job(self.namespace).items
            parts.append(
                "--- Jobs ---\n"
                + "\n".join(
                    f"{j.metadata.name}: active={j.status.active} succeeded={j.status.succeeded} "
                    f"failed={j.status.failed} conditions={[(c.type, c.reason) for c in j.status.conditions or []]}"
                    for j in jobs[:30]
                )
            )
            pods = self.core_v1.list_namespaced_pod(self.namespace).items
            parts.append(
                "--- Pods ---\n"
                + "\n".join(
                    f"{p.metadata.name}: {p.status.phase} node={p.spec.node_name} "
                    f"{[(c.type, c.status, c.reason) for c in p.status.conditions or [] if c.status != 'True']}"
                    for p in pods[:30]
                )
            )
        except Exception as e:
            parts.append(f"<could not read the namespace: {e!r}>")
        parts.append(self.pod_logs())
        if self.operator is not None:
            parts.append(f"--- operator log ({self.operator.log_path}) ---\n{self.operator.log_tail(operator_lines)}")
        return "\n".join(parts)

    def wait(
        self,
        predicate: Callable[[], Any],
        timeout: float = 60,
        interval: float = 0.25,
        message: str = "",
        names: Iterable[str] | None = None,
    ) -> Any:
        """wait_for(), with the diagnostics of the moment it gave up appended to the failure."""
        try:
            return wait_for(predicate, timeout=timeout, interval=interval, message=message)
        except WaitTimeout as e:
            raise AssertionError(f"{e}\n{self.report(names)}") from None

    def wait_phase(
        self, name: str, phases: str | Iterable[str], timeout: float = 120, interval: float = 0.5
    ) -> dict[str, Any]:
        """Wait until the VideoJob is in one of `phases`; fail with the diagnostics if it ends elsewhere."""
        wanted = {phases} if isinstance(phases, str) else set(phases)

        def reached() -> dict[str, Any] | NotYet:
            obj = self.videojobs.get(name)
            phase = (obj.get("status") or {}).get("phase")
            if phase in wanted:
                return obj
            if phase in TERMINAL:
                raise AssertionError(f"VideoJob {name} ended {phase}, expected {sorted(wanted)}\n{self.report([name])}")
            return NotYet(describe_videojob(obj))

        try:
            message = f"VideoJob {name} in {sorted(wanted)}"
            found = wait_for(reached, timeout=timeout, interval=interval, message=message)
        except WaitTimeout as e:
            raise AssertionError(f"{e}\n{self.report([name])}") from None
        assert isinstance(found, dict)
        return found

    def wait_all(
        self, names: Iterable[str], phase: str = "Succeeded", timeout: float = 300, interval: float = 1.0
    ) -> None:
        names = list(names)

        def done() -> bool | NotYet:
            phases = self.videojobs.phases()
            bad = [n for n in names if phases.get(n) in TERMINAL and phases.get(n) != phase]
            if bad:
                raise AssertionError(f"VideoJobs ended other than {phase}: {bad}\n{self.report(bad[:5])}")
            missing = [n for n in names if n not in phases]
            if missing:
                raise AssertionError(f"VideoJobs lost: {missing}")
            if all(phases.get(n) == phase for n in names):
                return True
            counts: dict[str, int] = defaultdict(int)
            for n in names:
                counts[str(phases.get(n))] += 1
            return NotYet(dict(counts))

        try:
            wait_for(done, timeout=timeout, interval=interval, message=f"{len(names)} VideoJobs {phase}")
        except WaitTimeout as e:
            pending = [n for n, p in self.videojobs.phases().items() if p != phase]
            raise AssertionError(f"{e}\n{self.report(pending[:5])}") from None


# ---------------------------------------------------------------------------------------------------------------
# An HTTP server on this machine whose answers a test scripts


@dataclass
class HeldInput:
    """An input the ScriptedHTTPServer holds back: every request for it waits until `release()` (or the server
    stops). Jobs reading it stay Running with their transcoder alive, for as long as a test needs."""

    uri: str
    path: str
    released: threading.Event

    def release(self) -> None:
        self.released.set()


class ScriptedHTTPServer:
    """Serves files on `host` (the address of this machine that pods reach) under /<name>; per path, a test may
    make requests fail with a status or stall until released. It is a real HTTP server: the transcoder's real
    HTTP client talks to it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.files: dict[str, bytes] = {}
        self.fail_status: dict[str, int] = {}  # path -> status to answer while set
        self.stall: dict[str, threading.Event] = {}  # path -> released when set
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status answered)
        self.arrivals: list[str] = []  # paths, as requests arrive (before any stall)
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet: requests are recorded instead
                pass

            def _answer(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.arrivals.append(path)
                release = server.stall.get(path)
                if release is not None:
                    release.wait(600)
                status = server.fail_status.get(path)
                data = server.files.get(path)
                if status is None and data is None:
                    status = 404
                with server._lock:
                    server.requests.append((self.command, path, status or 200))
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    if status == 503:
                        self.send_header("Retry-After", "1")
                    self.end_headers()
                    return
                assert data is not None
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="scripted-http", daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url(path)

    def hold(self, path: str, data: bytes) -> HeldInput:
        """Serve `data` at `path`, but only once released: requests wait until then."""
        released = threading.Event()
        self.stall[path] = released
        return HeldInput(self.add(path, data), path, released)

    def arrived(self, path: str) -> int:
        with self._lock:
            return self.arrivals.count(path)

    def hits(self, path: str) -> list[int]:
        with self._lock:
            return [status for _, p, status in self.requests if p == path]

    def __enter__(self) -> ScriptedHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for event in self.stall.values():
            event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
