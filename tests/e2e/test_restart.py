"""Restart safety: the operator's pod is deleted while jobs are queued and running, and its process is killed with
SIGKILL at the very moment it has just created a Job (before it could record that in the VideoJob's status). After
each restart it must find what it made instead of making it twice, and every VideoJob must converge to Succeeded.

Every Job ever created in the namespace is recorded by uid from a watch started before the operator, so a
duplicate that lived only briefly is still counted.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import pytest

from devkit.harness import (
    Diagnostics,
    HeldInput,
    JobAdded,
    JobRecorder,
    MediaFactory,
    VideoJobs,
)
from devkit.operator_release import OperatorRelease
from devkit.specs import encode_spec

pytestmark = pytest.mark.e2e

HELD = ["held-a", "held-b"]  # running, their downloads held until released
QUEUED = ["queued-1", "queued-2", "queued-3", "queued-4"]
LATE = ["late-1", "late-2"]  # created while the operator is dead


def test_sigkill_and_restart_creates_no_duplicate_jobs_and_converges(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    job_recorder: JobRecorder,
    held_input: Callable[[str], HeldInput],
    media: MediaFactory,
    bucket: str,
) -> None:
    held = {name: held_input(name) for name in HELD}
    inputs = {name: h.uri for name, h in held.items()}
    s3_input = media.upload(media.video(), bucket, "in/tiny.mp4")
    inputs.update({name: s3_input for name in QUEUED + LATE})

    def create(names: list[str], priority: int) -> None:
        for name in names:
            videojobs.create(
                name,
                encode_spec(inputs[name], f"s3://{bucket}/out/{name}/", priority=priority, hardware="cpu", retries=1),
            )

    op = run_operator(max_running=2, allow_http=True)
    create(HELD, priority=1)
    for name in HELD:
        diagnostics.wait_phase(name, "Running", timeout=90)
    create(QUEUED, priority=5)
    diagnostics.wait(
        lambda: sorted(videojobs.status(n).get("queuePosition") or 0 for n in QUEUED) == [1, 2, 3, 4],
        timeout=60,
        message="the queued jobs to have positions 1-4",
    )

    # Restart 1: the operator's pod is deleted (a drained node, an evicted pod) while jobs run (held) and wait;
    # more arrive before the Deployment's new pod is up.
    op.delete_pod()
    create(LATE, priority=5)
    op.start()
    diagnostics.wait(
        lambda: all(videojobs.status(n).get("queuePosition") for n in LATE),
        timeout=60,
        message="the jobs created while the operator was down to be queued",
    )

    # Kill 2: the moment the watch sees the third Job, i.e. right after the operator created it, and possibly
    # before it patched the VideoJob's status.
    killed = threading.Event()
    victim = op.pid

    def kill_on_third_job(entry: JobAdded) -> None:
        if len(job_recorder.snapshot()) >= 3 and not killed.is_set():
            killed.set()
            os.kill(victim, signal.SIGKILL)

    job_recorder.on_added = kill_on_third_job
    held[HELD[0]].release()
    diagnostics.wait(killed.is_set, timeout=120, message="a third Job to be created")
    op.wait_exited(victim)
    job_recorder.on_added = None
    op.start()
    held[HELD[1]].release()

    names = HELD + QUEUED + LATE
    diagnostics.wait_all(names, "Succeeded", timeout=420)

    by_owner = job_recorder.by_owner()
    duplicates = job_recorder.duplicates()
    assert not duplicates, f"duplicate Jobs: {duplicates}"
    assert sorted(o for o in by_owner if o) == sorted(names), f"Jobs per VideoJob: {by_owner.keys()}"
    assert None not in by_owner, f"Jobs without a VideoJob owner: {[j.name for j in by_owner[None]]}"
    for name in names:
        assert videojobs.status(name).get("attempts") == 1, diagnostics.report([name])
    assert op.starts == 3
