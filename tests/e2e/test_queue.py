"""Priority queueing end to end: maxRunning 1, six VideoJobs of mixed priorities.

Every VideoJob's input is served by a loopback HTTP server that holds the download until the test releases it,
so the test decides when the running job finishes and can check the queue at every step, without racing it.

The six VideoJobs are created before the operator starts, in two batches whose creationTimestamps differ (they
have one-second resolution): first come, first served is then well defined within each priority. The names
sort against creation order, so an operator that breaks ties by name instead of age fails.

The burst test creates six VideoJobs of one priority within one second while the operator runs: only the
precise arrival time the operator records in `status.queuedAt` can tell them apart, and it must survive a restart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from devkit.harness import (
    Diagnostics,
    HeldInput,
    JobRecorder,
    MediaFactory,
    NotYet,
    ScriptedHTTPServer,
    VideoJobs,
)
from devkit.operator_release import OperatorRelease
from devkit.specs import encode_spec
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

# (name, priority), in creation order, two batches.
FIRST_BATCH = [("z-five", 5), ("y-one", 1), ("x-three", 3)]
SECOND_BATCH = [("c-five", 5), ("b-one", 1), ("a-nine", 9)]
EXPECTED_ORDER = ["y-one", "b-one", "x-three", "z-five", "c-five", "a-nine"]


def test_jobs_start_in_priority_order_with_right_queue_positions(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    job_recorder: JobRecorder,
    held_input: Callable[[str], HeldInput],
    bucket: str,
) -> None:
    # Every input held until released: each admitted job stays Running, so the queue moves only as the test asks.
    held = {name: held_input(name) for name, _ in FIRST_BATCH + SECOND_BATCH}
    uris = {name: h.uri for name, h in held.items()}

    def create(batch: list[tuple[str, int]]) -> str:
        stamps = [
            videojobs.create(
                name, encode_spec(uris[name], f"s3://{bucket}/out/{name}/", priority=prio, hardware="cpu")
            )["metadata"]["creationTimestamp"]
            for name, prio in batch
        ]
        return max(stamps)

    last_first = create(FIRST_BATCH)
    first_second = datetime.fromisoformat(last_first.replace("Z", "+00:00")).timestamp()
    wait_for(lambda: time.time() >= first_second + 1.05, timeout=5, interval=0.05, message="the next second")
    create(SECOND_BATCH)
    created = {o["metadata"]["name"]: o["metadata"]["creationTimestamp"] for o in videojobs.list()}
    assert created[SECOND_BATCH[0][0]] > last_first, created

    run_operator(max_running=1, allow_http=True)

    def queue_state() -> dict[str, tuple[str | None, int | None]]:
        return {
            o["metadata"]["name"]: ((o.get("status") or {}).get("phase"), (o.get("status") or {}).get("queuePosition"))
            for o in videojobs.list()
        }

    for step, running in enumerate(EXPECTED_ORDER, start=1):

        def jobs_created(step: int = step) -> bool:
            return len(job_recorder.snapshot()) >= step

        diagnostics.wait(jobs_created, timeout=120, interval=0.1, message=f"Job #{step} ({running})")
        owners = [j.owner for j in job_recorder.snapshot()]
        assert owners == EXPECTED_ORDER[:step], f"Jobs created in order {owners}, expected {EXPECTED_ORDER[:step]}"
        waiting = EXPECTED_ORDER[step:]
        expected = {name: ("Pending", index) for index, name in enumerate(waiting, start=1)}

        def positions_right(expected: dict[str, tuple[str, int]] = expected) -> bool | NotYet:
            state = queue_state()
            observed = {name: state.get(name) for name in expected}
            return observed == expected or NotYet(observed)

        diagnostics.wait(
            positions_right,
            timeout=30,
            interval=0.2,
            message=f"queue positions at step {step} (running {running}): {expected}",
        )
        diagnostics.wait_phase(running, "Running", timeout=60)
        state = queue_state()
        assert state[running][1] is None, f"the running job {running} still has a queuePosition: {state}"
        assert len(job_recorder.snapshot()) == step, (
            f"more than maxRunning=1 Jobs exist at step {step}: {[j.owner for j in job_recorder.snapshot()]}"
        )
        held[running].release()
        diagnostics.wait_phase(running, "Succeeded", timeout=120)

    assert [j.owner for j in job_recorder.snapshot()] == EXPECTED_ORDER
    assert not job_recorder.duplicates(), job_recorder.duplicates()


def test_raising_the_priority_of_a_pending_job_moves_it_to_the_front(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    job_recorder: JobRecorder,
    media: MediaFactory,
    bucket: str,
) -> None:
    held = held_input("blocker")
    blocker = held.uri
    tiny = media.upload(media.video(), bucket, "in/tiny.mp4")
    run_operator(max_running=1, allow_http=True)
    videojobs.create("blocker", encode_spec(blocker, f"s3://{bucket}/out/blocker/", hardware="cpu"))
    diagnostics.wait_phase("blocker", "Running", timeout=90)
    for name in ("first", "second", "last"):
        videojobs.create(
            name, encode_spec(tiny, f"s3://{bucket}/out/{name}/", hardware="cpu", priority=9 if name == "last" else 5)
        )

    def positions(expected: dict[str, int]) -> Callable[[], bool | NotYet]:
        def check() -> bool | NotYet:
            seen = {n: videojobs.status(n).get("queuePosition") for n in expected}
            return seen == expected or NotYet(seen)

        return check

    diagnostics.wait(positions({"first": 1, "second": 2, "last": 3}), timeout=30, message="initial queue")
    videojobs.patch_spec("last", {"priority": 1})
    diagnostics.wait(positions({"last": 1, "first": 2, "second": 3}), timeout=30, message="queue after the raise")

    held.release()
    diagnostics.wait_all(["blocker", "first", "second", "last"], "Succeeded", timeout=240)
    assert [j.owner for j in job_recorder.snapshot()] == ["blocker", "last", "first", "second"]


# Names sort against creation order: an operator that breaks same-second ties by name admits them backwards.
BURST = ["f-burst", "e-burst", "d-burst", "c-burst", "b-burst", "a-burst"]
PRECISE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def test_a_same_second_burst_is_admitted_in_creation_order_across_a_restart(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    job_recorder: JobRecorder,
    http_server: ScriptedHTTPServer,
    bucket: str,
) -> None:
    held = held_input("blocker")
    blocker = held.uri
    op = run_operator(max_running=1, allow_http=True)
    videojobs.create("blocker", encode_spec(blocker, f"s3://{bucket}/out/blocker/", hardware="cpu"))
    diagnostics.wait_phase("blocker", "Running", timeout=90)

    # Start at the top of a second so that the six creations share one creationTimestamp. Their inputs do not
    # exist (the server answers 404): each fails at once once admitted, the cheapest run that still needs a Job.
    wait_for(lambda: time.time() % 1 < 0.2, timeout=5, interval=0.01, message="the top of a second")
    created = [
        videojobs.create(
            name, encode_spec(http_server.url(f"/{name}.mp4"), f"s3://{bucket}/out/{name}/", hardware="cpu")
        )["metadata"]
        for name in BURST
    ]
    versions = [int(meta["resourceVersion"]) for meta in created]
    assert versions == sorted(versions), f"creation order is the order of the calls: {versions}"
    seconds = {meta["creationTimestamp"] for meta in created}
    assert len(seconds) == 1, f"the burst spans several seconds, so it would not test same-second ties: {seconds}"

    expected = {name: index for index, name in enumerate(BURST, start=1)}

    def positions_by_arrival() -> bool | NotYet:
        seen = {name: videojobs.status(name).get("queuePosition") for name in BURST}
        return seen == expected or NotYet(seen)

    diagnostics.wait(positions_by_arrival, timeout=30, interval=0.2, message=f"queue positions {expected}")
    queued_at = [str(videojobs.status(name).get("queuedAt")) for name in BURST]
    assert all(PRECISE.fullmatch(t) for t in queued_at), queued_at
    assert queued_at == sorted(queued_at) and len(set(queued_at)) == len(queued_at), (
        f"queuedAt must increase strictly in creation order: {dict(zip(BURST, queued_at, strict=True))}"
    )

    # Every admission of the burst happens after a restart: the new operator lists the VideoJobs (in name order)
    # and has no memory of arrivals, so only the recorded queuedAt can keep the order.
    op.restart()
    held.release()

    def all_admitted() -> bool | NotYet:
        owners = [j.owner for j in job_recorder.snapshot()]
        return len(owners) == 1 + len(BURST) or NotYet(owners)

    diagnostics.wait(all_admitted, timeout=240, interval=0.2, message="a Job for every VideoJob")
    assert [j.owner for j in job_recorder.snapshot()] == ["blocker", *BURST]
    assert not job_recorder.duplicates(), job_recorder.duplicates()
    assert [str(videojobs.status(name).get("queuedAt")) for name in BURST] == queued_at, "queuedAt was rewritten"
