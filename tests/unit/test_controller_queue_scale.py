"""A long queue costs the operator little: queue positions are written near the head exactly and further back only
when they moved by a tenth (`admission.shown_position`), and a pass derives nothing again for a queued VideoJob
whose status depends on nothing that changed. Passes run over an index with the API answered in memory (FakeKube);
bench/operator_latency.py measures the same on the real cluster with 10,000 queued."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_controller_reconciler import FakeKube, videojob
from videojob.controller import reconciler as reconciler_module
from videojob.controller.admission import EXACT_POSITIONS, positions_showing, shown_position
from videojob.controller.metrics import Metrics
from videojob.controller.reconciler import Reconciler
from videojob.controller.settings import Settings
from videojob.controller.status import NO_POD_AFTER
from videojob.kubeapi import ApiError

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("written", "actual", "shown"),
    [
        (None, 5000, 5000),
        (5000, 4700, 5000),
        (5000, 4500, 4500),
        (5000, 5400, 5000),
        (5000, 5500, 5500),
        (12, 11, 12),
        (12, 10, 10),
        (10, 9, 9),
        (3, 2, 2),
        (3, 500, 500),
        (20, None, None),
    ],
    ids=[
        "the first position is written",
        "a move under a tenth is not",
        "a move of a tenth is",
        "a move back under a tenth is not",
        "a move back of a tenth is",
        "just behind the head, by one is not",
        "into the exact head it is",
        "within the head every move is",
        "to the front",
        "from the head far back",
        "admitted: no position",
    ],
)
def test_which_queue_position_is_written(written: int | None, actual: int | None, shown: int | None) -> None:
    assert shown_position(written, actual) == shown


def shown(status: Any) -> str:
    """A status as JSON text, to find a message in it (the index holds conditions as `index.Condition` mappings)."""
    return json.dumps(status, default=dict)


def test_positions_showing_is_exactly_where_shown_position_shows_the_same() -> None:
    """A pass skips a queued VideoJob while its real position stays within `positions_showing`: every real position
    inside shows what was derived, and the ones just outside do not (or the skip would hide a needed write)."""
    for written in [None, *range(1, 3001)]:
        for actual in range(1, 3400, 1 if written is None or written < 200 else 7):
            shown = shown_position(written, actual)
            lowest, highest = positions_showing(written, shown)
            assert lowest <= actual <= highest, (written, actual)
            assert shown_position(written, lowest) == shown == shown_position(written, highest), (written, actual)
            assert lowest == 1 or shown_position(written, lowest - 1) != shown, (written, actual)
            assert shown_position(written, highest + 1) != shown, (written, actual)


def test_a_written_position_is_never_more_than_a_tenth_off_however_the_queue_drains() -> None:
    written = None
    writes = 0
    for actual in range(10_000, 0, -1):
        new = shown_position(written, actual)
        if new != written:
            writes += 1
            written = new
        assert written is not None and abs(written - actual) <= max(0.1 * written, 0) + 1e-9
        if actual <= EXACT_POSITIONS:
            assert written == actual
    assert writes < 100, f"{writes} writes for one VideoJob's way through a queue of 10,000"


# --- whole passes ----------------------------------------------------------------------------------------------


def _queue(n: int, max_running: int = 10) -> tuple[Reconciler, FakeKube]:
    kube = FakeKube()
    settings = Settings(max_running=max_running, priority_classes={"urgent": "", "normal": "", "low": ""})
    reconciler = Reconciler(settings, kube, Metrics())  # type: ignore[arg-type]
    kube.store = reconciler.index.videojobs
    for i in range(n):
        body = videojob(f"vj-{i:04d}", created=f"2026-01-01T11:{i // 60:02d}:{i % 60:02d}Z")
        body["metadata"]["resourceVersion"] = str(10 + i)
        reconciler.index.observe("videojobs", "ADDED", body)
    kube.version = max(kube.version, 10 + n)  # its answers are newer than these (the index keeps the newest)
    return reconciler, kube


Pass = Callable[..., Awaitable[None]]


def _run(reconciler: Reconciler, scenario: Callable[[Pass], Awaitable[None]]) -> None:
    """Run `scenario` in one event loop (the reconciler's events and semaphores belong to one), with the status
    writer working; it gets `a_pass`, which runs a pass and waits until its status writes are done."""
    moments = iter(range(10_000))

    async def a_pass(seconds: float | None = None) -> None:
        """A pass a second after the last one, or `seconds` after NOW."""
        await reconciler.reconcile(NOW + timedelta(seconds=next(moments) if seconds is None else seconds))
        await reconciler.admissions_settled()
        while reconciler.status_writer.pending():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # the last write's response reaches the index

    async def main() -> None:
        writers = reconciler.status_writer.start()
        try:
            await scenario(a_pass)
        finally:
            for writer in writers:
                writer.cancel()

    asyncio.run(main())


def _free_one_slot(reconciler: Reconciler, kube: FakeKube) -> None:
    uid = next(uid for uid in reconciler.index.videojobs.items if uid in kube.jobs)
    reconciler.index.observe("videojobs", "DELETED", reconciler.index.videojobs.items[uid])
    del kube.jobs[uid]


def _derivations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the VideoJobs whose status a pass derives (`derive_status`), from now on."""
    derived: list[str] = []
    real = reconciler_module.derive_status

    def counting(vj: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        derived.append(vj["metadata"]["name"])
        return real(vj, *args, **kwargs)

    monkeypatch.setattr(reconciler_module, "derive_status", counting)
    return derived


def _positions(reconciler: Reconciler) -> dict[str, int]:
    return {
        uid: vj["status"]["queuePosition"]
        for uid, vj in reconciler.index.videojobs.items.items()
        if (vj.get("status") or {}).get("queuePosition")
    }


def test_a_settled_queue_is_neither_derived_nor_written_again(monkeypatch: pytest.MonkeyPatch) -> None:
    reconciler, kube = _queue(300)

    async def scenario(a_pass: Pass) -> None:
        await a_pass()
        await a_pass()
        assert len(kube.jobs) == 10 and len(_positions(reconciler)) == 290
        written = len(kube.status_patches)
        assert written <= 300 + 10, "one status per VideoJob, and the admitted ones' Job"
        derived = _derivations(monkeypatch)
        await a_pass()
        await a_pass()
        assert len(kube.status_patches) == written
        queued = [
            name
            for name in derived
            if (reconciler.index.videojobs.items[f"uid-{name}"].get("status") or {}).get("queuePosition")
        ]
        assert not queued, "queued VideoJobs were derived again though nothing changed"

    _run(reconciler, scenario)


def test_a_freed_slot_rewrites_the_head_of_the_queue_not_all_of_it() -> None:
    reconciler, kube = _queue(300)

    async def scenario(a_pass: Pass) -> None:
        await a_pass()
        await a_pass()
        before = len(kube.status_patches)
        _free_one_slot(reconciler, kube)
        await a_pass()
        writes = len(kube.status_patches) - before
        assert len(kube.jobs) == 10
        assert writes <= EXACT_POSITIONS + 5, f"{writes} status writes for one admission (289 VideoJobs queued)"
        for _ in range(60):  # drain a fifth of the queue
            _free_one_slot(reconciler, kube)
            await a_pass()

    _run(reconciler, scenario)
    shown = _positions(reconciler)
    order = sorted(shown, key=lambda uid: reconciler.index.videojobs.items[uid]["metadata"]["name"])
    truth = {uid: i for i, uid in enumerate(order, start=1)}
    off = [(shown[uid], truth[uid]) for uid in shown if abs(shown[uid] - truth[uid]) > 0.1 * shown[uid]]
    assert not off, f"written positions more than a tenth off: {off}"
    assert all(shown[uid] == truth[uid] for uid in shown if truth[uid] <= EXACT_POSITIONS)


def test_a_status_write_that_failed_is_derived_and_sent_again() -> None:
    reconciler, kube = _queue(30)
    failing = True
    real = kube.patch_videojob_status

    def flaky(namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        if failing and name == "vj-0025":
            raise ConnectionResetError("the API server went away")
        return real(namespace, name, patch)

    kube.patch_videojob_status = flaky  # type: ignore[method-assign]

    async def scenario(a_pass: Pass) -> None:
        nonlocal failing
        await a_pass()
        assert "queuePosition" not in (reconciler.index.videojobs.items["uid-vj-0025"].get("status") or {})
        failing = False
        await a_pass()

    _run(reconciler, scenario)
    assert reconciler.index.videojobs.items["uid-vj-0025"]["status"]["queuePosition"] == 16


def _sorted_in_each_pass(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The uids `Reconciler._sort` is asked about (the full look at a VideoJob), from now on."""
    seen: list[str] = []
    real = Reconciler._sort

    def counting(self: Reconciler, p: Any, uid: str, *args: Any) -> None:
        seen.append(uid)
        real(self, p, uid, *args)

    monkeypatch.setattr(Reconciler, "_sort", counting)
    return seen


def test_a_queued_videojob_is_looked_at_again_only_when_it_or_a_preset_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reconciler, kube = _queue(300)

    async def scenario(a_pass: Pass) -> None:
        await a_pass()
        await a_pass()
        seen = _sorted_in_each_pass(monkeypatch)
        await a_pass()
        assert [uid for uid in seen if uid not in kube.jobs] == [], "unchanged queued VideoJobs were sorted again"
        assert len(kube.jobs) == 10

        changed = copy.deepcopy(reconciler.index.videojobs.items["uid-vj-0200"])
        changed["metadata"]["resourceVersion"] = "900000"
        changed["spec"]["priority"] = 1
        reconciler.index.observe("videojobs", "MODIFIED", changed)
        seen.clear()
        _free_one_slot(reconciler, kube)
        await a_pass()
        assert [uid for uid in seen if uid not in kube.jobs] == []  # it was looked at, and admitted first
        assert "uid-vj-0200" in seen and "uid-vj-0200" in kube.jobs

        preset = {"metadata": {"name": "web", "uid": "preset-1", "resourceVersion": "5"}, "spec": {"container": "mp4"}}
        reconciler.index.observe("clusterpresets", "ADDED", preset)
        seen.clear()
        await a_pass()
        assert len([uid for uid in seen if uid not in kube.jobs]) == 289, "a new preset may be the one a job names"

    _run(reconciler, scenario)


@pytest.mark.parametrize(("ahead", "running"), [(20, False), (0, True)], ids=["queued", "running"])
def test_a_videojob_whose_finalizer_was_not_written_is_tried_again_every_pass(ahead: int, running: bool) -> None:
    """Queued, or once it runs: a running VideoJob is counted without a look (`quiet`) only when the last pass had
    nothing else to do for it."""
    reconciler, kube = _queue(ahead)
    body = videojob("keeps-artifacts", created="2026-01-01T11:59:59Z", artifactReclaimPolicy="Delete")
    reconciler.index.observe("videojobs", "ADDED", body)
    asked: list[tuple[Any, ...]] = []
    kube.patch_videojob_finalizers = lambda *args: asked.append(args)  # type: ignore[method-assign]

    async def scenario(a_pass: Pass) -> None:
        for _ in range(4):
            await a_pass()

    _run(reconciler, scenario)
    assert ("uid-keeps-artifacts" in reconciler.index.jobs_by_videojob()) is running
    assert len(asked) == 4, "the write failed to show in the index, so each pass asks again"


def test_a_relist_keeps_the_copy_the_index_holds_of_each_videojob_that_did_not_change() -> None:
    reconciler, kube = _queue(3)
    before = dict(reconciler.index.videojobs.items)
    listed = [copy.deepcopy(body) for body in before.values()]
    listed[0]["metadata"]["resourceVersion"] = "99999"
    changed = str(listed[0]["metadata"]["uid"])

    def list_page(path: str, selector: str | None, token: str | None) -> tuple[list[Any], str | None, str]:
        items = listed if path.endswith("/videojobs") else []
        if token is None:  # two pages
            return [copy.deepcopy(body) for body in items[:2]], "page-2", "100000"
        return [copy.deepcopy(body) for body in items[2:]], None, "100000"

    kube.list_page = list_page  # type: ignore[attr-defined]
    asyncio.run(reconciler.relist())
    after = reconciler.index.videojobs.items
    assert after.keys() == before.keys()
    assert after[changed] is not before[changed] and after[changed]["metadata"]["resourceVersion"] == "99999"
    assert all(after[uid] is before[uid] for uid in before if uid != changed), "an unchanged VideoJob was copied"


# --- Jobs the API server does not create -------------------------------------------------------------------------


@pytest.mark.parametrize("first_write_lost", [False, True])
def test_a_job_refused_for_good_fails_its_videojob_once_with_the_reason(first_write_lost: bool) -> None:
    """Also when the status write after the refusal is lost: the next passes fail it from what the refusal said,
    without asking the API server for its Job again."""
    reconciler, kube = _queue(1)
    tried: list[str] = []

    def refuse(manifest: dict[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        tried.append(owner_uid)
        raise ApiError(422, "Unprocessable Entity", json.dumps({"message": "Job.batch is invalid: too long"}))

    kube.create_job = refuse  # type: ignore[method-assign]
    if first_write_lost:
        write = kube.patch_videojob_status
        lost = [1]

        def lose_once(namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
            if lost and patch.get("phase") == "Failed":
                lost.pop()
                raise ApiError(500, "Internal Server Error", json.dumps({"message": "etcd timeout"}))
            return write(namespace, name, patch)

        kube.patch_videojob_status = lose_once  # type: ignore[method-assign]

    async def scenario(a_pass: Pass) -> None:
        for _ in range(3):
            await a_pass()

    _run(reconciler, scenario)
    (vj,) = reconciler.index.videojobs.items.values()
    assert vj["status"]["phase"] == "Failed"
    assert "Job.batch is invalid: too long" in shown(vj["status"])
    assert len(tried) == 1


def test_a_job_that_could_not_be_created_yet_waits_with_the_reason_and_is_tried_again() -> None:
    reconciler, kube = _queue(1)
    create = kube.create_job
    outage = [True]

    def flaky(manifest: dict[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        if outage[0]:
            raise ApiError(503, "Service Unavailable", json.dumps({"message": "etcd leader changed"}))
        return create(manifest, owner_uid)

    kube.create_job = flaky  # type: ignore[method-assign]
    statuses: list[dict[str, Any]] = []

    async def scenario(a_pass: Pass) -> None:
        await a_pass()
        statuses.append(copy.deepcopy(next(iter(reconciler.index.videojobs.items.values()))["status"]))
        outage[0] = False
        await a_pass()

    _run(reconciler, scenario)
    assert statuses[0]["phase"] == "Pending" and "etcd leader changed" in shown(statuses[0])
    assert len(kube.jobs) == 1
    (vj,) = reconciler.index.videojobs.items.values()
    assert vj["status"].get("jobName") and "etcd leader changed" not in shown(vj["status"])


def test_a_pass_does_not_wait_for_a_jobs_creation_nor_admit_it_twice_nor_give_its_slot_away() -> None:
    """A Job whose creation is slow holds its slot while passes go on (the API server answers in its own time)."""
    reconciler, kube = _queue(2, max_running=1)
    create = kube.create_job
    answer = threading.Event()
    asked: list[str] = []

    def slow(manifest: dict[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        asked.append(owner_uid)
        answer.wait(10)
        return create(manifest, owner_uid)

    kube.create_job = slow  # type: ignore[method-assign]
    seen: dict[str, Any] = {}

    async def scenario(a_pass: Pass) -> None:
        for second in (1, 2):  # passes while the first Job is being created
            await asyncio.wait_for(reconciler.reconcile(NOW + timedelta(seconds=second)), 5)
        while reconciler.status_writer.pending():
            await asyncio.sleep(0.001)
        seen["admitting"] = set(reconciler.admitting)
        seen["positions"] = _positions(reconciler)
        answer.set()
        await reconciler.admissions_settled()
        while reconciler.status_writer.pending():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # the write's response reaches the index
        seen["status"] = copy.deepcopy(reconciler.index.videojobs.items["uid-vj-0000"].get("status"))
        await a_pass()

    _run(reconciler, scenario)
    assert asked == ["uid-vj-0000"], "one creation, by the first pass"
    assert seen["admitting"] == {"uid-vj-0000"}
    assert seen["positions"] == {"uid-vj-0001": 1}, "the second waits behind the slot being filled"
    assert (seen["status"] or {}).get("jobName"), "its status is written as soon as its Job exists, before a pass"
    assert set(kube.jobs) == {"uid-vj-0000"}
    assert _positions(reconciler) == {"uid-vj-0001": 1}
    assert reconciler.index.videojobs.items["uid-vj-0000"]["status"].get("jobName")


def test_the_notifier_is_asked_only_about_changed_videojobs_and_ended_deliveries() -> None:
    """A delivery becomes due only when its VideoJob changes, so a pass over 10,000 queued VideoJobs hands the
    Notifier those that changed since the last pass, and those whose delivery task ended (to retry a failure)."""
    reconciler, _ = _queue(300)
    asked: list[list[str]] = []
    reconciler.notifier.consider = lambda items, now: asked.append(  # type: ignore[method-assign]
        sorted(vj["metadata"]["name"] for vj in items)
    )

    async def scenario(a_pass: Pass) -> None:
        await a_pass()
        assert len(asked[0]) == 300, "the first pass looks at all of them"
        await a_pass()
        await a_pass()
        asked.clear()
        await a_pass()
        assert asked == [[]], "a settled queue: nothing to look at"
        changed = copy.deepcopy(reconciler.index.videojobs.items["uid-vj-0200"])
        changed["metadata"]["resourceVersion"] = "900000"
        reconciler.index.observe("videojobs", "MODIFIED", changed)
        reconciler.notifier.ended.add("uid-vj-0100")
        await a_pass()
        assert asked[-1] == ["vj-0100", "vj-0200"]

    _run(reconciler, scenario)


def test_admitted_videojobs_are_derived_again_only_when_their_objects_or_the_clock_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 admitted VideoJobs whose Jobs have no pod yet: a pass derives a status again only for one whose Job
    changed, and for all of them once their Jobs have had no pod for NO_POD_AFTER (the clock changes it)."""
    reconciler, kube = _queue(300, max_running=300)

    async def scenario(at: Pass) -> None:
        for second in range(3):
            await at(second)
        for job in kube.jobs.values():
            reconciler.index.observe("jobs", "ADDED", job)
        await at(3)
        await at(4)
        assert len(kube.jobs) == 300
        derived = _derivations(monkeypatch)
        written = len(kube.status_patches)
        await at(5)
        assert derived == [], "nothing changed: nothing derived again"
        job = copy.deepcopy(kube.jobs["uid-vj-0007"])
        job["metadata"]["resourceVersion"] = "900000"
        reconciler.index.observe("jobs", "MODIFIED", job)
        await at(6)
        assert derived == ["vj-0007"]
        assert len(kube.status_patches) == written
        derived.clear()
        await at(NO_POD_AFTER + 1)  # the Jobs were created at NOW
        assert len(derived) == 300
        reasons = {(vj.get("status") or {}).get("reason") for vj in reconciler.index.videojobs.items.values()}
        assert reasons == {"NoPod"}

    _run(reconciler, scenario)


@pytest.mark.parametrize("held_first", [True, False], ids=["held, then no free slot", "no free slot, then held"])
def test_a_queued_videojob_that_did_not_change_is_derived_again_when_what_holds_it_does(held_first: bool) -> None:
    """A pass skips a queued VideoJob whose object and shown position are unchanged, but not one whose reason to wait
    changed. "a" waits at position 1 throughout, its object untouched: for its namespace's limit of 1 while slots
    are free, or for a slot once other namespaces' VideoJobs (priority 1) take them all; its status must follow."""
    reconciler, kube = _queue(0)
    reconciler.settings = Settings(max_running=2 if held_first else 3, namespace_max_running={"media": 1})
    items = reconciler.index.videojobs.items

    def arrive(name: str, namespace: str = "media", **spec: Any) -> None:
        body = videojob(name, created=f"2026-01-01T11:00:0{len(items)}Z", **spec)
        body["metadata"] |= {"namespace": namespace, "resourceVersion": kube._next()}
        reconciler.index.observe("videojobs", "ADDED", body)

    def says_held() -> bool:
        status = items["uid-a"]["status"]
        assert status["queuePosition"] == 1
        return "limit of 1" in shown(status)

    async def scenario(a_pass: Pass) -> None:
        arrive("running")
        if not held_first:
            arrive("b1", namespace="other", priority=1)
            arrive("b2", namespace="other", priority=1)
        arrive("a")
        await a_pass()
        await a_pass()
        assert says_held() is held_first
        if held_first:  # the free slot is taken
            arrive("b1", namespace="other", priority=1)
        else:  # a slot frees, but its namespace runs its limit
            reconciler.index.observe("videojobs", "DELETED", items["uid-b1"])
            del kube.jobs["uid-b1"]
        await a_pass()
        await a_pass()
        assert says_held() is not held_first, "its status still says what held it before"

    _run(reconciler, scenario)


def test_entries_of_videojobs_no_longer_waiting_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Reconciler.queued` keeps an entry per waiting VideoJob object; those of older versions and of admitted or
    deleted VideoJobs are only held, and are swept once more than STALE_QUEUED_ENTRIES piled up (memory stays
    bounded however long the queue drains)."""
    monkeypatch.setattr(reconciler_module, "STALE_QUEUED_ENTRIES", 5)
    reconciler, kube = _queue(60)
    sizes: list[tuple[int, int]] = []

    async def scenario(a_pass: Pass) -> None:
        await a_pass()
        for _ in range(30):
            _free_one_slot(reconciler, kube)
            await a_pass()
            waiting = sum(
                1 for vj in reconciler.index.videojobs.items.values() if vj["metadata"]["uid"] not in kube.jobs
            )
            sizes.append((len(reconciler.queued), waiting))

    _run(reconciler, scenario)
    assert all(entries <= waiting + 5 for entries, waiting in sizes), sizes
