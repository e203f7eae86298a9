"""Prometheus metrics, /healthz, and structured logs of the operator process.

Metrics (Prometheus conventions: base units in the name, `_total` on counters; `videojob_namespace` is the
VideoJob's namespace, named so that it does not clash with the `namespace` label Prometheus gives the operator's
own target):
- `videojob_build_info{version,python_version}` gauge, always 1: which operator is running
- `videojob_videojobs{videojob_namespace,phase}` gauge: VideoJobs by namespace and phase
- `videojob_queue_depth{priority}` gauge: VideoJobs waiting for admission, by priority (1-10, always all ten)
- `videojob_running{hardware}` gauge: admitted, unfinished VideoJobs by hardware
- `videojob_admission_wait_seconds{priority}` histogram: creation to Job creation
- `videojob_run_duration_seconds{hardware,phase}` histogram: start to finish of finished VideoJobs
- `videojob_finished_total{videojob_namespace,phase,reason,hardware}` counter: VideoJobs that reached a terminal
  phase (Succeeded, Failed, Cancelled), with the reason of their status (`Succeeded`, `BadInput`, ...)
- `videojob_input_bytes_total`, `videojob_output_bytes_total` `{videojob_namespace}` counters: bytes read and
  written by successful jobs
- `videojob_encode_speed_ratio{hardware}` histogram: seconds of media produced per second of transcoder run time
  of successful jobs (2 = twice real time; downloads and uploads included)
- `videojob_retries_total` counter: attempts beyond the first
- `videojob_jobs_created_total` counter: Kubernetes Jobs created by this process (adoptions excluded)
- `videojob_reconcile_duration_seconds` histogram, `videojob_reconcile_errors_total` counter: the passes
- `videojob_leader` gauge: 1 while this replica holds the leader election Lease and acts (always 1 without leader
  election), 0 while it stands by. A standby reports no queue or phase gauges of its own (they stay 0 or absent):
  select `videojob_leader == 1` (or sum across replicas) in queries over several replicas.

Cardinality: namespaces x phases x reasons (reasons are a declared, bounded set), ten priorities, two hardware
kinds; never a VideoJob's name or uid.

Counters count transitions this process observed; after a restart they start from zero (Prometheus' `rate` and
`increase` handle resets).

/healthz answers 200 while the reconcile loop completes passes (a standby replica: while it keeps checking the
leader election Lease), 503 when it has stalled (no completed pass for
`stall_after` seconds, FAILED_PASSES_UNHEALTHY passes in a row that raised, or the loop died): a liveness probe then
restarts the operator. A VideoJob the operator cannot handle does not fail a pass: it is skipped and reported on
its own (Warning Event `ReconcileError`).
"""

from __future__ import annotations

import collections
import json
import logging
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from videojob import __version__
from videojob.api.runtime import TranscodeResult
from videojob.controller.status import parse_time

FAILED_PASSES_UNHEALTHY = 5  # passes in a row that raise before /healthz answers 503
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600, 14400)
_SPEED_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


PHASES = ("Pending", "Running", "Succeeded", "Failed", "Cancelled")
PRIORITIES = tuple(range(1, 11))
HARDWARE = ("cpu", "nvidia")


class Metrics:
    """The operator's metrics in a registry of their own (tests can build several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build_info = Gauge(
            "videojob_build_info",
            "The running operator: always 1, with its version.",
            ["version", "python_version"],
            registry=r,
        )
        self.build_info.labels(version=__version__, python_version=platform.python_version()).set(1)
        self.videojobs = Gauge(
            "videojob_videojobs", "VideoJobs by namespace and phase.", ["videojob_namespace", "phase"], registry=r
        )
        self.queue_depth = Gauge(
            "videojob_queue_depth", "VideoJobs waiting for admission, by priority.", ["priority"], registry=r
        )
        self.running = Gauge(
            "videojob_running", "Admitted, unfinished VideoJobs by hardware.", ["hardware"], registry=r
        )
        self.admission_wait = Histogram(
            "videojob_admission_wait_seconds",
            "From creation to Job creation, by priority.",
            ["priority"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.run_duration = Histogram(
            "videojob_run_duration_seconds",
            "From start to finish.",
            ["hardware", "phase"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.finished = Counter(
            "videojob_finished",
            "VideoJobs that reached a terminal phase, by phase and reason.",
            ["videojob_namespace", "phase", "reason", "hardware"],
            registry=r,
        )
        self.input_bytes = Counter(
            "videojob_input_bytes", "Bytes read by successful jobs.", ["videojob_namespace"], registry=r
        )
        self.output_bytes = Counter(
            "videojob_output_bytes", "Bytes written by successful jobs.", ["videojob_namespace"], registry=r
        )
        self.encode_speed = Histogram(
            "videojob_encode_speed_ratio",
            "Seconds of media produced per second of transcoder run time.",
            ["hardware"],
            buckets=_SPEED_BUCKETS,
            registry=r,
        )
        self.retries = Counter("videojob_retries", "Attempts beyond the first.", registry=r)
        self.jobs_created = Counter("videojob_jobs_created", "Kubernetes Jobs created.", registry=r)
        self.reconcile_duration = Histogram(
            "videojob_reconcile_duration_seconds",
            "Duration of a reconcile pass: its decisions and the API calls it waits for (deletions, finalizers, "
            "join Jobs), not the creation of the Jobs it admits, which runs beside the passes.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.reconcile_errors = Counter("videojob_reconcile_errors", "Failed API calls in passes.", registry=r)
        self.leader = Gauge(
            "videojob_leader", "1 while this replica leads (admits and writes), 0 on standby.", registry=r
        )
        self.leader.set(1)
        for priority in PRIORITIES:
            self.queue_depth.labels(priority=str(priority)).set(0)
        for hardware in HARDWARE:
            self.running.labels(hardware=hardware).set(0)
        self.last_pass = time.monotonic()  # the end of the last pass that completed
        self.failed_passes = 0  # passes in a row that raised
        self.loop_alive = True
        self.leading = True  # without leader election, the one replica always leads
        self.lease_checked = time.monotonic()  # the last attempt to read or renew the Lease

    # --- what a pass saw and did ---------------------------------------------------------------------------------

    def observe_state(
        self, phases: Iterable[tuple[str, str]], queued: Mapping[int, int], running: Mapping[str, int]
    ) -> None:
        """Set the gauges from one pass: (namespace, phase) of every VideoJob, queued VideoJobs by priority,
        running VideoJobs by hardware. A namespace without VideoJobs drops out (its series disappear)."""
        # counted in C: a pass hands over one pair per VideoJob
        counts: collections.Counter[tuple[str, str]] = collections.Counter(phases)
        for namespace in {namespace for namespace, _ in counts}:
            for each in PHASES:
                counts.setdefault((namespace, each), 0)
        self.videojobs.clear()  # one thread (the event loop): no scrape sees the gauge half set
        for (namespace, phase), count in counts.items():
            self.videojobs.labels(videojob_namespace=namespace, phase=phase).set(count)
        depth = {**dict.fromkeys(PRIORITIES, 0), **queued}
        for priority, count in depth.items():
            self.queue_depth.labels(priority=str(priority)).set(count)
        for hardware, count in running.items():
            self.running.labels(hardware=hardware).set(count)

    def observe_admission(self, priority: int, wait_seconds: float) -> None:
        self.jobs_created.inc()
        self.admission_wait.labels(priority=str(priority)).observe(max(wait_seconds, 0))

    def observe_finished(self, namespace: str, status: Mapping[str, Any], result: TranscodeResult | None) -> None:
        """A VideoJob reached a terminal phase (`status`, its new status); `result` is its transcoder's result when
        it succeeded."""
        phase = str(status["phase"])
        hardware = str(status.get("hardware") or "cpu")
        started, completed = parse_time(status.get("startedAt")), parse_time(status.get("completedAt"))
        if started is not None and completed is not None:
            self.run_duration.labels(hardware=hardware, phase=phase).observe(
                max((completed - started).total_seconds(), 0)
            )
        self.retries.inc(max(int(status.get("attempts") or 0) - 1, 0))
        self.finished.labels(
            videojob_namespace=namespace, phase=phase, reason=str(status.get("reason") or phase), hardware=hardware
        ).inc()
        if phase != "Succeeded" or result is None:
            return
        self.input_bytes.labels(videojob_namespace=namespace).inc(result.bytes_in)
        self.output_bytes.labels(videojob_namespace=namespace).inc(result.bytes_out)
        media = max((a.duration or 0.0 for a in result.artifacts), default=0.0)
        if media > 0 and result.seconds > 0:
            self.encode_speed.labels(hardware=result.hardware or hardware).observe(media / result.seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def set_leading(self, leading: bool) -> None:
        """Leader or standby. Becoming leader restarts the stall clock: a standby completes no passes."""
        if leading and not self.leading:
            self.last_pass = time.monotonic()
        self.leading = leading
        self.leader.set(1 if leading else 0)

    def healthy(self, stall_after: float) -> bool:
        """The loop is alive, completed a pass within `stall_after` seconds, and the last passes did not all fail
        (FAILED_PASSES_UNHEALTHY in a row: passes retry with backoff, so that is a minute or more of failures).
        A standby is healthy while it keeps checking the Lease (it is Ready, to take over at once)."""
        now = time.monotonic()
        if not self.leading:
            return now - self.lease_checked < stall_after
        return self.loop_alive and now - self.last_pass < stall_after and self.failed_passes < FAILED_PASSES_UNHEALTHY


async def serve(metrics: Metrics, port: int, stall_after: float, host: str = "0.0.0.0") -> web.AppRunner:  # noqa: S104
    """Start /metrics and /healthz on `port` in the running event loop; returns the runner to clean up."""

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        if metrics.healthy(stall_after):
            return web.Response(text="ok\n")
        return web.Response(status=503, text="reconcile loop stalled\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


# --- logs -----------------------------------------------------------------------------------------------------

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields
    (e.g. namespace, videojob) when they serialise. Times are UTC."""

    converter = time.gmtime  # type: ignore[assignment]  # typeshed overload mismatch; gmtime accepts the float

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, str | int | float | bool):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Kopf is chatty at INFO about every watch; our own logs tell the story.
    logging.getLogger("kopf").setLevel(max(logging.getLevelName(level), logging.WARNING))
