"""Tenants on the real cluster, with the operator our chart installs and the real transcoder.

- A status written by someone other than the operator (here the admin; before, any pod running as the transcoders'
  ServiceAccount could) says a running VideoJob Succeeded: the operator puts back Running, posts StatusCorrected,
  and the next VideoJob stays queued, because the running one's Job still holds the only slot.
- Two VideoJobs with the same output: the second fails with OutputExists before any work, and the first one's
  object is untouched (it carries the first one's uid); with `output.overwrite: true` a third replaces it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devkit.harness import GROUP, PLURAL, VERSION, Diagnostics, MediaFactory, ScriptedHTTPServer, VideoJobs
from devkit.operator_release import OperatorRelease
from devkit.specs import encode_spec
from tests.e2e.test_lifecycle import start_stalled_job

pytestmark = pytest.mark.e2e


def test_a_forged_succeeded_is_put_back_and_frees_no_slot(
    run_operator: Callable[..., OperatorRelease], videojobs: VideoJobs, diagnostics: Diagnostics,
    http_server: ScriptedHTTPServer, media: MediaFactory, bucket: str, core_v1: Any, custom_objects: Any,
    namespace: str,
) -> None:
    start_stalled_job("long", lambda **kw: run_operator(max_running=1, **kw), videojobs, diagnostics, http_server,
                      media, bucket, core_v1, namespace)
    videojobs.create("next", encode_spec(f"s3://{bucket}/in/absent.mp4", f"s3://{bucket}/out/next/", hardware="cpu"))
    diagnostics.wait(lambda: (videojobs.get("next").get("status") or {}).get("queuePosition") == 1, timeout=60,
                     message="the next VideoJob queued behind the running one")

    forged = {"status": {"phase": "Succeeded", "reason": "Succeeded", "progress": 100,
                         "completedAt": "2026-01-01T00:00:00Z",
                         "artifacts": [{"uri": "s3://other-tenant/precious.mp4", "size": 1, "sha256": "0" * 64}]}}
    custom_objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "long", forged)

    # (diagnostics.wait_phase would stop at the forged terminal phase: it takes terminal phases for final)
    back = diagnostics.wait(lambda: (lambda o: o if o["status"]["phase"] == "Running" else None)(
        videojobs.get("long")), timeout=60, message="the operator to put back Running")
    assert back["status"]["artifacts"] == [] and "completedAt" not in back["status"], back["status"]
    reasons = {e.reason for e in core_v1.list_namespaced_event(
        namespace, field_selector="involvedObject.name=long").items}
    assert "StatusCorrected" in reasons, reasons
    nxt = videojobs.get("next")["status"]
    assert nxt["phase"] == "Pending" and not nxt.get("jobName"), f"the slot stayed taken: {nxt}"


def test_a_second_videojob_never_overwrites_the_firsts_output(
    run_operator: Callable[..., OperatorRelease], videojobs: VideoJobs, diagnostics: Diagnostics,
    media: MediaFactory, bucket: str, s3: Any, s3_secret: str,
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
