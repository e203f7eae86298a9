"""The operator's in-memory view of VideoJobs, their Jobs and their pods, fed by watches and lists.

Watch events and list results can arrive out of order relative to the objects the operator stores from its own
API responses (a created Job, a patched status), so every update keeps the newer of two versions of an object,
comparing resourceVersions as numbers (what etcd-backed API servers hand out); an object whose version is not a
number is simply replaced. A list replaces the view of its kind, except for objects newer than the list itself
(created while it was being read).

Arrival times: `creationTimestamp` has one-second resolution, so a burst of VideoJobs cannot be served first come,
first served by it. The index therefore gives every VideoJob it sees for the first time a precise, strictly
increasing arrival time (`Index.stamp_arrivals`, at the start of each pass), which the status records once in
`queuedAt` (RFC 3339 with microseconds). VideoJobs first seen together are stamped in creation order (creation
second, then resourceVersion: etcd hands them out in commit order), so the order does not depend on the order
in which Kopf's per-object workers deliver their events. A recorded `queuedAt` is never replaced: after a restart
it keeps each VideoJob's place, and VideoJobs never seen before are stamped later than every recorded one.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from videojob.api.models import GROUP, KIND
from videojob.controller.jobs import (
    ANNOTATION_PRESET,
    LABEL_HARDWARE,
    LABEL_PART,
    LABEL_SEGMENTS,
    controller_uid,
    job_name,
    join_job_name,
)
from videojob.controller.status import TTL_ANNOTATIONS, parse_time, precise, precise_timestamp

Body = dict[str, Any]


def _version(body: Mapping[str, Any]) -> int | None:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion", ""))
    except (TypeError, ValueError):
        return None


def newer_or_same(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    if current is None:
        return True
    a, b = _version(candidate), _version(current)
    return a is None or b is None or a >= b


def _slim_metadata(body: Mapping[str, Any]) -> Body:
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in ("managedFields", "annotations")}
    return {"metadata": meta}


def compact(value: Any, like: Any = None) -> Any:
    """A copy of a JSON value that shares its strings. Each decoded object has its own copy of every key
    ("metadata", "lastTransitionTime", ...), of values such as condition types and reasons, and of every repeat of
    a value within it (the six conditions of a status repeat its message and transition time): for 10,000
    VideoJobs those are over a million str objects, most of the index's memory. Keys and the values that recur
    across objects (`_recurs_across_objects`) are interned; any other string is shared within the value, and with
    `like` (the compacted older version of the same object, whose uid, name and most of whose status a new version
    repeats, and which a pass or a waiting Event may still hold), so the interpreter's table of interned strings
    does not grow by every uid, name and resourceVersion."""
    within: dict[str, str] = {}

    def copy(value: Any, like: Any) -> Any:
        kind = type(value)
        if kind is str:
            if like == value and type(like) is str:  # the same field of the older version: its string, for the
                return within.setdefault(value, like)  # rest of this value too (conditions repeat the message)
            if len(value) <= _RECURRING_MAX_LENGTH and _recurs_across_objects(value):
                return sys.intern(value)
            return within.setdefault(value, value)
        if kind is dict:
            if type(like) is not dict:
                return {sys.intern(k) if type(k) is str else k: copy(v, None) for k, v in value.items()}
            return {sys.intern(k) if type(k) is str else k: copy(v, like.get(k)) for k, v in value.items()}
        if kind is list:
            if type(like) is list and len(like) == len(value):
                return [copy(v, old) for v, old in zip(value, like, strict=True)]
            return [copy(v, None) for v in value]
        if isinstance(value, dict):  # subclasses, as callers may hand over
            return copy(dict(value), like)
        if isinstance(value, list):
            return copy(list(value), like)
        return value

    return copy(value, like)


_RECURRING_MAX_LENGTH = 40
_DIGIT = re.compile(r"[0-9]")
_API_VERSION = re.compile(r"([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?")


def _recurs_across_objects(text: str) -> bool:
    """Words (condition types, reasons, phases, hardware, namespaces, finalizers: no digit), API versions, and times
    to the second (`creationTimestamp`, `lastTransitionTime`: a burst creates hundreds in one second) recur across
    the index's objects. Uids, names, resourceVersions and times to the microsecond have digits and are unique."""
    return (
        _DIGIT.search(text) is None
        or (len(text) == 20 and text[10] == "T" and text[-1] == "Z")
        or _API_VERSION.fullmatch(text) is not None
    )


def slim_videojob(body: Mapping[str, Any], previous: Body | None = None) -> Body:
    """What a pass reads of a VideoJob: all of it but the server's field-ownership bookkeeping and the annotations
    (kubectl's last-applied-configuration alone repeats the whole spec) other than those that decide its TTL
    (`status.TTL_ANNOTATIONS`); compacted (`compact`), as the index holds one per VideoJob."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in ("managedFields", "annotations")}
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    kept = {k: v for k, v in annotations.items() if k in TTL_ANNOTATIONS}
    if kept:
        meta["annotations"] = kept
    slim: Body = compact({**body, "metadata": meta}, like=previous)
    if isinstance(slim.get("spec"), dict):
        _share_leaves(slim["spec"])
    if isinstance(slim.get("status"), dict) and isinstance(slim["status"].get("conditions"), list):
        slim["status"]["conditions"] = [Condition.of(c) for c in slim["status"]["conditions"]]
    return slim


_ABSENT: Any = object()


class Condition(Mapping[str, Any]):
    """One condition of a VideoJob's status as the index holds it: its fields in slots, 80 bytes, where a dict of
    the same six fields takes 272; every VideoJob has six (about 10 MB for 10,000). It reads as the dict it came
    from (`get`, `[]`, `in`, `dict()`, and equal to it), and is read only, like everything in the index. It is no
    dict, so `json.dumps` needs `default=dict` for it; the operator never serialises what the index holds."""

    __slots__ = ("lastTransitionTime", "message", "observedGeneration", "reason", "status", "type")

    type: Any
    status: Any
    reason: Any
    message: Any
    lastTransitionTime: Any
    observedGeneration: Any
    _FIELDS = ("type", "status", "reason", "message", "lastTransitionTime", "observedGeneration")  # in wire order

    @classmethod
    def of(cls, value: Any) -> Any:
        """`value` as a Condition when it is a dict of condition fields only; else itself (a status written by hand
        may hold anything, and the index keeps it as it is)."""
        if type(value) is not dict or not value or not value.keys() <= _CONDITION_FIELDS:
            return value
        condition = cls()
        get = value.get
        condition.type = get("type", _ABSENT)
        condition.status = get("status", _ABSENT)
        condition.reason = get("reason", _ABSENT)
        condition.message = get("message", _ABSENT)
        condition.lastTransitionTime = get("lastTransitionTime", _ABSENT)
        condition.observedGeneration = get("observedGeneration", _ABSENT)
        return condition

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # Mapping's goes through KeyError: 3x slower
        if key in _CONDITION_FIELDS:
            value = getattr(self, key)
            if value is not _ABSENT:
                return value
        return default

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._FIELDS if getattr(self, key) is not _ABSENT)

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key in self._FIELDS if (value := getattr(self, key)) is not _ABSENT}

    def __eq__(self, other: object) -> bool:
        """Compared as a dict (`status_patch` compares the held conditions with the wished ones at every write);
        Mapping's way builds two dicts through its item views, ten times slower."""
        if isinstance(other, Condition):
            return self.as_dict() == other.as_dict()
        if isinstance(other, Mapping):
            return self.as_dict() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a dict, which has none

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:  # never empty (`of`); Mapping's way counts the fields
        return True

    def __repr__(self) -> str:
        return repr(self.as_dict())


_CONDITION_FIELDS = frozenset(Condition.__slots__)


def _share_leaves(value: Any) -> None:
    """Replace, in a value just compacted, each dict of settings (`{"codec": "h264", "crf": 23}`: scalars and
    short strings) by one object shared by every VideoJob whose dict has the same content: most
    specs repeat the same few settings. Read only, like everything in the index."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in list(children):
        if isinstance(child, dict):
            shape = _settings_shape(child)
            if shape is None:
                _share_leaves(child)
            elif shape in _SHARED_SETTINGS or len(_SHARED_SETTINGS) < _SHARED_SETTINGS_MAX:
                value[key] = _SHARED_SETTINGS.setdefault(shape, child)
        elif isinstance(child, list):
            _share_leaves(child)


def _settings_shape(leaf: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """A dict of settings as a key, types included (23 and 23.0 are not the same setting, nor 1 and true); None for
    a dict that holds others or a long string (a URI, most likely its VideoJob's own): sharing it would save
    nothing."""
    shape = []
    for key, value in leaf.items():
        if isinstance(value, (dict, list)):
            return None
        if type(value) is str and len(value) > _SETTING_MAX_LENGTH:
            return None
        shape.append((key, type(value), value))
    return tuple(shape)


# shape -> the one dict of those settings. Not evicted: distinct settings are few; past the bound they go unshared.
_SHARED_SETTINGS: dict[tuple[Any, ...], Body] = {}
_SHARED_SETTINGS_MAX = 4096
_SETTING_MAX_LENGTH = 32


# What a pass reads of a Job's and a pod's metadata. A Job's own labels and its controller reference are not among
# them: the controller is worked out once when a Job is stored (`Store.owner`), and anyone who may patch Jobs may
# edit their labels (`status.job_hardware`). Together they were half of a slim Job's memory.
JOB_METADATA = ("uid", "name", "namespace", "resourceVersion", "creationTimestamp", "deletionTimestamp")
# Of a Job's pod template labels: where the operator placed it, which part of a chunked VideoJob it runs, and into
# how many segments (`status.template_labels`)
JOB_TEMPLATE_LABELS = (LABEL_HARDWARE, LABEL_PART, LABEL_SEGMENTS)
POD_METADATA = (*JOB_METADATA, "labels")  # a pod's labels say which segment it encodes (its completion index)


def _picked(mapping: Mapping[str, Any] | None, keys: Iterable[str]) -> dict[str, Any]:
    mapping = mapping or {}
    return {key: mapping[key] for key in keys if key in mapping}


def slim_job(body: Mapping[str, Any], previous: Body | None = None) -> Body:
    """A Job's identity, time limit, its pod template's placement labels and preset annotation, and its status;
    the rest of the template (with the spec in an annotation) stays out of memory. The time limit is kept for the
    message of a Job stopped at its deadline; the template's labels and annotation say where the operator placed
    it and which preset it merged (they cannot change after creation, unlike the Job's own labels). Compacted
    (`compact`), as the index holds one per admitted VideoJob."""
    slim: Body = {"metadata": _picked(body.get("metadata"), JOB_METADATA), "status": body.get("status") or {}}
    spec = body.get("spec") or {}
    kept: dict[str, Any] = {}
    if spec.get("activeDeadlineSeconds") is not None:
        kept["activeDeadlineSeconds"] = spec["activeDeadlineSeconds"]
    template_meta = (spec.get("template") or {}).get("metadata") or {}
    template: dict[str, Any] = {}
    labels = _picked(template_meta.get("labels"), JOB_TEMPLATE_LABELS)
    if labels:
        template["labels"] = labels
    preset = (template_meta.get("annotations") or {}).get(ANNOTATION_PRESET)
    if preset is not None:
        template["annotations"] = {ANNOTATION_PRESET: preset}
    if template:
        kept["template"] = {"metadata": template}
    compacted: Body = compact(slim, like=previous)
    if kept:
        compacted["spec"] = _shared_job_spec(json.dumps(kept, sort_keys=True))
    return compacted


@functools.lru_cache(maxsize=256)
def _shared_job_spec(text: str) -> Body:
    """One object for every slim Job `spec` of the same content: the placement labels, preset and time limit of
    10,000 Jobs take a handful of values, and each copy is four dicts. Read only, like everything in the index."""
    spec: Body = compact(json.loads(text))
    return spec


def slim_preset(body: Mapping[str, Any], previous: Body | None = None) -> Body:
    """A preset's identity and spec (a few hundred bytes; there are few)."""
    return compact({**_slim_metadata(body), "spec": body.get("spec") or {}})


def slim_pod(body: Mapping[str, Any], previous: Body | None = None) -> Body:
    """A pod's identity, labels, node and status, compacted (`compact`)."""
    slim: Body = compact(
        {
            "metadata": _picked(body.get("metadata"), POD_METADATA),
            "spec": {"nodeName": (body.get("spec") or {}).get("nodeName")},
            "status": body.get("status") or {},
        },
        like=previous,
    )
    return slim


def _as_dict(body: Mapping[str, Any], previous: Body | None = None) -> Body:
    return dict(body)


class Store:
    """Objects of one kind by uid, slimmed to what the operator reads (memory for thousands of them). `slim` gets
    the object and the slimmed version it replaces (None for a new one)."""

    def __init__(
        self,
        slim: Callable[[Mapping[str, Any], Body | None], Body] = _as_dict,
        owner: Callable[[Mapping[str, Any]], str | None] | None = None,
    ) -> None:
        self.slim = slim
        self.items: dict[str, Body] = {}
        # uid -> the uid of its controller (`owner` of it), worked out once per stored object, not in every pass
        self.owner = owner
        self.owners: dict[str, str | None] = {}
        # uid -> resourceVersion of deletions seen since the last list: a list read before a deletion
        # must not bring the object back.
        self.tombstones: dict[str, int | None] = {}
        self.changes = 0  # counts every change of what the store holds: "has anything changed since?" in O(1)
        self.trackers: list[set[str]] = []  # see track()

    def track(self) -> set[str]:
        """A set to which the store adds the uid of every object it stores, replaces or forgets from now on
        (starting with all it holds): its consumer empties it as it looks at them, and so visits only what changed
        since it last looked rather than all 10,000 objects in every pass."""
        changed = set(self.items)
        self.trackers.append(changed)
        return changed

    def _put(self, uid: str, body: Mapping[str, Any]) -> None:
        self.items[uid] = self.slim(body, self.items.get(uid))
        if self.owner is not None:
            owner, old = self.owner(body), self.owners.get(uid)
            self.owners[uid] = old if old == owner else owner  # a new version names the same one: one string
        self._changed(uid)

    def _drop(self, uid: str) -> None:
        self.items.pop(uid, None)
        self.owners.pop(uid, None)

    def _changed(self, uid: str) -> None:
        self.changes += 1
        for changed in self.trackers:
            changed.add(uid)

    def upsert(self, body: Mapping[str, Any]) -> bool:
        uid = str(body["metadata"]["uid"])
        if newer_or_same(body, self.items.get(uid)):
            self._put(uid, body)
            return True
        return False

    def remove(self, body: Mapping[str, Any]) -> None:
        uid = str(body["metadata"]["uid"])
        self._drop(uid)
        self.tombstones[uid] = _version(body)
        self._changed(uid)

    def replace(self, bodies: Iterable[Mapping[str, Any]], list_version: str) -> None:
        """Take a complete list as the truth, keeping objects newer than the list (stored meanwhile)."""
        listed = {uid for uid in map(self.merge_listed, bodies) if uid is not None}
        self.prune(listed, list_version)

    def merge_listed(self, body: Mapping[str, Any]) -> str | None:
        """One object of a list being read page by page (the list's pages are merged as they arrive, so a relist
        never holds a second copy of the store): stored unless the store holds it in this or a later version, or
        it was deleted after the list was read. Its uid, for `prune`; None when it was deleted."""
        uid = str(body["metadata"]["uid"])
        if uid in self.tombstones and newer_or_same({"metadata": {"resourceVersion": self.tombstones[uid]}}, body):
            return None  # deleted after the list was read
        current = self.items.get(uid)
        a, b = _version(body), _version(current) if current is not None else None
        if current is None or a is None or b is None or a > b:
            self._put(uid, body)
        return uid

    def prune(self, listed: set[str], list_version: str) -> None:
        """After a complete list (`listed`: the uids `merge_listed` returned): forget what it did not hold, but for
        objects stored after it was read."""
        try:
            listed_at: int | None = int(list_version)
        except ValueError:
            listed_at = None
        for uid in [uid for uid in self.items if uid not in listed]:
            version = _version(self.items[uid])
            if listed_at is None or version is None or version <= listed_at:
                self._drop(uid)
                self._changed(uid)
        self.changes += 1
        self.tombstones = {
            uid: version
            for uid, version in self.tombstones.items()
            if listed_at is None or version is None or version > listed_at
        }

    def __len__(self) -> int:
        return len(self.items)


class Index:
    """VideoJobs by uid; Jobs and pods grouped by the uid of the VideoJob they belong to (controller references);
    the presets VideoJobs name, by namespace and name."""

    def __init__(self) -> None:
        self.videojobs = Store(slim_videojob)
        self.jobs = Store(slim_job, functools.partial(controller_uid, kind=KIND, group=GROUP))
        self.pods = Store(slim_pod, functools.partial(controller_uid, kind="Job", group="batch"))
        self.presets = Store(slim_preset)
        self.cluster_presets = Store(slim_preset)
        # uid -> precise arrival time, for VideoJobs whose status does not record `queuedAt` yet.
        self.arrivals: dict[str, str] = {}
        self.last_arrival: datetime | None = None
        self._unstamped = self.videojobs.track()  # VideoJobs stored, replaced or forgotten since the last stamps
        # owned_jobs, kept between calls: vj uid -> its Job, its join Job; job uid -> (vj uid, join?) of each Job
        # proven to be one; job uid -> what its controller reference names, and the reverse
        self._owned_jobs: dict[str, Body] = {}
        self._owned_joins: dict[str, Body] = {}
        self._claims: dict[str, tuple[str, bool]] = {}
        self._job_owner: dict[str, str] = {}
        # VideoJob uid -> the uids of the Jobs that name it their controller: a tuple, as most have one (a set is
        # four times the size, for 10,000 of them)
        self._jobs_of: dict[str, tuple[str, ...]] = {}
        self._jobs_seen = self.jobs.track()
        self._videojobs_seen = self.videojobs.track()
        # VideoJob uid -> the name of its Job (`job_name`: a sha256, for 10,000 Jobs whenever they change), kept
        # while the VideoJob is in the index
        self._job_names: dict[str, str] = {}

    def store(self, kind: str) -> Store:
        return {
            "videojobs": self.videojobs,
            "jobs": self.jobs,
            "pods": self.pods,
            "presets": self.presets,
            "clusterpresets": self.cluster_presets,
        }[kind]

    def presets_by_name(self) -> tuple[dict[tuple[str, str], Body], dict[str, Body]]:
        """VideoJobPresets by (namespace, name) and ClusterVideoJobPresets by name (presets.find_preset)."""
        namespaced = {
            (str(b["metadata"].get("namespace")), str(b["metadata"].get("name"))): b
            for b in self.presets.items.values()
        }
        cluster = {str(b["metadata"].get("name")): b for b in self.cluster_presets.items.values()}
        return namespaced, cluster

    def presets_version(self) -> tuple[int, int]:
        """Changes when any preset does (a pending VideoJob naming one is resolved again)."""
        return self.presets.changes, self.cluster_presets.changes

    def observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        store = self.store(kind)
        if event_type == "DELETED":
            store.remove(body)
            if kind == "videojobs":
                self.arrivals.pop(str(body["metadata"]["uid"]), None)
        else:
            store.upsert(body)

    def jobs_by_videojob(self) -> dict[str, Body]:
        """Each VideoJob's Job, proven by what a tenant cannot fake for another VideoJob: the Job's controller
        reference names the VideoJob's uid, it lives in the VideoJob's namespace, and it has the name the operator
        gives that VideoJob's Job (derived from the uid). Labels are not looked at: anyone who may create a Job or
        a pod may give it any label."""
        return self.owned_jobs()[0]

    def joins_by_videojob(self) -> dict[str, Body]:
        """Each chunked VideoJob's join Job, proven as `jobs_by_videojob` proves a Job (its name: `join_job_name`)."""
        return self.owned_jobs()[1]

    def owned_jobs(self) -> tuple[dict[str, Body], dict[str, Body]]:
        """`jobs_by_videojob` and `joins_by_videojob` (copies: the caller may keep them across awaits). Kept up to
        date from the Jobs and VideoJobs that changed since the last call, not worked out again for every Job."""
        if self._jobs_seen or self._videojobs_seen:
            self._update_claims()
        return dict(self._owned_jobs), dict(self._owned_joins)

    def _update_claims(self) -> None:
        recheck: set[str] = set()
        owners = self.jobs.owners
        for job_uid in self._jobs_seen:
            old = self._job_owner.pop(job_uid, None)
            if old is not None:
                rest = tuple(uid for uid in self._jobs_of[old] if uid != job_uid)
                if rest:
                    self._jobs_of[old] = rest
                else:
                    del self._jobs_of[old]
            owner = owners.get(job_uid) if job_uid in self.jobs.items else None
            if owner:
                self._job_owner[job_uid] = owner
                self._jobs_of[owner] = (*self._jobs_of.get(owner, ()), job_uid)
            recheck.add(job_uid)
        self._jobs_seen.clear()
        for vj_uid in self._videojobs_seen:
            recheck.update(self._jobs_of.get(vj_uid, ()))
            if vj_uid not in self.videojobs.items:
                self._job_names.pop(vj_uid, None)
        self._videojobs_seen.clear()
        for job_uid in recheck:
            self._unclaim(job_uid)
            self._claim_if_proven(job_uid)

    def _unclaim(self, job_uid: str) -> None:
        claim = self._claims.pop(job_uid, None)
        if claim is not None:
            vj_uid, is_join = claim
            owned = self._owned_joins if is_join else self._owned_jobs
            job = owned.get(vj_uid)
            if job is not None and job["metadata"].get("uid") == job_uid:
                del owned[vj_uid]

    def _claim_if_proven(self, job_uid: str) -> None:
        """The proof of `jobs_by_videojob` for one stored Job."""
        owner = self._job_owner.get(job_uid)
        vj = self.videojobs.items.get(owner) if owner else None
        job = self.jobs.items.get(job_uid)
        if vj is None or job is None:
            return
        meta, vj_meta = job["metadata"], vj["metadata"]
        if meta.get("namespace") != vj_meta.get("namespace"):
            return
        name, vj_uid, vj_name = meta.get("name"), str(vj_meta["uid"]), str(vj_meta["name"])
        identity = {"metadata": {"uid": vj_uid, "name": vj_name}}
        if vj_uid not in self._job_names:
            self._job_names[vj_uid] = job_name(identity)
        if name == self._job_names[vj_uid]:
            self._owned_jobs[vj_uid] = job
            self._claims[job_uid] = (vj_uid, False)
            self._job_names[vj_uid] = name  # the Job's own string: one copy of the name, not two
            self._share_owner(job_uid, vj_uid)
        elif name == join_job_name(identity):  # seldom: only join Jobs (and Jobs that are no VideoJob's) get here
            self._owned_joins[vj_uid] = job
            self._claims[job_uid] = (vj_uid, True)

    def _share_owner(self, job_uid: str, vj_uid: str) -> None:
        """Where a proven Job's controller uid is kept, the VideoJob's own uid string in place of the equal one
        decoded from the Job (another copy for each of 10,000 Jobs; `Store._put` keeps it for newer versions)."""
        if self.jobs.owners.get(job_uid) is not vj_uid and vj_uid in self._jobs_of:
            self.jobs.owners[job_uid] = vj_uid
            self._job_owner[job_uid] = vj_uid
            self._jobs_of[vj_uid] = self._jobs_of.pop(vj_uid)  # a dict keeps the key it was first given

    def pods_by_videojob(self, jobs: Mapping[str, Body] | None = None) -> dict[str, list[Body]]:
        """Each VideoJob's pods: those whose controller reference is its Job (`jobs_by_videojob`, or `jobs` when
        given), in the same namespace."""
        jobs = self.jobs_by_videojob() if jobs is None else jobs
        owners = {str(job["metadata"]["uid"]): (uid, job["metadata"].get("namespace")) for uid, job in jobs.items()}
        out: dict[str, list[Body]] = defaultdict(list)
        controllers = self.pods.owners
        for uid, pod in self.pods.items.items():
            owner = owners.get(controllers.get(uid) or "")
            if owner is not None and pod["metadata"].get("namespace") == owner[1]:
                out[owner[0]].append(pod)
        return out

    def stamp_arrivals(self, now: datetime) -> None:
        """Give each VideoJob seen for the first time a precise arrival time, strictly later than any given
        before (and, after a restart, than any recorded in a status), in creation order; forget the times of
        VideoJobs that are gone or whose status now records one."""
        new: list[Body] = []
        arrivals, items = self.arrivals, self.videojobs.items
        changed = list(self._unstamped)  # only a VideoJob that changed can have gained a recorded time, or be new
        self._unstamped.clear()
        for uid in changed:
            vj = items.get(uid)
            if vj is None:  # gone
                arrivals.pop(uid, None)
                continue
            status = vj.get("status")
            recorded = status.get("queuedAt") if status else None
            if recorded is not None and precise(recorded) is not None:
                arrivals.pop(uid, None)
            elif uid not in arrivals:
                new.append(vj)
        if not new:
            return
        if self.last_arrival is None:  # the first stamps of this process: after every recorded one
            # ... that is not far in the future: a status can be written by hand, and a `queuedAt` of year 9999
            # would put every later stamp beyond the range of datetime (a clock skew between nodes is allowed for).
            recorded = [parse_time(recorded_arrival(vj)) for vj in self.videojobs.items.values()]
            self.last_arrival = max((t for t in recorded if t is not None and t <= now + MAX_CLOCK_SKEW), default=None)
        moment = now if self.last_arrival is None or now > self.last_arrival else self.last_arrival + _TICK
        for vj in sorted(new, key=_creation_order):
            self.arrivals[str(vj["metadata"]["uid"])] = precise_timestamp(moment)
            self.last_arrival = moment
            moment += _TICK


_TICK = timedelta(microseconds=1)
# How far ahead of this process's clock a recorded `queuedAt` may be (written by an operator on a node whose clock
# was ahead) and still count; anything later was not written by an operator.
MAX_CLOCK_SKEW = timedelta(minutes=10)


def recorded_arrival(vj: Mapping[str, Any]) -> str | None:
    """The VideoJob's `status.queuedAt` in precise form, or None when it records none (or not a time)."""
    return precise((vj.get("status") or {}).get("queuedAt"))


def _creation_order(vj: Mapping[str, Any]) -> tuple[str, int, str, str]:
    meta = vj.get("metadata") or {}
    return (
        str(meta.get("creationTimestamp", "")),
        _version(vj) or 0,
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
    )
