"""Liveness and structured logs of the operator process."""

from __future__ import annotations

import json
import logging
import time

from videojob.controller.metrics import FAILED_PASSES_UNHEALTHY, JsonFormatter, Metrics


def test_healthz_turns_unhealthy_when_passes_stop_or_the_loop_dies() -> None:
    metrics = Metrics()
    assert metrics.healthy(stall_after=60)
    metrics.last_pass = time.monotonic() - 61
    assert not metrics.healthy(stall_after=60)
    metrics.last_pass = time.monotonic()
    metrics.loop_alive = False
    assert not metrics.healthy(stall_after=60)


def test_healthz_turns_unhealthy_after_repeated_failed_passes() -> None:
    metrics = Metrics()
    metrics.failed_passes = FAILED_PASSES_UNHEALTHY - 1
    assert metrics.healthy(stall_after=60), "a few failed passes are retried"
    metrics.failed_passes = FAILED_PASSES_UNHEALTHY
    assert not metrics.healthy(stall_after=60), "even with a recent completed pass"


def test_metrics_are_exposed_with_their_names() -> None:
    metrics = Metrics()
    metrics.videojobs.labels(phase="Running").set(3)
    metrics.failures.labels(reason="BadInput").inc()
    text = metrics.render().decode()
    for line in ('videojob_videojobs{phase="Running"} 3.0', 'videojob_failures_total{reason="BadInput"} 1.0',
                 "videojob_queue_depth 0.0", "videojob_bytes_in_total 0.0", "videojob_retries_total 0.0",
                 "videojob_admission_wait_seconds_count 0.0"):
        assert line in text


def test_json_logs_carry_the_extra_fields() -> None:
    record = logging.LogRecord("videojob.operator", logging.INFO, __file__, 1, "created Job %s", ("j-1",), None)
    record.namespace = "media"
    record.videojob = "promo"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "created Job j-1"
    assert (entry["level"], entry["namespace"], entry["videojob"]) == ("INFO", "media", "promo")
    assert entry["time"].endswith("Z")
