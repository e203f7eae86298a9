"""The operator's index: newest version wins, lists replace without undoing newer news, slimmed objects."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from videojob.controller.index import Index, Store, compact, slim_job, slim_pod, slim_videojob
from videojob.controller.jobs import (
    ANNOTATION_PRESET,
    LABEL_COMPLETION_INDEX,
    LABEL_HARDWARE,
    LABEL_PART,
    LABEL_SEGMENTS,
    job_name,
    join_job_name,
)


def obj(uid: str, version: str | None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "name": uid, **extra}
    if version is not None:
        meta["resourceVersion"] = version
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        pytest.param("5", "7", "7", id="a newer version replaces"),
        pytest.param("7", "5", "7", id="an older version (a late watch event) is ignored"),
        pytest.param("7", "7", "7", id="the same version is fine"),
        pytest.param("10", "9", "10", id="versions compare as numbers, not strings"),
        pytest.param("x", "5", "5", id="a version that is not a number is simply replaced"),
    ],
)
def test_upsert_keeps_the_newer(first: str, second: str, kept: str) -> None:
    store = Store()
    store.upsert(obj("a", first))
    store.upsert(obj("a", second))
    assert store.items["a"]["metadata"]["resourceVersion"] == kept


def test_a_list_replaces_but_keeps_objects_newer_than_itself() -> None:
    store = Store()
    store.upsert(obj("gone", "3"))  # deleted while we were not watching: not in the list
    store.upsert(obj("created-meanwhile", "12"))  # stored from our own create, after the list was read
    store.upsert(obj("updated", "11"))
    store.replace([obj("updated", "8"), obj("listed", "9")], "10")
    assert set(store.items) == {"created-meanwhile", "updated", "listed"}
    assert store.items["updated"]["metadata"]["resourceVersion"] == "11"


def test_a_list_read_before_a_deletion_does_not_bring_it_back() -> None:
    store = Store()
    store.upsert(obj("a", "5"))
    store.remove(obj("a", "11"))
    store.replace([obj("a", "5")], "10")
    assert "a" not in store.items
    store.replace([obj("a", "12")], "12")  # a later list that still has it (same uid, newer): it is there
    assert "a" in store.items


def _ref(kind: str, uid: str, controller: bool = True) -> dict[str, Any]:
    api_version = "videojob.dev/v1alpha1" if kind == "VideoJob" else "batch/v1"
    return {"apiVersion": api_version, "kind": kind, "name": "x", "uid": uid, "controller": controller}


def _indexed(job: dict[str, Any], pods: list[dict[str, Any]]) -> Index:
    index = Index()
    index.observe("videojobs", "ADDED", obj("vj1", "1", name="promo", namespace="media"))
    index.observe("jobs", "ADDED", job)
    for pod in pods:
        index.observe("pods", "ADDED", pod)
    return index


OWN_JOB_NAME = job_name({"metadata": {"name": "promo", "uid": "vj1"}})


def a_job(**meta: Any) -> dict[str, Any]:
    return obj(
        "j1", "1", **{"name": OWN_JOB_NAME, "namespace": "media", "ownerReferences": [_ref("VideoJob", "vj1")], **meta}
    )


def a_pod(uid: str, **meta: Any) -> dict[str, Any]:
    return obj(uid, "1", **{"namespace": "media", "ownerReferences": [_ref("Job", "j1")], **meta})


@pytest.mark.parametrize(
    ("job", "grouped"),
    [
        pytest.param(a_job(), True, id="its controller reference, namespace and name: the VideoJob's Job"),
        pytest.param(
            a_job(ownerReferences=[], labels={"videojob.dev/uid": "vj1"}), False, id="a uid label proves nothing"
        ),
        pytest.param(a_job(namespace="other"), False, id="a Job in another namespace is not its Job"),
        pytest.param(
            a_job(ownerReferences=[_ref("VideoJob", "vj1", controller=False)]),
            False,
            id="an owner that is not the controller is not enough",
        ),
        pytest.param(
            a_job(ownerReferences=[{**_ref("VideoJob", "vj1"), "apiVersion": "evil.dev/v1"}]),
            False,
            id="a VideoJob kind of another API group is not ours",
        ),
        pytest.param(a_job(name="promo-decoy"), False, id="a Job under another name is a decoy"),
    ],
)
def test_a_job_belongs_to_a_videojob_by_controller_reference_namespace_and_name(
    job: dict[str, Any], grouped: bool
) -> None:
    assert ("vj1" in _indexed(job, []).jobs_by_videojob()) is grouped


@pytest.mark.parametrize(
    ("pod", "grouped"),
    [
        pytest.param(a_pod("p1"), True, id="controlled by the VideoJob's Job"),
        pytest.param(
            a_pod("p1", ownerReferences=[], labels={"videojob.dev/uid": "vj1"}),
            False,
            id="a pod with the uid label only is not grouped",
        ),
        pytest.param(a_pod("p1", namespace="other"), False, id="a pod in another namespace is not grouped"),
        pytest.param(
            a_pod("p1", ownerReferences=[_ref("Job", "someone-elses-job")]),
            False,
            id="a pod of another Job is not grouped",
        ),
        pytest.param(
            a_pod("p1", ownerReferences=[_ref("VideoJob", "vj1")]),
            False,
            id="a pod must be controlled by the Job, not name the VideoJob",
        ),
    ],
)
def test_a_pod_belongs_to_a_videojob_through_its_job(pod: dict[str, Any], grouped: bool) -> None:
    assert ("vj1" in _indexed(a_job(), [pod]).pods_by_videojob()) is grouped


def test_grouping_follows_deletions() -> None:
    index = _indexed(a_job(), [a_pod("p1"), a_pod("p2")])
    assert sorted(p["metadata"]["uid"] for p in index.pods_by_videojob()["vj1"]) == ["p1", "p2"]
    index.observe("pods", "DELETED", a_pod("p2"))
    assert [p["metadata"]["uid"] for p in index.pods_by_videojob()["vj1"]] == ["p1"]


def test_slim_objects_keep_what_the_operator_reads() -> None:
    job: dict[str, Any] = {
        "metadata": {
            "uid": "j",
            "name": "j",
            "namespace": "ns",
            "resourceVersion": "7",
            "labels": {"a": "b"},  # editable by anyone who may patch Jobs: not read
            "ownerReferences": [{"kind": "VideoJob", "uid": "vj", "controller": True}],  # read once, into owners
            "managedFields": [{}] * 5,
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": {LABEL_HARDWARE: "cpu", LABEL_PART: "segments", LABEL_SEGMENTS: "2", "job-name": "j"},
                    "annotations": {ANNOTATION_PRESET: "{}", "videojob.dev/spec": "{}"},
                },
                "spec": {"containers": [{"env": [{"name": "VIDEOJOB_SPEC"}]}]},
            }
        },
        "status": {"active": 1},
    }
    assert slim_job(job) == {
        "metadata": {"uid": "j", "name": "j", "namespace": "ns", "resourceVersion": "7"},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {LABEL_HARDWARE: "cpu", LABEL_PART: "segments", LABEL_SEGMENTS: "2"},
                    "annotations": {ANNOTATION_PRESET: "{}"},
                }
            }
        },
        "status": {"active": 1},
    }
    job["spec"]["activeDeadlineSeconds"] = 60  # kept: the message of a Job stopped at its deadline names it
    assert slim_job(job)["spec"]["activeDeadlineSeconds"] == 60
    job["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"  # kept: a Job being deleted is not running
    assert slim_job(job)["metadata"]["deletionTimestamp"] == "2026-01-01T00:00:00Z"
    pod = {
        "metadata": {"uid": "p", "name": "p", "labels": {LABEL_COMPLETION_INDEX: "1"}, "ownerReferences": [{}]},
        "spec": {"nodeName": "cpu-0", "containers": [{}]},
        "status": {"phase": "Running"},
    }
    assert slim_pod(pod) == {
        "metadata": {"uid": "p", "name": "p", "labels": {LABEL_COMPLETION_INDEX: "1"}},
        "spec": {"nodeName": "cpu-0"},
        "status": {"phase": "Running"},
    }


def test_slim_jobs_of_the_same_placement_share_one_spec() -> None:
    def job(uid: str, hardware: str) -> dict[str, Any]:
        labels = {LABEL_HARDWARE: hardware, "job-name": uid}
        return {"metadata": {"uid": uid}, "spec": {"template": {"metadata": {"labels": labels}}}}

    a, b, gpu = slim_job(job("a", "cpu")), slim_job(job("b", "cpu")), slim_job(job("c", "nvidia"))
    assert a["spec"] is b["spec"]
    assert gpu["spec"] == {"template": {"metadata": {"labels": {LABEL_HARDWARE: "nvidia"}}}}
    assert a["spec"] == {"template": {"metadata": {"labels": {LABEL_HARDWARE: "cpu"}}}}


def test_a_slim_job_still_belongs_to_its_videojob() -> None:
    """The controller reference is read from the whole Job when it is stored, so dropping it from the slim copy
    changes nothing a pass proves (`jobs_by_videojob`)."""
    index = _indexed(a_job(), [a_pod("p1")])
    assert "ownerReferences" not in index.jobs.items["j1"]["metadata"]
    assert index.jobs_by_videojob()["vj1"]["metadata"]["uid"] == "j1"
    assert [p["metadata"]["uid"] for p in index.pods_by_videojob()["vj1"]] == ["p1"]


# --- arrival stamps (first come, first served within a creation second) ----------------------------------------

NOW = datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)


def videojob(
    name: str,
    version: str,
    created: str = "2026-01-01T00:00:00Z",
    queued_at: str | None = None,
    namespace: str = "media",
) -> dict[str, Any]:
    body = obj(f"uid-{name}", version, name=name, namespace=namespace, creationTimestamp=created)
    if queued_at is not None:
        body["status"] = {"queuedAt": queued_at}
    return body


def stamped(index: Index) -> list[str]:
    """Names in the order of their stamps."""
    return [uid.removeprefix("uid-") for uid, _ in sorted(index.arrivals.items(), key=lambda item: item[1])]


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        pytest.param(
            [videojob("c", "10"), videojob("b", "11"), videojob("a", "12")],
            ["c", "b", "a"],
            id="one second: creation (resourceVersion) order, not names",
        ),
        pytest.param(
            [videojob("a", "12"), videojob("b", "11"), videojob("c", "10")],
            ["c", "b", "a"],
            id="events delivered out of order within a pass are still stamped in creation order",
        ),
        pytest.param(
            [videojob("a", "9", "2026-01-01T00:00:01Z"), videojob("b", "90")],
            ["b", "a"],
            id="the creation second first (a later update raised a's resourceVersion)",
        ),
        pytest.param(
            [videojob("a", "x", namespace="zz"), videojob("b", "x", namespace="aa")],
            ["b", "a"],
            id="versions that are not numbers: namespace, then name",
        ),
    ],
)
def test_first_seen_videojobs_get_strictly_increasing_stamps_in_creation_order(
    seen: list[dict[str, Any]], expected: list[str]
) -> None:
    index = Index()
    for body in seen:
        index.observe("videojobs", "ADDED", body)
    index.stamp_arrivals(NOW)
    assert stamped(index) == expected
    stamps = sorted(index.arrivals.values())
    assert len(set(stamps)) == len(stamps), "stamps must be strictly increasing"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", s) for s in stamps), stamps
    assert stamps[0] == "2026-01-01T00:00:00.500000Z"


def test_later_arrivals_get_later_stamps_even_when_the_clock_stands_still() -> None:
    index = Index()
    index.observe("videojobs", "ADDED", videojob("first", "10"))
    index.stamp_arrivals(NOW)
    index.observe("videojobs", "ADDED", videojob("second", "11"))
    index.stamp_arrivals(NOW - timedelta(seconds=5))  # a clock stepped back must not reorder them
    assert index.arrivals["uid-first"] < index.arrivals["uid-second"]
    before = dict(index.arrivals)
    index.stamp_arrivals(NOW + timedelta(seconds=1))
    assert index.arrivals == before, "a stamp is given once"


def test_after_a_restart_recorded_arrivals_win_and_new_videojobs_come_after_them() -> None:
    index = Index()  # a fresh process: nothing in memory
    recorded = "2026-01-01T00:00:00.900000Z"  # later than this process's clock says it is now
    index.videojobs.replace([videojob("old", "20", queued_at=recorded), videojob("new", "10")], "30")
    index.stamp_arrivals(NOW)
    assert "uid-old" not in index.arrivals, "a recorded queuedAt is never replaced"
    assert index.arrivals["uid-new"] > recorded


def test_stamps_are_forgotten_once_recorded_or_deleted() -> None:
    index = Index()
    index.observe("videojobs", "ADDED", videojob("a", "10"))
    index.observe("videojobs", "ADDED", videojob("b", "11"))
    index.stamp_arrivals(NOW)
    index.observe("videojobs", "MODIFIED", videojob("a", "12", queued_at=index.arrivals["uid-a"]))
    index.observe("videojobs", "DELETED", videojob("b", "13"))
    index.stamp_arrivals(NOW)
    assert index.arrivals == {}


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param("9999-12-31T23:59:59.999999Z", id="a queuedAt of year 9999 (stamps after it would overflow)"),
        pytest.param("0001-01-01T00:00:00+01:00", id="a queuedAt before year 1 in UTC"),
        pytest.param("2026-01-01T00:00:00", id="a naive queuedAt, read as UTC"),
        pytest.param("yesterday", id="not a time"),
    ],
)
def test_a_hand_written_queued_at_never_stops_stamping_after_a_restart(forged: str) -> None:
    index = Index()  # a fresh process
    index.videojobs.replace([videojob("forged", "20", queued_at=forged), videojob("new", "10")], "30")
    index.stamp_arrivals(NOW)  # raised OverflowError for year 9999
    assert index.arrivals["uid-new"] <= "2026-01-01T00:10:01", index.arrivals


def test_the_index_keeps_the_annotations_that_decide_the_ttl_and_no_other() -> None:
    """A VideoJob synced by Argo CD must stay exempt from the TTL in the index (which drops annotations: kubectl's
    last-applied-configuration repeats the whole spec)."""
    from videojob.controller.index import slim_videojob
    from videojob.controller.status import ttl_exempt

    body = {
        "metadata": {
            "name": "promo",
            "annotations": {
                "argocd.argoproj.io/tracking-id": "media:videojob.dev/VideoJob:media/promo",
                "kubectl.kubernetes.io/last-applied-configuration": "{...the whole spec...}",
            },
        },
        "spec": {},
    }
    slim = slim_videojob(body)
    assert list(slim["metadata"]["annotations"]) == ["argocd.argoproj.io/tracking-id"]
    assert ttl_exempt(slim) is not None
    assert "annotations" not in slim_videojob({"metadata": {"annotations": {"other": "x"}}})["metadata"]


def test_a_tracker_sees_every_stored_replaced_and_forgotten_object_once_until_emptied() -> None:
    store = Store()
    store.upsert(obj("before", "1"))
    changed = store.track()
    assert changed == {"before"}, "a new tracker starts with everything the store holds"
    changed.clear()
    store.upsert(obj("before", "1"))  # the same version again: stored again, so seen
    store.upsert(obj("new", "2"))
    store.upsert(obj("new", "1"))  # older: not stored, not a change
    assert changed == {"before", "new"}
    changed.clear()
    store.remove(obj("new", "3"))
    store.replace([obj("listed", "4"), obj("before", "1")], "5")  # "before" unchanged, "gone" never there
    assert changed == {"new", "listed"}
    changed.clear()
    store.replace([obj("listed", "4")], "6")  # "before" pruned
    assert changed == {"before"}


def _owned_jobs_worked_out_again(index: Index) -> tuple[dict[str, Any], dict[str, Any]]:
    """`Index.owned_jobs` as it was before it was kept between calls: every Job looked at."""
    jobs: dict[str, Any] = {}
    joins: dict[str, Any] = {}
    for uid, job in index.jobs.items.items():
        vj = index.videojobs.items.get(index.jobs.owners.get(uid) or "")
        if vj is None or job["metadata"].get("namespace") != vj["metadata"].get("namespace"):
            continue
        name = job["metadata"].get("name")
        if name == job_name(vj):
            jobs[vj["metadata"]["uid"]] = job
        elif name == join_job_name(vj):
            joins[vj["metadata"]["uid"]] = job
    return jobs, joins


def test_owned_jobs_kept_between_calls_agree_with_looking_at_every_job() -> None:
    """300 random rounds of VideoJobs and Jobs (theirs, joins, decoys, other namespaces, other owners) created,
    changed, deleted and listed again, in any order: after each, the kept answer is the full one."""
    rng = random.Random(13)  # noqa: S311 (a reproducible test sequence)
    index = Index()
    version = iter(range(1, 1_000_000))
    vj_uids = [f"vj{i}" for i in range(12)]

    def a_videojob(uid: str) -> dict[str, Any]:
        return obj(uid, str(next(version)), name=f"name-{uid}", namespace="media")

    def some_job(uid: str) -> dict[str, Any]:
        owner = rng.choice(vj_uids)
        its = {"metadata": {"name": f"name-{owner}", "uid": owner}}
        name = rng.choice([job_name(its), job_name(its), join_job_name(its), "decoy"])
        namespace = rng.choice(["media", "media", "media", "other"])
        return obj(
            uid,
            str(next(version)),
            name=name,
            namespace=namespace,
            ownerReferences=[_ref("VideoJob", owner, controller=rng.random() < 0.9)],
        )

    for _ in range(300):
        for _ in range(rng.randint(1, 6)):
            action = rng.random()
            if action < 0.3:
                index.observe("videojobs", "MODIFIED", a_videojob(rng.choice(vj_uids)))
            elif action < 0.4 and index.videojobs.items:
                index.observe("videojobs", "DELETED", index.videojobs.items[rng.choice(list(index.videojobs.items))])
            elif action < 0.75:
                job = some_job(f"job{rng.randint(0, 20)}")
                meta = job["metadata"]
                taken = {  # the API server holds one Job of a name in a namespace
                    (j["metadata"]["namespace"], j["metadata"]["name"])
                    for uid, j in index.jobs.items.items()
                    if uid != meta["uid"]
                }
                if (meta["namespace"], meta["name"]) not in taken:
                    index.observe("jobs", "MODIFIED", job)
            elif action < 0.9 and index.jobs.items:
                index.observe("jobs", "DELETED", index.jobs.items[rng.choice(list(index.jobs.items))])
            else:  # a relist that misses some Jobs
                kept = [job for job in index.jobs.items.values() if rng.random() < 0.7]
                index.jobs.replace(kept, str(next(version)))
        assert index.owned_jobs() == _owned_jobs_worked_out_again(index)


def _decoded(text: str) -> str:
    """A string as JSON decoding makes it: a new object, never one the interpreter already shares."""
    return json.loads(json.dumps(text))


@pytest.mark.parametrize(
    ("text", "across_objects"),
    [
        pytest.param("Pending", True, id="a reason"),
        pytest.param("videojob.dev/artifacts", True, id="a finalizer"),
        pytest.param("2026-01-01T12:00:00Z", True, id="a time to the second"),
        pytest.param("videojob.dev/v1alpha1", True, id="an API version"),
        pytest.param("2026-01-01T12:00:00.123456Z", False, id="a time to the microsecond"),
        pytest.param("0f3c2a1e-7b5d-4c9a-8e21-000000000042", False, id="a uid"),
        pytest.param("vj-00042-27081a832a", False, id="a name"),
        pytest.param("48213", False, id="a resourceVersion"),
        pytest.param("the Job controller has created no pod for Job vj-0 yet" * 2, False, id="a message"),
    ],
)
def test_compact_shares_a_string_within_a_value_and_across_values_only_when_it_recurs_across_objects(
    text: str, across_objects: bool
) -> None:
    """Six conditions repeat a status's message and transition time: one string object serves all six. Strings
    that recur across VideoJobs are interned; unique ones are not, or the interpreter's table of interned strings
    grows by every uid and name (a 3.8 MB block for 10,000 VideoJobs)."""

    def value() -> dict[str, Any]:
        return {_decoded("status"): {_decoded("conditions"): [{_decoded("message"): _decoded(text)} for _ in range(6)]}}

    one, other = compact(value()), compact(value())
    assert one == value()
    messages = [condition["message"] for condition in one["status"]["conditions"]]
    assert all(message is messages[0] for message in messages)
    assert (messages[0] is other["status"]["conditions"][0]["message"]) is across_objects
    assert next(iter(one)) is next(iter(other)), "keys are always interned"
    newer = compact(value(), like=one)
    assert newer["status"]["conditions"][0]["message"] is messages[0], "a new version shares the old one's strings"


def test_videojobs_with_the_same_settings_share_them_in_the_index_and_read_as_they_were_written() -> None:
    def body(i: int, crf: Any) -> dict[str, Any]:
        return {
            "metadata": {"uid": f"u{i}", "name": f"vj-{i}", "resourceVersion": "1"},
            "spec": {
                "inputs": [{"name": "main", "uri": f"s3://in/{i}.mp4"}],
                "output": {"uri": f"s3://out/{i}/", "video": {"codec": "h264", "crf": crf}, "audio": {"codec": "aac"}},
            },
        }

    first, second, third, fourth = (
        slim_videojob(json.loads(json.dumps(body(i, crf)))) for i, crf in enumerate([23, 23, 23.0, 30])
    )
    for i, (slim, crf) in enumerate(zip([first, second, third, fourth], [23, 23, 23.0, 30], strict=True)):
        assert slim == body(i, crf)
    assert first["spec"]["output"]["video"] is second["spec"]["output"]["video"]
    assert first["spec"]["output"]["audio"] is fourth["spec"]["output"]["audio"]
    assert type(third["spec"]["output"]["video"]["crf"]) is float, "23.0 is not shared with 23"
    assert first["spec"]["output"]["video"] is not fourth["spec"]["output"]["video"]
    assert first["spec"]["output"] is not second["spec"]["output"], "dicts holding others are each VideoJob's own"
    assert first["spec"]["inputs"][0]["uri"] == "s3://in/0.mp4"


def test_the_index_forgets_the_job_name_of_a_videojob_that_is_gone() -> None:
    """Job names are kept per VideoJob while it is in the index: a cache of every VideoJob ever seen would grow."""
    index = Index()
    vj = {"metadata": {"uid": "u1", "name": "promo", "namespace": "media", "resourceVersion": "1"}}
    job = {
        "metadata": {
            "uid": "j1",
            "name": job_name(vj),
            "namespace": "media",
            "resourceVersion": "2",
            "ownerReferences": [
                {
                    "apiVersion": "videojob.dev/v1alpha1",
                    "kind": "VideoJob",
                    "name": "promo",
                    "uid": "u1",
                    "controller": True,
                }
            ],
        }
    }
    index.observe("videojobs", "ADDED", vj)
    index.observe("jobs", "ADDED", job)
    assert index.jobs_by_videojob()["u1"]["metadata"]["uid"] == "j1"
    assert index._job_names == {"u1": job_name(vj)}
    index.observe("videojobs", "DELETED", vj)
    assert index.jobs_by_videojob() == {}
    assert index._job_names == {}


def test_a_proven_job_shares_its_videojobs_uid_and_its_name_with_the_index() -> None:
    """One string object each (10,000 Jobs), and the Job is still proven after newer versions of both."""
    index = Index()
    vj = json.loads(
        json.dumps({"metadata": {"uid": "u1", "name": "promo", "namespace": "media", "resourceVersion": "1"}})
    )
    reference = {
        "apiVersion": "videojob.dev/v1alpha1",
        "kind": "VideoJob",
        "name": "promo",
        "uid": "u1",
        "controller": True,
    }

    def job(version: str) -> dict[str, Any]:
        meta = {"uid": "j1", "name": job_name(vj), "namespace": "media", "resourceVersion": version}
        return json.loads(json.dumps({"metadata": {**meta, "ownerReferences": [reference]}}))

    index.observe("videojobs", "ADDED", vj)
    index.observe("jobs", "ADDED", job("2"))
    assert index.jobs_by_videojob()["u1"]["metadata"]["resourceVersion"] == "2"
    stored_uid = next(iter(index.videojobs.items.values()))["metadata"]["uid"]
    assert index.jobs.owners["j1"] is stored_uid
    assert index._job_names["u1"] is index.jobs.items["j1"]["metadata"]["name"]
    index.observe("jobs", "MODIFIED", job("3"))
    index.observe("videojobs", "MODIFIED", {"metadata": {**vj["metadata"], "resourceVersion": "4"}})
    assert index.jobs_by_videojob()["u1"]["metadata"]["resourceVersion"] == "3"
    assert index.jobs.owners["j1"] == "u1"
    assert list(index._jobs_of) == ["u1"]


def _with_conditions(*conditions: Any, message: str = "running on cpu-0 (attempt 1)") -> dict[str, Any]:
    body = obj("vj-1", "5", namespace="media")
    body["status"] = {"phase": "Running", "message": message, "conditions": list(conditions)}
    return json.loads(json.dumps(body))  # as Kopf hands it over: every string its own object


_CONDITION = {
    "type": "Running",
    "status": "True",
    "reason": "Running",
    "message": "running on cpu-0 (attempt 1)",
    "lastTransitionTime": "2026-01-01T12:00:00Z",
    "observedGeneration": 1,
}


@pytest.mark.parametrize(
    ("condition", "folded"),
    [
        pytest.param(_CONDITION, True, id="all six fields"),
        pytest.param({"type": "Running", "status": "True"}, True, id="some of them"),
        pytest.param({**_CONDITION, "extra": "x"}, False, id="a field no condition has: kept as it is"),
        pytest.param("Running", False, id="not an object at all (written by hand)"),
        pytest.param({}, False, id="empty: a dict, as falsy as it was"),
    ],
)
def test_the_index_holds_a_videojobs_conditions_in_slots_and_they_read_as_written(condition: Any, folded: bool) -> None:
    from videojob.controller.index import Condition

    (held,) = slim_videojob(_with_conditions(condition))["status"]["conditions"]
    assert isinstance(held, Condition) == folded
    assert held == condition and condition == held and [held] == [condition]
    if folded:
        assert dict(held) == condition and list(held) == list(condition) and len(held) == len(condition)
        assert held.get("extra") is None and "extra" not in held and "type" in held
        assert json.loads(json.dumps(held, default=dict)) == condition
        with pytest.raises(KeyError):
            held["extra"]


def test_a_condition_in_slots_takes_a_third_of_a_dicts_memory() -> None:
    import sys

    (held,) = slim_videojob(_with_conditions(_CONDITION))["status"]["conditions"]
    assert not hasattr(held, "__dict__")
    assert sys.getsizeof(held) * 3 <= sys.getsizeof(dict(_CONDITION))


def test_conditions_held_in_slots_keep_their_transition_times_and_need_no_patch() -> None:
    """What the status writer does with a status from the index: derive the conditions against it and patch only
    what changed."""
    from videojob.controller.status import conditions, status_patch

    status = {"phase": "Running", "reason": "Running", "message": "running", "observedGeneration": 1}
    first = conditions(status, [], datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    held = slim_videojob(_with_conditions(*first))["status"]
    again = conditions(status, held["conditions"], datetime(2026, 1, 1, 12, 5, tzinfo=UTC))
    assert again == first and status_patch(held, {**held, "conditions": again}) == {}
    finished = conditions({**status, "phase": "Succeeded"}, held["conditions"], datetime(2026, 1, 1, 12, 5, tzinfo=UTC))
    assert "conditions" in status_patch(held, {**held, "conditions": finished})


def test_a_newer_status_shares_its_message_with_its_conditions_and_the_older_version() -> None:
    older = slim_videojob(_with_conditions(_CONDITION))
    newer = slim_videojob(_with_conditions(_CONDITION), older)
    messages = [newer["status"]["message"], older["status"]["message"], newer["status"]["conditions"][0]["message"]]
    assert len({id(m) for m in messages}) == 1
