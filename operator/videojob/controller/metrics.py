"""Prometheus metrics, /healthz, and structured logs of the operator process.

Metrics (all prefixed `videojob_`):
- `videojob_videojobs{phase}` gauge: VideoJobs seen, by phase
- `videojob_queue_depth` gauge: VideoJobs waiting for admission
- `videojob_running{hardware}` gauge: admitted, unfinished VideoJobs by hardware
- `videojob_admission_wait_seconds` histogram: creation to Job creation
- `videojob_run_duration_seconds{hardware,phase}` histogram: start to finish of finished VideoJobs
- `videojob_bytes_in_total`, `videojob_bytes_out_total` counters: bytes read and written by successful jobs
- `videojob_retries_total` counter: attempts beyond the first
- `videojob_failures_total{reason}` counter, `videojob_succeeded_total`, `videojob_cancelled_total` counters
- `videojob_jobs_created_total` counter: Jobs created by this process (adoptions excluded)
- `videojob_reconcile_duration_seconds` histogram, `videojob_reconcile_errors_total` counter: the passes

Counters count transitions this process observed; after a restart they start from zero (Prometheus' `rate` and
`increase` handle resets).

/healthz answers 200 while the reconcile loop completes passes, 503 when it has stalled (no completed pass for
`stall_after` seconds, FAILED_PASSES_UNHEALTHY passes in a row that raised, or the loop died): a liveness probe then
restarts the operator. A VideoJob the operator cannot handle does not fail a pass: it is skipped and reported on
its own (Warning Event `ReconcileError`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

FAILED_PASSES_UNHEALTHY = 5  # passes in a row that raise before /healthz answers 503
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600, 14400)


class Metrics:
    """The operator's metrics in a registry of their own (tests can build several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.videojobs = Gauge("videojob_videojobs", "VideoJobs by phase.", ["phase"], registry=r)
        self.queue_depth = Gauge("videojob_queue_depth", "VideoJobs waiting for admission.", registry=r)
        self.running = Gauge("videojob_running", "Admitted, unfinished VideoJobs by hardware.", ["hardware"],
                             registry=r)
        self.admission_wait = Histogram(
            "videojob_admission_wait_seconds", "From creation to Job creation.", buckets=_WAIT_BUCKETS, registry=r
        )
        self.run_duration = Histogram(
            "videojob_run_duration_seconds", "From start to finish.", ["hardware", "phase"],
            buckets=_DURATION_BUCKETS, registry=r,
        )
        self.bytes_in = Counter("videojob_bytes_in", "Bytes read by successful jobs.", registry=r)
        self.bytes_out = Counter("videojob_bytes_out", "Bytes written by successful jobs.", registry=r)
        self.retries = Counter("videojob_retries", "Attempts beyond the first.", registry=r)
        self.failures = Counter("videojob_failures", "Failed VideoJobs by reason.", ["reason"], registry=r)
        self.succeeded = Counter("videojob_succeeded", "Succeeded VideoJobs.", registry=r)
        self.cancelled = Counter("videojob_cancelled", "Cancelled VideoJobs.", registry=r)
        self.jobs_created = Counter("videojob_jobs_created", "Jobs created.", registry=r)
        self.reconcile_duration = Histogram(
            "videojob_reconcile_duration_seconds", "Duration of a reconcile pass.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )
        self.reconcile_errors = Counter("videojob_reconcile_errors", "Failed API calls in passes.", registry=r)
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Cancelled"):
            self.videojobs.labels(phase=phase).set(0)
        for hardware in ("cpu", "nvidia"):
            self.running.labels(hardware=hardware).set(0)
        self.last_pass = time.monotonic()  # the end of the last pass that completed
        self.failed_passes = 0  # passes in a row that raised
        self.loop_alive = True

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def healthy(self, stall_after: float) -> bool:
        """The loop is alive, completed a pass within `stall_after` seconds, and the last passes did not all fail
        (FAILED_PASSES_UNHEALTHY in a row: passes retry with backoff, so that is a minute or more of failures)."""
        return (self.loop_alive and time.monotonic() - self.last_pass < stall_after
                and self.failed_passes < FAILED_PASSES_UNHEALTHY)


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
