#!/usr/bin/env python3
"""End to end on the real local cluster: a VideoJob against raw FFmpeg, and how fast a Job's container starts.

    .venv/bin/python bench/end_to_end.py [--rounds 3] [--jobs 20]      # 6 to 10 minutes on 2 shared cores

The operator runs the way users run it: our Helm chart (charts/videojob-operator) installed with helm into a
namespace of the bench's own (`bench-e2e-<random>`), with the values of the e2e tests
(devkit/operator_release.py's `release_values`: the images `make images` imported into the nodes, MinIO,
`watchNamespaces` = that namespace), except that a CPU transcoder requests a whole CPU (`--cpu-request`). The
transcoder pods run on the real nodes (kubelet + containerd).

What is measured, in one run
1. Transcode: a 60 s 1080p30 clip (testsrc2 + sine, libx264 `fast`, made once and cached in the work dir) in a
   MinIO bucket of the bench's own, transcoded by a VideoJob (h264 crf 23 `--preset`, aac 128k, mp4, hardware
   cpu) against raw `ffmpeg` on this host with the same encoder arguments on the same local file. "The same
   arguments" are the planner's (videojob.transcoder.planner.plan on the same spec with local paths, minus
   `-progress pipe:1 -nostats`, which only feed the runner's progress reporter): the very argv the transcoder
   container runs; it is printed. N rounds (`--rounds`), alternating which side goes first.
   - VideoJob: from just before the create request is sent until a watch on VideoJobs delivers phase
     Succeeded. Broken down, from watches on Jobs and pods in the namespace: apply -> Job seen (the operator's
     admission), Job seen -> container started (Kubernetes: Job controller, scheduler, kubelet, containerd),
     container running (the transcoder: S3 download, probe, FFmpeg, upload), container exited -> pod Succeeded
     seen (the kubelet tears the pod down first), pod Succeeded -> Job Complete seen (Job controller), Job
     Complete -> VideoJob Succeeded seen (the operator's status update).
   - raw: wall time of the FFmpeg process.
   Prints the medians, their ratio (target <= 1.15, printed beside it, not asserted) and the ratio of the
   fastest runs (each side's least disturbed run: on a shared machine the steadier estimate). The pods' containers
   are processes of this machine, so the bench also samples the transcoder container's cgroup: its CPU time and
   how long its ffmpeg process lived. On a loaded machine the pod's cgroup and this host's process do not get the
   same share of the CPUs, so it prints the CPU each side got, the VideoJob's time outside FFmpeg, and
   (raw + that) / raw: the ratio were FFmpeg as fast in the pod as on the host.
2. Job start: `--jobs` Jobs created one at a time (the next once the previous one's pod is Succeeded), each a
   clone of the Job the installed operator created for a tiny VideoJob (same image, pod security, volumes,
   resources, ServiceAccount, priority class, Secret refs), created by the bench and not owned or labelled as
   the operator's, so the operator leaves it alone. The transcoder in it really transcodes a 1 s clip.
   - API: containerStatuses[].state.running.startedAt (or .terminated.startedAt) minus the Job's
     creationTimestamp. Both have 1 s resolution, so each sample is a whole number of seconds, +-1 s.
   - client: from the moment the Job create call returned until a watch on pods (started before) delivers the
     pod with its container running (or already terminated). This includes the kubelet's delay in reporting
     the start to the API server.
   p99 of 20 samples (nearest rank) is the slowest of them.

The machine's 2 cores are shared with whatever else runs (other test sessions on the same cluster): the 1-min
load average before each run and at the start and end, and the pods running in other namespaces at the start
and end, are printed beside the figures.

It cleans up on success, failure and Ctrl-C: VideoJobs deleted while the operator runs, helm uninstall, the
namespace deleted (and waited for), the bucket emptied and removed. The clip stays cached in the work dir.
Results also go to bench/out/end_to_end.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "operator"))

from devkit.harness import (  # noqa: E402
    GROUP,
    PLURAL,
    VERSION,
    NotYet,
    VideoJobs,
    describe_videojob,
    empty_and_delete_bucket,
    ensure_s3_secret,
    install_crds,
)
from devkit.operator_release import OperatorRelease, set_path  # noqa: E402
from devkit.testenv import DEFAULT_TESTENV_DIR, TESTENV_SCRIPT, TestEnv, load_testenv, wait_for  # noqa: E402
from videojob.api.models import VideoJobSpec  # noqa: E402
from videojob.transcoder import planner  # noqa: E402
from videojob.transcoder.probe import probe  # noqa: E402

TARGET_RATIO = 1.15
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
BENCH_MANAGED_BY = "videojob-bench-end-to-end"  # not the operator's (it selects its own): it ignores these Jobs


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def load1() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------------------------------------------------------
# Media


def make_clip(path: Path, seconds: float, size: str, fps: int, preset: str) -> Path:
    """A test clip (moving test pattern + tone), made once and reused."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    lavfi_video = f"testsrc2=size={size}:rate={fps}:duration={seconds}"
    lavfi_audio = f"sine=frequency=440:sample_rate=48000:duration={seconds}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", lavfi_video, "-f", "lavfi", "-i", lavfi_audio,
         "-c:v", "libx264", "-preset", preset, "-crf", "18", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-shortest", str(partial)],
        check=True,
    )  # fmt: skip
    partial.replace(path)
    return path


def raw_ffmpeg_argv(spec: VideoJobSpec, name: str, clip: Path, workdir: Path) -> tuple[list[str], Path]:
    """The FFmpeg command the transcoder runs for `spec` on the CPU, on the local clip, and its output file.

    The planner's own argument list, minus `-progress pipe:1 -nostats` (they only feed the progress reporter).
    """
    plan = planner.plan(spec, {name: probe(clip)}, {name: clip}, "cpu", workdir)
    argv = list(plan.main)
    if "-progress" in argv:
        at = argv.index("-progress")
        del argv[at : at + 2]
    return [a for a in argv if a != "-nostats"], Path(plan.output)


# ---------------------------------------------------------------------------------------------------------------
# Watches: what the cluster said, and when this machine heard it


def _resource_version(obj: Any) -> str | None:
    if isinstance(obj, dict):
        return (obj.get("metadata") or {}).get("resourceVersion")
    return obj.metadata.resource_version if obj.metadata else None


class Watch:
    """Lists, then watches, one kind in a namespace from a thread; `on_event(kind, obj, seen)` gets every object
    (LISTED for the initial list) with time.monotonic() of the moment the event arrived."""

    def __init__(self, name: str, on_event: Callable[[str, Any, float], None], list_fn: Any, *args: Any) -> None:
        self.on_event = on_event
        self.list_fn = list_fn
        self.args = args
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"the watch did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # the thread ends at its next event or watch timeout; it is a daemon, nobody waits

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    listed = self.list_fn(*self.args)
                    now = time.monotonic()
                    items = listed["items"] if isinstance(listed, dict) else listed.items
                    for obj in items:
                        self.on_event("LISTED", obj, now)
                    rv = _resource_version(listed)
                    self._ready.set()
                w = watch.Watch()
                for event in w.stream(
                    self.list_fn, *self.args, resource_version=rv, timeout_seconds=30, allow_watch_bookmarks=True
                ):
                    seen = time.monotonic()
                    obj = event["object"]
                    rv = _resource_version(obj) or rv
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.on_event(event["type"], obj, seen)
                    if self._stop.is_set():
                        w.stop()
            except ApiException as e:
                if e.status == 410:
                    rv = None  # expired: list again
                    continue
                self.error = e
                time.sleep(0.5)
            except Exception as e:  # the API server hiccupped: resume
                self.error = e
                time.sleep(0.5)


def _job_of(pod: Any) -> str | None:
    labels = pod.metadata.labels or {}
    return labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")


@dataclass
class PodTimes:
    """Per pod: when this machine first saw it, saw it bound to a node, saw its container started, saw it exit."""

    name: str
    job: str | None
    added: float
    bound: float | None = None
    started: float | None = None
    started_seen_running: bool = False  # False: the watch saw it terminated first (then `started` is late)
    exited: float | None = None
    terminal: float | None = None  # phase Succeeded or Failed (the kubelet sets it once the pod is torn down)
    unschedulable: bool = False  # the scheduler first found no node for it (it retries after a backoff)
    unschedulable_message: str = ""
    obj: Any = None


class PodTracker:
    def __init__(self) -> None:
        self.pods: dict[str, PodTimes] = {}
        self._lock = threading.Lock()

    def on_event(self, kind: str, pod: Any, seen: float) -> None:
        with self._lock:
            times = self.pods.get(pod.metadata.uid)
            if times is None:
                times = self.pods[pod.metadata.uid] = PodTimes(pod.metadata.name, _job_of(pod), seen)
            times.obj = pod
            if times.bound is None and pod.spec.node_name:
                times.bound = seen
            if times.terminal is None and pod.status and pod.status.phase in ("Succeeded", "Failed"):
                times.terminal = seen
            for condition in (pod.status.conditions or []) if pod.status else []:
                if condition.type == "PodScheduled" and condition.status == "False":
                    times.unschedulable = True
                    times.unschedulable_message = times.unschedulable_message or str(condition.message)
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                state = cs.state
                if state is None:
                    continue
                if times.started is None and (state.running or state.terminated):
                    times.started = seen
                    times.started_seen_running = bool(state.running)
                if times.exited is None and state.terminated:
                    times.exited = seen

    def for_job(self, job: str) -> PodTimes | None:
        with self._lock:
            found = [t for t in self.pods.values() if t.job == job]
        return min(found, key=lambda t: t.added) if found else None


@dataclass
class JobTimes:
    name: str
    owner: str | None  # the owning VideoJob's name
    added: float
    complete: float | None = None  # when the Complete condition was first seen True


class JobTracker:
    def __init__(self) -> None:
        self.jobs: dict[str, JobTimes] = {}
        self._lock = threading.Lock()

    def on_event(self, kind: str, job: Any, seen: float) -> None:
        owner = next((r.name for r in job.metadata.owner_references or [] if r.kind == "VideoJob"), None)
        with self._lock:
            times = self.jobs.get(job.metadata.uid)
            if times is None:
                times = self.jobs[job.metadata.uid] = JobTimes(job.metadata.name, owner, seen)
            conditions = (job.status.conditions or []) if job.status else []
            if times.complete is None and any(c.type == "Complete" and c.status == "True" for c in conditions):
                times.complete = seen

    def of_videojob(self, name: str) -> JobTimes | None:
        with self._lock:
            found = [t for t in self.jobs.values() if t.owner == name]
        return min(found, key=lambda t: t.added) if found else None


class VideoJobTracker:
    """Per VideoJob: the moment each phase was first seen, and the latest object."""

    def __init__(self) -> None:
        self.phases: dict[str, dict[str, float]] = {}
        self.latest: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def on_event(self, kind: str, obj: dict[str, Any], seen: float) -> None:
        name = obj["metadata"]["name"]
        phase = (obj.get("status") or {}).get("phase")
        with self._lock:
            self.latest[name] = obj
            if phase:
                self.phases.setdefault(name, {}).setdefault(str(phase), seen)

    def seen(self, name: str, phase: str) -> float | None:
        with self._lock:
            return self.phases.get(name, {}).get(phase)


# ---------------------------------------------------------------------------------------------------------------
# The transcoder container as this machine sees it (the nodes' containers are processes here)


def find_transcoder(namespace: str, name: str) -> int | None:
    """The pid of the transcoder process of VideoJob `namespace/name` on this machine, found by its environment
    (the API reports a container's id only about a second after it started, too late to see FFmpeg start)."""
    wanted = (f"VIDEOJOB_NAMESPACE={namespace}".encode(), f"VIDEOJOB_NAME={name}".encode())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if not (entry / "comm").read_text().startswith("videojob-trans"):
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
            if all(w in environ for w in wanted):
                return int(entry.name)
    return None


def process_cgroup(pid: int) -> tuple[Path, Path] | None:
    """(CPU usage file, process list file) of the cgroup a process is in."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:  # cgroup v1: the cpuacct hierarchy
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            base = Path("/sys/fs/cgroup") / controllers / path.lstrip("/")
            return base / "cpuacct.usage", base / "cgroup.procs"
    for line in lines:  # cgroup v2
        if line.startswith("0::"):
            base = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
            return base / "cpu.stat", base / "cgroup.procs"
    return None


def _cpu_seconds(usage: Path) -> float:
    text = usage.read_text()
    if usage.name == "cpu.stat":
        return int(text.split("usage_usec", 1)[1].split()[0]) / 1e6
    return int(text) / 1e9


class ContainerSampler:
    """From a thread: finds a VideoJob's transcoder process on this machine, then polls its container's cgroup:
    the CPU time so far, and the span in which an `ffmpeg` process of it was alive (first and last sighting, so
    +-`interval`)."""

    def __init__(self, namespace: str, name: str, interval: float = 0.2) -> None:
        self.namespace = namespace
        self.name = name
        self.interval = interval
        self.cpu_seconds: float | None = None
        self.ffmpeg_first: float | None = None
        self.ffmpeg_last: float | None = None
        self.ffmpeg_at_first_sample = False  # FFmpeg already ran when sampling began: its span is short
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="container-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        files: tuple[Path, Path] | None = None
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if files is None:
                    pid = find_transcoder(self.namespace, self.name)
                    files = process_cgroup(pid) if pid is not None else None
                if files is not None:
                    first_sample = self.cpu_seconds is None
                    self.cpu_seconds = _cpu_seconds(files[0])
                    for member in files[1].read_text().split():
                        with contextlib.suppress(OSError):
                            if Path(f"/proc/{member}/comm").read_text().strip() == "ffmpeg":
                                now = time.monotonic()
                                self.ffmpeg_at_first_sample |= first_sample and self.ffmpeg_first is None
                                self.ffmpeg_first = self.ffmpeg_first or now
                                self.ffmpeg_last = now
            self._stop.wait(self.interval if files is not None else 0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


# ---------------------------------------------------------------------------------------------------------------
# The bench's cluster resources


@dataclass
class Bench:
    testenv: TestEnv
    api: Any
    namespace: str
    bucket: str
    workdir: Path
    core_v1: Any = None
    batch_v1: Any = None
    apps_v1: Any = None
    custom_objects: Any = None
    s3: Any = None
    operator: OperatorRelease | None = None
    helm_attempted: bool = False
    namespace_created: bool = False
    bucket_created: bool = False
    videojobs: VideoJobs | None = None
    pods: PodTracker = field(default_factory=PodTracker)
    vjs: VideoJobTracker = field(default_factory=VideoJobTracker)
    jobs: JobTracker = field(default_factory=JobTracker)

    def other_running_pods(self) -> int:
        pods = self.core_v1.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
        return sum(1 for p in pods if p.metadata.namespace != self.namespace)

    def diagnostics(self, name: str) -> str:
        obj = self.vjs.latest.get(name)
        parts = [describe_videojob(obj) if obj else f"VideoJob {name}: never seen"]
        for times in list(self.pods.pods.values()):
            pod = times.obj
            if pod is not None and name in (times.job or ""):
                parts.append(f"pod {pod.metadata.name}: {pod.status.phase} node={pod.spec.node_name}")
                parts.append(self.testenv.pod_log(pod)[-3000:])
        if self.operator is not None:
            parts.append(f"--- operator log (tail) ---\n{self.operator.log_tail(40)}")
        return "\n".join(parts)


def setup(bench: Bench, cpu_request: str) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    install_crds(client.ApiextensionsV1Api(bench.api))
    bench.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=bench.namespace)))
    bench.namespace_created = True
    wait_for(
        lambda: bench.core_v1.read_namespaced_service_account("default", bench.namespace),
        timeout=30, message="ServiceAccount default", ignore=(ApiException,),
    )  # fmt: skip
    ensure_s3_secret(bench.core_v1, bench.namespace, bench.testenv)
    bench.s3.create_bucket(Bucket=bench.bucket)
    bench.bucket_created = True

    log_path = bench.workdir / "operator.log"  # the operator pod's log, saved at helm uninstall
    log_path.unlink(missing_ok=True)
    op = OperatorRelease.for_testenv(bench.testenv, bench.core_v1, bench.apps_v1, bench.namespace, log_path)
    set_path(op.values, "transcoder.resources.cpu.requests", {"cpu": cpu_request})
    bench.operator = op
    bench.helm_attempted = True
    t0 = time.monotonic()
    op.start()
    log(f"helm release installed, operator pod healthy in {time.monotonic() - t0:.1f} s")


def cleanup(bench: Bench) -> None:
    """Everything the bench made, each step on its own, so one failure does not leave the rest behind."""
    from kubernetes.client.exceptions import ApiException

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean-up
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log("cleaning up (helm uninstall, namespace, bucket)")
    op, videojobs = bench.operator, bench.videojobs
    if bench.namespace_created and op is not None and op.installed and videojobs is not None:
        try:  # with the operator still running, so that it removes its finalizers
            bench.custom_objects.delete_collection_namespaced_custom_object(GROUP, VERSION, bench.namespace, PLURAL)
            wait_for(lambda: not videojobs.list(), timeout=120, interval=0.5, message="VideoJobs deleted")
        except Exception as e:
            log(f"cleanup: VideoJobs: {e}")
    if op is not None and bench.helm_attempted:
        op.installed = True  # uninstall even a release whose install failed half way
        try:
            op.stop()
        except Exception as e:
            log(f"cleanup: helm uninstall: {e}")
    if bench.namespace_created:
        if videojobs is not None:
            with contextlib.suppress(Exception):
                videojobs.strip_finalizers()
        try:
            bench.core_v1.delete_namespace(bench.namespace, propagation_policy="Background")

            def gone() -> bool | NotYet:
                try:
                    ns = bench.core_v1.read_namespace(bench.namespace)
                except ApiException as e:
                    if e.status == 404:
                        return True
                    raise
                return NotYet(ns.status.phase)

            wait_for(gone, timeout=180, interval=1, message=f"namespace {bench.namespace} deleted")
        except Exception as e:
            log(f"cleanup: namespace {bench.namespace}: {e}")
    if bench.bucket_created:
        try:
            empty_and_delete_bucket(bench.s3, bench.bucket)
        except Exception as e:
            log(f"cleanup: bucket {bench.bucket}: {e}")
    log("cleaned up")


# ---------------------------------------------------------------------------------------------------------------
# 1. VideoJob apply -> Succeeded against raw FFmpeg


def transcode_spec(bucket: str, key: str, out_prefix: str, preset: str, retries: int = 0) -> dict[str, Any]:
    return {
        "hardware": "cpu",
        "retries": retries,
        "inputs": [{"name": "clip", "uri": f"s3://{bucket}/{key}"}],
        "output": {
            "uri": f"s3://{bucket}/{out_prefix}/",
            "container": "mp4",
            "video": {"codec": "h264", "crf": 23, "preset": preset},
            "audio": {"codec": "aac", "bitrate": "128k"},
        },
    }


def run_raw(argv: list[str], output: Path) -> dict[str, float]:
    output.parent.mkdir(parents=True, exist_ok=True)
    load_before = load1()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read() if proc.stderr else b""  # -loglevel error: little, and EOF comes at exit
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"raw ffmpeg exited {proc.returncode}: {stderr.decode(errors='replace')[-3000:]}")
    size = output.stat().st_size
    output.unlink()
    return {
        "seconds": seconds,
        "ffmpeg_seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "output_bytes": float(size),
        "load_before": load_before,
        "load_after": load1(),
    }


def run_videojob(bench: Bench, name: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    assert bench.videojobs is not None
    load_before = load1()
    t0 = time.monotonic()
    sampler = ContainerSampler(bench.namespace, name)
    bench.videojobs.create(name, spec)

    def finished() -> float | NotYet:
        done = bench.vjs.seen(name, "Succeeded")
        if done is not None:
            return done
        for phase in ("Failed", "Cancelled"):
            if bench.vjs.seen(name, phase) is not None:
                raise RuntimeError(f"VideoJob {name} ended {phase}\n{bench.diagnostics(name)}")
        obj = bench.vjs.latest.get(name)
        return NotYet(describe_videojob(obj) if obj else "not seen yet")

    try:
        done = wait_for(finished, timeout=timeout, interval=0.05, message=f"VideoJob {name} Succeeded")
    finally:
        sampler.stop()
    assert isinstance(done, float)
    total = done - t0
    job = bench.jobs.of_videojob(name)
    pod = bench.pods.for_job(job.name) if job is not None else None
    status = bench.vjs.latest[name].get("status") or {}
    artifact = (status.get("artifacts") or [{}])[0]
    out: dict[str, Any] = {
        "seconds": total,
        "load_before": load_before,
        "load_after": load1(),
        "node": status.get("node"),
        "output_bytes": artifact.get("size"),
        "output": {k: artifact.get(k) for k in ("duration", "width", "height", "videoCodec", "audioCodec")},
    }
    if job is not None and job.complete and pod is not None and pod.started and pod.exited and pod.terminal:
        out["apply_to_job"] = job.added - t0
        out["job_to_container_started"] = pod.started - job.added
        out["container_running"] = pod.exited - pod.started
        out["container_exited_to_pod_terminal"] = pod.terminal - pod.exited
        out["pod_terminal_to_job_complete"] = job.complete - pod.terminal
        out["job_complete_to_succeeded"] = done - job.complete
        out["unschedulable_first"] = pod.unschedulable
        out["unschedulable_message"] = pod.unschedulable_message
    if sampler.cpu_seconds is not None:
        out["cpu_seconds"] = sampler.cpu_seconds  # the container's, ffmpeg and the rest (python, S3, ffprobe)
    if sampler.ffmpeg_first is not None and sampler.ffmpeg_last is not None:
        out["ffmpeg_seconds"] = sampler.ffmpeg_last - sampler.ffmpeg_first
        out["outside_ffmpeg"] = total - out["ffmpeg_seconds"]
        out["ffmpeg_seen_late"] = sampler.ffmpeg_at_first_sample
    return out


# ---------------------------------------------------------------------------------------------------------------
# 2. Job created -> container started


# Labels the Job controller gives a Job's pods and selector: a clone must not carry the original's.
JOB_CONTROLLER_LABELS = (
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
)


def job_template(bench: Bench, tiny: tuple[str, str]) -> dict[str, Any]:
    """A Job exactly as the installed operator makes it for a tiny VideoJob (run once, to Succeeded), made into a
    template: unowned, not labelled as the operator's (so it ignores the clones), without the Job controller's
    selector and labels. Cloning what the running operator created, rather than building a Job from this
    checkout's code, keeps the Jobs the same as the operator's even when the checkout and the images differ."""
    name = "start-template"
    run_videojob(bench, name, transcode_spec(tiny[0], tiny[1], "out/start", "veryfast"), timeout=300)
    made = bench.jobs.of_videojob(name)
    assert made is not None, f"no Job seen for VideoJob {name}"
    job = bench.api.sanitize_for_serialization(bench.batch_v1.read_namespaced_job(made.name, bench.namespace))
    spec = job["spec"]
    spec.pop("selector", None)
    spec.pop("manualSelector", None)
    spec["backoffLimit"] = 0
    labels = {k: v for k, v in job["metadata"].get("labels", {}).items() if k not in JOB_CONTROLLER_LABELS}
    labels[LABEL_MANAGED_BY] = BENCH_MANAGED_BY
    template_meta = spec["template"].setdefault("metadata", {})
    template_meta["labels"] = {**labels}
    for container in spec["template"]["spec"]["containers"]:
        for env in container.get("env") or []:
            if env["name"] == "VIDEOJOB_PROGRESS" and env.get("value") == "kubernetes":
                env["value"] = "none"  # a transcoder that patches its VideoJob's status: leave that one alone
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": labels}, "spec": spec}


def run_job_starts(bench: Bench, n: int, tiny: tuple[str, str], timeout: float = 120) -> list[dict[str, Any]]:
    template = job_template(bench, tiny)
    samples: list[dict[str, Any]] = []
    for i in range(n):
        job_name = f"start-{i:02d}"
        manifest = json.loads(json.dumps(template))
        manifest["metadata"]["name"] = job_name
        load_before = load1()
        sent = time.monotonic()
        job = bench.batch_v1.create_namespaced_job(bench.namespace, manifest)
        returned = time.monotonic()

        def terminal(job_name: str = job_name) -> PodTimes | NotYet:
            # Terminal, not only its container exited: until then the pod holds its CPU request on the node.
            times = bench.pods.for_job(job_name)
            if times is not None and times.exited is not None and times.terminal is not None:
                return times
            return NotYet(f"pod {times.name if times else None}: {times.obj.status.phase if times else ''}")

        times = wait_for(terminal, timeout=timeout, interval=0.05, message=f"Job {job_name}'s pod to finish")
        assert isinstance(times, PodTimes) and times.started is not None
        cs = times.obj.status.container_statuses[0]
        state = cs.state.terminated
        started_at: datetime = state.started_at
        created: datetime = job.metadata.creation_timestamp
        samples.append({
            "job": job_name,
            "create_call_s": returned - sent,
            "api_s": (started_at - created).total_seconds(),
            "client_s": times.started - returned,
            "seen_running": times.started_seen_running,
            "pod_seen_s": times.added - sent,
            "bound_s": (times.bound - times.added) if times.bound is not None else None,
            "bound_to_started_s": (times.started - times.bound) if times.bound is not None else None,
            "unschedulable_first": times.unschedulable,
            "unschedulable_message": times.unschedulable_message,
            "exit_code": state.exit_code,
            "node": times.obj.spec.node_name,
            "load_before": load_before,
        })  # fmt: skip
        s = samples[-1]
        log(
            f"  job start {i + 1}/{n}: API {s['api_s']:.0f} s, client {s['client_s']:.3f} s "
            f"(exit {s['exit_code']}, {s['node']}, load {load_before:.2f})"
        )
    return samples


# ---------------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of VideoJob vs raw ffmpeg (default 3)")
    parser.add_argument("--jobs", type=int, default=20, help="Jobs for the start latency (default 20; 0: skip)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the 1080p clip (default 60)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the VideoJob's output (default veryfast)")
    parser.add_argument("--cpu-request", default="1", help='CPU request of a transcoder pod (default "1")')
    parser.add_argument(
        "--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "videojob-bench-e2e",
        help="where the clips are cached and raw outputs written (default $TMPDIR/videojob-bench-e2e)",
    )  # fmt: skip
    args = parser.parse_args()

    testenv_dir = Path(os.environ.get("TESTENV_DIR") or DEFAULT_TESTENV_DIR)
    status = subprocess.run(
        [sys.executable, str(TESTENV_SCRIPT), "--dir", str(testenv_dir), "status", "--quiet"], check=False
    )
    if status.returncode != 0:
        print("the local environment is not up: run `make testenv-up` first", file=sys.stderr)
        return 2
    testenv = load_testenv(testenv_dir)
    started = time.monotonic()

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)

    args.workdir.mkdir(parents=True, exist_ok=True)
    seconds_text = f"{args.seconds:g}"
    log(f"clip: 1920x1080 30 fps {seconds_text} s in {args.workdir} (made once; libx264 fast crf 18)")
    clip = make_clip(args.workdir / f"clip-1080p30-{seconds_text}s-fast.mp4", args.seconds, "1920x1080", 30, "fast")
    tiny = make_clip(args.workdir / "clip-320x240-1s.mp4", 1, "320x240", 30, "fast")

    import boto3
    from botocore.config import Config
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=testenv.kubeconfig)
    suffix = uuid.uuid4().hex[:6]
    bench = Bench(testenv, api, f"bench-e2e-{suffix}", f"bench-e2e-{suffix}", args.workdir)
    bench.core_v1, bench.batch_v1 = client.CoreV1Api(api), client.BatchV1Api(api)
    bench.apps_v1, bench.custom_objects = client.AppsV1Api(api), client.CustomObjectsApi(api)
    bench.s3 = boto3.client(
        "s3", endpoint_url=testenv.s3_endpoint_url, aws_access_key_id=testenv.aws_access_key_id,
        aws_secret_access_key=testenv.aws_secret_access_key, region_name=testenv.aws_default_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )  # fmt: skip
    bench.videojobs = VideoJobs(bench.custom_objects, bench.namespace)

    load_start, others_start = load1(), bench.other_running_pods()
    raw: list[dict[str, float]] = []
    vjs: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    spec_wire = transcode_spec(bench.bucket, "in/clip.mp4", "out/r0", args.preset)
    argv, raw_out = raw_ffmpeg_argv(VideoJobSpec.model_validate(spec_wire), "clip", clip, args.workdir / "raw")
    try:
        log(f"namespace and bucket {bench.namespace}; installing the chart")
        setup(bench, args.cpu_request)
        bench.s3.upload_file(str(clip), bench.bucket, "in/clip.mp4")
        bench.s3.upload_file(str(tiny), bench.bucket, "in/tiny.mp4")
        with contextlib.ExitStack() as watches:
            watches.enter_context(
                Watch("jobs", bench.jobs.on_event, bench.batch_v1.list_namespaced_job, bench.namespace)
            )
            watches.enter_context(
                Watch("pods", bench.pods.on_event, bench.core_v1.list_namespaced_pod, bench.namespace)
            )
            list_videojobs = bench.custom_objects.list_namespaced_custom_object
            watches.enter_context(
                Watch("videojobs", bench.vjs.on_event, list_videojobs, GROUP, VERSION, bench.namespace, PLURAL)
            )
            log(f"raw ffmpeg: {shlex.join(argv)}")
            for i in range(args.rounds):

                def side_raw(i: int = i) -> None:
                    raw.append(run_raw(argv, raw_out))
                    log(f"  round {i + 1} raw ffmpeg {raw[-1]['seconds']:.2f} s (load {raw[-1]['load_before']:.2f})")

                def side_vj(i: int = i) -> None:
                    spec = transcode_spec(bench.bucket, "in/clip.mp4", f"out/r{i}", args.preset)
                    vjs.append(run_videojob(bench, f"transcode-r{i}", spec, timeout=max(1800, args.seconds * 30)))
                    log(f"  round {i + 1} VideoJob   {vjs[-1]['seconds']:.2f} s (load {vjs[-1]['load_before']:.2f})")

                # Alternate which goes first, so a drift in the machine's load hits both sides alike.
                for step in (side_raw, side_vj) if i % 2 == 0 else (side_vj, side_raw):
                    step()
            if args.jobs > 0:
                log(f"Job start latency: {args.jobs} Jobs, one at a time")
                starts = run_job_starts(bench, args.jobs, (bench.bucket, "in/tiny.mp4"))
        load_end, others_end = load1(), bench.other_running_pods()
    except KeyboardInterrupt:
        log("interrupted")
        cleanup(bench)
        return 130
    except BaseException:
        cleanup(bench)
        raise
    cleanup(bench)
    elapsed = time.monotonic() - started
    report(args, clip, argv, raw, vjs, starts, (load_start, load_end), (others_start, others_end), elapsed, bench)
    return 0


def report(
    args: argparse.Namespace, clip: Path, argv: list[str], raw: list[dict[str, float]], vjs: list[dict[str, Any]],
    starts: list[dict[str, Any]], loads: tuple[float, float], others: tuple[int, int], elapsed: float, bench: Bench,
) -> None:  # fmt: skip
    cpus = os.cpu_count()
    raw_s = [r["seconds"] for r in raw]
    vj_s = [v["seconds"] for v in vjs]
    out: dict[str, Any] = {
        "clip": f"1920x1080 30 fps {args.seconds:g} s, {clip.stat().st_size / 1e6:.1f} MB",
        "raw_ffmpeg_argv": argv,
        "cpu_request": args.cpu_request,
        "cpus": cpus,
        "load_average_1m": {"start": round(loads[0], 2), "end": round(loads[1], 2)},
        "other_running_pods": {"start": others[0], "end": others[1]},
        "elapsed_s": round(elapsed, 1),
        "raw": raw,
        "videojob": vjs,
        "job_starts": starts,
    }
    print()
    print(f"end to end on the local cluster ({bench.namespace}: helm chart, operator pod, transcoder pods on real "
          f"nodes; {cpus} CPUs shared; load average 1m {loads[0]:.2f} at start, {loads[1]:.2f} at end; other "
          f"running pods {others[0]} at start, {others[1]} at end)")  # fmt: skip
    print(f"clip       {out['clip']} (testsrc2 + sine), in MinIO for the VideoJob, local for raw ffmpeg")
    print(f"raw argv   {shlex.join(argv)}")
    print("           (videojob.transcoder.planner.plan on the VideoJob's spec with local paths, minus -progress)")
    table: list[tuple[str, str, str]] = []
    if raw and vjs:
        raw_med, vj_med = statistics.median(raw_s), statistics.median(vj_s)
        ratio, fastest = vj_med / raw_med, min(vj_s) / min(raw_s)
        out.update(raw_median_s=raw_med, videojob_median_s=vj_med, ratio=ratio, ratio_of_fastest=fastest,
                   target_ratio=TARGET_RATIO)  # fmt: skip
        print()
        print(f"1. transcode, {len(raw)} round(s), alternating (VideoJob: {args.preset} crf 23 on a pod requesting "
              f"{args.cpu_request} CPU, no CPU limit)")  # fmt: skip
        print(f"   raw ffmpeg on this host      median {raw_med:7.2f} s  runs {[round(s, 2) for s in raw_s]}  "
              f"loads {[round(r['load_before'], 2) for r in raw]}")  # fmt: skip
        print(f"   VideoJob apply -> Succeeded  median {vj_med:7.2f} s  runs {[round(s, 2) for s in vj_s]}  "
              f"loads {[round(v['load_before'], 2) for v in vjs]}")  # fmt: skip
        verdict = "within" if ratio <= TARGET_RATIO else "OVER"
        print(f"   ratio VideoJob / raw         {ratio:.3f} of medians ({verdict} the target <= {TARGET_RATIO}), "
              f"{fastest:.3f} of the fastest runs")  # fmt: skip
        parts = [
            ("apply -> Job seen (operator)", "apply_to_job"),
            ("Job -> container started (Kubernetes)", "job_to_container_started"),
            ("container running (transcoder: S3 get, ffmpeg, S3 put)", "container_running"),
            ("container exited -> pod Succeeded seen (kubelet)", "container_exited_to_pod_terminal"),
            ("pod Succeeded -> Job Complete seen (Job controller)", "pod_terminal_to_job_complete"),
            ("Job Complete -> VideoJob Succeeded seen (operator)", "job_complete_to_succeeded"),
        ]
        if all(key in v for v in vjs for _, key in parts):
            print("   where the VideoJob's time went (medians, client-side watches):")
            for label, key in parts:
                print(f"     {label:<56} {statistics.median(v[key] for v in vjs):7.2f} s")
            waited = [v["unschedulable_message"] for v in vjs if v["unschedulable_first"]]
            print(f"     (pods the scheduler first found no node for: {len(waited)}/{len(vjs)}"
                  + (f"; {waited[0]}" if waited else "") + ")")  # fmt: skip
        if all("ffmpeg_seconds" in v and "cpu_seconds" in v for v in vjs):
            vj_ff = statistics.median(v["ffmpeg_seconds"] for v in vjs)
            outside = statistics.median(v["outside_ffmpeg"] for v in vjs)
            raw_cores = statistics.median(r["cpu_seconds"] / r["seconds"] for r in raw)
            pod_cores = statistics.median(v["cpu_seconds"] / v["container_running"] for v in vjs)
            late = sum(1 for v in vjs if v["ffmpeg_seen_late"])
            adjusted = (raw_med + outside) / raw_med
            out.update(
                videojob_ffmpeg_median_s=vj_ff, videojob_outside_ffmpeg_median_s=outside, ratio_adjusted=adjusted
            )
            print("   FFmpeg alone, and the CPU it got (the pod's container seen from this machine: its cgroup and "
                  "its ffmpeg process):")  # fmt: skip
            print(f"     ffmpeg wall time: raw {raw_med:.2f} s, in the pod {vj_ff:.2f} s (medians)"
                  + (f"  [{late} round(s): ffmpeg already ran when sampling began]" if late else ""))  # fmt: skip
            print(f"     CPU cores used on average: raw ffmpeg {raw_cores:.2f}, transcoder container {pod_cores:.2f} "
                  f"(medians of CPU time / wall time)")  # fmt: skip
            print(f"     VideoJob time outside FFmpeg (operator, Kubernetes, the transcoder's startup, probe and S3 "
                  f"transfers): median {outside:.2f} s")  # fmt: skip
            print(f"     (raw + that) / raw = {adjusted:.3f}: the ratio were FFmpeg as fast in the pod as on the host "
                  f"(target <= {TARGET_RATIO})")  # fmt: skip
        sizes = {"raw": int(raw[-1]["output_bytes"]), "VideoJob": vjs[-1]["output_bytes"]}
        same = "the same size: the same encode" if sizes["raw"] == sizes["VideoJob"] else "sizes DIFFER"
        print(f"   output bytes raw {sizes['raw']}, VideoJob {sizes['VideoJob']} ({same}); "
              f"VideoJob artifact {vjs[-1]['output']}")  # fmt: skip
        table += [
            (f"{args.seconds:g} s 1080p transcode, raw ffmpeg on the host (median of {len(raw)})", f"{raw_med:.1f} s",
             ""),
            ("same, VideoJob apply -> Succeeded (helm-installed operator, real nodes)", f"{vj_med:.1f} s", ""),
            ("ratio VideoJob / raw (medians; fastest runs)", f"{ratio:.3f} ({fastest:.3f})", f"<= {TARGET_RATIO}"),
        ]  # fmt: skip
        if "ratio_adjusted" in out:
            table.append((
                "VideoJob time outside FFmpeg (median); (raw + it) / raw",
                f"{out['videojob_outside_ffmpeg_median_s']:.1f} s; {out['ratio_adjusted']:.3f}", f"<= {TARGET_RATIO}",
            ))  # fmt: skip
    if starts:
        api_s = [s["api_s"] for s in starts]
        client_s = [s["client_s"] for s in starts]
        n = len(starts)
        out.update(
            job_start_api_p50_s=percentile(api_s, 50), job_start_api_p99_s=percentile(api_s, 99),
            job_start_client_p50_s=percentile(client_s, 50), job_start_client_p99_s=percentile(client_s, 99),
        )  # fmt: skip
        ok = sum(1 for s in starts if s["exit_code"] == 0)
        unschedulable = sum(1 for s in starts if s["unschedulable_first"])
        late = sum(1 for s in starts if not s["seen_running"])
        print()
        print(f"2. Job created -> container started, {n} Jobs one at a time (the operator's Job for a 1 s 320x240 "
              f"transcode; containers that exited 0: {ok}/{n})")  # fmt: skip
        print(f"   API (startedAt - Job creationTimestamp, 1 s resolution)  p50 {percentile(api_s, 50):.0f} s  "
              f"p99 {percentile(api_s, 99):.0f} s  max {max(api_s):.0f} s")  # fmt: skip
        print(f"   client (create returned -> watch sees it running)       p50 {percentile(client_s, 50):.3f} s  "
              f"p99 {percentile(client_s, 99):.3f} s  max {max(client_s):.3f} s"
              + (f"  ({late} seen only once exited)" if late else ""))  # fmt: skip
        stages = [
            ("create call (sent -> returned)", "create_call_s"),
            ("create sent -> pod seen (API server, Job controller)", "pod_seen_s"),
            ("pod seen -> bound to a node (scheduler)", "bound_s"),
            ("bound -> container running seen (kubelet, containerd, status report)", "bound_to_started_s"),
        ]
        print("   stages (medians, client-side watches):")
        for label, key in stages:
            values = [s[key] for s in starts if s[key] is not None]
            print(f"     {label:<70} {statistics.median(values):7.3f} s")
        print(f"   pods the scheduler first found no node for (PodScheduled=False, then retried): {unschedulable}/{n}")
        messages = Counter(s["unschedulable_message"] for s in starts if s["unschedulable_first"])
        for message, count in messages.most_common(2):
            print(f"     {count} x {message}")
        table += [
            (f"Job created -> container started, API timestamps (p50 / p99 of {n})",
             f"{percentile(api_s, 50):.0f} s / {percentile(api_s, 99):.0f} s", "1 s resolution"),
            (f"Job create returned -> watch sees container running (p50 / p99 of {n})",
             f"{percentile(client_s, 50):.2f} s / {percentile(client_s, 99):.2f} s", ""),
        ]  # fmt: skip
    print()
    print(f"| measure | result | target |  (load average 1m {loads[0]:.2f} -> {loads[1]:.2f} on {cpus} CPUs)")
    print("| --- | --- | --- |")
    for measure, result, target in table:
        print(f"| {measure} | {result} | {target} |")
    print()
    print(f"took {elapsed / 60:.1f} min, clean-up included")
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "end_to_end.json").write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
