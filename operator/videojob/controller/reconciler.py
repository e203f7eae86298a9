"""The reconcile loop: one debounced pass over every VideoJob at a time.

Watches (handlers.py) only feed the index and wake the loop. A pass then
1. stamps VideoJobs seen for the first time with a precise arrival time (first come, first served), then sorts
   them: finished (TTL), active (a Job exists or was made), impossible (operator-level problem, cancelled before
   admission) and pending;
2. derives each active VideoJob's status from its Job and pods, which frees the slots of the finished ones;
3. plans admission for all namespaces together (admission.plan_admission) and starts creating the Jobs, with
   bounded parallelism (`settings.api_workers` threads), without waiting for them: until its Job is in the index,
   an admitted VideoJob holds its slot (`admitting`), and its status is written once the Job exists;
4. deletes the Jobs of cancelled VideoJobs and the VideoJobs whose TTL ran out, keeps the artifact finalizer;
5. hands every status that changed to the StatusWriter, which patches them in the background (a minimal merge
   patch, admissions and phase changes first, queue positions after) and posts an Event per transition.

Why it is restart-safe: nothing is remembered between passes that is not in the API server (but for the precise
arrival time of a VideoJob whose status does not record it in `queuedAt` yet, see index.py). On start the index
is filled from a list before the first pass (and relisted every `relist_seconds`); a Job's name is derived from
its VideoJob's uid, so creating it again answers 409 and the existing Job is adopted (checked by its controller
reference);
admission counts Jobs that exist *and* VideoJobs whose status names a Job, so an operator killed between
creating a Job and recording it neither over-admits nor duplicates; statuses are recomputed from the real Job
and pods, so they converge to the truth whatever happened while the operator was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from videojob.api import runtime
from videojob.api.conditions import Reason
from videojob.api.models import GROUP, ArtifactReclaimPolicy, Phase, VideoJobSpec
from videojob.api.runtime import output_uris
from videojob.controller.admission import (
    KeptOrder,
    RunningCounts,
    admit_in_order,
    check_admissible,
    positions_showing,
    shown_position,
    sort_key,
)
from videojob.controller.index import Body, Index, slim_job
from videojob.controller.jobs import CONTAINER_NAME, SELECTOR, build_job_manifest, build_join_manifest
from videojob.controller.kube import (
    Kube,
    NotOurs,
    cluster_presets_path,
    describe,
    jobs_path,
    pods_path,
    presets_path,
    videojobs_path,
)
from videojob.controller.memory import HeapTrimmer, malloc_trim
from videojob.controller.metrics import Metrics
from videojob.controller.notify import Notifier
from videojob.controller.presets import Resolution, find_preset, resolve
from videojob.controller.rbac import build_transcoder_rbac, legacy_transcoder_rbac
from videojob.controller.settings import Settings
from videojob.controller.status import (
    TERMINAL,
    aggregate_progress,
    chunked_view,
    conditions,
    derive_status,
    derived_until,
    job_condition,
    job_hardware,
    job_segments,
    needs_join,
    parse_time,
    running_slots,
    status_patch,
    stops_its_job,
    succeeded_result,
    timestamp,
    transcoder_state,
    transition_events,
    ttl_remaining,
)
from videojob.kubeapi import ApiError

log = logging.getLogger("videojob.operator")

# Kept only on VideoJobs with artifactReclaimPolicy: Delete, so deleting any other VideoJob never waits on us.
FINALIZER = f"{GROUP}/artifacts"
ARTIFACT_DELETION_GIVE_UP_SECONDS = 300
RETRY_SECONDS = 1.0  # after a failed call, the next pass comes this soon, doubling up to MAX_RETRY_SECONDS
MAX_RETRY_SECONDS = 30.0
# `Reconciler.queued` entries of VideoJob objects no longer waiting (an older version, gone) held before a pass
# looks for them: each holds an old object (a few KB), and looking among 10,000 costs a pass about a millisecond
STALE_QUEUED_ENTRIES = 256

T = TypeVar("T")
Desired = tuple[Mapping[str, Any], dict[str, Any], list[Body]]  # the VideoJob, its new status, its pods


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"invalid spec: {where}: {first.get('msg')}" if where else f"invalid spec: {first.get('msg')}"


class NotLeading(RuntimeError):
    """This replica no longer holds the leader election Lease: it must not act (leader.py)."""


@dataclass
class _Pass:
    """What one reconcile pass gathers about the VideoJobs before it admits and writes."""

    now: datetime
    desired: dict[str, Desired] = field(default_factory=dict)
    pending: list[Mapping[str, Any]] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=lambda: {"cpu": 0, "nvidia": 0})
    running_in: Counter[str] = field(default_factory=Counter)  # namespace -> its admitted, unfinished VideoJobs
    work: list[Any] = field(default_factory=list)
    next_ttl: float | None = None
    joins: dict[str, Body] = field(default_factory=dict)  # uid -> the join Job of a chunked VideoJob
    fine: set[str] = field(default_factory=set)  # uids handled without an error
    # the namespace of each queued VideoJob whose wanted status is the one of the last pass (written, or waiting in
    # the status writer): nothing to derive or write, only to count
    settled: list[str] = field(default_factory=list)
    # (namespace, phase) of each VideoJob with a Job or a final phase whose status is the one of the last pass
    unchanged: list[tuple[str, str]] = field(default_factory=list)
    observed: set[str] = field(default_factory=set)  # uids of those (`Reconciler._observe`)
    broken: set[str] = field(default_factory=set)  # uids left out because of one
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> the preset its admission uses
    lookup: tuple[Mapping[tuple[str, str], Body], Mapping[str, Body]] | None = None  # Index.presets_by_name
    presets_version: tuple[int, int] | None = None  # Index.presets_version at the start of the pass


@dataclass(frozen=True, slots=True)  # slots: one per VideoJob, a __dict__ each was 10,000 dicts
class SpecFacts:
    """What passes need of a valid spec, kept per VideoJob instead of the model itself (10,000 models take tens of
    MB): whether its artifacts are deleted with it, the objects it writes, and why the operator can never run it."""

    reclaim_delete: bool
    outputs: tuple[str, ...]  # runtime.output_uris
    inadmissible: str | None  # admission.check_admissible


@dataclass(frozen=True, slots=True)
class _Observed:
    """What a pass derived for a VideoJob with a Job or a final phase (`Reconciler._observe`), and from what."""

    inputs: tuple[Any, ...]  # (the VideoJob, its Job, progress, arrival, *its pods): the objects, not copies
    until: datetime  # status.derived_until
    phase: str
    hardware: str
    stops_job: bool


def _same_inputs(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """The same objects (the index replaces an object that changes) and the same progress and arrival."""
    return (
        len(a) == len(b)
        and a[0] is b[0]
        and a[1] is b[1]
        and a[2] == b[2]
        and a[3] == b[3]
        and all(x is y for x, y in zip(a[4:], b[4:], strict=True))
    )


def _count_running(p: _Pass, vj: Mapping[str, Any], hardware: str, slots: int = 1) -> None:
    """A running VideoJob: `slots` of the total (one per segment of a chunked one), one of its namespace's."""
    p.running[hardware] += slots
    p.running_in[str(vj["metadata"].get("namespace", ""))] += 1


def _hardware(status: Mapping[str, Any]) -> str:
    return "nvidia" if status.get("hardware") == "nvidia" else "cpu"


def _job_hardware(job: Body) -> str:
    return "nvidia" if job_hardware(job) == "nvidia" else "cpu"


_URGENT_FIELDS = frozenset({"jobName", "attempts", "node", "startedAt", "completedAt"})


def without_conditions(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status as a wish of the status writer keeps it. Its conditions follow from its other fields (`conditions`)
    and are most of its memory, six dicts; in a burst of 10,000 VideoJobs thousands of wishes wait for the API
    server, so the write derives them again when it starts (`Reconciler.write_status`)."""
    return {key: value for key, value in status.items() if key != "conditions"}


def _is_urgent(patch: Mapping[str, Any]) -> bool:
    """Admissions and phase changes are written before queue positions (which move for every queued job)."""
    return bool(_URGENT_FIELDS & set(patch)) or patch.get("phase") not in (None, "Pending")


class _Workers:
    """`workers` tasks that take items from the subclass's queue (`_take`: None when it is empty) and handle them,
    sleeping on one Event while it is empty (created at first use, so that it binds to the running loop)."""

    task_name = "videojob-worker"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._ready: asyncio.Event | None = None

    @property
    def ready(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._work(), name=f"{self.task_name}-{i}") for i in range(self.workers)]

    def _take(self) -> Any | None:
        raise NotImplementedError

    async def _handle(self, item: Any) -> None:
        raise NotImplementedError

    async def _work(self) -> None:
        while True:
            item = self._take()
            if item is None:
                self.ready.clear()
                await self.ready.wait()
                continue
            await self._handle(item)


class StatusWriter(_Workers):
    """Writes statuses in the background, newest wish per VideoJob, transitions before queue positions.

    A pass only says what each status should be; when positions move for hundreds of queued VideoJobs, their
    patches must not hold up the next pass (which admits the next Job). Submitting again before a write happened
    replaces the wish (writes coalesce); each write re-reads the VideoJob from the index, so it patches only the
    difference that is left. A wish also carries the moment its pass looked (`now`), for what the write derives.
    """

    task_name = "videojob-status"

    def __init__(
        self,
        write: Callable[[str, dict[str, Any], list[Body], str | None, datetime | None], Awaitable[None]],
        workers: int,
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        super().__init__(workers)
        self.write = write
        self.on_error = on_error
        # uid -> (status, pods, basis, now): basis is the phase of the status the wish was computed from.
        self.wishes: dict[str, tuple[dict[str, Any], list[Body], str | None, datetime | None]] = {}
        self.urgent: dict[str, None] = {}  # insertion-ordered sets of uids
        self.background: dict[str, None] = {}
        # uids being written now: a newer wish for one waits until that write's answer is in the index (as a
        # client-go workqueue holds an item being processed), or it would be computed against the old status and
        # sent again, with its Events
        self.writing: set[str] = set()

    def submit(
        self,
        uid: str,
        status: dict[str, Any],
        pods: list[Body],
        urgent: bool,
        basis: str | None = None,
        now: datetime | None = None,
    ) -> None:
        self.wishes[uid] = (status, pods, basis, now)
        if urgent:
            self.background.pop(uid, None)
            self.urgent[uid] = None
        elif uid not in self.urgent:
            self.background[uid] = None
        self.ready.set()

    def discard(self, uid: str) -> None:
        self.wishes.pop(uid, None)

    def pending(self) -> int:
        return len(self.wishes)

    def _take(self) -> str | None:
        writing = self.writing
        for queue in (self.urgent, self.background):
            for uid in queue:  # skips at most one uid per worker
                if uid not in writing:
                    del queue[uid]
                    return uid
        return None

    async def _handle(self, uid: str) -> None:
        wish = self.wishes.pop(uid, None)
        if wish is None:  # discarded since it was submitted
            return
        self.writing.add(uid)
        try:
            await self.write(uid, *wish)
        except Exception as e:
            self.on_error(uid, e)
        finally:
            self.writing.discard(uid)
            if uid in self.wishes:
                self.ready.set()  # the newer wish that waited for this write


def event_workers(settings: Settings) -> int:
    """Tasks (and threads) posting Events beside the api_workers writing statuses."""
    return max(1, settings.api_workers // 2)


class EventPoster(_Workers):
    """Posts the Events of status transitions in the background, so that a status write never waits for its Events.

    A newly queued VideoJob's status patch and its Queued Event were two calls in a row on one status writer, which
    halved how fast 10,000 new VideoJobs got their statuses. Events are best effort (client-go's recorder drops them
    too when its queue is full): at most `limit` wait, and beyond that the oldest are dropped and counted.
    """

    task_name = "videojob-events"

    def __init__(self, post: Callable[..., Awaitable[None]], workers: int, limit: int = 10_000) -> None:
        super().__init__(workers)
        self.post = post
        self.limit = limit
        self.queue: deque[tuple[Any, ...]] = deque()
        self.dropped = 0

    def submit(self, vj: Mapping[str, Any], event_type: str, reason: str, message: str, when: str) -> None:
        """Queue one Event (the arguments of Kube.create_event). Only the VideoJob's identity waits with it: in a
        burst thousands wait, and each whole VideoJob would be an old version held alive (a few KB each)."""
        meta = vj["metadata"]
        when = sys.intern(when)  # to the second: one string for the hundreds of a burst
        event = (meta.get("name"), meta.get("namespace"), meta.get("uid"), event_type, reason, message, when)
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("%d Events dropped so far: more were waiting than %d", self.dropped, self.limit)
        self.queue.append(event)
        self.ready.set()

    async def drain(self) -> None:
        """Post every Event waiting now (shutdown, tests)."""
        while self.queue:
            await self._handle(self.queue.popleft())

    def _take(self) -> tuple[Any, ...] | None:
        return self.queue.popleft() if self.queue else None

    async def _handle(self, event: tuple[Any, ...]) -> None:
        name, namespace, uid, *rest = event
        about = {"metadata": {"name": name, "namespace": namespace, "uid": uid}}
        try:
            await self.post(about, *rest)
        except Exception as e:  # the transition itself is recorded; a lost Event is not worth a retry
            log.warning("cannot post Event %s: %s", event[4], describe(e))


class Reconciler:
    def __init__(self, settings: Settings, kube: Kube, metrics: Metrics, index: Index | None = None) -> None:
        self.settings = settings
        self.kube = kube
        self.metrics = metrics
        self.index = index or Index()
        self.executor = ThreadPoolExecutor(max_workers=settings.api_workers, thread_name_prefix="kube")
        # Status writes have threads of their own, so a burst of them never delays creating Jobs.
        self.status_executor = ThreadPoolExecutor(
            max_workers=settings.api_workers + event_workers(settings), thread_name_prefix="status"
        )
        self.status_writer = StatusWriter(self.write_status, settings.api_workers, self._write_failed)
        self.events = EventPoster(
            lambda *event: self.call_status(self.kube.create_event, *event), event_workers(settings)
        )
        self.rbac_done: set[str] = set()
        self.deleting_jobs: set[str] = set()
        self.last_list = 0.0
        self.pass_started = 0.0
        self._wakeup: asyncio.Event | None = None
        self.admission_slots = asyncio.Semaphore(settings.api_workers)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self.failed_passes = 0
        self.failed_admissions = 0  # Job creations in a row that must be retried (backoff)
        # uid -> (its task, hardware, slots) of each VideoJob whose Job is being created: passes go on meanwhile
        self.admitting: dict[str, tuple[asyncio.Task[None], str, int]] = {}
        self.refused: dict[str, str] = {}  # uid -> why the API server refused its Job for good (it fails)
        self.last_pass_seconds = 0.0
        self.heap = HeapTrimmer(malloc_trim())
        self.blocked: dict[str, str] = {}  # uid -> why creating its Job failed last time (retried)
        self.broken: dict[str, str] = {}  # uid -> why the last pass could not handle it (reported once)
        # uid -> {pod uid: percent}: the last progress lines read from the VideoJob's running pods (poll_progress)
        self.progress: dict[str, dict[str, float]] = {}
        self.specs: dict[str, tuple[Any, SpecFacts | None, str | None]] = {}  # uid -> (generation, facts, problem)
        # id of a queued VideoJob object -> what its status was last derived from (`_desire_queued`: the object, the
        # real positions that show the same, why its Job failed, its arrival, what holds it, whether neither, its
        # uid and namespace): derived again only when that changed, so a pass over 10,000 queued VideoJobs costs
        # little more than looking at each once. Keyed by the object (a changed VideoJob is a new object in the
        # index; the entry holds it, so its id is not reused): the pass finds the entry without reading the body.
        self.queued: dict[int, tuple[Any, ...]] = {}
        # uid -> what the last pass derived for a VideoJob with a Job or a final phase: derived again only when its
        # VideoJob, Job, pods or progress changed or the clock can change it, so a pass over 10,000 admitted or
        # finished VideoJobs neither derives nor holds 10,000 new statuses
        self.observed: dict[str, _Observed] = {}
        # uid -> (its `observed` entry, its running slots, its namespace) of a running VideoJob for which the last
        # pass had nothing to do but count it: while that entry holds, the next pass counts it without a look
        # (`_still_quiet`)
        self.quiet: dict[str, tuple[_Observed, int, str]] = {}
        self.queue_order = KeptOrder(lambda vj: sort_key(vj, self.index.arrivals))
        # uid -> what it queues as (the index's object, or its spec merged with its preset) of a VideoJob the last
        # pass found pending with nothing to do: while neither it nor the presets changed and it has no Job, it is
        # pending again without a look at it (most of a pass over 10,000 queued VideoJobs). A changed VideoJob is
        # dropped in the next pass, so this never keeps an object the index replaced for longer.
        self.still_pending: dict[str, Mapping[str, Any]] = {}
        self.still_pending_snapshots: dict[str, dict[str, Any]] = {}  # uid -> its preset snapshot, when it has one
        self.still_pending_presets: tuple[int, int] | None = None  # the presets version they were found under
        self.changed_videojobs = self.index.videojobs.track()  # what changed since the last pass looked
        # uid -> (what it was worked out from, the resolution of its preset), for pending VideoJobs naming one
        self.resolutions: dict[str, tuple[tuple[Any, ...], Resolution]] = {}
        # Webhooks (notify.py): it reads statuses from the index and writes status.notifications only.
        # Leader election (leader.py) replaces this with "does this replica still hold the Lease": every API call of
        # the loop, the status writer and the notifier asks it first.
        self.may_act: Callable[[], bool] = lambda: True
        self.notifier = Notifier(
            settings,
            kube,
            self.call_status,
            lambda uid: self.index.videojobs.items.get(uid),
            lambda body: self.index.videojobs.upsert(body),
        )  # relist replaces the dicts
        self.changed_for_notifier = self.index.videojobs.track()

    # --- feeding -------------------------------------------------------------------------------------------

    @property
    def wakeup(self) -> asyncio.Event:
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        return self._wakeup

    def observe(self, kind: str, event_type: str | None, body: Body) -> None:
        """A watch event (kind: videojobs, jobs, pods, presets or clusterpresets): update the index and ask for a
        pass."""
        self.index.observe(kind, event_type, body)
        self.wakeup.set()

    def wake_in(self, seconds: float) -> None:
        """Ask for a pass in `seconds` (the earliest of the requests wins)."""
        loop = asyncio.get_running_loop()
        at = loop.time() + max(seconds, 0)
        if self._timer is not None and not self._timer.cancelled() and loop.time() < self._timer_at <= at:
            return  # an earlier wake-up is already due
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self.wakeup.set)

    def _check_leading(self) -> None:
        if not self.may_act():
            raise NotLeading("this replica does not hold the leader election Lease")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_leading()
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def call_status(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_leading()
        return await asyncio.get_running_loop().run_in_executor(self.status_executor, fn, *args)

    def _write_failed(self, uid: str, error: BaseException) -> None:
        log.warning("status write failed: %s", describe(error))
        current = self.index.videojobs.items.get(uid)
        if current is not None:
            self.queued.pop(id(current), None)  # derived and submitted again by the next pass
        self.observed.pop(uid, None)
        self.metrics.reconcile_errors.inc()
        self.wake_in(RETRY_SECONDS)  # the next pass recomputes and resubmits it
        vj = self.index.videojobs.items.get(uid)
        if vj is not None and isinstance(error, ApiError) and error.status in (400, 422):
            # The API server refuses this status for good (a value the schema does not allow): say so on the
            # VideoJob, once; the others go on.
            text = f"the operator cannot write this VideoJob's status: {describe(error)}"[:1024]
            if self.broken.get(uid) != text:
                self.broken[uid] = text
                asyncio.get_running_loop().create_task(self._report_quietly(vj, text))

    async def _report_quietly(self, vj: Mapping[str, Any], text: str) -> None:
        try:
            await self.call_status(
                self.kube.create_event, vj, "Warning", Reason.RECONCILE_ERROR, text, timestamp(datetime.now(UTC))
            )
        except Exception as e:
            log.warning("cannot post Event %s: %s", Reason.RECONCILE_ERROR, describe(e))

    async def relist(self) -> None:
        """Replace the index with fresh lists (on start, then every relist_seconds)."""
        namespaces: list[str | None] = list(self.settings.namespaces) or [None]
        kinds: list[tuple[str, Callable[[str | None], str], str | None]] = [
            ("videojobs", lambda ns: videojobs_path(ns), None),
            ("jobs", lambda ns: jobs_path(ns), SELECTOR),
            ("pods", lambda ns: pods_path(ns), SELECTOR),
        ]
        for kind, path, selector in kinds:
            await self._relist(kind, [path(namespace) for namespace in namespaces], selector)
        try:
            await self._relist("presets", [presets_path(namespace) for namespace in namespaces], None)
            await self._relist("clusterpresets", [cluster_presets_path()], None)
        except ApiError as e:
            if e.status != 404:
                raise
            # The preset CRDs are not installed (a CRD managed by hand and not upgraded yet): VideoJobs without a
            # preset run as before, those with one wait for it.
            log.warning("cannot list presets (%s): are the preset CRDs installed?", describe(e))
        self.last_list = time.monotonic()
        # The index now holds tens of thousands of long-lived objects without reference cycles (decoded JSON): take
        # them out of the cyclic collector's scans (gc.freeze, as Instagram does for its servers), or every full
        # collection walks all of them, ~100 ms with 10,000 VideoJobs, in the middle of a pass. Reference counting
        # still frees each one when it is replaced or deleted.
        gc.collect()
        gc.freeze()
        self.rbac_done.clear()  # re-ensured on the next admission in each namespace, in case someone removed them

    async def _relist(self, kind: str, paths: list[str], selector: str | None) -> None:
        """Read a kind page by page and merge each page into the index as it arrives: only one page of whole
        objects is in memory at a time, and the index's copy of an object it holds in the listed version is kept
        (a full list beside the index would be a second copy of it: 40 MB with 10,000 VideoJobs)."""
        store = self.index.store(kind)
        listed: set[str] = set()
        versions: list[str] = []
        for path in paths:
            token: str | None = None
            while True:
                items, token, version = await self.call(self.kube.list_page, path, selector, token)
                listed.update(uid for uid in map(store.merge_listed, items) if uid is not None)
                del items
                if not token:
                    versions.append(version)
                    break
        oldest = min(versions, key=lambda v: int(v) if v.isdigit() else 0)
        store.prune(listed, oldest)

    # --- the loop ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """List everything, then reconcile whenever something changes, and at least every resync_seconds."""
        settings = self.settings
        while True:
            try:
                await self.relist()
                break
            except Exception:
                log.exception("initial list failed; retrying")
                await asyncio.sleep(2)
        log.info("index built", extra={"videojobs": len(self.index.videojobs), "jobs": len(self.index.jobs)})
        writers = self.status_writer.start() + self.events.start()
        writers.append(asyncio.create_task(self.poll_progress(), name="videojob-progress"))
        try:
            while True:
                await self._pass_once()
                ended = time.monotonic()
                # a pass at least every resync_seconds (from the index, like an informer's resync)
                remaining = settings.resync_seconds - (ended - self.pass_started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), timeout=max(remaining, 0.01))
                # Gather a burst of events into one pass: the next pass starts no sooner than the debounce after the
                # last one ended (under load, than as long as the last pass took, so passes over thousands of
                # VideoJobs never take more than half of the operator's time). An event after a quieter spell is
                # handled at once: the time spent waiting for it counts.
                pause = max(settings.debounce_seconds, min(self.last_pass_seconds, 1.0)) - (time.monotonic() - ended)
                if pause > 0:
                    await asyncio.sleep(pause)
                self.wakeup.clear()
                # and a full list far less often, a safety net for a missed watch event: with 10,000 VideoJobs one
                # costs the API server and the operator seconds of CPU
                if time.monotonic() - self.last_list >= settings.relist_seconds:
                    try:
                        await self.relist()
                    except Exception:
                        log.exception("relist failed")
                        self.metrics.reconcile_errors.inc()
        finally:
            self.metrics.loop_alive = False
            for writer in writers:
                writer.cancel()
            for task, _, _ in self.admitting.values():
                task.cancel()

    async def _pass_once(self) -> None:
        """One pass. A pass that raises is not a completed pass: /healthz counts it (see Metrics.healthy)."""
        started = time.perf_counter()
        self.pass_started = time.monotonic()  # failed or not: the next resync counts from here (retries back off)
        try:
            await self.reconcile()
        except Exception:
            log.exception("reconcile pass failed")
            self.metrics.reconcile_errors.inc()
            self.metrics.failed_passes += 1
            self.wake_in(min(RETRY_SECONDS * 2 ** (self.metrics.failed_passes - 1), MAX_RETRY_SECONDS))
        else:
            self.metrics.failed_passes = 0
            self.metrics.last_pass = time.monotonic()
        self.last_pass_seconds = time.perf_counter() - started
        self.metrics.reconcile_duration.observe(self.last_pass_seconds)
        self.heap.after_pass()

    async def reconcile(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        settings = self.settings
        jobs, joins = self.index.owned_jobs()
        pods = self.index.pods_by_videojob(jobs)
        p = _Pass(now, joins=joins)
        join_pods = self.index.pods_by_videojob(p.joins)
        self.index.stamp_arrivals(now)
        arrivals = self.index.arrivals

        # One VideoJob whose status or spec the code cannot handle (a bug, a hand-written status) is marked and left
        # out of this pass; it never stops the pass for the others.
        vj: Mapping[str, Any]
        p.presets_version = self.index.presets_version()
        items = self.index.videojobs.items
        still_pending = self._still_pending(p.presets_version, jobs)
        p.pending.extend(still_pending.values())
        p.presets.update(self.still_pending_snapshots)
        p.fine.update(still_pending)
        admitting, quiet = self.admitting, self.quiet
        for uid, vj in [(uid, vj) for uid, vj in items.items() if uid not in still_pending]:
            if uid in admitting:  # its Job is being created: it holds its slot, and its status waits for the Job
                _count_running(p, vj, *admitting[uid][1:])
                p.fine.add(uid)
                continue
            job = jobs.get(uid)
            its_pods = pods.get(uid, [])
            if uid in quiet and self._still_quiet(p, uid, vj, job, its_pods):
                continue
            try:
                if job is not None and job_segments(job) > 1:  # chunked: its segments' Job and its join as one
                    join = p.joins.get(uid)
                    if needs_join(job, join, its_pods) and not (vj.get("spec") or {}).get("cancel"):
                        p.work.append(self.start_join(vj, job))
                    job, its_pods = chunked_view(job, join, its_pods), [*its_pods, *join_pods.get(uid, [])]
                self._sort(p, uid, vj, job, its_pods)
            except Exception as e:
                self._isolate(p, uid, vj, job, e)
            else:
                p.fine.add(uid)

        counts = RunningCounts(
            total=p.running["cpu"] + p.running["nvidia"], gpu=p.running["nvidia"], namespaces=p.running_in
        )
        order = self.queue_order.order(p.pending)
        to_admit, waiting, held, segments = admit_in_order(order, counts, settings, self.queue_order.namespaces)
        for namespace in {str(vj["metadata"]["namespace"]) for vj, _ in to_admit} - self.rbac_done:
            await self.ensure_rbac(namespace)
        for vj, hardware in to_admit:
            uid = str(vj["metadata"]["uid"])
            self._start_admission(uid, vj, hardware, now, p.presets.get(uid), segments.get(uid, 1))
            # pending = admitted + waiting: no longer pending as it was (the next pass counts it as admitting)
            self.still_pending.pop(uid, None)
            self.queued.pop(id(vj), None)
        queued, settled = self.queued, p.settled
        blocked_get, held_get = self.blocked.get, held.get
        plain = not self.blocked and not held  # the usual pass: no VideoJob blocked or held, nothing to look up
        for position, vj in enumerate(waiting, start=1):  # most of 10,000 queued VideoJobs in every pass: kept lean
            # Nothing it depends on changed: the status it should have is the one derived last time, written or
            # waiting in the status writer. Its arrival stamp cannot have changed while the object did not (the
            # index stamps a VideoJob once, and drops the stamp only once a new version records it or it is gone).
            last = queued.get(id(vj))
            if (
                last is not None
                and last[1] <= position <= last[2]
                and (last[6] if plain else last[3] == blocked_get(last[7]) and last[5] == held_get(last[7]))
            ):
                settled.append(last[8])
                continue
            uid = vj["metadata"]["uid"]
            self._desire_queued(p, uid, vj, position, arrivals.get(uid), held_get(uid))

        for uid, (vj, new, its_pods) in p.desired.items():
            patch = status_patch(vj.get("status"), new)
            if patch:
                self.status_writer.submit(
                    uid,
                    without_conditions(new),
                    its_pods,
                    urgent=_is_urgent(patch),
                    basis=(vj.get("status") or {}).get("phase"),
                    now=p.now,
                )
            else:
                self.status_writer.discard(uid)  # an older wish must not overwrite what is now right
        results = await asyncio.gather(*p.work, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            log.warning("API call failed: %s", describe(failure))
        if failures:
            self.metrics.reconcile_errors.inc(len(failures))
        if failures:  # back off: a quota or an outage must not be hammered every second
            self.failed_passes += 1
            self.wake_in(min(RETRY_SECONDS * 2 ** (self.failed_passes - 1), MAX_RETRY_SECONDS))
        else:
            self.failed_passes = 0
        if p.next_ttl is not None:
            self.wake_in(p.next_ttl + 0.5)
        self._record(p, self.queue_order.waiting_by_priority(vj for vj, _ in to_admit))
        self.notifier.consider(self._notify_candidates(), now)
        for uid in [uid for uid in self.broken if uid in p.fine and uid not in p.broken]:
            del self.broken[uid]
        # What gone VideoJobs leave behind is looked for among 10,000 only once it may have piled up: an entry
        # of one that is gone is never used again, only held.
        items = self.index.videojobs.items
        if len(self.specs) > len(items):
            for uid in self.specs.keys() - items.keys():
                del self.specs[uid]
        if self.resolutions:
            waiting_now = {vj["metadata"]["uid"] for vj in waiting}
            for uid in self.resolutions.keys() - waiting_now:
                del self.resolutions[uid]  # admitted, gone or no longer waiting
        if len(self.queued) > len(waiting) + STALE_QUEUED_ENTRIES:
            for key in self.queued.keys() - set(map(id, waiting)):
                del self.queued[key]  # admitted, gone, no longer waiting, or an older version
        for uid in self.still_pending_snapshots.keys() - self.still_pending.keys():
            del self.still_pending_snapshots[uid]
        for uid in self.blocked.keys() - self.index.videojobs.items.keys():
            del self.blocked[uid]
        for uid in self.broken.keys() - self.index.videojobs.items.keys():
            del self.broken[uid]
        for uid in self.refused.keys() - self.index.videojobs.items.keys():
            del self.refused[uid]
        for uid in self.observed.keys() - p.observed:
            del self.observed[uid]
        for uid in self.quiet.keys() - p.observed:
            del self.quiet[uid]

    def _notify_candidates(self) -> list[Body]:
        """What `Notifier.consider` needs to look at: the VideoJobs changed since the last pass and those whose
        delivery task ended, not all 10,000."""
        uids = self.changed_for_notifier | self.notifier.ended
        self.changed_for_notifier.clear()
        self.notifier.ended.clear()
        items = self.index.videojobs.items
        return [items[uid] for uid in uids if uid in items]

    def _still_pending(
        self, presets_version: tuple[int, int], jobs: Mapping[str, Body]
    ) -> dict[str, Mapping[str, Any]]:
        """`still_pending` less the VideoJobs that changed since the last pass or have a Job now; all of it when a
        preset changed (a pending VideoJob naming one is resolved again)."""
        still_pending, snapshots = self.still_pending, self.still_pending_snapshots
        if presets_version != self.still_pending_presets:
            still_pending.clear()
            snapshots.clear()
            self.still_pending_presets = presets_version
        for uid in self.changed_videojobs:
            still_pending.pop(uid, None)
            snapshots.pop(uid, None)
        self.changed_videojobs.clear()
        for uid in still_pending.keys() & jobs.keys():
            del still_pending[uid]
            snapshots.pop(uid, None)
        return still_pending

    def _sort(self, p: _Pass, uid: str, vj: Mapping[str, Any], job: Body | None, its_pods: list[Body]) -> None:
        """Decide what one VideoJob needs in this pass: finished (TTL), being deleted (artifacts), active (its status
        from its Job and pods), impossible, or pending admission (added to `p.pending`)."""
        settings, now, arrivals = self.settings, p.now, self.index.arrivals
        meta = vj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:
                p.work.append(self.reclaim_artifacts(vj, now))
            return
        facts, problem = self.spec_facts(uid, vj)
        settled = True  # nothing to do for it in this pass but to queue it
        if facts is not None and facts.reclaim_delete and FINALIZER not in finalizers:
            p.work.append(self.set_finalizers(vj, [*finalizers, FINALIZER]))
            settled = False
        outputs = facts.outputs if facts is not None else None
        status = vj.get("status") or {}
        if status.get("phase") in TERMINAL:
            observed = self._observe(p, uid, vj, job, its_pods, outputs)
            if observed.phase not in TERMINAL:  # a terminal phase its Job does not bear out: still running
                _count_running(p, vj, observed.hardware, running_slots(job))
                return
            left = ttl_remaining(vj, settings.default_ttl_seconds, now)
            if left is not None and left <= 0:
                p.work.append(self.call(self.kube.delete_videojob, meta["namespace"], meta["name"], uid))
            elif left is not None:
                p.next_ttl = left if p.next_ttl is None else min(p.next_ttl, left)
            if observed.stops_job and job is not None:
                p.work.append(self.stop_job(job))
                if uid in p.joins:
                    p.work.append(self.stop_job(p.joins[uid]))
            return
        if job is None and not status.get("jobName"):
            if problem is None and facts is not None:
                problem = facts.inadmissible
            if problem is None:
                problem = self.refused.get(uid)
            if problem is None and not (vj.get("spec") or {}).get("cancel"):
                resolution = self.resolve_preset(p, uid, vj)
                if resolution is None:
                    self._pend(p, uid, vj, vj, None, settled)
                    return
                if resolution.body is not None:  # admitted (and queued) with its merged spec
                    self._pend(p, uid, vj, resolution.body, resolution.snapshot, settled)
                    return
                problem = resolution.problem
                if problem is None:  # no preset of that name yet: it waits outside the queue
                    p.desired[uid] = (
                        vj,
                        derive_status(
                            vj, None, [], now, preset_missing=resolution.waiting, queued_at=arrivals.get(uid)
                        ),
                        [],
                    )
                    return
            p.desired[uid] = (vj, derive_status(vj, None, [], now, problem=problem, queued_at=arrivals.get(uid)), [])
            return
        observed = self._observe(p, uid, vj, job, its_pods, outputs)
        if observed.phase not in TERMINAL:
            slots = running_slots(job)
            _count_running(p, vj, observed.hardware, slots)
            if settled and not observed.stops_job and job is not None and uid not in p.joins:
                self.quiet[uid] = (observed, slots, str(meta.get("namespace", "")))
        if observed.stops_job and job is not None:
            p.work.append(self.stop_job(job))
            if uid in p.joins:
                p.work.append(self.stop_job(p.joins[uid]))

    def _still_quiet(self, p: _Pass, uid: str, vj: Mapping[str, Any], job: Body | None, its_pods: list[Body]) -> bool:
        """For a running VideoJob the last pass only counted (`quiet`): when its VideoJob, Job and pods are the same
        objects, its progress and arrival the same, and the clock cannot change its status yet, count it again and
        say so; everything `_sort` would look at is a function of those objects (most of a pass over 10,000
        running VideoJobs)."""
        last, slots, namespace = self.quiet[uid]
        before = last.inputs
        # the cheap tests first: the VideoJob and Job objects are the ones it was derived from
        if before[0] is not vj or before[1] is not job or p.now >= last.until or last is not self.observed.get(uid):
            return False
        progress = self._progress_of(uid, its_pods, job) if uid in self.progress else None
        if before[2] != progress or before[3] != self.index.arrivals.get(uid) or len(before) != 4 + len(its_pods):
            return False
        if its_pods and not all(x is y for x, y in zip(before[4:], its_pods, strict=True)):
            return False
        p.observed.add(uid)
        p.unchanged.append((namespace, last.phase))
        p.running[last.hardware] += slots
        p.running_in[namespace] += 1
        p.fine.add(uid)
        return True

    def _observe(
        self,
        p: _Pass,
        uid: str,
        vj: Mapping[str, Any],
        job: Body | None,
        its_pods: list[Body],
        outputs: Collection[str] | None,
    ) -> _Observed:
        """The status of a VideoJob with a Job (or a final phase) from its Job and pods, put in `p.desired`; or,
        when nothing it is derived from changed (the same objects in the index) and the clock cannot change it
        yet, what the last pass derived, which was written or waits in the status writer (a failed write forgets
        it): counted in `p.unchanged` only."""
        p.observed.add(uid)
        progress = self._progress_of(uid, its_pods, job)
        queued_at = self.index.arrivals.get(uid)
        inputs = (vj, job, progress, queued_at, *its_pods)
        last = self.observed.get(uid)
        if last is not None and p.now < last.until and _same_inputs(last.inputs, inputs):
            p.unchanged.append((str(vj["metadata"]["namespace"]), last.phase))
            return last
        stuck_timeout = self.settings.stuck_timeout_seconds
        new = derive_status(
            vj,
            job,
            its_pods,
            p.now,
            queued_at=queued_at,
            stuck_timeout=stuck_timeout,
            outputs=outputs,
            progress=progress,
        )
        p.desired[uid] = (vj, new, its_pods)
        observed = _Observed(
            inputs, derived_until(new, job, p.now, stuck_timeout), str(new["phase"]), _hardware(new), stops_its_job(new)
        )
        self.observed[uid] = observed
        return observed

    def _pend(
        self,
        p: _Pass,
        uid: str,
        vj: Mapping[str, Any],
        queued_as: Mapping[str, Any],
        snapshot: dict[str, Any] | None,
        settled: bool,
    ) -> None:
        p.pending.append(queued_as)
        if snapshot is not None:
            p.presets[uid] = snapshot
        if settled:
            self.still_pending[uid] = queued_as
            if snapshot is not None:
                self.still_pending_snapshots[uid] = snapshot

    def _progress_of(self, uid: str, its_pods: list[Body], job: Body | None = None) -> float | None:
        """The progress last read from this VideoJob's pods that are still there (all its segments', when chunked)."""
        read = self.progress.get(uid)
        if not read:
            return None
        return aggregate_progress(its_pods, read, job_segments(job))

    def _desire(
        self, p: _Pass, uid: str, vj: Mapping[str, Any], job: Body | None, its_pods: list[Body], **kw: Any
    ) -> None:
        """The status of a VideoJob that was pending at the start of the pass (admitted now or still queued)."""
        try:
            p.desired[uid] = (vj, derive_status(vj, job, its_pods, p.now, **kw), its_pods)
        except Exception as e:
            p.desired.pop(uid, None)
            self._isolate(p, uid, vj, job, e)

    def _desire_queued(
        self,
        p: _Pass,
        uid: str,
        vj: Mapping[str, Any],
        position: int,
        queued_at: str | None,
        held: str | None = None,
    ) -> None:
        """The status of a VideoJob left waiting by this pass, derived again because something it depends on
        changed (`reconcile` skips the others: `self.queued` holds what each was last derived from). Its position is
        written as `shown_position` says (not every move of every queued VideoJob)."""
        written = (vj.get("status") or {}).get("queuePosition")
        written = written if isinstance(written, int) else None
        shown = shown_position(written, position)
        blocked = self.blocked.get(uid)
        # the same object (a changed VideoJob is a new one in the index) at a real position that shows the same
        lowest, highest = positions_showing(written, shown)
        namespace = str(vj["metadata"]["namespace"])
        basis = (vj, lowest, highest, blocked, queued_at, held, blocked is None and held is None, uid, namespace)
        self._desire(p, uid, vj, None, [], queue_position=shown, blocked=blocked, queued_at=queued_at, held=held)
        if uid in p.desired:
            self.queued[id(vj)] = basis
            if not status_patch(vj.get("status"), p.desired[uid][1]):
                # Its status is already this one (the first pass after a restart finds all of them so): let the
                # derived copy go now, not at the end of the pass, which held 10,000 of them (~20 MB) at once.
                del p.desired[uid]
                self.status_writer.discard(uid)  # an older wish must not overwrite what is now right
                p.settled.append(namespace)

    def _isolate(self, p: _Pass, uid: str, vj: Mapping[str, Any], job: Body | None, error: Exception) -> None:
        """Leave a VideoJob the pass could not handle out of it: it keeps its slot while its Job runs (so a broken
        status never frees one), and it gets a Warning Event and a status message, once per distinct error."""
        p.broken.add(uid)
        if job is not None and not job_condition(job, "Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"):
            _count_running(p, vj, _job_hardware(job), running_slots(job))
        meta = vj.get("metadata") or {}
        text = f"the operator cannot process this VideoJob ({type(error).__name__}: {error})"[:1024]
        if self.broken.get(uid) == text:
            return
        self.broken[uid] = text
        log.error(
            "VideoJob %s/%s skipped in this pass: %s",
            meta.get("namespace"),
            meta.get("name"),
            text,
            exc_info=error,
            extra={"namespace": meta.get("namespace"), "videojob": meta.get("name")},
        )
        self.metrics.reconcile_errors.inc()
        p.work.append(self.report_broken(vj, text, p.now))

    async def report_broken(self, vj: Mapping[str, Any], text: str, now: datetime) -> None:
        """A Warning Event and `status.message` saying the operator skips this VideoJob (other fields untouched)."""
        meta = vj["metadata"]
        await self.call(self.kube.create_event, vj, "Warning", Reason.RECONCILE_ERROR, text, timestamp(now))
        if (vj.get("status") or {}).get("message") != text:
            await self.call_status(self.kube.patch_videojob_status, meta["namespace"], meta["name"], {"message": text})

    def _record(self, p: _Pass, queued: Mapping[int, int]) -> None:
        phases = (
            (str(vj["metadata"]["namespace"]), str(new.get("phase") or Phase.PENDING.value))
            for vj, new, _ in p.desired.values()
        )
        self.metrics.observe_state(
            itertools.chain(phases, zip(p.settled, itertools.repeat(Phase.PENDING.value)), p.unchanged),
            queued,
            p.running,
        )

    # --- progress ------------------------------------------------------------------------------------------

    async def poll_progress(self) -> None:
        """Every `progress_interval` seconds, read the progress line at the end of each running transcoder's log
        (a pod the index proved the VideoJob owns) and ask for a pass when one moved."""
        while True:
            await asyncio.sleep(self.settings.progress_interval)
            try:
                if await self.read_progress():
                    self.wakeup.set()
            except Exception:  # never let progress stop: it is only a number
                log.exception("reading progress failed")

    async def read_progress(self) -> bool:
        """One round of `poll_progress`; True when some VideoJob's progress changed."""
        targets: list[tuple[str, Body]] = []
        for owners in self.index.owned_jobs():
            for uid, its_pods in self.index.pods_by_videojob(owners).items():
                # every running pod: a chunked VideoJob runs one per segment
                targets += [(uid, p) for p in its_pods if "running" in transcoder_state(p)]
        slots = asyncio.Semaphore(self.settings.api_workers)

        async def read(pod: Body) -> float | None:
            meta = pod["metadata"]
            async with slots:
                try:
                    text = await self.call(
                        self.kube.pod_log_tail,
                        meta["namespace"],
                        meta["name"],
                        CONTAINER_NAME,
                        runtime.PROGRESS_TAIL_LINES,
                        runtime.PROGRESS_TAIL_BYTES,
                    )
                except Exception as e:
                    log.debug("cannot read the log of %s/%s: %s", meta["namespace"], meta["name"], describe(e))
                    return None
            return runtime.parse_progress(text)

        values = await asyncio.gather(*(read(pod) for _, pod in targets))
        changed = False
        fresh: dict[str, dict[str, float]] = {}
        for (uid, pod), value in zip(targets, values, strict=True):
            if value is not None:
                fresh.setdefault(uid, {})[str(pod["metadata"]["uid"])] = value
        for uid, values_read in fresh.items():
            kept = {k: v for k, v in self.progress.get(uid, {}).items() if k not in values_read}
            merged = {**kept, **values_read}  # a segment that finished keeps its last value until its pod is seen done
            if merged != self.progress.get(uid):
                self.progress[uid] = merged
                changed = True
        for uid in self.progress.keys() - fresh.keys():
            del self.progress[uid]
        return changed

    # --- actions -------------------------------------------------------------------------------------------

    def parsed_spec(self, uid: str, vj: Mapping[str, Any]) -> tuple[VideoJobSpec | None, str | None]:
        """The validated spec (or why it is invalid)."""
        try:
            return VideoJobSpec.model_validate(vj.get("spec") or {}), None
        except ValidationError as e:
            return None, _first_error(e)

    def spec_facts(self, uid: str, vj: Mapping[str, Any]) -> tuple[SpecFacts | None, str | None]:
        """What passes need of the VideoJob's spec (or why the spec is invalid), worked out once per generation."""
        generation = vj["metadata"].get("generation")
        cached = self.specs.get(uid)
        if cached is not None and cached[0] == generation and generation is not None:
            return cached[1], cached[2]
        spec, problem = self.parsed_spec(uid, vj)
        facts = (
            None
            if spec is None
            else SpecFacts(
                reclaim_delete=spec.artifact_reclaim_policy == ArtifactReclaimPolicy.DELETE,
                outputs=tuple(output_uris(spec)),
                inadmissible=check_admissible(spec, self.settings),
            )
        )
        self.specs[uid] = (generation, facts, problem)
        return facts, problem

    def resolve_preset(self, p: _Pass, uid: str, vj: Mapping[str, Any]) -> Resolution | None:
        """The preset a pending VideoJob names, merged (presets.resolve); None when it names none. Worked out again
        only when the VideoJob's generation or the preset found (its uid and resourceVersion) changed."""
        name = ((vj.get("spec") or {}).get("output") or {}).get("preset")
        if not name:
            return None
        if p.lookup is None:
            p.lookup = self.index.presets_by_name()
        meta = vj["metadata"]
        preset = find_preset(str(name), str(meta.get("namespace", "")), *p.lookup)
        preset_meta = (preset or {}).get("metadata") or {}
        key = (
            meta.get("generation"),
            meta.get("resourceVersion"),
            preset_meta.get("uid"),
            preset_meta.get("resourceVersion"),
        )
        cached = self.resolutions.get(uid)
        if cached is not None and cached[0] == key:
            return cached[1]
        spec, problem = self.parsed_spec(uid, vj)
        resolution = Resolution(problem=problem) if spec is None else resolve(vj, spec, preset)
        self.resolutions[uid] = (key, resolution)
        return resolution

    async def ensure_rbac(self, namespace: str) -> None:
        """The transcoders' ServiceAccount in a namespace; the Role and RoleBinding of earlier versions (which let
        any pod running as it patch every VideoJob's status there) are removed."""
        try:
            await self.call(self.kube.ensure, build_transcoder_rbac(namespace, self.settings))
            for api_version, kind, name in legacy_transcoder_rbac(namespace, self.settings):
                if await self.call(self.kube.delete_if_ours, namespace, api_version, kind, name):
                    log.info("removed the %s %s of an earlier version", kind, name, extra={"namespace": namespace})
            self.rbac_done.add(namespace)
        except ApiError as e:
            # The Job is still created: its pods wait for the ServiceAccount, and the next pass retries.
            log.warning(
                "cannot ensure transcoder RBAC in %s: %s", namespace, describe(e), extra={"namespace": namespace}
            )

    def _start_admission(
        self, uid: str, vj: Mapping[str, Any], hardware: str, now: datetime, preset: Any, segments: int
    ) -> None:
        """Create the Job of `vj` in the background (`admit`), bounded by `admission_slots`, in the order of the
        calls. The pass does not wait for the API server: until the Job is in the index, `admitting` holds the
        VideoJob's slot and keeps it out of the queue, so the next pass can neither admit it twice nor give its
        slot away."""
        task = asyncio.create_task(self._admission(uid, vj, hardware, now, preset, segments), name=f"admit-{uid}")
        self.admitting[uid] = (task, hardware, segments)

    async def _admission(
        self, uid: str, vj: Mapping[str, Any], hardware: str, now: datetime, preset: Any, segments: int
    ) -> None:
        try:
            job, problem = await self.admit(vj, hardware, now, preset, segments)
        except NotLeading:
            return  # the Lease is lost: the loop stops at its next call, and so does the process
        finally:
            # in the same step as `admit` put the Job in the index: no pass sees the VideoJob with neither
            del self.admitting[uid]
        if problem is not None:
            self.refused[uid] = problem
        if job is None and problem is None:  # back off: a quota or an outage must not be hammered every second
            self.failed_admissions += 1
            self.wake_in(min(RETRY_SECONDS * 2 ** (self.failed_admissions - 1), MAX_RETRY_SECONDS))
        else:
            self.failed_admissions = 0
        # its status now (Admitted, Failed, or why it waits), as the pass would have written it; the next pass
        # derives it again from the Job in the index
        current = self.index.videojobs.items.get(uid)
        if current is None:
            return  # deleted meanwhile: its Job goes with it (owner reference)
        try:
            new = derive_status(
                current,
                job,
                [],
                now,
                problem=problem,
                blocked=self.blocked.get(uid),
                queued_at=self.index.arrivals.get(uid),
            )
        except Exception:  # the next pass isolates and reports it
            log.exception("cannot derive the status of %s after its admission", uid)
            return
        patch = status_patch(current.get("status"), new)
        if patch:
            basis = (current.get("status") or {}).get("phase")
            self.status_writer.submit(uid, without_conditions(new), [], urgent=_is_urgent(patch), basis=basis, now=now)

    async def admissions_settled(self) -> None:
        """Wait until every Job creation started so far has ended (shutdown, tests)."""
        while self.admitting:
            await asyncio.gather(*(task for task, _, _ in list(self.admitting.values())), return_exceptions=True)

    async def admit(
        self,
        vj: Mapping[str, Any],
        hardware: str,
        now: datetime,
        preset: Mapping[str, Any] | None = None,
        segments: int = 1,
    ) -> tuple[Body | None, str | None]:
        """Create the Job (with the spec in `vj`, merged with `preset` when it names one; an Indexed Job of
        `segments` for a chunked VideoJob): (job, None), or (None, problem) when the API server refuses it for good,
        or (None, None) when it should be tried again (why is kept in self.blocked for the status)."""
        meta = vj["metadata"]
        try:
            async with self.admission_slots:  # build each manifest only when a thread is free to send it
                manifest = build_job_manifest(vj, hardware, self.settings, preset, segments)
                job, created = await self.call(self.kube.create_job, manifest, str(meta["uid"]))
                del manifest
        except NotOurs as e:
            return None, str(e)
        except ApiError as e:
            if e.status in (400, 422):
                return None, f"the API server refused its Job: {describe(e)}"
            log.warning(
                "creating the Job of %s/%s failed: %s",
                meta["namespace"],
                meta["name"],
                describe(e),
                extra={"namespace": meta["namespace"], "videojob": meta["name"]},
            )
            self.blocked[str(meta["uid"])] = describe(e)
            self.metrics.reconcile_errors.inc()
            return None, None  # the pass schedules the retry, with backoff
        except NotLeading:
            raise  # not a problem of this Job's: the pass stops, and so does the loop
        except Exception as e:  # a bug building this one Job: it waits (retried, with a Warning); others go on
            log.exception(
                "cannot create the Job of %s/%s",
                meta["namespace"],
                meta["name"],
                extra={"namespace": meta["namespace"], "videojob": meta["name"]},
            )
            self.blocked[str(meta["uid"])] = f"the operator cannot build its Job ({type(e).__name__}: {e})"
            self.metrics.reconcile_errors.inc()
            return None, None
        self.index.jobs.upsert(job)
        self.blocked.pop(str(meta["uid"]), None)
        job = slim_job(job)  # the pass keeps it until its end: not the whole pod template
        if created:
            queued = parse_time(meta.get("creationTimestamp"))
            self.metrics.observe_admission(
                int((vj.get("spec") or {}).get("priority") or 5),
                (now - queued).total_seconds() if queued is not None else 0.0,
            )
            log.info(
                "created Job %s on %s",
                job["metadata"]["name"],
                hardware,
                extra={"namespace": meta["namespace"], "videojob": meta["name"]},
            )
        return job, None

    async def start_join(self, vj: Mapping[str, Any], segments_job: Body) -> None:
        """Create the join Job of a chunked VideoJob whose segments are all done (idempotent: its name is derived
        from the VideoJob's uid, and an existing one is adopted)."""
        meta = vj["metadata"]
        whole = await self.call(self.kube.read_job, meta["namespace"], segments_job["metadata"]["name"])
        manifest = build_join_manifest(vj, whole, self.settings)
        job, created = await self.call(self.kube.create_job, manifest, str(meta["uid"]))
        self.index.jobs.upsert(job)
        if created:
            log.info(
                "segments done: created the join Job %s",
                job["metadata"]["name"],
                extra={"namespace": meta["namespace"], "videojob": meta["name"]},
            )
        self.wakeup.set()

    async def stop_job(self, job: Body) -> None:
        """Delete the Job of a cancelled or stuck VideoJob once (its pods get SIGTERM through the garbage collector)."""
        meta = job["metadata"]
        if meta.get("deletionTimestamp") or meta["uid"] in self.deleting_jobs:
            return
        if job_condition(job, "Complete", "Failed"):
            return
        self.deleting_jobs.add(meta["uid"])
        try:
            await self.call(self.kube.delete_job, meta["namespace"], meta["name"])
        except BaseException:
            self.deleting_jobs.discard(meta["uid"])
            raise

    async def write_status(
        self,
        uid: str,
        new: dict[str, Any],
        its_pods: list[Body],
        basis: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Patch one VideoJob's status to `new` (computed against what the index holds now), then post the Events
        of the transition. Called by the status writer; `basis` is the phase the wish was computed from. A `new`
        without conditions (`without_conditions`) gets them here, as of `now`, against the status it patches."""
        vj = self.index.videojobs.items.get(uid)
        if vj is None or vj["metadata"].get("deletionTimestamp"):
            return
        meta = vj["metadata"]
        old = dict(vj.get("status") or {})
        if "conditions" not in new and now is not None:
            new = {**new, "conditions": conditions(new, old.get("conditions") or [], now)}
        if old.get("phase") in TERMINAL and new.get("phase") != old.get("phase") and basis != old.get("phase"):
            # Terminal phases are final, so a wish computed before the status became terminal is stale. A wish
            # computed from this very terminal phase overrules it: its Job does not bear it out (a forged status).
            return
        patch = status_patch(old, new)
        if not patch:
            return
        response = await self.call_status(self.kube.patch_videojob_status, meta["namespace"], meta["name"], patch)
        if response is None:
            self.index.videojobs.remove(vj)
            return
        self.index.videojobs.upsert(response)
        now = datetime.now(UTC)
        for event_type, reason, message in transition_events(old, new):
            log.info("%s: %s", reason, message, extra={"namespace": meta["namespace"], "videojob": meta["name"]})
            self.events.submit(vj, event_type, reason, message, timestamp(now))
        self._count_transition(str(meta["namespace"]), old, new, its_pods)

    def _count_transition(
        self, namespace: str, old: Mapping[str, Any], new: Mapping[str, Any], its_pods: list[Body]
    ) -> None:
        phase = new["phase"]
        if phase == old.get("phase") or phase not in TERMINAL:
            return
        self.metrics.observe_finished(namespace, new, succeeded_result(its_pods) if phase == "Succeeded" else None)

    async def set_finalizers(self, vj: Mapping[str, Any], finalizers: list[str]) -> None:
        meta = vj["metadata"]
        try:
            response = await self.call(
                self.kube.patch_videojob_finalizers,
                meta["namespace"],
                meta["name"],
                finalizers,
                str(meta.get("resourceVersion", "")),
            )
        except ApiError as e:
            if e.status == 409:  # changed meanwhile: the next pass sees the new version
                self.wake_in(RETRY_SECONDS)
                return
            raise
        if response is not None:
            self.index.videojobs.upsert(response)

    async def reclaim_artifacts(self, vj: Mapping[str, Any], now: datetime) -> None:
        """artifactReclaimPolicy: Delete: remove the VideoJob's objects, then the finalizer.

        What to delete comes from the spec and the VideoJob's identity, never from the status (anyone allowed to
        patch it could list another tenant's objects there): the names its spec writes (`runtime.output_uris`, all
        under its output prefix), and of those only objects whose metadata carries its uid (another VideoJob may
        have written the same name). The operator uses its own S3 credentials (its environment, e.g. from the
        chart's default Secret) and never reads the Secrets of user namespaces. If deletion keeps failing, the
        finalizer is removed after ARTIFACT_DELETION_GIVE_UP_SECONDS with a Warning Event, so deleting a VideoJob
        never hangs."""
        meta = vj["metadata"]
        spec, _ = self.parsed_spec(str(meta["uid"]), vj)
        uris = output_uris(spec) if spec is not None else []
        try:
            if uris:
                deleted = await self.call(self._delete_objects, uris, str(meta["uid"]))
                await self.call(
                    self.kube.create_event,
                    vj,
                    "Normal",
                    Reason.ARTIFACTS_DELETED,
                    f"deleted {len(deleted)} object(s) it had written",
                    timestamp(now),
                )
        except Exception as e:
            deleted_at = parse_time(meta.get("deletionTimestamp")) or now
            if (now - deleted_at).total_seconds() < ARTIFACT_DELETION_GIVE_UP_SECONDS:
                log.warning(
                    "deleting artifacts failed, will retry: %s",
                    e,
                    extra={"namespace": meta["namespace"], "videojob": meta["name"]},
                )
                self.wake_in(10)
                return
            await self.call(
                self.kube.create_event,
                vj,
                "Warning",
                Reason.ARTIFACT_DELETION_FAILED,
                f"gave up deleting the artifacts: {e}"[:1024],
                timestamp(now),
            )
        finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        await self.set_finalizers(vj, finalizers)

    def _delete_objects(self, uris: list[str], uid: str) -> list[str]:
        from videojob import storage  # boto3 is loaded only by operators that reclaim artifacts

        env = dict(os.environ)
        if self.settings.s3_endpoint_url:
            env["S3_ENDPOINT_URL"] = self.settings.s3_endpoint_url
        env.setdefault("AWS_DEFAULT_REGION", self.settings.s3_region)
        return storage.delete_owned(uris, uid, storage.s3_client_from_env(env))
