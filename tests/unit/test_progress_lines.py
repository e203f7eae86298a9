"""Progress travels in the transcoder's own log: the line it prints, and what the operator accepts reading it back
(the log is written by whatever runs in the pod, so anything else is ignored)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from videojob.api.runtime import parse_progress, progress_line
from videojob.transcoder.progress import LineReporter, NullReporter, Throttled, reporter_from_env


@pytest.mark.parametrize(
    ("tail", "percent"),
    [
        pytest.param("videojob-progress: 42.5\n", 42.5, id="one line"),
        pytest.param("videojob-progress: 10.0\nvideojob-progress: 20.0\n", 20.0, id="the last line counts"),
        pytest.param(
            "videojob-progress: 30.0\nvideojob-transcode: BadInput: gone\n",
            30.0,
            id="an error line after it is skipped",
        ),
        pytest.param("videojob-progress: 12.34567", 12.3, id="rounded to a tenth"),
        pytest.param("videojob-progress: 101\n", None, id="over 100: refused"),
        pytest.param("videojob-progress: -1\n", None, id="negative: refused"),
        pytest.param("videojob-progress: nan\nvideojob-progress: inf\n", None, id="not finite: refused"),
        pytest.param("videojob-progress: 1e400\n", None, id="an overflowing number: refused"),
        pytest.param("videojob-progress: 50; rm -rf /\n", None, id="junk after the number: refused"),
        pytest.param("progress: 50\n", None, id="another prefix: refused"),
        pytest.param("", None, id="an empty log"),
        pytest.param("\x00\xff" * 100, None, id="binary junk"),
    ],
)
def test_the_operator_reads_only_sane_progress_lines(tail: str, percent: float | None) -> None:
    assert parse_progress(tail) == percent


@pytest.mark.parametrize("percent", [0.0, 0.05, 42.5, 99.9, 100.0, 150.0, -3.0])
def test_what_the_transcoder_prints_the_operator_reads(percent: float) -> None:
    out = io.StringIO()
    LineReporter(out).report(percent)
    assert out.getvalue() == progress_line(percent) + "\n"
    assert parse_progress(out.getvalue()) == round(min(max(percent, 0.0), 100.0), 1)


@pytest.mark.parametrize(
    ("env", "local", "kind"),
    [
        pytest.param({}, False, LineReporter, id="in a pod: lines for the operator"),
        pytest.param({}, True, "LogReporter", id="--local: a line for people"),
        pytest.param({"VIDEOJOB_PROGRESS": "none"}, False, NullReporter, id="none"),
    ],
)
def test_the_reporter_from_the_environment(env: dict[str, str], local: bool, kind: Any) -> None:
    reporter = reporter_from_env(env, local=local)
    inner = reporter.inner if isinstance(reporter, Throttled) else reporter
    assert type(inner).__name__ == (kind if isinstance(kind, str) else kind.__name__)


def test_the_old_kubernetes_reporter_is_gone() -> None:
    with pytest.raises(ValueError, match="use lines, log or none"):
        reporter_from_env({"VIDEOJOB_PROGRESS": "kubernetes"})


def test_the_operator_polls_the_running_pods_log() -> None:
    from tests.unit.test_controller_reconciler import FakeKube, videojob
    from videojob.controller.jobs import job_name
    from videojob.controller.metrics import Metrics
    from videojob.controller.reconciler import Reconciler
    from videojob.controller.settings import Settings

    kube = FakeKube()
    reconciler = Reconciler(Settings(), kube, Metrics())  # type: ignore[arg-type]
    vj = videojob("clip", {"phase": "Running"})
    job = {
        "metadata": {
            "name": job_name(vj),
            "namespace": "media",
            "uid": "job-1",
            "resourceVersion": "2",
            "ownerReferences": [
                {
                    "apiVersion": "videojob.dev/v1alpha1",
                    "kind": "VideoJob",
                    "name": "clip",
                    "uid": "uid-clip",
                    "controller": True,
                }
            ],
        }
    }

    def a_pod(name: str, state: dict[str, Any], owner: str = "job-1") -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "namespace": "media",
                "uid": f"uid-{name}",
                "resourceVersion": "3",
                "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": owner, "controller": True}
                ],
            },
            "status": {"phase": "Running", "containerStatuses": [{"name": "transcode", "state": state}]},
        }

    reconciler.index.observe("videojobs", "ADDED", vj)
    reconciler.index.observe("jobs", "ADDED", job)
    reconciler.index.observe("pods", "ADDED", a_pod("its-pod", {"running": {}}))
    reconciler.index.observe("pods", "ADDED", a_pod("a-stranger", {"running": {}}, owner="someone-elses-job"))
    kube.logs = {"its-pod": "videojob-progress: 37.5\n", "a-stranger": "videojob-progress: 99.0\n"}
    try:
        assert asyncio.run(reconciler.read_progress()) is True
        assert reconciler.progress == {"uid-clip": {"uid-its-pod": 37.5}}
        assert asyncio.run(reconciler.read_progress()) is False, "unchanged: no pass asked for"
    finally:
        reconciler.executor.shutdown(wait=True)
        reconciler.status_executor.shutdown(wait=True)
