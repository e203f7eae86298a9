"""Liveness and structured logs of the operator process."""

from __future__ import annotations

import json
import logging
import time

from videojob.api.models import Artifact
from videojob.api.runtime import TranscodeResult
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


def samples(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(v for lbls, v in samples(metrics).get(name, []) if all(lbls.get(k) == w for k, w in labels.items()))


def test_metric_names_follow_prometheus_conventions() -> None:
    """Counters end in _total, units are suffixes (seconds, bytes, ratio), and no label is `namespace` (Prometheus
    gives the operator's own target that label; the VideoJob's is `videojob_namespace`)."""
    for family in Metrics().registry.collect():
        assert family.name.startswith("videojob_"), family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_ratio", "_bytes")), family.name
        for sample in family.samples:
            assert "namespace" not in sample.labels, sample
    text = Metrics().render().decode()
    assert "# TYPE videojob_finished_total counter" in text
    assert "# TYPE videojob_input_bytes_total counter" in text


def test_build_info_names_the_running_version() -> None:
    from videojob import __version__

    ((labels, v),) = samples(Metrics())["videojob_build_info"]
    assert v == 1 and labels["version"] == __version__ and labels["python_version"]


def test_state_gauges_by_namespace_phase_and_priority() -> None:
    metrics = Metrics()
    metrics.observe_state(
        [("media", "Running"), ("media", "Pending"), ("ads", "Succeeded"), ("media", "Running")],
        queued={1: 1, 5: 2},
        running={"cpu": 2, "nvidia": 0},
    )
    assert value(metrics, "videojob_videojobs", videojob_namespace="media", phase="Running") == 2
    assert value(metrics, "videojob_videojobs", videojob_namespace="ads", phase="Failed") == 0, "all five phases"
    assert value(metrics, "videojob_queue_depth") == 3
    assert value(metrics, "videojob_queue_depth", priority="5") == 2
    assert len(samples(metrics)["videojob_queue_depth"]) == 10, "every priority, zero or not"
    assert value(metrics, "videojob_running", hardware="cpu") == 2
    metrics.observe_state([("ads", "Succeeded")], queued={}, running={"cpu": 0, "nvidia": 0})
    assert not [lbls for lbls, _ in samples(metrics)["videojob_videojobs"] if lbls["videojob_namespace"] == "media"]


def test_one_finished_counter_with_phase_and_reason_and_the_success_facts() -> None:
    metrics = Metrics()
    done = {
        "phase": "Succeeded",
        "reason": "Succeeded",
        "hardware": "cpu",
        "attempts": 2,
        "startedAt": "2025-01-01T00:00:00Z",
        "completedAt": "2025-01-01T00:00:30Z",
    }
    result = TranscodeResult(
        ok=True,
        bytes_in=1000,
        bytes_out=250,
        seconds=5.0,
        hardware="cpu",
        artifacts=[
            Artifact(uri="s3://b/o.mp4", size=250, sha256="0" * 64, duration=20.0),
            Artifact(uri="s3://b/o.jpg", size=10, sha256="1" * 64),
        ],
    )
    metrics.observe_finished("media", done, result)
    metrics.observe_finished("media", {"phase": "Failed", "reason": "BadInput", "hardware": "cpu"}, None)
    metrics.observe_finished("ads", {"phase": "Cancelled", "reason": "Cancelled"}, None)
    assert value(metrics, "videojob_finished_total", phase="Succeeded", reason="Succeeded") == 1
    assert value(metrics, "videojob_finished_total", phase="Failed", reason="BadInput", videojob_namespace="media") == 1
    assert value(metrics, "videojob_finished_total", phase="Cancelled") == 1
    assert value(metrics, "videojob_finished_total") == 3
    assert value(metrics, "videojob_input_bytes_total", videojob_namespace="media") == 1000
    assert value(metrics, "videojob_output_bytes_total") == 250
    assert value(metrics, "videojob_retries_total") == 1
    assert value(metrics, "videojob_encode_speed_ratio_sum", hardware="cpu") == 4.0, "20 s of media in 5 s"
    assert value(metrics, "videojob_run_duration_seconds_sum", phase="Succeeded") == 30


def test_admission_counts_the_job_and_its_wait_by_priority() -> None:
    metrics = Metrics()
    metrics.observe_admission(2, 1.5)
    metrics.observe_admission(2, -1)  # clock skew: never a negative wait
    assert value(metrics, "videojob_jobs_created_total") == 2
    assert value(metrics, "videojob_admission_wait_seconds_count", priority="2") == 2
    assert value(metrics, "videojob_admission_wait_seconds_sum", priority="2") == 1.5


def test_json_logs_carry_the_extra_fields() -> None:
    record = logging.LogRecord("videojob.operator", logging.INFO, __file__, 1, "created Job %s", ("j-1",), None)
    record.namespace = "media"
    record.videojob = "promo"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "created Job j-1"
    assert (entry["level"], entry["namespace"], entry["videojob"]) == ("INFO", "media", "promo")
    assert entry["time"].endswith("Z")


def test_a_standby_is_healthy_while_it_checks_the_lease_and_says_it_is_standing_by() -> None:
    metrics = Metrics()
    assert value(metrics, "videojob_leader") == 1  # without leader election the one process leads
    metrics.set_leading(False)
    assert value(metrics, "videojob_leader") == 0
    metrics.last_pass = time.monotonic() - 3600  # a standby completes no passes...
    assert metrics.healthy(stall_after=60)  # ...and is Ready while it keeps checking the Lease
    metrics.lease_checked = time.monotonic() - 61
    assert not metrics.healthy(stall_after=60)
    metrics.set_leading(True)  # leading restarts the stall clock of passes
    assert value(metrics, "videojob_leader") == 1
    assert metrics.healthy(stall_after=60)
