"""Notifications, the pure parts: which deliveries are due, the CloudEvent, the signature, the address policy, and the
chart's RBAC for the HMAC keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.test_chart import render
from videojob.controller import notify
from videojob.controller.settings import Settings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
HOOK = "https://hooks.example.com/vj"


def vj(status: dict[str, Any], webhooks: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "promo", "namespace": "media", "uid": "u-1"},
        "spec": dict(spec),
        "status": status,
    }
    if webhooks is not None:
        body["spec"]["notify"] = {"webhooks": webhooks}
    return body


RUNNING = {"phase": "Running", "startedAt": "2026-01-01T11:59:00Z", "attempts": 1}
DONE = {
    "phase": "Succeeded",
    "startedAt": "2026-01-01T11:59:00Z",
    "completedAt": "2026-01-01T11:59:30Z",
    "attempts": 1,
    "reason": "Succeeded",
    "message": "1 artifact(s) written",
    "artifacts": [{"uri": "s3://m/out/output.mp4", "size": 10, "sha256": "a" * 64}],
}


def events(items: list[notify.Due]) -> list[tuple[str, str]]:
    return [(d.target.url, d.event) for d in items]


@pytest.mark.parametrize(
    ("status", "webhooks", "expected"),
    [
        pytest.param({"phase": "Pending"}, [{"url": HOOK}], [], id="nothing while queued"),
        pytest.param(RUNNING, [{"url": HOOK}], [(HOOK, "Running")], id="running"),
        pytest.param(
            DONE,
            [{"url": HOOK}],
            [(HOOK, "Running"), (HOOK, "Succeeded")],
            id="a fast job still announces Running first",
        ),
        pytest.param(
            {"phase": "Cancelled", "completedAt": "2026-01-01T11:59:30Z"},
            [{"url": HOOK}],
            [(HOOK, "Cancelled")],
            id="cancelled before it started: no Running",
        ),
        pytest.param(
            DONE,
            [{"url": HOOK, "events": ["Failed", "Succeeded"]}],
            [(HOOK, "Succeeded")],
            id="only the events asked for",
        ),
        pytest.param(
            {
                **DONE,
                "notifications": [
                    {"url": HOOK, "event": "Running", "id": "u-1/Running", "state": "Delivered"},
                    {"url": HOOK, "event": "Succeeded", "id": "u-1/Succeeded", "state": "Retrying"},
                ],
            },
            [{"url": HOOK}],
            [(HOOK, "Succeeded")],
            id="what is recorded as delivered is not sent again",
        ),
        pytest.param(
            {
                **DONE,
                "notifications": [
                    {"url": HOOK, "event": "Running", "id": "u-1/Running", "state": "Refused"},
                    {"url": HOOK, "event": "Succeeded", "id": "u-1/Succeeded", "state": "Failed"},
                ],
            },
            [{"url": HOOK}],
            [],
            id="nor what was refused or given up",
        ),
        pytest.param(
            {**DONE, "startedAt": "2026-01-01T09:00:00Z", "completedAt": "2026-01-01T09:30:00Z"},
            [{"url": HOOK}],
            [],
            id="old news is not announced",
        ),
        pytest.param(DONE, None, [], id="no webhook"),
    ],
)
def test_what_is_due(
    status: dict[str, Any], webhooks: list[dict[str, Any]] | None, expected: list[tuple[str, str]]
) -> None:
    assert events(notify.due(vj(status, webhooks), Settings(), NOW)) == expected


def test_default_webhooks_come_first_with_their_secret_in_the_operators_namespace() -> None:
    settings = Settings(
        notify_webhooks=[{"url": "https://ops.example.com/all", "secretRef": {"name": "ops-key"}}],
        operator_namespace="videojob-system",
    )
    found = notify.targets(vj(RUNNING, [{"url": HOOK}, {"url": "https://ops.example.com/all"}]), settings)
    assert [(t.url, t.secret_namespace, t.secret_name, t.secret_key) for t in found] == [
        ("https://ops.example.com/all", "videojob-system", "ops-key", "hmacKey"),
        (HOOK, "media", "videojob-webhook", "hmacKey"),
    ]
    assert notify.due(vj(DONE, None), settings, NOW)[0].id == "u-1/Running"


def test_the_cloud_event_carries_the_artifacts_and_the_user_metadata() -> None:
    body = vj(DONE, [{"url": HOOK}], userMetadata={"campaign": "launch", "team": "ads"})
    headers, data = notify.cloud_event(body, "Succeeded", "u-1/Succeeded", "2026-01-01T11:59:30Z")
    assert headers["content-type"].startswith("application/cloudevents+json")
    event = json.loads(data)
    assert {k: event[k] for k in ("specversion", "id", "type", "source", "subject", "datacontenttype")} == {
        "specversion": "1.0",
        "id": "u-1/Succeeded",
        "type": "dev.videojob.videojob.succeeded",
        "source": "/apis/videojob.dev/v1alpha1/namespaces/media/videojobs/promo",
        "subject": "promo",
        "datacontenttype": "application/json",
    }
    assert event["time"].startswith("2026-01-01T11:59:30")
    assert event["data"]["artifacts"] == DONE["artifacts"]
    assert event["data"]["userMetadata"] == {"campaign": "launch", "team": "ads"}
    assert event["data"]["phase"] == "Succeeded" and event["data"]["reason"] == "Succeeded"
    running = json.loads(notify.cloud_event(body, "Running", "u-1/Running", "2026-01-01T11:59:00Z")[1])
    assert running["data"]["artifacts"] == [] and "completedAt" not in running["data"]


def test_the_signature_is_standard_webhooks_hmac_sha256() -> None:
    headers = notify.sign(b"s3cret", "u-1/Succeeded", 1767268800, b'{"a":1}')
    expected = base64.b64encode(hmac.new(b"s3cret", b'u-1/Succeeded.1767268800.{"a":1}', hashlib.sha256).digest())
    assert headers == {
        "webhook-id": "u-1/Succeeded",
        "webhook-timestamp": "1767268800",
        "webhook-signature": "v1," + expected.decode(),
    }


@pytest.mark.parametrize(
    ("address", "allowed", "refused"),
    [
        ("93.184.216.34", [], False),
        ("127.0.0.1", [], True),
        ("10.201.1.1", [], True),
        ("10.201.1.1", ["10.201.1.1/32"], False),
        ("10.201.1.2", ["10.201.1.1/32"], True),
        ("169.254.169.254", ["169.254.0.0/16"], True),
        ("::ffff:127.0.0.1", [], True),
        ("fd00:ec2::254", ["fd00::/8"], True),
    ],
    ids=lambda v: str(v),
)
def test_the_address_policy(address: str, allowed: list[str], refused: bool) -> None:
    assert (notify.check_address(address, allowed) is not None) == refused


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        (HOOK, False, True),
        ("http://hooks.example.com/x", False, False),
        ("http://hooks.example.com/x", True, True),
        ("https://user:pw@hooks.example.com/", False, False),
        ("ftp://hooks.example.com/", True, False),
    ],
)
def test_the_url_policy(url: str, allow_http: bool, ok: bool) -> None:
    settings = Settings(notify_allow_http=allow_http)
    if ok:
        assert notify.check_url(url, settings)[0] == "hooks.example.com"
    else:
        with pytest.raises(notify.Refused):
            notify.check_url(url, settings)


def test_bad_default_webhooks_stop_the_operator_at_start() -> None:
    with pytest.raises(ValueError, match="VIDEOJOB_NOTIFY_WEBHOOKS"):
        Settings.from_env({"VIDEOJOB_NOTIFY_WEBHOOKS": '[{"url": "ftp://x"}]'})
    with pytest.raises(ValueError, match="VIDEOJOB_NOTIFY_ALLOWED_NETWORKS"):
        Settings.from_env({"VIDEOJOB_NOTIFY_ALLOWED_NETWORKS": "not-a-network"})


def _roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-webhook-keys")]


def test_the_chart_reads_no_secret_unless_asked_and_then_only_by_name() -> None:
    assert _roles(render({})) == []
    docs = render({"notifications": {"secretNames": ["videojob-webhook"]}, "watchNamespaces": ["media"]})
    (role,) = _roles(docs)
    assert role["rules"] == notify.webhook_key_rules(["videojob-webhook"])
    bindings = [d for d in docs if d and d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("-webhook-keys")]
    namespaces = sorted(b["metadata"]["namespace"] for b in bindings)
    assert "media" in namespaces and len(namespaces) == 2  # the watched namespace and the operator's own
