#!/usr/bin/env python3
"""Operator latency, throughput and memory on the live local environment, measured in one run.

    .venv/bin/python bench/operator_latency.py [--sizes 1,100,1000,10000] [--steady-rate 50] [--steady-seconds 15]
                                               [--queued 10000] [--queue-max-running 50] [--drain 100]

What is measured, exactly
- The operator under test is the real `videojob-operator` process (text logs to .testenv/logs/operator-bench.log),
  run from a venv with only its runtime dependencies, as the operator image installs it (devkit.harness),
  watching one fresh namespace, with VIDEOJOB_MAX_RUNNING above the largest N, so every VideoJob is admitted at
  once and admission is limited by the operator alone, not by the queue.
- The transcoder is stubbed (VIDEOJOB_TRANSCODER_COMMAND=["true"]), and the namespace carries a ResourceQuota of
  0 pods, so the Job controller creates no pods at all: with 1000 pods the two local nodes (one container per pod
  on two shared cores) would be what we measure. What remains is the operator's own work: see a VideoJob, decide,
  create its Job, patch its status.
- "apply -> Job": for each VideoJob, from just before its create request is sent to the moment a watch on Jobs
  (started before the round) delivers its Job.
- Burst rounds (N = 1, 100, 1000, 10000): all N created at once by 16 client threads. "admitted/s": N / (last Job
  seen - first create sent); the client's own create rate is printed beside it (when it is not much higher, the
  client was the limit). Their apply -> Job p50/p99 are *burst* latencies: the last of N VideoJobs created in the
  same instant necessarily waits about N / admission rate, so they say how long a burst takes to drain, and are
  not held to the latency target.
- Steady round: VideoJobs applied at a fixed rate (default 50/s for 15 s), each create sent on its schedule by
  a pool of 16 client threads (so a slow create does not delay the next; the largest lag behind the schedule is
  printed, to show the client kept up). Its apply -> Job p50/p99 is the latency the target is about: jobs
  arriving at a realistic rate. It runs between the small bursts and the largest one, on a drained namespace
  (the earlier rounds' VideoJobs and Jobs deleted, and gone).
- RSS: VmRSS of the operator process (/proc/<pid>/status) right after it is healthy with 0 VideoJobs, and after
  the largest burst round with its VideoJobs admitted (the smaller rounds are deleted before it).
- Queue round (--queued N, default 10,000): a second operator with maxRunning of --queue-max-running (50): N
  VideoJobs are created, the first 50 get Jobs (which never get pods: the quota) and the rest wait. Measured:
  the status writes the operator makes (each one a MODIFIED event on a VideoJob watch), until every VideoJob has
  its queue position or Job, and per second after that; the operator's RSS with the N queued, in three operator
  processes one after the other (each lists the N VideoJobs afresh: a restart must not rewrite their statuses);
  then --drain admitted VideoJobs are deleted at --drain-rate per second, each freeing a slot: slot freed (delete
  sent) -> the next Job seen, the passes' durations while N wait (the operator's own histogram,
  videojob_reconcile_duration_seconds: mean, and how many took <= 100 ms), and the status writes per freed slot
  (every admission moves every queued VideoJob up one place).
- CPU and API requests per round: CPU seconds of the operator, kube-apiserver and this client (the load
  generator shares the machine's cores with what it measures: its share is printed), and the requests the API
  server served meanwhile, from its own counter (apiserver_request_total): writes per VideoJob and per second, by
  verb, resource and code. Three writes per VideoJob are the operator's (its Job, its status, and its Event, posted
  in the background, so a burst's may come after the round), one is the client's create; the Job controller's
  pod creates refused by the quota and its Events come on top.
- Targets (issue 13): >= 200 admitted/s (bursts), steady p99 <= 0.2 s at 50/s, a pass <= 100 ms with 10,000
  queued, RSS <= 150 MB in every run. PASS/FAIL is printed per line; the load average beside them.

It cleans up: deletes the VideoJobs (with the operator still running), the namespace, stops the operator.
Run it once; it loads the shared machine for several minutes (10,000 VideoJobs twice).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.harness import (  # noqa: E402
    GROUP,
    PLURAL,
    VERSION,
    JobRecorder,
    NotYet,
    OperatorProcess,
    VideoJobs,
    ensure_s3_secret,
    free_port,
    install_crds,
    runtime_operator_argv,
    settings_env,
)
from devkit.testenv import DEFAULT_TESTENV_DIR, TESTENV_SCRIPT, load_testenv, wait_for  # noqa: E402
from videojob.controller.jobs import SELECTOR  # noqa: E402
from videojob.kubeapi import ApiError, Client, load_connection  # noqa: E402

P99_TARGET_S = 0.2
RATE_TARGET = 200.0
RSS_TARGET_MB = 150.0
PASS_TARGET_S = 0.1
CLIENT_THREADS = 16


def spec(i: int) -> dict[str, Any]:
    return {
        "inputs": [{"name": "main", "uri": f"s3://bench-never-read/in/{i}.mp4"}],
        "output": {"uri": f"s3://bench-never-read/out/{i}/", "video": {"codec": "copy"}, "audio": {"codec": "copy"}},
        "hardware": "cpu",
        "retries": 0,
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids_named(name: str) -> list[int]:
    """Processes of this machine whose command line starts with `name` (the local cluster's kube-apiserver)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
            except OSError:
                continue
            if Path(argv0.decode(errors="replace")).name == name:
                found.append(int(entry.name))
    return found


class CPU:
    """CPU seconds the operator, the API server and this benchmark (the client: its creates and its watches) used
    between `start` and `stop`. They share this machine's cores; the client's share is printed so that a reader
    sees how much of the machine the measuring took."""

    def __init__(self, operator_pid: int) -> None:
        self.pids = {"operator": [operator_pid], "apiserver": pids_named("kube-apiserver"), "client": [os.getpid()]}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        for what, pids in self.pids.items():
            total = 0.0
            for pid in pids:
                with contextlib.suppress(OSError):
                    total += cpu_seconds(pid)
            out[what] = total
        return out

    def __enter__(self) -> CPU:
        self._start, self._t0 = self._now(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.used = {what: end[what] - self._start[what] for what in end}
        self.used["wall"] = time.monotonic() - self._t0


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})


class ApiRequests:
    """Requests the API server served between `start` and `stop`, by verb, resource and response code, from its
    own counter (apiserver_request_total on /metrics): whose they are follows from what they are (POST jobs and
    PATCH videojobs/status: the operator; POST videojobs: this client; POST pods: the Job controller). None
    when /metrics cannot be read (another cluster, a user without the nonResourceURL)."""

    def __init__(self, kubeconfig: str) -> None:
        self.client = Client(load_connection(kubeconfig), pool_size=1, user_agent="bench-operator-latency")
        self.used: dict[str, float] | None = None

    def _now(self) -> dict[str, float] | None:
        try:
            text = self.client.request_text("GET", "/metrics", accept="text/plain")
        except (ApiError, OSError):
            return None
        return requests_by_kind(text)

    def __enter__(self) -> ApiRequests:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._now()
        self.client.close()  # one per round: its connection is not kept for the next
        if self._start is not None and end is not None:
            self.used = {k: v - self._start.get(k, 0.0) for k, v in end.items() if v > self._start.get(k, 0.0)}


def requests_by_kind(metrics_text: str) -> dict[str, float]:
    """apiserver_request_total summed over its other labels: {"POST jobs 201": n, "PATCH videojobs/status 200": n}."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line.rsplit("} ", 1)
        label = dict(LABEL.findall(labels_text))
        resource, subresource = label.get("resource", ""), label.get("subresource", "")
        # a resource with its subresource ("videojobs/status"); a URL that is no resource is in the subresource
        what = f"{resource}/{subresource}" if resource and subresource else resource or subresource or "-"
        key = f"{label.get('verb', '?')} {what} {label.get('code', '?')}"
        out[key] = out.get(key, 0.0) + float(value)
    return out


def writes(used: dict[str, float]) -> float:
    return sum(v for k, v in used.items() if k.split(" ", 1)[0] in WRITE_VERBS)


def requests_summary(used: dict[str, float] | None, n: int, wall: float, apiserver_cpu: float) -> str:
    """Writes per VideoJob and per second, the writes that came to 0.05 per VideoJob or more, and the API server's
    CPU per write (all of its CPU over its writes: what each write cost it, reads and watches included)."""
    if used is None:
        return "API requests: n/a (the API server's /metrics could not be read)"
    total = writes(used)
    common = sorted(((v, k) for k, v in used.items() if k.split(" ", 1)[0] in WRITE_VERBS and v / n >= 0.05))
    reads = sum(v for k, v in used.items() if k.split(" ", 1)[0] in ("GET", "LIST"))
    return (
        f"API writes: {total / n:.2f} per VideoJob, {total / wall:.0f}/s ("
        + ", ".join(f"{k} {v / n:.2f}" for v, k in reversed(common))
        + f"); reads (GET, LIST) {reads / n:.2f} per VideoJob; kube-apiserver "
        f"{apiserver_cpu / total * 1000 if total else 0:.1f} ms of CPU per write"
    )


def apiserver_cores_at(rate: float, n: int, apiserver_cpu: float) -> float:
    """The cores kube-apiserver would need to admit `rate` VideoJobs per second at the CPU per VideoJob a round of
    `n` measured (its writes per VideoJob times its CPU per write)."""
    return rate * apiserver_cpu / n


def run_round(n: int, prefix: str, videojobs: VideoJobs, recorder: JobRecorder) -> dict[str, float]:
    names = [f"{prefix}-{i:04d}" for i in range(n)]
    sent: dict[str, float] = {}

    def create(name: str) -> None:
        sent[name] = time.monotonic()
        videojobs.create(name, spec(len(sent)))

    t0 = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(create, names))
    created_s = time.monotonic() - t0

    def all_seen() -> bool | NotYet:
        seen = {e.owner for e in recorder.snapshot()}
        missing = sum(1 for name in names if name not in seen)
        return missing == 0 or NotYet(f"{missing} missing")

    wait_for(all_seen, timeout=max(60, n * 0.5), interval=0.05, message=f"Jobs for all {n} VideoJobs")
    seen_at = {e.owner: e.seen for e in recorder.snapshot() if e.owner in sent}
    latencies = [seen_at[name] - sent[name] for name in names]
    span = max(seen_at.values()) - t0
    return {
        "n": n,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "rate": n / span if span > 0 else float("inf"),
        "create_rate": n / created_s if created_s > 0 else float("inf"),
        "duplicates": float(len(recorder.duplicates())),
    }


def run_steady(
    rate: float, seconds: float, prefix: str, videojobs: VideoJobs, recorder: JobRecorder
) -> dict[str, float]:
    """Create round(rate * seconds) VideoJobs, the i-th at t0 + i / rate, and measure apply -> Job for each."""
    names = [f"{prefix}-{i:04d}" for i in range(round(rate * seconds))]
    sent: dict[str, float] = {}
    lag: list[float] = []

    def create(i: int, name: str, due: float) -> None:
        sent[name] = time.monotonic()
        lag.append(sent[name] - due)
        videojobs.create(name, spec(i))

    t0 = time.monotonic() + 0.1
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        futures = []
        for i, name in enumerate(names):
            due = t0 + i / rate
            time.sleep(max(due - time.monotonic(), 0))
            futures.append(pool.submit(create, i, name, due))
        for future in futures:
            future.result()  # a failed create fails the bench
    applied_s = max(sent.values()) - min(sent.values())

    def all_seen() -> bool | NotYet:
        seen = {e.owner for e in recorder.snapshot()}
        missing = sum(1 for name in names if name not in seen)
        return missing == 0 or NotYet(f"{missing} missing")

    wait_for(all_seen, timeout=60, interval=0.05, message=f"Jobs for all {len(names)} steady VideoJobs")
    seen_at = {e.owner: e.seen for e in recorder.snapshot() if e.owner in sent}
    latencies = [seen_at[name] - sent[name] for name in names]
    return {
        "n": len(names),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "arrival_rate": (len(names) - 1) / applied_s if applied_s > 0 else float("inf"),
        "max_lag": max(lag),
        "duplicates": float(len(recorder.duplicates())),
    }


class VideoJobWatch:
    """Watches the namespace's VideoJobs in a thread: the newest status of each, and when each MODIFIED event came
    (the operator is the only writer here, so each one is a status write of the operator)."""

    def __init__(self, custom_objects: Any, namespace: str) -> None:
        self.custom_objects = custom_objects
        self.namespace = namespace
        self.statuses: dict[str, dict[str, Any]] = {}
        self.modified: list[float] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"videojobs-{namespace}", daemon=True)

    def __enter__(self) -> VideoJobWatch:
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError(f"the VideoJob watch in {self.namespace} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        from kubernetes import watch

        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self.custom_objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
                    for obj in listed["items"]:
                        self.statuses[obj["metadata"]["name"]] = obj.get("status") or {}
                    version = listed["metadata"]["resourceVersion"]
                    self._ready.set()
                for event in watch.Watch().stream(
                    self.custom_objects.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    resource_version=version,
                    timeout_seconds=30,
                ):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    name = obj["metadata"]["name"]
                    if event["type"] == "DELETED":
                        self.statuses.pop(name, None)
                        continue
                    if event["type"] == "MODIFIED":
                        self.modified.append(time.monotonic())
                    self.statuses[name] = obj.get("status") or {}
                    if self._stop.is_set():
                        return
            except Exception:  # an expired watch (410) or a hiccup: list again
                version = None
                time.sleep(0.5)

    def writes_between(self, start: float, end: float = float("inf")) -> int:
        return sum(1 for t in list(self.modified) if start <= t < end)

    def placed(self, names: list[str]) -> int:
        """How many of `names` have a Job or a queue position in their status."""
        statuses = self.statuses
        return sum(
            1 for n in names if (statuses.get(n) or {}).get("jobName") or (statuses.get(n) or {}).get("queuePosition")
        )


def _histogram(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> dict[str, float]:
    """le -> cumulative count, plus "sum" and "count", of one of the operator's histograms."""
    out = {labels["le"]: value for labels, value in metrics.get(f"{name}_bucket", [])}
    out["sum"] = sum(value for _, value in metrics.get(f"{name}_sum", []))
    out["count"] = sum(value for _, value in metrics.get(f"{name}_count", []))
    return out


def operator_for(
    testenv: Any, kubeconfig: Path | None, namespace: str, log_path: Path, max_running: int
) -> OperatorProcess:
    """The operator under test (not started): installed as the image installs it (runtime_operator_argv), the
    transcoder stubbed, progress polled seldom."""
    settings = {"max_running": max_running, "transcoder_command": ["true"], "progress_interval": 60}
    if testenv is not None:
        operator = OperatorProcess.for_testenv(testenv, [namespace], log_path, **settings)
        operator.argv = runtime_operator_argv()
        return operator
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOJOB_")}
    env.update(
        {
            "KUBECONFIG": str(kubeconfig),
            "VIDEOJOB_NAMESPACES": namespace,
            "VIDEOJOB_METRICS_PORT": str(port),
            "VIDEOJOB_LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
            "VIDEOJOB_PRIORITY_CLASSES": json.dumps({"urgent": "", "normal": "", "low": ""}),
            **settings_env(**settings),
        }
    )
    return OperatorProcess(env=env, log_path=log_path, metrics_port=port, argv=runtime_operator_argv())


def run_queue(
    args: argparse.Namespace,
    testenv: Any,
    namespace: str,
    videojobs: VideoJobs,
    custom_objects: Any,
    recorder: JobRecorder,
    log_path: Path,
) -> dict[str, Any]:
    n, slots = args.queued, args.queue_max_running
    names = [f"q-{i:05d}" for i in range(n)]
    operator = operator_for(testenv, args.kubeconfig, namespace, log_path, max_running=slots)
    out: dict[str, Any] = {"n": n, "slots": slots}
    operator.start()
    try:
        with VideoJobWatch(custom_objects, namespace) as vjs:
            t0 = time.monotonic()
            with ThreadPoolExecutor(CLIENT_THREADS) as pool:
                list(pool.map(lambda name: videojobs.create(name, spec(0)), names))
            out["create_rate"] = n / (time.monotonic() - t0)

            def placed() -> bool | NotYet:
                count = vjs.placed(names)
                return count >= n or NotYet(f"{count} of {n} have a Job or a queue position")

            wait_for(placed, timeout=max(300, n * 0.1), interval=1, message="every VideoJob placed")
            settled = time.monotonic()
            out["settle_s"] = settled - t0
            out["settle_writes"] = vjs.writes_between(t0)
            time.sleep(10)
            out["idle_writes_per_s"] = vjs.writes_between(settled + 2, settled + 10) / 8
            rss = [operator.rss_bytes()]
            restart_writes = []
            for _ in range(2):  # two more operator processes over the same queue
                operator.stop()
                started = time.monotonic()
                operator.start(timeout=300)
                wait_for(
                    lambda: _histogram(operator.metrics(), PASS_METRIC)["count"] >= 1,
                    timeout=300,
                    interval=0.5,
                    message="the restarted operator's first pass",
                )
                time.sleep(10)
                rss.append(operator.rss_bytes())
                restart_writes.append(vjs.writes_between(started))
            out["rss"] = rss
            out["restart_writes"] = restart_writes
            print("  queue round: settled and restarted", file=sys.stderr)

            queued = set(names)

            def admitted() -> list[Any]:
                return [e for e in recorder.snapshot() if e.owner in queued]

            before = len(admitted())
            metrics_before = _histogram(operator.metrics(), PASS_METRIC)
            drain_start = time.monotonic()
            freed: list[float] = []
            for k in range(args.drain):
                time.sleep(max(0.0, drain_start + k / args.drain_rate - time.monotonic()))

                def more_than(n: int = k) -> list[Any]:
                    jobs = admitted()
                    return jobs if len(jobs) > n else []

                victims = wait_for(more_than, timeout=60, interval=0.05, message=f"the {k + 1}th admitted VideoJob")
                freed.append(time.monotonic())
                videojobs.delete(str(victims[k].owner))

            def refilled() -> bool | NotYet:
                count = len(admitted())
                return count >= before + args.drain or NotYet(f"{count - before} of {args.drain} slots refilled")

            wait_for(refilled, timeout=120, interval=0.1, message="every freed slot refilled")
            drain_end = time.monotonic()
            jobs = admitted()
            out["refill_latencies"] = [jobs[before + k].seen - freed[k] for k in range(args.drain)]
            metrics_after = _histogram(operator.metrics(), PASS_METRIC)
            passes = metrics_after["count"] - metrics_before["count"]
            out["passes"] = passes
            out["pass_mean_s"] = (metrics_after["sum"] - metrics_before["sum"]) / passes if passes else 0.0
            fast = metrics_after.get("0.1", 0.0) - metrics_before.get("0.1", 0.0)
            out["passes_within_target"] = fast
            out["drain_writes"] = vjs.writes_between(drain_start, drain_end)
            out["drain_seconds"] = drain_end - drain_start
    finally:
        operator.stop()
    return out


PASS_METRIC = "videojob_reconcile_duration_seconds"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1,100,1000,10000", help="comma-separated burst round sizes")
    parser.add_argument("--steady-rate", type=float, default=50.0, help="VideoJobs per second (0: no steady round)")
    parser.add_argument("--steady-seconds", type=float, default=15.0, help="length of the steady round")
    parser.add_argument("--queued", type=int, default=10000, help="VideoJobs of the queue round (0: none)")
    parser.add_argument("--queue-max-running", type=int, default=50, help="maxRunning of the queue round")
    parser.add_argument("--drain", type=int, default=100, help="slots freed one by one in the queue round")
    parser.add_argument("--drain-rate", type=float, default=5.0, help="slots freed per second")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="another API server instead of the local environment's "
        "(its controllers need not run: no pod is ever started)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # Clean up (the finally below) when stopped: SIGTERM, or SIGINT even when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import subprocess

    testenv: Any = None
    if args.kubeconfig is None:
        testenv_dir = Path(os.environ.get("TESTENV_DIR") or DEFAULT_TESTENV_DIR)
        status = subprocess.run([sys.executable, str(TESTENV_SCRIPT), "status", "--quiet"], check=False)
        if status.returncode != 0:
            print("the local environment is not up: run `make testenv-up` first", file=sys.stderr)
            return 2
        testenv = load_testenv(testenv_dir)
    logs = testenv.dir / "logs" if testenv is not None else Path(tempfile.mkdtemp(prefix="operator-bench-"))

    from kubernetes import client, config

    kubeconfig = str(args.kubeconfig or testenv.kubeconfig)
    api = config.new_client_from_config(config_file=kubeconfig)
    api.configuration.connection_pool_maxsize = CLIENT_THREADS * 2
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = CLIENT_THREADS * 2
    core_v1, batch_v1 = client.CoreV1Api(api), client.BatchV1Api(api)
    custom_objects = client.CustomObjectsApi(api)
    install_crds(client.ApiextensionsV1Api(api))

    namespace = f"bench-latency-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    operator: OperatorProcess | None = None
    videojobs = VideoJobs(custom_objects, namespace)
    results: list[dict[str, float]] = []
    steady: dict[str, float] | None = None
    steady_requests = ""
    round_requests: dict[int, str] = {}
    round_cores: dict[int, float] = {}
    queue: dict[str, Any] | None = None
    try:
        core_v1.create_namespaced_resource_quota(
            namespace,
            client.V1ResourceQuota(
                metadata=client.V1ObjectMeta(name="no-pods"), spec=client.V1ResourceQuotaSpec(hard={"pods": "0"})
            ),
        )
        if testenv is not None:
            ensure_s3_secret(core_v1, namespace, testenv)
        operator = operator_for(
            testenv,
            args.kubeconfig,
            namespace,
            logs / "operator-bench.log",
            max_running=max(sizes) * 2 + 10 + round(args.steady_rate * args.steady_seconds),
        )
        operator.start()
        rss_idle = operator.rss_bytes()
        rss_loaded = 0
        with JobRecorder(batch_v1, namespace) as recorder:
            for n in sizes:
                if n == max(sizes) and args.steady_rate > 0 and steady is None:
                    drain(videojobs, custom_objects, namespace)
                    with CPU(operator.pid) as cpu, ApiRequests(kubeconfig) as requests:
                        steady = run_steady(args.steady_rate, args.steady_seconds, "steady", videojobs, recorder)
                    steady.update({f"cpu_{k}": v for k, v in cpu.used.items()})
                    steady_requests = requests_summary(
                        requests.used, int(steady["n"]), cpu.used["wall"], cpu.used["apiserver"]
                    )
                    print("  steady round done", file=sys.stderr)
                if n == max(sizes) and (len(sizes) > 1 or steady is not None):
                    drain(videojobs, custom_objects, namespace)
                with CPU(operator.pid) as cpu, ApiRequests(kubeconfig) as requests:
                    results.append(run_round(n, f"n{n}", videojobs, recorder))
                results[-1].update({f"cpu_{k}": v for k, v in cpu.used.items()})
                round_requests[n] = requests_summary(requests.used, n, cpu.used["wall"], cpu.used["apiserver"])
                round_cores[n] = apiserver_cores_at(RATE_TARGET, n, cpu.used["apiserver"])
                if n == max(sizes):
                    rss_loaded = operator.rss_bytes()
                print(f"  round N={n} done", file=sys.stderr)
            if args.queued > 0:
                drain(videojobs, custom_objects, namespace)
                operator.stop()
                queue = run_queue(
                    args, testenv, namespace, videojobs, custom_objects, recorder, logs / "operator-bench-queue.log"
                )
                operator.start()  # the clean-up deletes the VideoJobs with an operator running
    finally:
        cleanup(videojobs, core_v1, namespace, operator)

    where = f"the API server of {args.kubeconfig}" if args.kubeconfig else "live testenv"
    print(f"operator latency ({where}; transcoder stubbed with `true`, namespace quota of 0 pods: no pods run)")
    print("apply -> Job = from just before a VideoJob's create request is sent until a watch delivers its Job.")
    print()
    if steady is not None:
        print(
            f"Steady arrival: {int(steady['n'])} VideoJobs applied at {args.steady_rate:g}/s for "
            f"{args.steady_seconds:g} s (measured arrival rate {steady['arrival_rate']:.1f}/s; the client fell "
            f"behind its schedule by at most {steady['max_lag'] * 1000:.0f} ms)"
        )
        print(
            f"  apply -> Job p50 {steady['p50']:.3f} s, p99 {steady['p99']:.3f} s, max {steady['max']:.3f} s, "
            f"duplicate Jobs {int(steady['duplicates'])}  (target p99 <= {P99_TARGET_S} s: "
            f"{verdict(steady['p99'] <= P99_TARGET_S)})"
        )
        print(
            f"  CPU meanwhile: operator {steady['cpu_operator']:.1f} s, kube-apiserver "
            f"{steady['cpu_apiserver']:.1f} s, this client {steady['cpu_client']:.1f} s in {steady['cpu_wall']:.1f} s "
            f"({steady['cpu_operator'] / steady['n'] * 1000:.1f} ms of operator CPU per VideoJob)"
        )
        print(f"  {steady_requests}")
        print()
    print(
        f"Burst rounds: N VideoJobs created at once by {CLIENT_THREADS} client threads. admitted/s = N / (last Job "
        "seen - first create sent)."
    )
    print(
        "  The burst latencies include waiting behind the rest of the burst (the last one waits about "
        "N / admitted/s), so they are not held to the p99 target."
    )
    print(
        f"{'N':>6} {'burst p50':>10} {'burst p99':>10} {'admitted/s':>11} {'client create/s':>16} {'dup Jobs':>9}  "
        f"target >= {RATE_TARGET:g}/s"
    )
    for r in results:
        rate_text = verdict(r["rate"] >= RATE_TARGET) if r["n"] > 1 else "n/a (one VideoJob makes no rate)"
        print(
            f"{int(r['n']):>6} {r['p50']:>9.3f}s {r['p99']:>9.3f}s {r['rate']:>11.1f} {r['create_rate']:>16.1f} "
            f"{int(r['duplicates']):>9}  {rate_text}"
        )
    print(
        "  CPU per round (operator / kube-apiserver / this client / wall seconds, operator ms per VideoJob): "
        + "; ".join(
            f"N={int(r['n'])}: {r['cpu_operator']:.1f} / {r['cpu_apiserver']:.1f} / {r['cpu_client']:.1f} / "
            f"{r['cpu_wall']:.1f} s, "
            f"{r['cpu_operator'] / r['n'] * 1000:.1f} ms"
            for r in results
        )
    )
    for n, line in round_requests.items():
        if n > 1:
            print(f"  N={n}: {line}")
    if max(sizes) > 1:
        print(
            f"  At {RATE_TARGET:g}/s, kube-apiserver alone would need {round_cores[max(sizes)]:.1f} cores "
            f"(N={max(sizes)}'s CPU per VideoJob); this machine has {os.cpu_count()}, shared with the operator, "
            "etcd, the Job controller and this client"
        )
    print()
    mb_idle, mb_loaded = rss_idle / 1e6, rss_loaded / 1e6
    print(
        f"operator RSS: {mb_idle:.1f} MB with 0 VideoJobs, {mb_loaded:.1f} MB with {max(sizes)} VideoJobs  "
        f"(target <= {RSS_TARGET_MB:g} MB: {verdict(max(mb_idle, mb_loaded) <= RSS_TARGET_MB)})"
    )
    if queue is not None:
        q, n = queue, queue["n"]
        print()
        print(
            f"Queue round: {n} VideoJobs created by {CLIENT_THREADS} client threads ({q['create_rate']:.0f}/s), "
            f"maxRunning {q['slots']}: {q['slots']} admitted (Jobs without pods), {n - q['slots']} queued"
        )
        print(
            f"  status writes until every VideoJob had its Job or queue position: {q['settle_writes']} "
            f"({q['settle_writes'] / n:.2f} per VideoJob) in {q['settle_s']:.1f} s; then "
            f"{q['idle_writes_per_s']:.1f}/s while nothing changed"
        )
        rss_text = ", ".join(f"{r / 1e6:.1f} MB" for r in q["rss"])
        print(
            f"  operator RSS with {n} VideoJobs, three operator processes one after the other: {rss_text}  "
            f"(target <= {RSS_TARGET_MB:g} MB in every run: {verdict(max(q['rss']) / 1e6 <= RSS_TARGET_MB)})"
        )
        print(f"  statuses written by each restarted operator (listing {n} VideoJobs afresh): {q['restart_writes']}")
        latencies = q["refill_latencies"]
        print(
            f"  {len(latencies)} slots freed at {args.drain_rate:g}/s (admitted VideoJobs deleted): slot freed -> "
            f"next Job p50 {percentile(latencies, 50):.3f} s, p99 {percentile(latencies, 99):.3f} s, max "
            f"{max(latencies):.3f} s"
        )
        passes = int(q["passes"])
        print(
            f"  passes meanwhile: {passes}, mean {q['pass_mean_s'] * 1000:.0f} ms, {int(q['passes_within_target'])} "
            f"of {passes} within {PASS_TARGET_S * 1000:.0f} ms (target: a pass <= {PASS_TARGET_S * 1000:.0f} ms "
            f"with {n} queued: {verdict(passes > 0 and q['passes_within_target'] >= passes)})"
        )
        per_slot = q["drain_writes"] / len(latencies)
        print(
            f"  status writes while draining: {q['drain_writes']} in {q['drain_seconds']:.1f} s "
            f"({q['drain_writes'] / q['drain_seconds']:.0f}/s, {per_slot:.1f} per freed slot; "
            f"every admission moves {n - q['slots']} queued VideoJobs up one place)"
        )
    load = os.getloadavg()
    print(f"machine: load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs at the end")
    return 0


def drain(videojobs: VideoJobs, custom_objects: Any, namespace: str) -> None:
    """Delete the VideoJobs of the earlier rounds (the operator runs, so finalizers are handled) and their Jobs, and
    wait until both are gone. The garbage collector would delete the Jobs too, but an API server without
    controllers (--kubeconfig) has none, and 10,000 orphaned Jobs would stay in the operator's view of the next
    round."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    asked = [0.0]

    def delete_all() -> None:
        asked[0] = time.monotonic()
        try:
            custom_objects.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            client.BatchV1Api(custom_objects.api_client).delete_collection_namespaced_job(
                namespace, label_selector=SELECTOR, propagation_policy="Background"
            )
        except ApiException as e:
            if e.status != 504:  # 10,000 deletions may outlast the API server's request timeout: asked again below
                raise

    delete_all()

    batch_v1 = client.BatchV1Api(custom_objects.api_client)

    def none_left() -> bool:  # one small page, not the whole list: 10,000 VideoJobs are tens of MB per request
        page = custom_objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, limit=1)
        # and their Jobs gone too: the next round must not share the API server with 1,000 deletions
        jobs = batch_v1.list_namespaced_job(namespace, label_selector=SELECTOR, limit=1).items
        if (page["items"] or jobs) and time.monotonic() - asked[0] > 30:
            delete_all()  # once more, in case an earlier request stopped at its timeout
        return not page["items"] and not jobs

    from urllib3.exceptions import HTTPError

    wait_for(
        none_left, timeout=600, interval=1, message="earlier rounds' VideoJobs deleted", ignore=(OSError, HTTPError)
    )  # a loaded API server may drop a connection


def cleanup(videojobs: VideoJobs, core_v1: Any, namespace: str, operator: OperatorProcess | None) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        if operator is not None and operator.running:
            try:
                drain(videojobs, videojobs.custom_objects, namespace)
            except Exception as e:  # clean up what we can; the namespace deletion below takes the rest
                print(f"cleanup: {e}", file=sys.stderr)
    finally:
        if operator is not None:
            operator.stop()
        videojobs.strip_finalizers()
        try:
            core_v1.delete_namespace(namespace)
        except ApiException as e:
            if e.status != 404:
                raise


if __name__ == "__main__":
    sys.exit(main())
