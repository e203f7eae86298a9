"""High availability: the chart at `replicas: 2` with leader election. Both pods are Ready, exactly one holds the
Lease and acts; its pod is deleted (graceful: it releases the Lease), then the next leader's process is SIGKILLed
and its pod force-deleted (a lost node: the Lease must expire) while VideoJobs run and wait. Each time another
replica must take over within the issue's 15 s, admit the next VideoJobs, and never make a second Job for any
VideoJob; every VideoJob ends Succeeded.

Every Job ever created in the namespace is recorded by uid from a watch started before the operator, so a
duplicate that lived only briefly is still counted.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from devkit.harness import Diagnostics, JobRecorder, MediaFactory, ScriptedHTTPServer, VideoJobs
from devkit.operator_release import OperatorRelease
from devkit.specs import encode_spec

pytestmark = pytest.mark.e2e

# The bound. Expected after a crash: the lease duration (10 s) + up to two retry periods (1 s each: the
# standby sees the last renewal up to one poll late and notices the expiry up to one poll late); after a graceful
# shutdown about one retry period. The margin left under 15 s absorbs a loaded test machine.
FAILOVER_LIMIT = 15.0
HELD = ["held-a", "held-b", "held-c"]  # their downloads wait until released; held-c waits in the queue first
QUEUED = ["queued-1", "queued-2", "queued-3"]


def test_two_replicas_fail_over_within_15_s_without_duplicate_jobs(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    job_recorder: JobRecorder,
    http_server: ScriptedHTTPServer,
    media: MediaFactory,
    bucket: str,
) -> None:
    releases = {name: threading.Event() for name in HELD}
    for name in HELD:
        http_server.stall[f"/{name}.mp4"] = releases[name]
    data = media.video().read_bytes()
    inputs = {name: http_server.add(f"/{name}.mp4", data) for name in HELD}
    s3_input = media.upload(media.video(), bucket, "in/tiny.mp4")
    inputs.update({name: s3_input for name in QUEUED})

    def create(names: list[str], priority: int) -> None:
        for name in names:
            videojobs.create(
                name,
                encode_spec(inputs[name], f"s3://{bucket}/out/{name}/", priority=priority, hardware="cpu", retries=1),
            )

    op = run_operator(max_running=2, allow_http=True, replicas=2)
    try:
        first = wait_one_leader_of_two_ready(op, diagnostics)

        create(HELD[:2], priority=1)
        for name in HELD[:2]:
            diagnostics.wait_phase(name, "Running", timeout=90)
        create(HELD[2:] + QUEUED, priority=5)
        diagnostics.wait(
            lambda: sorted(videojobs.status(n).get("queuePosition") or 0 for n in HELD[2:] + QUEUED) == [1, 2, 3, 4],
            timeout=60,
            message="the queued jobs to have positions 1-4",
        )

        # 1. The leader's pod is deleted (a drain, an upgrade): SIGTERM, it stops acting and releases the Lease.
        op.save_logs()
        deleted = time.monotonic()
        op.core_v1.delete_namespaced_pod(first, op.namespace)
        second = diagnostics.wait(
            lambda: (h := op.lease_holder()) not in (None, first) and h,
            timeout=FAILOVER_LIMIT,
            interval=0.1,
            message=f"another replica to take the Lease {first} released",
        )
        graceful = time.monotonic() - deleted
        # The new leader admits: held-a finishes, freeing a slot for held-c (first in the queue).
        releases["held-a"].set()
        diagnostics.wait_phase("held-c", "Running", timeout=120)

        # 2. The new leader dies without a word (its node is lost): its process is SIGKILLed and its pod removed at
        # once, so neither it nor a restarted container of its pod can release or take back the Lease: the Lease
        # must run out, and the standby (the Deployment's replacement of the first pod) take it over.
        wait_one_leader_of_two_ready(op, diagnostics)
        assert op.lease_holder() == second
        victim = op.pid_of(second)
        jobs_before = len(job_recorder.snapshot())
        op.save_logs()
        killed_at, killed = datetime.now(UTC), time.monotonic()
        os.kill(victim, signal.SIGKILL)
        op.core_v1.delete_namespaced_pod(second, op.namespace, grace_period_seconds=0)
        releases["held-b"].set()  # held-b finishes during the failover: its slot goes to queued-1 once one leads

        def renewed_by_a_new_process() -> str | None:
            lease = op.lease()
            spec = lease.spec if lease is not None else None
            if spec is None or not spec.holder_identity or spec.renew_time is None or spec.renew_time <= killed_at:
                return None
            return str(spec.holder_identity)

        third = diagnostics.wait(
            renewed_by_a_new_process,
            timeout=FAILOVER_LIMIT + 5,
            interval=0.1,
            message="a live process to hold the Lease after the SIGKILL",
        )
        crash = time.monotonic() - killed
        assert third != second, "the killed pod came back"
        diagnostics.wait(
            lambda: len(job_recorder.snapshot()) > jobs_before, timeout=120, message="a Job admitted after the crash"
        )
        admitted = max(job.seen for job in job_recorder.snapshot()) - killed

        releases["held-c"].set()
        names = HELD + QUEUED
        diagnostics.wait_all(names, "Succeeded", timeout=420)
        print(
            f"\nfailover: graceful (pod deleted) {graceful:.1f} s to {second}; crash (SIGKILL) {crash:.1f} s to "
            f"{third}, first Job after the crash at {admitted:.1f} s"
        )
        assert graceful < FAILOVER_LIMIT and crash < FAILOVER_LIMIT, (graceful, crash)

        by_owner = job_recorder.by_owner()
        assert not job_recorder.duplicates(), f"duplicate Jobs: {job_recorder.duplicates()}"
        assert sorted(o for o in by_owner if o) == sorted(names), f"Jobs per VideoJob: {by_owner.keys()}"
        for name in names:
            assert videojobs.status(name).get("attempts") == 1, diagnostics.report([name])
        wait_one_leader_of_two_ready(op, diagnostics)
    finally:
        for event in releases.values():
            event.set()
        op.save_logs()


def wait_one_leader_of_two_ready(op: OperatorRelease, diagnostics: Diagnostics, timeout: float = 180) -> str:
    """Both replicas Ready, the Lease held by one of them, which alone reports videojob_leader 1; its pod name."""

    def settled() -> str | None:
        ready = {p.metadata.name: p for p in op.ready_pods()}
        holder = op.lease_holder()
        if len(ready) != 2 or holder not in ready:
            return None
        leaders = {name: op.metrics_of(pod).get("videojob_leader") for name, pod in ready.items()}
        return holder if leaders == {name: (1.0 if name == holder else 0.0) for name in ready} else None

    return str(
        diagnostics.wait(
            settled, timeout=timeout, interval=0.5, message="two Ready replicas, one of them the only leader"
        )
    )
