"""The admission queue: which pending VideoJobs start now, on which hardware, and where the rest wait.

Pure functions over raw VideoJob bodies (the dicts the API server returns); no I/O.

Order: priority 1 first; within a priority, first come first served: by `creationTimestamp` (the API server's
clock, one-second resolution), then, within that second, by the precise arrival time the operator gave the
VideoJob when it first saw it (`status.queuedAt` once recorded, before that the index's in-memory stamp; see
index.py: stamps follow creation order and survive restarts through `queuedAt`), then namespace and name so that
the order stays deterministic whatever happens. Raising the priority of a pending job simply moves it on the
next pass, as the order is recomputed every time.

Limits: `maxRunning` counts every admitted, unfinished VideoJob; `maxRunningGpu` those placed on GPU nodes;
`maxRunningPerNamespace` (and per-namespace overrides) those of one namespace.

Fair sharing between namespaces (on by default; `fair_order`): priorities stay strict, but within one priority the
next slot goes to the namespace with the fewest running VideoJobs per unit of its weight (running ones and those
admitted earlier in the same pass count), ties to the one whose next VideoJob arrived first; within a namespace,
first come first served. So a namespace that queues 1,000 VideoJobs at priority 5 takes its share, not the whole
cluster, from another that queues 10 a minute later. This is Kueue's fair sharing reduced to one resource (running
VideoJobs) and namespaces as the tenants; priorities are not traded against shares (a tenant who needs more than
its share at once raises the priority, which the platform may restrict with admission policy).

A chunked VideoJob (`spec.parallelism` N) counts once per segment running against `maxRunning` (once against its
namespace's limit, which counts VideoJobs): it is admitted into as many slots as are free, up to N (at least one:
with one free slot it runs in one pod), and holds them until its segments are done.

Head-of-line rule (a decision, written down): the total limit is strict priority order: once it is reached,
nothing more is admitted, so a lower-priority job never overtakes a higher one for a general slot. A
`hardware: nvidia` job that waits only for a GPU slot does *not* block the jobs behind it: they do not need
that GPU, and holding CPU work back while a GPU is busy would idle the cluster (the same for a VideoJob whose
namespace is at its limit: it waits for its namespace without holding back other namespaces). The waiting GPU job
keeps its place: it is the first to be considered when either kind of slot frees, so it cannot be starved by CPU jobs
beyond the moment a GPU slot is free. `hardware: auto` takes a free GPU slot when the output codec has an NVENC
encoder (h264, h265), and otherwise runs on CPU rather than waiting.

Queue positions written to statuses (`shown_position`): every admission moves every queued VideoJob up by one, so
writing each move costs one status write per queued VideoJob per admission, N² writes to drain a queue of N (at
10,000 queued, the API server's whole write budget). The first EXACT_POSITIONS places are always exact; beyond
them a VideoJob's written position is rewritten once the real one has moved by POSITION_STEP of it, so it is never
more than about a tenth off and a VideoJob is rewritten about log(N) times while it waits, not N times.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple, overload
from urllib.parse import urlsplit

from videojob.api.models import Hardware, VideoCodec, VideoJobSpec
from videojob.controller.index import recorded_arrival
from videojob.controller.jobs import segments_wanted
from videojob.controller.settings import Settings
from videojob.controller.status import precise

# Output codecs an NVENC encoder exists for (FFmpeg's h264_nvenc, hevc_nvenc).
NVENC_CODECS = frozenset({VideoCodec.H264.value, VideoCodec.H265.value})
EXACT_POSITIONS = 10  # queue positions up to this one are always written exactly
POSITION_STEP = 0.1  # beyond them, a written position is rewritten once the real one moved by this fraction of it
# A KeptOrder change this small (VideoJobs joining or leaving the queue) is bisected into the kept lists; a larger
# one is merged by one sort. Either is far cheaper than sorting 10,000 again.
FEW_CHANGES = 256

Body = Mapping[str, Any]


@dataclass(frozen=True)
class RunningCounts:
    """Admitted, unfinished VideoJobs: all of them, and those on GPU nodes."""

    total: int = 0
    gpu: int = 0
    namespaces: Mapping[str, int] = field(default_factory=dict)  # namespace -> its admitted, unfinished VideoJobs


class AdmissionPlan(NamedTuple):
    """What one pass admits and how the rest wait."""

    to_admit: list[tuple[Body, str]]  # (VideoJob, "cpu" or "nvidia"), in admission order
    waiting: list[Body]  # the VideoJobs left waiting, the next first: the queue position of waiting[i] is i + 1
    held: dict[str, str]  # uid -> what a waiting VideoJob waits for beyond its turn (its namespace's limit)
    segments: Mapping[str, int] = {}  # uid -> segments of an admitted chunked VideoJob: the slots it takes

    @property
    def positions(self) -> dict[str, int]:
        """uid -> queue position of a waiting VideoJob, 1 = next."""
        return {vj["metadata"]["uid"]: index for index, vj in enumerate(self.waiting, start=1)}


SortKey = tuple[int, str, str, str, str]


def sort_key(vj: Body, arrivals: Mapping[str, str]) -> SortKey:
    """Where a VideoJob stands in the admission order (see admission_order)."""
    meta = vj.get("metadata", {})
    priority = _priority(vj)
    created = str(meta.get("creationTimestamp", ""))
    # Precise RFC 3339 strings of one fixed width sort as the times they name.
    arrival = recorded_arrival(vj) or arrivals.get(str(meta.get("uid", ""))) or precise(created) or ""
    # RFC 3339 timestamps in UTC with seconds ("2026-01-02T03:04:05Z"), as the API server writes them, sort too.
    return (priority, created, arrival, str(meta.get("namespace", "")), str(meta.get("name", "")))


def admission_order(
    videojobs: Iterable[Body], arrivals: Mapping[str, str] | None = None, key: Callable[[Body], SortKey] | None = None
) -> list[Body]:
    """Priority 1 first, then by creation second, then by precise arrival (`status.queuedAt`, else `arrivals`:
    uid -> the index's in-memory stamp), then by namespace and name. `key`: `sort_key` with these arrivals, e.g.
    remembered per VideoJob version by a caller that sorts thousands every pass."""
    arrivals = arrivals or {}
    return sorted(videojobs, key=key or (lambda vj: sort_key(vj, arrivals)))


class KeptOrder:
    """`admission_order` kept from one pass to the next. The VideoJobs still pending (the same objects: a changed
    VideoJob is a new object in the index) keep their places, and only those new to the queue get a sort key and
    are merged in, so a pass over 10,000 queued VideoJobs does not sort them all again. A key must not change while
    its object does not (`sort_key` with the index's arrivals: a VideoJob's stamp is given before it is first sorted
    and dropped only once its status records it, which makes it a new object)."""

    def __init__(self, key: Callable[[Body], SortKey]) -> None:
        self.key = key
        # (sort key, id of the VideoJob, the VideoJob), sorted; holding each object keeps its id from being reused
        self.entries: list[tuple[SortKey, int, Body]] = []
        self.keys: dict[int, SortKey] = {}  # id of each VideoJob in `entries` -> its sort key
        self.ordered: list[Body] = []  # the VideoJobs of `entries`
        self.in_namespace: Counter[str] = Counter()  # namespace -> how many it holds (none: no entry)
        self.priorities: Counter[int] = Counter()  # priority -> how many it holds

    @property
    def namespaces(self) -> int:
        """How many namespaces the order holds VideoJobs of."""
        return len(self.in_namespace)

    def order(self, pending: Sequence[Body]) -> list[Body]:
        by_id = dict(zip(map(id, pending), pending, strict=True))  # built in C: a pass changes a few of 10,000
        if by_id.keys() != self.keys.keys():
            gone = self.keys.keys() - by_id.keys()
            new = by_id.keys() - self.keys.keys()
            entries, ordered = self.entries, self.ordered
            few = len(gone) + len(new) <= FEW_CHANGES
            for old in gone:
                key = self.keys.pop(old)
                self._count(key, -1)
                if few:  # keys are unique: bisect finds its entry
                    at = bisect_left(entries, key, key=itemgetter(0))
                    del entries[at], ordered[at]
            if gone and not few:
                entries = [entry for entry in entries if entry[1] in by_id]
            for added in new:
                key = self.keys[added] = self.key(by_id[added])
                self._count(key, 1)
                if few:
                    at = bisect_left(entries, key, key=itemgetter(0))
                    entries.insert(at, (key, added, by_id[added]))
                    ordered.insert(at, by_id[added])
                else:
                    entries.append((key, added, by_id[added]))
            if not few:
                entries.sort(key=itemgetter(0))  # stable, and keys are unique: a sorted run and some merged into it
                self.entries, self.ordered = entries, [vj for _, _, vj in entries]
        return list(self.ordered)

    def _count(self, key: SortKey, step: int) -> None:
        _add(self.priorities, key[0], step)
        _add(self.in_namespace, key[3], step)

    def waiting_by_priority(self, admitted: Iterable[Body]) -> Counter[int]:
        """priority -> how many of the last `order` wait, once `admitted` (some of them) are taken out."""
        waiting = Counter(self.priorities)
        waiting.subtract(_priority(vj) for vj in admitted)
        return +waiting


def _add(counter: Counter[Any], value: Any, step: int) -> None:
    counter[value] += step
    if counter[value] <= 0:
        del counter[value]


def wants_gpu(vj: Body) -> bool | None:
    """True: only a GPU will do (nvidia); None: either (auto with an NVENC codec); False: CPU only (chunked jobs
    too: their segments run on CPU nodes)."""
    spec = vj.get("spec", {})
    hardware = spec.get("hardware", Hardware.AUTO.value)
    if segments_wanted(spec) > 1 and hardware != Hardware.NVIDIA.value:
        return False
    if hardware == Hardware.NVIDIA.value:
        return True
    if hardware == Hardware.CPU.value:
        return False
    codec = spec.get("output", {}).get("video", {}).get("codec", VideoCodec.H264.value)
    return None if codec in NVENC_CODECS else False


def fair_order(
    ordered: Iterable[Body], running: Mapping[str, int], weight: Callable[[str], float], namespaces: int | None = None
) -> list[Body]:
    """`ordered` (admission_order) with each priority's VideoJobs interleaved between namespaces: repeatedly the
    next VideoJob of the namespace with the least (running + taken so far) / weight, ties to the earlier in
    `ordered`. Priorities keep their order; a namespace's own VideoJobs keep theirs. O(N log namespaces).
    `namespaces`: how many namespaces `ordered` holds VideoJobs of, when the caller knows."""
    ordered = list(ordered)
    if namespaces is None:
        namespaces = len({_namespace(vj) for vj in ordered})
    if namespaces <= 1:
        return ordered  # one namespace (a single tenant's queue of thousands): nothing to interleave
    load: Counter[str] = Counter(running)
    out: list[Body] = []
    indexed = list(enumerate(ordered))
    for _, band in groupby(indexed, key=lambda item: _priority(item[1])):
        queues: dict[str, deque[tuple[int, Body]]] = {}
        for index, vj in band:
            queues.setdefault(_namespace(vj), deque()).append((index, vj))
        heap = [(load[ns] / weight(ns), queue[0][0], ns) for ns, queue in queues.items()]
        heapq.heapify(heap)
        while heap:
            if len(heap) == 1:  # one namespace left (the usual case of a single tenant): the rest in its order
                ns = heap[0][2]
                out.extend(vj for _, vj in queues[ns])
                load[ns] += len(queues[ns])
                break
            _, _, ns = heapq.heappop(heap)
            queue = queues[ns]
            out.append(queue.popleft()[1])
            load[ns] += 1
            if queue:
                heapq.heappush(heap, (load[ns] / weight(ns), queue[0][0], ns))
    return out


def plan_admission(
    pending: Iterable[Body],
    running: RunningCounts,
    settings: Settings,
    arrivals: Mapping[str, str] | None = None,
    key: Callable[[Body], SortKey] | None = None,
) -> AdmissionPlan:
    """Decide which pending VideoJobs to admit now and on which hardware ("cpu" or "nvidia"); `arrivals` and `key`
    as for admission_order. Positions of those left waiting follow the order they would be admitted in were
    slots to free one by one (fair_order when fair sharing is on)."""
    return admit_in_order(admission_order(pending, arrivals, key), running, settings)


def admit_in_order(
    order: list[Body], running: RunningCounts, settings: Settings, namespaces: int | None = None
) -> AdmissionPlan:
    """`plan_admission` of VideoJobs already in admission_order (e.g. a `KeptOrder`'s), of `namespaces`
    namespaces when the caller knows how many."""
    if settings.fair_sharing:
        order = fair_order(order, running.namespaces, settings.namespace_weight, namespaces)
    free_total = settings.max_running - running.total
    free_gpu = settings.max_running_gpu - running.gpu
    in_namespace: Counter[str] = Counter(running.namespaces)
    to_admit: list[tuple[Body, str]] = []
    waiting: list[Body] = []
    held: dict[str, str] = {}
    segments: dict[str, int] = {}
    for at, vj in enumerate(order):
        if free_total <= 0:
            waiting.extend(order[at:])  # every slot is taken: the rest wait in their order
            break
        namespace = _namespace(vj)
        limit = settings.namespace_limit(namespace)
        if limit is not None and in_namespace[namespace] >= limit:
            waiting.append(vj)  # waits for its namespace without blocking other namespaces
            held[str(vj["metadata"]["uid"])] = namespace_limit_message(namespace, limit)
            continue
        gpu = wants_gpu(vj)
        if gpu is True and free_gpu <= 0:
            waiting.append(vj)  # waits for a GPU slot without blocking the jobs behind it
            continue
        hardware = Hardware.NVIDIA.value if gpu is not False and free_gpu > 0 else Hardware.CPU.value
        if hardware == Hardware.NVIDIA.value:
            free_gpu -= 1
        slots = min(segments_wanted(vj.get("spec", {})), free_total)
        if slots > 1:
            segments[str(vj["metadata"]["uid"])] = slots
        free_total -= slots
        in_namespace[namespace] += 1
        to_admit.append((vj, hardware))
    return AdmissionPlan(to_admit, waiting, held, segments)


def namespace_limit_message(namespace: str, limit: int) -> str:
    if limit == 0:
        return f"namespace {namespace} may run no VideoJobs (its limit is 0)"
    return f"namespace {namespace} runs its limit of {limit} VideoJob{'s' if limit != 1 else ''} at once"


def _namespace(vj: Body) -> str:
    return str(vj.get("metadata", {}).get("namespace", ""))


def _priority(vj: Body) -> int:
    return int(vj.get("spec", {}).get("priority", 5))


@overload
def shown_position(written: int | None, actual: int) -> int: ...
@overload
def shown_position(written: int | None, actual: None) -> None: ...
def shown_position(written: int | None, actual: int | None) -> int | None:
    """The queue position to write for a waiting VideoJob whose status holds `written`: `actual` near the head of
    the queue, or once it is POSITION_STEP away from `written`; else `written` again (no write)."""
    if actual is None or written is None or actual <= EXACT_POSITIONS or written <= EXACT_POSITIONS:
        return actual
    return actual if abs(actual - written) >= written * POSITION_STEP else written


def positions_showing(written: int | None, shown: int) -> tuple[int, int]:
    """The real queue positions (lowest, highest) for which `shown_position(written, ...)` is `shown`: while a
    waiting VideoJob's real position stays in it, what its status should say does not change. One interval: the
    exact head and moves of a tenth or more show the real position; smaller moves show `written`."""
    if written is None or shown != written or written <= EXACT_POSITIONS:
        return shown, shown
    # the largest move under a tenth, by the very comparison shown_position makes (floats and all)
    move = int(written * POSITION_STEP)
    while move > 0 and move >= written * POSITION_STEP:
        move -= 1
    while move + 1 < written * POSITION_STEP:
        move += 1
    return max(written - move, EXACT_POSITIONS + 1), written + move


def check_admissible(spec: VideoJobSpec, settings: Settings) -> str | None:
    """Operator-level rules the CRD cannot express; a message when the VideoJob can never run, else None."""
    if spec.hardware == Hardware.NVIDIA and settings.max_running_gpu == 0:
        return "hardware nvidia was requested but GPU jobs are disabled (maxRunningGpu is 0)"
    for item in spec.inputs:
        parts = urlsplit(item.uri)
        if parts.scheme == "http" and not settings.allow_http:
            return f"input {item.name!r}: http:// is not allowed by the operator ({item.uri}); use https:// or s3://"
        if (
            parts.scheme in ("http", "https")
            and settings.allowed_hosts
            and not _host_allowed(parts.hostname or "", settings.allowed_hosts)
        ):
            return f"input {item.name!r}: host {parts.hostname!r} is not in the operator's allowed hosts"
    return None


def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """An entry "example.com" allows that host only; ".example.com" allows its subdomains."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("."):
            if host.endswith(entry):
                return True
        elif host == entry:
            return True
    return False
