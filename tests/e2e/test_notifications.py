"""Webhook notifications end to end: the operator (installed by the chart) posts signed CloudEvents to HTTPS receivers
on this machine, retries after a 500, and never connects to a refused address.

The receivers are real HTTPS servers with certificates of a throwaway CA (trustme), which the operator trusts
through its `notifications.caBundle` value; the address they listen on is allowed through
`notifications.allowedNetworks` (it is private, so it would be refused otherwise). A second receiver listens on
another private address of this machine that is *not* allowed: it must receive nothing.
"""

from __future__ import annotations

import base64
import re
import ssl
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from devkit.harness import Diagnostics, MediaFactory, NotYet, VideoJobs
from tests.conftest import TestEnv
from tests.webhooks import Receiver

pytestmark = pytest.mark.e2e

KEY = b"the-webhook-hmac-key"


def other_private_address(host_ip: str) -> str:
    """Another address of this machine that pods reach (the second node's), which the test does not allow."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "lo"], capture_output=True, text=True, check=True).stdout
    found = [a for a in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out) if a not in (host_ip, "127.0.0.1")]
    assert found, f"no second private address on lo: {out}"
    return found[0]


@pytest.fixture
def receivers(testenv: TestEnv) -> Iterator[tuple[Receiver, Receiver, str]]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    other = other_private_address(testenv.host_ip)
    made = []
    for host in (testenv.host_ip, other):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(host).configure_cert(context)
        made.append(Receiver(host, context))
    try:
        yield made[0], made[1], ca.cert_pem.bytes().decode()
    finally:
        for receiver in made:
            receiver.close()


def test_signed_cloud_events_are_delivered_retried_after_a_500_and_never_sent_to_a_refused_address(
    run_operator: Any,
    testenv: TestEnv,
    namespace: str,
    core_v1: Any,
    bucket: str,
    media: MediaFactory,
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    receivers: tuple[Receiver, Receiver, str],
) -> None:
    good, refused, ca_pem = receivers
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "videojob-webhook"}, "data": {"hmacKey": base64.b64encode(KEY).decode()}}
    )
    good.script = [500]  # the first request (Running) fails: the operator must retry it
    run_operator(
        notify_allowed_networks=[f"{testenv.host_ip}/32"],
        notify_ca_bundle=ca_pem,
        notify_attempts=4,
        notify_max_backoff_seconds=2,
        webhook_secret_names=["videojob-webhook"],
        # A cluster-wide default webhook (its Secret in the operator's namespace: the test's here), Succeeded only.
        notify_webhooks=[{"url": f"{good.url}/all", "events": ["Succeeded"]}],
    )
    clip = media.upload(media.video(seconds=1), bucket, "in/clip.mp4")
    videojobs.create(
        "hooked",
        {
            "inputs": [{"name": "main", "uri": clip}],
            "output": {"uri": f"s3://{bucket}/out/hooked/"},
            "userMetadata": {"campaign": "launch", "team": "ads"},
            "notify": {"webhooks": [{"url": f"{good.url}/job"}, {"url": f"{refused.url}/job"}]},
        },
    )
    diagnostics.wait_phase("hooked", "Succeeded", timeout=180)

    def recorded() -> dict[tuple[str, str], dict[str, Any]] | NotYet:
        notes = {(n["url"], n["event"]): n for n in videojobs.status("hooked").get("notifications") or []}
        final = {k: n for k, n in notes.items() if n["state"] in ("Delivered", "Failed", "Refused")}
        return final if len(final) == 5 else NotYet(notes)

    notes = diagnostics.wait(recorded, timeout=90, message="five notifications recorded", names=["hooked"])

    # Delivered to the allowed receiver: Running (after one 500), Succeeded, and the default webhook's Succeeded.
    assert notes[(f"{good.url}/job", "Running")] | {"lastAttemptTime": None} == {
        "url": f"{good.url}/job",
        "event": "Running",
        "id": notes[(f"{good.url}/job", "Running")]["id"],
        "state": "Delivered",
        "attempts": 2,
        "responseCode": 200,
        "lastAttemptTime": None,
    }
    assert notes[(f"{good.url}/job", "Succeeded")]["state"] == "Delivered"
    assert notes[(f"{good.url}/all", "Succeeded")]["state"] == "Delivered"
    requests = [(r.path, r.event["type"], r.headers["webhook-id"]) for r in good.requests]
    uid = videojobs.get("hooked")["metadata"]["uid"]
    running = ("/job", "dev.videojob.videojob.running", f"{uid}/Running")
    assert requests.count(running) == 2, requests  # the retry carries the same id: receivers deduplicate by it
    assert ("/job", "dev.videojob.videojob.succeeded", f"{uid}/Succeeded") in requests
    assert ("/all", "dev.videojob.videojob.succeeded", f"{uid}/Succeeded") in requests
    assert requests.index(running) < requests.index(("/job", "dev.videojob.videojob.succeeded", f"{uid}/Succeeded"))
    # Every request is a structured CloudEvent signed with the Secret's key (and only with it).
    for request in good.requests:
        assert request.headers["content-type"].startswith("application/cloudevents+json")
        assert request.signed_with(KEY) and not request.signed_with(b"another key")
    succeeded = next(r.event for r in good.requests if r.event["type"].endswith(".succeeded"))
    assert succeeded["source"] == f"/apis/videojob.dev/v1alpha1/namespaces/{namespace}/videojobs/hooked"
    assert succeeded["data"]["userMetadata"] == {"campaign": "launch", "team": "ads"}
    assert [a["uri"] for a in succeeded["data"]["artifacts"]] == [f"s3://{bucket}/out/hooked/output.mp4"]

    # The refused address: nothing was ever sent there, and status and Events say why.
    assert refused.requests == []
    for event in ("Running", "Succeeded"):
        note = notes[(f"{refused.url}/job", event)]
        assert note["state"] == "Refused" and note["attempts"] == 0, note
        assert "private" in note["message"] and refused.host in note["message"], note
    reasons = [e.reason for e in core_v1.list_namespaced_event(namespace).items if e.involved_object.name == "hooked"]
    assert reasons.count("NotificationDelivered") == 3 and reasons.count("NotificationRefused") == 2, reasons
