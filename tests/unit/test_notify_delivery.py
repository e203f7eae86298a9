"""The Notifier's deliveries against a real HTTPS receiver on 127.0.0.1 (no cluster: the Kubernetes side is a
small fake that keeps the VideoJob's status and the Events)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.webhooks import Receiver
from videojob.controller.notify import Notifier
from videojob.controller.settings import Settings

trustme = pytest.importorskip("trustme")
KEY = b"k3y"


class FakeKube:
    """The calls the Notifier makes: read the Secret, patch the status, post an Event."""

    def __init__(self, vj: dict[str, Any]) -> None:
        self.vj = vj
        self.events: list[tuple[str, str, str]] = []

    def request(self, method: str, path: str) -> dict[str, Any]:
        assert (method, path) == ("GET", "/api/v1/namespaces/media/secrets/videojob-webhook")
        return {"data": {"hmacKey": base64.b64encode(KEY).decode()}}

    def patch_videojob_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.vj = {**self.vj, "status": {**self.vj["status"], **patch}}
        return self.vj

    def create_event(self, vj: Any, kind: str, reason: str, message: str, when: str) -> None:
        self.events.append((kind, reason, message))


@pytest.fixture
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def receiver(ca: Any) -> Iterator[Receiver]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = Receiver("127.0.0.1", context)
    try:
        yield server
    finally:
        server.close()


def finished_job(*urls: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": "promo", "namespace": "media", "uid": "u-1"},
        "spec": {"notify": {"webhooks": [{"url": url} for url in urls]}},
        "status": {
            "phase": "Failed",
            "reason": "InputNotFound",
            "message": "s3://m/in.mp4 does not exist",
            "startedAt": now,
            "completedAt": now,
            "attempts": 1,
        },
    }


def deliver(kube: FakeKube, settings: Settings) -> None:
    async def run() -> None:
        async def call(fn: Any, *args: Any) -> Any:
            return fn(*args)

        notifier = Notifier(settings, kube, call, lambda uid: kube.vj, lambda body: None)
        notifier.consider([kube.vj], datetime.now(UTC))
        await asyncio.wait_for(asyncio.gather(*notifier.tasks.values()), timeout=30)
        await asyncio.sleep(0)  # the tasks' done callbacks
        assert notifier.ended == {"u-1"}, "an ended delivery task is looked at again by the next pass"
        await notifier.close()

    asyncio.run(run())


def settings_for(ca: Any, **extra: Any) -> Settings:
    values = {
        "notify_allowed_networks": ["127.0.0.1/32"],
        "notify_ca_bundle": ca.cert_pem.bytes().decode(),
        "notify_max_backoff_seconds": 0.2,
        **extra,
    }
    return Settings(**values)


def notes(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {n["event"]: n for n in kube.vj["status"]["notifications"]}


def test_retried_after_a_500_with_the_same_id_then_the_terminal_event(receiver: Receiver, ca: Any) -> None:
    receiver.script = [500, 503]
    kube = FakeKube(finished_job(f"{receiver.url}/hook"))
    deliver(kube, settings_for(ca))
    assert [(r.headers["webhook-id"], r.event["type"]) for r in receiver.requests] == [
        ("u-1/Running", "dev.videojob.videojob.running")
    ] * 3 + [("u-1/Failed", "dev.videojob.videojob.failed")]
    assert all(r.signed_with(KEY) for r in receiver.requests)
    assert receiver.requests[-1].event["data"]["reason"] == "InputNotFound"
    got = notes(kube)
    running = got["Running"]
    assert (running["state"], running["attempts"], running["responseCode"]) == ("Delivered", 3, 200)
    assert (got["Failed"]["state"], got["Failed"]["attempts"]) == ("Delivered", 1)
    assert [e[1] for e in kube.events] == ["NotificationDelivered", "NotificationDelivered"]


def test_gives_up_after_the_attempts_and_does_not_retry_a_404(receiver: Receiver, ca: Any) -> None:
    receiver.script = [500, 500, 404]
    kube = FakeKube(finished_job(f"{receiver.url}/hook"))
    deliver(kube, settings_for(ca, notify_attempts=2))
    got = notes(kube)
    assert (got["Running"]["state"], got["Running"]["attempts"], got["Running"]["responseCode"]) == ("Failed", 2, 500)
    assert (got["Failed"]["state"], got["Failed"]["attempts"], got["Failed"]["responseCode"]) == ("Failed", 1, 404)
    assert len(receiver.requests) == 3
    assert [e[:2] for e in kube.events] == [("Warning", "NotificationFailed")] * 2


def test_a_refused_address_gets_no_request(receiver: Receiver, ca: Any) -> None:
    kube = FakeKube(finished_job(f"{receiver.url}/hook"))
    deliver(kube, settings_for(ca, notify_allowed_networks=[]))  # 127.0.0.1 is loopback: refused
    assert receiver.requests == []
    got = notes(kube)
    assert {e: (n["state"], n["attempts"]) for e, n in got.items()} == {
        "Running": ("Refused", 0),
        "Failed": ("Refused", 0),
    }
    assert "loopback" in got["Running"]["message"]
    assert [e[:2] for e in kube.events] == [("Warning", "NotificationRefused")] * 2


def test_an_untrusted_certificate_is_a_failed_delivery(receiver: Receiver) -> None:
    kube = FakeKube(finished_job(f"{receiver.url}/hook"))
    deliver(kube, Settings(notify_allowed_networks=["127.0.0.1/32"], notify_attempts=1))  # no CA bundle
    assert receiver.requests == [] or all(not r.body for r in receiver.requests)
    assert notes(kube)["Running"]["state"] == "Failed" and "certificate" in notes(kube)["Running"]["message"].lower()
