"""A whole reconcile pass over an index, with the API calls answered in memory (FakeKube): one VideoJob the code
cannot handle is marked and skipped, the others are admitted; /healthz sees passes that raise."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from videojob.controller import reconciler as reconciler_module
from videojob.controller.jobs import job_name
from videojob.controller.metrics import FAILED_PASSES_UNHEALTHY, Metrics
from videojob.controller.reconciler import NotLeading, Reconciler
from videojob.controller.settings import Settings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class FakeKube:
    """The operator's Kube, answered from memory: records what the operator asked for."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.status_patches: list[tuple[str, dict[str, Any]]] = []
        self.deleted: list[str] = []
        self.version = 1000
        self.store: Any = None  # the reconciler's VideoJobs, for status patch answers
        self.logs: dict[str, str] = {}  # pod name -> its log

    def _next(self) -> str:
        self.version += 1
        return str(self.version)

    def create_job(self, manifest: dict[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        job = copy.deepcopy(manifest)
        job["metadata"].update(
            uid=f"job-{owner_uid}", resourceVersion=self._next(), creationTimestamp="2026-01-01T12:00:00Z"
        )
        self.jobs[owner_uid] = job
        return job, True

    def ensure(self, manifests: list[dict[str, Any]]) -> None:
        pass

    def delete_if_ours(self, namespace: str, api_version: str, kind: str, name: str) -> bool:
        return False

    def pod_log_tail(self, namespace: str, name: str, container: str, lines: int, limit_bytes: int) -> str:
        return self.logs.get(name, "")

    def create_event(self, vj: dict[str, Any], event_type: str, reason: str, message: str, when: str) -> None:
        self.events.append((vj["metadata"]["name"], reason, message))

    def patch_videojob_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.status_patches.append((name, patch))
        current = next((vj for vj in self.store.items.values() if vj["metadata"]["name"] == name), None)
        if current is None:
            return None
        status = {k: v for k, v in {**(current.get("status") or {}), **patch}.items() if v is not None}
        return {**current, "metadata": {**current["metadata"], "resourceVersion": self._next()}, "status": status}

    def delete_videojob(self, namespace: str, name: str, uid: str) -> None:
        self.deleted.append(name)

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)

    def patch_videojob_finalizers(self, *args: Any) -> None:
        return None


def videojob(
    name: str, status: dict[str, Any] | None = None, created: str = "2026-01-01T11:00:00Z", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "videojob.dev/v1alpha1",
        "kind": "VideoJob",
        "metadata": {
            "name": name,
            "namespace": "media",
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "10",
            "creationTimestamp": created,
        },
        "spec": {
            "hardware": "cpu",
            "inputs": [{"name": "in", "uri": "s3://media/in.mp4"}],
            "output": {"uri": f"s3://media/out/{name}/"},
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def its_job(vj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The VideoJob's Job as the API server shows it, with the Job controller's `status`."""
    name = vj["metadata"]["name"]
    return {
        "metadata": {
            "name": job_name(vj),
            "namespace": "media",
            "uid": f"job-{name}",
            "resourceVersion": "5",
            "ownerReferences": [
                {
                    "apiVersion": "videojob.dev/v1alpha1",
                    "kind": "VideoJob",
                    "name": name,
                    "uid": vj["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"template": {"metadata": {"labels": {"videojob.dev/hardware": "cpu"}}}},
        "status": status,
    }


def its_pod(job: dict[str, Any], state: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    """The Job's pod, its transcoder container in `state`."""
    return {
        "metadata": {
            "name": f"{job['metadata']['name']}-pod",
            "namespace": "media",
            "uid": f"pod-{job['metadata']['uid']}",
            "resourceVersion": "6",
            "creationTimestamp": "2026-01-01T11:40:00Z",
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job["metadata"]["name"],
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": "cpu-0"},
        "status": {
            "phase": phase,
            "startTime": "2026-01-01T11:40:00Z",
            "containerStatuses": [{"name": "transcode", "state": state}],
        },
    }


@pytest.fixture
def operator() -> Iterator[tuple[Reconciler, FakeKube]]:
    kube = FakeKube()
    settings = Settings(max_running=10, priority_classes={"urgent": "", "normal": "", "low": ""})
    reconciler = Reconciler(settings, kube, Metrics())  # type: ignore[arg-type]
    kube.store = reconciler.index.videojobs
    yield reconciler, kube
    reconciler.executor.shutdown(wait=True)
    reconciler.status_executor.shutdown(wait=True)


def run_pass(reconciler: Reconciler, *videojobs: dict[str, Any]) -> None:
    for body in videojobs:
        reconciler.index.observe("videojobs", "ADDED", body)

    async def main() -> None:
        await reconciler.reconcile(NOW)
        await reconciler.admissions_settled()

    asyncio.run(main())


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(
            videojob("bad", {"phase": "Succeeded", "completedAt": "2026-01-01T11:00:00"}, ttlSecondsAfterFinished=60),
            id="a naive completedAt (ttl_remaining raised TypeError)",
        ),
        pytest.param(
            videojob("bad", {"queuedAt": "9999-12-31T23:59:59.999999Z"}),
            id="a queuedAt of year 9999 after a restart (stamp_arrivals raised OverflowError)",
        ),
    ],
)
def test_hand_written_statuses_found_by_the_review_stop_nothing(
    operator: tuple[Reconciler, FakeKube], bad: dict[str, Any]
) -> None:
    reconciler, kube = operator
    run_pass(reconciler, bad, videojob("good"))
    assert "uid-good" in kube.jobs, "the other VideoJob was admitted"


def test_a_videojob_the_code_cannot_handle_is_marked_and_the_pass_goes_on(
    operator: tuple[Reconciler, FakeKube], monkeypatch: pytest.MonkeyPatch
) -> None:
    reconciler, kube = operator
    real = reconciler_module.derive_status

    def derive_status(vj: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        if vj["metadata"]["name"] == "bad":
            raise ValueError("a status nobody foresaw")
        return real(vj, *args, **kwargs)

    monkeypatch.setattr(reconciler_module, "derive_status", derive_status)
    bad = videojob("bad", {"phase": "Running", "jobName": "bad-x"})
    run_pass(reconciler, bad, videojob("good"))
    assert "uid-good" in kube.jobs, "the other VideoJob was admitted"
    (event,) = [e for e in kube.events if e[0] == "bad"]
    assert event[1] == "ReconcileError" and "a status nobody foresaw" in event[2]
    assert ("bad", {"message": event[2]}) in kube.status_patches, "the status says so too"
    assert reconciler.metrics.failed_passes == 0 and reconciler.metrics.healthy(60), "the pass itself completed"

    run_pass(reconciler)  # the same error again: reported once, not every pass
    assert len([e for e in kube.events if e[0] == "bad"]) == 1


def test_a_broken_videojob_keeps_its_running_slot(
    operator: tuple[Reconciler, FakeKube], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipping a VideoJob whose Job still runs must not free its slot for another."""
    reconciler, kube = operator
    reconciler.settings = reconciler.settings.model_copy(update={"max_running": 1})
    running = videojob("running", {"phase": "Running"})
    job = {
        "metadata": {
            "name": job_name(running),
            "namespace": "media",
            "uid": "job-running",
            "resourceVersion": "5",
            "labels": {"videojob.dev/hardware": "cpu"},
            "ownerReferences": [
                {
                    "apiVersion": "videojob.dev/v1alpha1",
                    "kind": "VideoJob",
                    "name": "running",
                    "uid": "uid-running",
                    "controller": True,
                }
            ],
        },
        "status": {"active": 1},
    }
    reconciler.index.observe("jobs", "ADDED", job)
    monkeypatch.setattr(reconciler_module, "derive_status", lambda *a, **k: (_ for _ in ()).throw(KeyError("x")))
    run_pass(reconciler, running, videojob("waiting", created="2026-01-01T11:30:00Z"))
    assert "uid-waiting" not in kube.jobs


def test_healthz_fails_after_repeated_failed_passes(
    operator: tuple[Reconciler, FakeKube], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass time was updated even after an exception, so /healthz stayed green while every pass failed."""
    reconciler, _ = operator

    async def broken(now: datetime | None = None) -> None:
        raise RuntimeError("every pass fails")

    monkeypatch.setattr(reconciler, "reconcile", broken)
    before = reconciler.metrics.last_pass

    async def passes() -> None:
        for _ in range(FAILED_PASSES_UNHEALTHY):
            await reconciler._pass_once()
        if reconciler._timer is not None:
            reconciler._timer.cancel()

    asyncio.run(passes())
    assert reconciler.metrics.last_pass == before, "a failed pass is not a completed pass"
    assert not reconciler.metrics.healthy(stall_after=3600)


def test_a_forged_succeeded_frees_no_slot_and_is_corrected(operator: tuple[Reconciler, FakeKube]) -> None:
    """Anyone who may patch `videojobs/status` (the transcoder's ServiceAccount could) wrote Succeeded on a running
    VideoJob: the operator took it, freed its slot and admitted the next while the Job kept going."""
    reconciler, kube = operator
    reconciler.settings = reconciler.settings.model_copy(update={"max_running": 1})
    running = videojob(
        "running",
        {
            "phase": "Succeeded",
            "reason": "Succeeded",
            "jobName": "x",
            "attempts": 1,
            "completedAt": "2026-01-01T11:59:00Z",
        },
    )
    reconciler.index.observe("jobs", "ADDED", (job := its_job(running, {"active": 1})))
    reconciler.index.observe("pods", "ADDED", its_pod(job, {"running": {}}))
    run_pass(reconciler, running, videojob("waiting", created="2026-01-01T11:30:00Z"))
    assert "uid-waiting" not in kube.jobs, "the slot of the running VideoJob stayed taken"
    status, _, basis, _ = reconciler.status_writer.wishes["uid-running"]
    assert status["phase"] == "Running" and basis == "Succeeded"

    async def write() -> None:
        await reconciler.write_status("uid-running", status, [], basis)
        await reconciler.events.drain()  # Events are posted in the background

    asyncio.run(write())
    (patch,) = [patch for name, patch in kube.status_patches if name == "running"]
    assert patch["phase"] == "Running" and patch["completedAt"] is None
    assert ("running", "StatusCorrected") in [(name, reason) for name, reason, _ in kube.events]


def test_a_stale_wish_never_undoes_a_terminal_phase(operator: tuple[Reconciler, FakeKube]) -> None:
    reconciler, kube = operator
    reconciler.index.observe("videojobs", "ADDED", videojob("done", {"phase": "Succeeded"}))
    asyncio.run(reconciler.write_status("uid-done", {"phase": "Running"}, [], "Running"))
    assert kube.status_patches == []


def test_artifact_deletion_follows_the_spec_and_the_uid_never_the_status(
    operator: tuple[Reconciler, FakeKube], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator deleted whatever the status listed, with its own credentials: a forged status could make it
    delete another tenant's objects."""
    reconciler, kube = operator
    asked: list[tuple[list[str], str]] = []

    def record(uris: list[str], uid: str) -> list[str]:
        asked.append((uris, uid))
        return uris

    monkeypatch.setattr(reconciler, "_delete_objects", record)
    forged = {
        "phase": "Succeeded",
        "artifacts": [{"uri": "s3://other-tenant/precious.mp4", "size": 1, "sha256": "0" * 64}],
    }
    body = videojob(
        "gone", forged, artifactReclaimPolicy="Delete", output={"uri": "s3://media/out/gone/", "thumbnail": {"at": 1}}
    )
    body["metadata"].update(deletionTimestamp="2026-01-01T11:59:00Z", finalizers=["videojob.dev/artifacts"])
    run_pass(reconciler, body)
    assert asked == [(["s3://media/out/gone/output.mp4", "s3://media/out/gone/output.jpg"], "uid-gone")]
    assert ("gone", "ArtifactsDeleted") in [(name, reason) for name, reason, _ in kube.events]


def test_a_replica_that_does_not_lead_makes_no_api_call(operator: tuple[Reconciler, FakeKube]) -> None:
    """Leader election's gate: once `may_act` says no (the Lease ran out), a pass creates no Job and writes nothing;
    the same pass admits as soon as it says yes."""
    reconciler, kube = operator
    reconciler.may_act = lambda: False
    with pytest.raises(NotLeading):
        asyncio.run(reconciler.call(kube.create_job, {}, "uid"))
    with contextlib.suppress(NotLeading):  # the pass may stop at its first call: nothing reaches the API server
        run_pass(reconciler, videojob("queued"))
    assert kube.jobs == {} and kube.status_patches == [] and kube.events == []
    reconciler.may_act = lambda: True
    run_pass(reconciler)
    assert list(kube.jobs) == ["uid-queued"]


def test_a_status_wish_keeps_no_conditions_and_its_write_derives_them_against_the_status_it_patches(
    operator: tuple[Reconciler, FakeKube],
) -> None:
    """Conditions are most of a waiting wish's memory: the write derives them, as of the pass that made the wish,
    and keeps the transition time of a condition the status it patches already holds."""
    reconciler, kube = operator
    run_pass(reconciler, videojob("fresh"))
    status, _, basis, now = reconciler.status_writer.wishes["uid-fresh"]
    assert "conditions" not in status and status["jobName"] and now == NOW
    # meanwhile its status gained the Admitted condition, true since a minute earlier
    earlier = "2026-01-01T11:59:00Z"
    admitted = {"type": "Admitted", "status": "True", "reason": "JobCreated", "lastTransitionTime": earlier}
    reconciler.index.videojobs.items["uid-fresh"]["status"] = {"phase": "Pending", "conditions": [admitted]}

    async def write() -> None:
        await reconciler.write_status("uid-fresh", status, [], basis, now)
        await reconciler.events.drain()

    asyncio.run(write())
    (patch,) = [patch for name, patch in kube.status_patches if name == "fresh"]
    by_type = {condition["type"]: condition for condition in patch["conditions"]}
    assert set(by_type) == {"Admitted", "Running", "Succeeded", "Failed", "Cancelled", "Finished"}
    assert by_type["Admitted"]["status"] == "True" and by_type["Admitted"]["lastTransitionTime"] == earlier
    assert by_type["Running"]["status"] == "False"
    assert by_type["Running"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"  # the pass's moment


def test_a_complete_job_whose_pod_is_not_seen_yet_succeeds_with_its_result_once_it_is(
    operator: tuple[Reconciler, FakeKube],
) -> None:
    """CI caught it after the API server restarted: the Jobs' watch came back before the pods', the Job said Complete,
    and the VideoJob became Succeeded (final) without the artifacts its pod's result lists."""
    reconciler, _ = operator
    running = videojob("done", {"phase": "Running", "jobName": job_name(videojob("done")), "attempts": 1})
    job = its_job(
        running,
        {
            "succeeded": 1,
            "completionTime": "2026-01-01T11:59:50Z",
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T11:59:50Z"}],
        },
    )
    reconciler.index.observe("jobs", "ADDED", job)
    run_pass(reconciler, running)
    status = reconciler.status_writer.wishes["uid-done"][0]
    assert status["phase"] == "Running" and "waiting to see its pod's result" in status["message"]

    artifact = {"uri": "s3://media/out/done/output.mp4", "size": 10, "sha256": "0" * 64}
    message = json.dumps({"ok": True, "artifacts": [artifact]})
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "message": message}}
    reconciler.index.observe("pods", "ADDED", its_pod(job, done, phase="Succeeded"))
    run_pass(reconciler)
    status = reconciler.status_writer.wishes["uid-done"][0]
    assert status["phase"] == "Succeeded" and [a["uri"] for a in status["artifacts"]] == [artifact["uri"]]
