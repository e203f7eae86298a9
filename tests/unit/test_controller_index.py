"""The operator's index: newest version wins, lists replace without undoing newer news, slimmed objects."""

from __future__ import annotations

from typing import Any

import pytest

from videojob.controller.index import Index, Store, slim_job, slim_pod


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


def test_grouping_by_videojob_uid() -> None:
    index = Index()
    index.observe("jobs", "ADDED", obj("j1", "1", labels={"videojob.dev/uid": "vj1"}))
    index.observe("pods", "ADDED", obj("p1", "1", labels={"videojob.dev/uid": "vj1"}))
    index.observe("pods", "ADDED", obj("p2", "2", labels={"videojob.dev/uid": "vj1"}))
    index.observe("pods", "ADDED", obj("p3", "3", labels={"other": "x"}))
    assert index.jobs_by_videojob()["vj1"]["metadata"]["name"] == "j1"
    assert sorted(p["metadata"]["name"] for p in index.pods_by_videojob()["vj1"]) == ["p1", "p2"]
    index.observe("pods", "DELETED", obj("p2", "4", labels={"videojob.dev/uid": "vj1"}))
    assert [p["metadata"]["name"] for p in index.pods_by_videojob()["vj1"]] == ["p1"]


def test_slim_objects_keep_what_the_operator_reads() -> None:
    job = {"metadata": {"uid": "j", "name": "j", "labels": {"a": "b"}, "managedFields": [{}] * 5},
           "spec": {"template": {"spec": {"containers": [{"env": [{"name": "VIDEOJOB_SPEC"}]}]}}},
           "status": {"active": 1}}
    assert slim_job(job) == {"metadata": {"uid": "j", "name": "j", "labels": {"a": "b"}}, "status": {"active": 1}}
    pod = {"metadata": {"uid": "p", "name": "p"}, "spec": {"nodeName": "cpu-0", "containers": [{}]},
           "status": {"phase": "Running"}}
    assert slim_pod(pod) == {"metadata": {"uid": "p", "name": "p"}, "spec": {"nodeName": "cpu-0"},
                             "status": {"phase": "Running"}}
