"""Tenants on the real cluster, with the operator our chart installs and the real transcoder.

- A status written by someone other than the operator (here the admin; before, any pod running as the transcoders'
  ServiceAccount could) says a running VideoJob Succeeded: the operator puts back Running, posts StatusCorrected,
  and the next VideoJob stays queued, because the running one's Job still holds the only slot.
- Two VideoJobs with the same output: the second fails with OutputExists before any work, and the first one's
  object is untouched (it carries the first one's uid); with `output.overwrite: true` a third replaces it.
- Sharing between namespaces: a namespace that queued later gets the next free slot before the earlier
  namespace's next VideoJob (fair sharing within a priority); a namespace at its own limit waits with a message
  saying so, without holding back another namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from devkit.harness import (
    GROUP,
    PLURAL,
    VERSION,
    Diagnostics,
    HeldInput,
    MediaFactory,
    ScriptedHTTPServer,
    VideoJobs,
)
from devkit.operator_release import OperatorRelease
from devkit.specs import copy_spec, encode_spec
from tests.e2e.test_lifecycle import start_stalled_job

pytestmark = pytest.mark.e2e


def test_a_forged_succeeded_is_put_back_and_frees_no_slot(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    http_server: ScriptedHTTPServer,
    media: MediaFactory,
    bucket: str,
    core_v1: Any,
    custom_objects: Any,
    namespace: str,
) -> None:
    start_stalled_job(
        "long",
        lambda **kw: run_operator(max_running=1, **kw),
        videojobs,
        diagnostics,
        http_server,
        media,
        bucket,
        core_v1,
        namespace,
    )
    videojobs.create("next", encode_spec(f"s3://{bucket}/in/absent.mp4", f"s3://{bucket}/out/next/", hardware="cpu"))
    diagnostics.wait(
        lambda: (videojobs.get("next").get("status") or {}).get("queuePosition") == 1,
        timeout=60,
        message="the next VideoJob queued behind the running one",
    )

    forged = {
        "status": {
            "phase": "Succeeded",
            "reason": "Succeeded",
            "progress": 100,
            "completedAt": "2026-01-01T00:00:00Z",
            "artifacts": [{"uri": "s3://other-tenant/precious.mp4", "size": 1, "sha256": "0" * 64}],
        }
    }
    custom_objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "long", forged)

    # (diagnostics.wait_phase would stop at the forged terminal phase: it takes terminal phases for final)
    back = diagnostics.wait(
        lambda: (lambda o: o if o["status"]["phase"] == "Running" else None)(videojobs.get("long")),
        timeout=60,
        message="the operator to put back Running",
    )
    assert back["status"]["artifacts"] == [] and "completedAt" not in back["status"], back["status"]
    reasons = {
        e.reason for e in core_v1.list_namespaced_event(namespace, field_selector="involvedObject.name=long").items
    }
    assert "StatusCorrected" in reasons, reasons
    nxt = videojobs.get("next")["status"]
    assert nxt["phase"] == "Pending" and not nxt.get("jobName"), f"the slot stayed taken: {nxt}"


def test_a_second_videojob_never_overwrites_the_firsts_output(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    media: MediaFactory,
    bucket: str,
    s3: Any,
    s3_secret: str,
) -> None:
    run_operator()
    source = media.video()
    s3.upload_file(str(source), bucket, "in/clip.mp4")
    spec = encode_spec(f"s3://{bucket}/in/clip.mp4", f"s3://{bucket}/out/shared/", hardware="cpu")
    videojobs.create("first", spec)
    first = diagnostics.wait_phase("first", "Succeeded", timeout=240)
    key = "out/shared/output.mp4"
    written = s3.head_object(Bucket=bucket, Key=key)
    assert written["Metadata"]["videojob-uid"] == first["metadata"]["uid"]

    videojobs.create("second", spec)
    second = diagnostics.wait_phase("second", "Failed", timeout=240)
    assert second["status"]["reason"] == "OutputExists", second["status"]
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == written["ETag"], "the first one's object is untouched"

    videojobs.create("third", {**spec, "output": {**spec["output"], "overwrite": True}})
    third = diagnostics.wait_phase("third", "Succeeded", timeout=240)
    assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["videojob-uid"] == third["metadata"]["uid"]


# --- sharing between namespaces ---------------------------------------------------------------------------------


@pytest.fixture
def team_b(more_namespaces: Callable[..., list[str]]) -> str:
    """A second namespace for the test's operator to watch."""
    (name,) = more_namespaces(1, "team-b")
    return name


def job_name(videojobs: VideoJobs, name: str) -> str | None:
    return videojobs.status(name).get("jobName")


def test_a_namespace_that_queued_later_gets_the_next_slot_first(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    bucket: str,
    custom_objects: Any,
    namespace: str,
    team_b: str,
) -> None:
    held = {name: held_input(name) for name in ("a1", "a2", "a3", "b1")}
    run_operator(namespaces=[namespace, team_b], max_running=2, allow_http=True)
    b_videojobs = VideoJobs(custom_objects, team_b)
    try:
        for name in ("a1", "a2", "a3"):
            videojobs.create(name, copy_spec(held[name].uri, f"s3://{bucket}/out/{name}/"))
        for name in ("a1", "a2"):
            diagnostics.wait(partial(job_name, videojobs, name), timeout=60, message=f"{name} admitted")
        diagnostics.wait(lambda: videojobs.status("a3").get("queuePosition") == 1, timeout=60, message="a3 queued")
        b_videojobs.create("b1", copy_spec(held["b1"].uri, f"s3://{bucket}/out/b1/"))
        diagnostics.wait(
            lambda: b_videojobs.status("b1").get("queuePosition") == 1,
            timeout=60,
            message="b1 queued ahead of a3, which arrived first: team-b runs nothing yet",
        )
        assert videojobs.status("a3").get("queuePosition") == 2, videojobs.status("a3")

        held["a1"].release()  # a1 finishes and frees one slot
        diagnostics.wait_phase("a1", "Succeeded", timeout=180)
        diagnostics.wait(lambda: b_videojobs.status("b1").get("jobName"), timeout=60, message="b1 admitted")
        a3 = videojobs.status("a3")
        assert not a3.get("jobName") and a3.get("queuePosition") == 1, f"a3 took the slot: {a3}"
    finally:
        for hold in held.values():
            hold.release()
    for name in ("a2", "a3"):
        diagnostics.wait_phase(name, "Succeeded", timeout=240)
    diagnostics.wait(lambda: b_videojobs.status("b1").get("phase") == "Succeeded", timeout=240, message="b1 Succeeded")


def test_a_namespace_at_its_limit_waits_without_holding_back_another(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    bucket: str,
    custom_objects: Any,
    namespace: str,
    team_b: str,
) -> None:
    held = {name: held_input(name) for name in ("a1", "a2", "b1")}
    run_operator(namespaces=[namespace, team_b], max_running=5, namespace_max_running={namespace: 1}, allow_http=True)
    b_videojobs = VideoJobs(custom_objects, team_b)
    try:
        videojobs.create("a1", copy_spec(held["a1"].uri, f"s3://{bucket}/out/a1/"))
        diagnostics.wait(lambda: videojobs.status("a1").get("jobName"), timeout=60, message="a1 admitted")
        videojobs.create("a2", copy_spec(held["a2"].uri, f"s3://{bucket}/out/a2/"))
        a2 = diagnostics.wait(
            lambda: (lambda s: s if s.get("queuePosition") else None)(videojobs.status("a2")),
            timeout=60,
            message="a2 queued",
        )
        assert a2["phase"] == "Pending" and a2["reason"] == "Queued", a2
        assert f"namespace {namespace} runs its limit of 1 VideoJob at once" in a2["message"], a2
        b_videojobs.create("b1", copy_spec(held["b1"].uri, f"s3://{bucket}/out/b1/"))
        diagnostics.wait(
            lambda: b_videojobs.status("b1").get("jobName"),
            timeout=60,
            message="b1 admitted while a2 waits for its namespace (4 of 5 slots are free)",
        )
        assert not videojobs.status("a2").get("jobName"), videojobs.status("a2")

        held["a1"].release()
        diagnostics.wait_phase("a1", "Succeeded", timeout=180)
        diagnostics.wait(
            lambda: videojobs.status("a2").get("jobName"),
            timeout=60,
            message="a2 admitted once a1 freed its namespace's slot",
        )
    finally:
        for hold in held.values():
            hold.release()
    diagnostics.wait_phase("a2", "Succeeded", timeout=240)
