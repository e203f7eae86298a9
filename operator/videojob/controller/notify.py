"""Completion notifications: a signed CloudEvent per phase change to each webhook, retried, recorded in status.

Which webhooks: the VideoJob's `spec.notify.webhooks` plus the operator's cluster-wide ones (VIDEOJOB_NOTIFY_WEBHOOKS,
whose Secrets live in the operator's namespace). Which events: Running (once the first attempt started), and the
terminal phase (Succeeded, Failed, Cancelled), each only if the webhook asks for it.

Level-based, like the rest of the operator: every pass hands the VideoJobs to `Notifier.consider`, which works out
from the status what is due: an event the VideoJob reached whose delivery `status.notifications` does not record
as finished (Delivered, Failed, Refused). So a restarted operator sends what it had not finished sending, and a
receiver may get an event twice (at least once): the CloudEvent `id` is `<uid>/<event>`, the same on every
attempt and after a restart, for receivers to deduplicate. Deliveries of one VideoJob go one after another, in
phase order; different VideoJobs in parallel.

The request: HTTP POST, structured-mode CloudEvent JSON (`application/cloudevents+json`, the `cloudevents` SDK),
signed as Standard Webhooks do: `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature:
v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, the key being the Secret's value as bytes. Verify with any
Standard Webhooks library or three lines of hmac. 2xx is delivered; 408, 425, 429, 5xx and connection errors are
retried with exponential backoff and jitter (tenacity) up to VIDEOJOB_NOTIFY_ATTEMPTS; any other answer fails at
once (retrying a 401 or 404 does not help). Each attempt is written to `status.notifications`; the outcome also
becomes an Event (NotificationDelivered, NotificationFailed, NotificationRefused).

The URL policy of inputs applies: https only (http when VIDEOJOB_NOTIFY_ALLOW_HTTP), and the host must resolve to
public addresses only: loopback, private, link-local, the cloud metadata endpoint and the like are refused unless
in VIDEOJOB_NOTIFY_ALLOWED_NETWORKS (the metadata endpoint always). The address checked is the one connected to
(the request goes to it, with the host name for TLS and the Host header), so DNS rebinding cannot slip through.
TLS verifies against the system's CAs plus VIDEOJOB_NOTIFY_CA_BUNDLE.

Pure: `targets`, `due`, `event_id`, `cloud_event`, `sign`, `check_address`. I/O: `Notifier`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from videojob.api.conditions import Reason
from videojob.api.models import API_VERSION, GROUP, PLURAL, NotifyEvent
from videojob.controller.settings import Settings
from videojob.kubeapi import ApiError

log = logging.getLogger("videojob.operator")

Body = Mapping[str, Any]
FINAL_STATES = ("Delivered", "Failed", "Refused")
RETRIED_STATUSES = frozenset({408, 425, 429})
REQUEST_TIMEOUT = 10.0
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
EVENT_TYPE = f"dev.{GROUP.split('.')[0]}.videojob."  # dev.videojob.videojob.succeeded


@dataclass(frozen=True)
class Target:
    """One webhook of one VideoJob, with where its HMAC key is."""

    url: str
    events: tuple[str, ...]
    secret_namespace: str
    secret_name: str
    secret_key: str


@dataclass(frozen=True)
class Due:
    target: Target
    event: str
    id: str
    time: str


class Refused(Exception):
    """The URL may not be notified under the operator's policy (not retried)."""


class Retryable(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class Rejected(Exception):
    """The receiver answered with a status retrying cannot change."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------------------------
# Pure parts


def webhook_key_rules(secret_names: Sequence[str]) -> list[dict[str, Any]]:
    """RBAC for the HMAC keys (the chart's <fullname>-webhook-keys ClusterRole): `get` on Secrets of these names
    only; no list or watch, so the operator cannot even learn which other Secrets exist."""
    return [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": list(secret_names)}]


def targets(vj: Body, settings: Settings) -> list[Target]:
    """The operator's default webhooks, then the VideoJob's own (duplicates of a URL counted once)."""
    namespace = str(vj["metadata"]["namespace"])
    found: list[Target] = []
    hooks = [(settings.operator_namespace, h) for h in settings.notify_webhooks]
    hooks += [(namespace, h) for h in ((vj.get("spec") or {}).get("notify") or {}).get("webhooks") or []]
    for where, hook in hooks:
        ref = hook.get("secretRef") or {}
        target = Target(
            url=str(hook["url"]),
            events=tuple(hook.get("events") or [e.value for e in NotifyEvent]),
            secret_namespace=where,
            secret_name=str(ref.get("name") or "videojob-webhook"),
            secret_key=str(ref.get("key") or "hmacKey"),
        )
        if all(t.url != target.url for t in found):
            found.append(target)
    return found


def event_id(vj: Body, event: str) -> str:
    return f"{vj['metadata']['uid']}/{event}"


def reached(status: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(event, when) for each announced phase the VideoJob reached, in order."""
    phase = status.get("phase")
    out: list[tuple[str, str | None]] = []
    if phase == "Running" or (phase in ("Succeeded", "Failed", "Cancelled") and status.get("startedAt")):
        out.append((NotifyEvent.RUNNING.value, status.get("startedAt")))
    if phase in ("Succeeded", "Failed", "Cancelled"):
        out.append((str(phase), status.get("completedAt")))
    return out


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def due(vj: Body, settings: Settings, now: datetime) -> list[Due]:
    """Deliveries still to make for this VideoJob, in phase order (Running first)."""
    if vj["metadata"].get("deletionTimestamp"):
        return []
    found = targets(vj, settings)
    if not found:
        return []
    status = vj.get("status") or {}
    done = {(n.get("url"), n.get("event")) for n in status.get("notifications") or [] if n.get("state") in FINAL_STATES}
    out = []
    for event, when in reached(status):
        moment = _parse(when) or now
        if (now - moment).total_seconds() > settings.notify_max_age_seconds:
            continue  # old news: e.g. a default webhook added to a cluster full of finished jobs
        for target in found:
            if event in target.events and (target.url, event) not in done:
                out.append(Due(target, event, event_id(vj, event), moment.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return out


def cloud_event(vj: Body, event: str, id_: str, when: str) -> tuple[dict[str, str], bytes]:
    """(headers, body) of the structured-mode CloudEvent announcing `event` of the VideoJob."""
    from cloudevents.core.bindings.http import to_structured_event
    from cloudevents.core.v1.event import CloudEvent

    meta, spec, status = vj["metadata"], vj.get("spec") or {}, vj.get("status") or {}
    final = event != NotifyEvent.RUNNING.value
    data = {
        "apiVersion": API_VERSION,
        "name": meta["name"],
        "namespace": meta["namespace"],
        "uid": meta["uid"],
        "phase": event,
        "reason": status.get("reason") if final else Reason.RUNNING.value,
        "message": status.get("message") if final else None,
        "attempts": status.get("attempts"),
        "hardware": status.get("hardware"),
        "node": status.get("node"),
        "startedAt": status.get("startedAt"),
        "completedAt": status.get("completedAt") if final else None,
        "artifacts": list(status.get("artifacts") or []) if event == "Succeeded" else [],
        "userMetadata": dict(spec.get("userMetadata") or {}),
    }
    attributes = {
        "id": id_,
        "source": f"/apis/{API_VERSION}/namespaces/{meta['namespace']}/{PLURAL}/{meta['name']}",
        "type": EVENT_TYPE + event.lower(),
        "subject": str(meta["name"]),
        "time": _parse(when) or datetime.now(UTC),
        "datacontenttype": "application/json",
    }
    message = to_structured_event(CloudEvent(attributes, {k: v for k, v in data.items() if v is not None}))
    return dict(message.headers), bytes(message.body)


def sign(key: bytes, id_: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers: the signature covers the id, the time and the body."""
    digest = hmac.new(key, f"{id_}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": id_,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def check_url(url: str, settings: Settings) -> tuple[str, int]:
    """(host, port) of a webhook URL the policy allows on its face (scheme, no credentials); raises Refused."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not settings.notify_allow_http:
        raise Refused(f"{url}: http:// is not allowed for notifications; use https://")
    if parts.scheme not in ("http", "https"):
        raise Refused(f"{url}: only https:// webhooks are allowed")
    if "@" in parts.netloc or not parts.hostname:
        raise Refused(f"{url}: no host, or credentials in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused(f"{url}: invalid port") from None
    return parts.hostname, port


def check_address(address: str, allowed_networks: Sequence[str]) -> str | None:
    """Why a webhook may not be sent to `address` (None when it may)."""
    from videojob.inputs import InputPolicy, address_problem

    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "the cloud metadata endpoint"
    if any(ip in ipaddress.ip_network(net) for net in allowed_networks):
        return None
    return address_problem(str(ip), InputPolicy())


# ---------------------------------------------------------------------------------------------------------------
# I/O


Call = Callable[..., Awaitable[Any]]


class Notifier:
    """Sends what `due` says, one task per VideoJob at a time; records each attempt through `kube`."""

    def __init__(
        self,
        settings: Settings,
        kube: Any,
        call: Call,
        videojobs: Callable[[str], Body | None],
        on_status: Callable[[Body], Any],
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.call = call  # runs a blocking Kubernetes call in the operator's thread pool
        self.videojobs = videojobs  # uid -> the VideoJob as the index holds it now
        self.on_status = on_status  # the patched VideoJob, for the index
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.ended: set[str] = set()  # uids whose delivery task ended since `consider` last saw them
        self._session: Any = None

    def consider(self, items: Iterable[Body], now: datetime) -> None:
        """Start delivering for each VideoJob with something due (unless its delivery task already runs). A
        delivery only becomes due when its VideoJob changes (time only makes one too old), so a caller may pass
        the VideoJobs that changed since its last call and those in `ended` (a task that gave up, to retry)."""
        defaults = bool(self.settings.notify_webhooks)
        for vj in items:
            if not defaults and not ((vj.get("spec") or {}).get("notify") or {}).get("webhooks"):
                continue  # no webhook to call: the common case, decided without building targets
            uid = str(vj["metadata"]["uid"])
            if uid in self.tasks or not due(vj, self.settings, now):
                continue
            task = asyncio.create_task(self._run(uid), name=f"videojob-notify-{uid}")
            self.tasks[uid] = task
            task.add_done_callback(functools.partial(self._forget, uid))

    def _forget(self, uid: str, _: asyncio.Task[None]) -> None:
        self.tasks.pop(uid, None)
        self.ended.add(uid)

    async def _run(self, uid: str) -> None:
        try:
            while True:
                vj = self.videojobs(uid)
                if vj is None:
                    return
                pending = due(vj, self.settings, datetime.now(UTC))
                if not pending:
                    return
                await self.deliver(vj, pending[0])
        except Exception:
            log.exception("notification task of %s failed", uid)

    # --- one delivery ----------------------------------------------------------------------------------------

    async def deliver(self, vj: Body, item: Due) -> None:
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

        record: dict[str, Any] = {"url": item.target.url, "event": item.event, "id": item.id, "attempts": 0}
        headers, body = cloud_event(vj, item.event, item.id, item.time)
        try:
            host, port = check_url(item.target.url, self.settings)
            await self._resolve(host, port)  # a refused address is refused before the first attempt
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.settings.notify_attempts),
                wait=wait_exponential_jitter(initial=1, max=self.settings.notify_max_backoff_seconds),
                retry=retry_if_exception_type(Retryable),
                reraise=True,
            ):
                with attempt:
                    try:
                        code = await self._post(item, host, port, headers, body, record)
                    except Retryable as e:
                        await self._record(
                            vj,
                            {
                                **record,
                                "state": "Retrying",
                                "message": str(e)[:1024],
                                **({"responseCode": e.code} if e.code else {}),
                            },
                        )
                        raise
                    record["responseCode"] = code
        except Refused as e:
            await self._record(vj, {**record, "state": "Refused", "message": str(e)[:1024]})
            await self._event(vj, "Warning", Reason.NOTIFICATION_REFUSED, f"{item.event} not sent: {e}")
            return
        except (Retryable, Rejected) as e:
            answered = {"responseCode": e.code} if e.code else {}
            await self._record(vj, {**record, **answered, "state": "Failed", "message": str(e)[:1024]})
            await self._event(
                vj,
                "Warning",
                Reason.NOTIFICATION_FAILED,
                f"gave up sending {item.event} to {item.target.url} after {record['attempts']} attempt(s): {e}",
            )
            return
        await self._record(vj, {**record, "state": "Delivered"})
        await self._event(
            vj,
            "Normal",
            Reason.NOTIFICATION_DELIVERED,
            f"{item.event} delivered to {item.target.url} (attempt {record['attempts']})",
        )

    async def _post(
        self, item: Due, host: str, port: int, headers: Mapping[str, str], body: bytes, record: dict[str, Any]
    ) -> int:
        """One request to an address the policy allows (counted in `record`); the status code of a 2xx, else an
        exception."""
        import aiohttp

        key = await self._key(item.target)
        addresses = await self._resolve(host, port)  # again: what is connected to is what was checked
        record["attempts"] += 1
        record["lastAttemptTime"] = _now()
        parts = urlsplit(item.target.url)
        literal = _is_ip(host)
        address = addresses[0]
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        default_port = 443 if parts.scheme == "https" else 80
        sent = {
            **headers,
            **sign(key, item.id, int(time.time()), body),
            "Host": host if port == default_port else f"{host}:{port}",
            "User-Agent": "videojob-operator",
        }
        session = await self._client()
        try:
            async with session.post(
                url,
                data=body,
                headers=sent,
                allow_redirects=False,
                server_hostname=None if literal else host,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                code = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise Retryable(f"{type(e).__name__}: {' '.join(str(e).split()) or 'no answer'}") from None
        if 200 <= code < 300:
            return code
        if code >= 500 or code in RETRIED_STATUSES:
            raise Retryable(f"HTTP {code}", code)
        raise Rejected(f"HTTP {code} (not retried)", code)

    async def _resolve(self, host: str, port: int) -> list[str]:
        if _is_ip(host):
            addresses = [host]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as e:
                raise Retryable(f"{host} does not resolve ({e})") from None
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            problem = check_address(address, self.settings.notify_allowed_networks)
            if problem is not None:
                raise Refused(f"{host} resolves to {address}, {problem} (not allowed for notifications)")
        return addresses

    async def _key(self, target: Target) -> bytes:
        path = f"/api/v1/namespaces/{quote(target.secret_namespace)}/secrets/{quote(target.secret_name)}"
        try:
            secret = await self.call(self.kube.request, "GET", path)
        except ApiError as e:
            why = "not found" if e.status == 404 else "not readable by the operator" if e.status == 403 else e.reason
            raise Retryable(f"Secret {target.secret_namespace}/{target.secret_name}: {why}") from None
        value = (secret.get("data") or {}).get(target.secret_key)
        if not value:
            raise Retryable(f"Secret {target.secret_namespace}/{target.secret_name} has no key {target.secret_key}")
        return base64.b64decode(value)

    async def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            context = ssl.create_default_context()
            if self.settings.notify_ca_bundle:
                context.load_verify_locations(cadata=self.settings.notify_ca_bundle)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=32))
        return self._session

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    # --- status and Events -----------------------------------------------------------------------------------

    async def _record(self, vj: Body, entry: dict[str, Any]) -> None:
        """Replace this (url, event)'s entry in status.notifications (the notifier is the field's only writer)."""
        meta = vj["metadata"]
        current = self.videojobs(str(meta["uid"])) or vj
        entries = [
            n
            for n in (current.get("status") or {}).get("notifications") or []
            if (n.get("url"), n.get("event")) != (entry["url"], entry["event"])
        ]
        entries.append(entry)
        try:
            response = await self.call(
                self.kube.patch_videojob_status, meta["namespace"], meta["name"], {"notifications": entries}
            )
        except Exception as e:
            log.warning("cannot record notification of %s/%s: %s", meta["namespace"], meta["name"], e)
            return
        if response:
            self.on_status(response)

    async def _event(self, vj: Body, kind: str, reason: str, message: str) -> None:
        log.info(
            "%s: %s",
            reason,
            message,
            extra={"namespace": vj["metadata"]["namespace"], "videojob": vj["metadata"]["name"]},
        )
        try:
            await self.call(self.kube.create_event, vj, kind, str(reason), message, _now())
        except Exception as e:  # the status records it; a lost Event is not worth a retry
            log.warning("cannot post Event %s: %s", reason, e)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
