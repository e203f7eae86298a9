"""Leader election with a coordination.k8s.io/v1 Lease: with several replicas, only the holder of the Lease admits,
creates Jobs, writes statuses and deletes things; the others stand by with their watches (and index) warm.

Why a Lease and not Kopf's peering: peering is not an election. Each Kopf operator announces itself in a
KopfPeering object and pauses its *own handlers* while a peer of higher priority is alive; two replicas of equal
priority (a Deployment's) both pause, and a dead peer is noticed only when its record runs out (a minute by
default). It needs a CRD of its own, and it would not pause our reconcile loop, which runs beside Kopf's handlers.
A Lease is what kube-controller-manager and client-go's leaderelection use: one small object, optimistic
concurrency (every write names the resourceVersion it read), and time bounds that keep two leaders from acting
at once.

The rules (client-go's, with the same names):
- The holder renews the Lease every `retry_period`. It acts only while its last successful renewal, timed from the
  moment the request was *sent*, is younger than `renew_deadline`; past that it stops acting (every API call of
  the reconcile loop checks `LeaderElector.leading`), and the process exits, to come back as a standby.
- A standby polls the Lease every `retry_period` and takes it over only when the record has not changed for the
  holder's `leaseDurationSeconds`, counted on its *own* clock from when it first saw that record (never from the
  `renewTime` written by another machine, whose clock may differ). Since lease_duration > renew_deadline, the
  old holder has stopped acting `lease_duration - renew_deadline` seconds before anyone can take over.
- A holder that shuts down (SIGTERM) stops acting first, then releases the Lease (no holder), so a standby takes
  it at its next poll instead of waiting for it to expire.
- The identity is the pod's name: the kubelet never runs two instances of one container, so a restarted process
  of the same pod may take back a Lease that still names it at once (a single replica restarts without waiting).

Failover after a crash takes at most lease_duration + 2 x retry_period (the standby sees the last renewal up to
one poll late, and notices expiry up to one poll late), plus one list of the cluster's objects.

Pure: `LeaseRecord`, `observe`, `decide`, `lease_body`, `released_body`, `leading_until`. I/O: `LeaderElector`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from videojob.controller.kube import Kube, describe
from videojob.controller.metrics import Metrics
from videojob.kubeapi import ApiError

log = logging.getLogger("videojob.operator")

Body = Mapping[str, Any]


@dataclass(frozen=True)
class Timings:
    """Seconds: how long a record is valid, how long a holder acts without renewing, how often both sides try."""

    lease_duration: float
    renew_deadline: float
    retry_period: float


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says, and the version to write against."""

    holder: str | None
    lease_duration: float | None
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str | None

    @classmethod
    def from_lease(cls, lease: Body) -> LeaseRecord:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        return cls(
            holder=spec.get("holderIdentity") or None,
            lease_duration=float(duration) if isinstance(duration, int | float) and duration > 0 else None,
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )

    @property
    def key(self) -> tuple[Any, ...]:
        """What changes whenever anyone writes the record (a renewal moves renewTime)."""
        return (self.holder, self.lease_duration, self.acquire_time, self.renew_time, self.transitions)


@dataclass(frozen=True)
class Observation:
    """A record as first seen by this process, on its own monotonic clock."""

    key: tuple[Any, ...] | None
    seen_at: float


def observe(previous: Observation | None, record: LeaseRecord | None, now: float) -> Observation:
    """Remember when the record was first seen as it is: an unchanged record keeps its first sighting."""
    key = record.key if record is not None else None
    if previous is not None and previous.key == key:
        return previous
    return Observation(key, now)


class Decision(enum.Enum):
    CREATE = "create"  # there is no Lease yet
    ACQUIRE = "acquire"  # nobody holds it, or its holder stopped renewing it
    RENEW = "renew"  # we hold it
    WAIT = "wait"  # another holds it and renews it


def decide(record: LeaseRecord | None, identity: str, seen: Observation, now: float, timings: Timings) -> Decision:
    """What this replica should do with the Lease it just read (`seen`: when it first saw this very record)."""
    if record is None:
        return Decision.CREATE
    if record.holder is None:
        return Decision.ACQUIRE
    if record.holder == identity:
        return Decision.RENEW
    duration = record.lease_duration or timings.lease_duration
    return Decision.ACQUIRE if now - seen.seen_at >= duration else Decision.WAIT


def leading_until(renewed_at: float | None, timings: Timings) -> float:
    """The monotonic time until which a holder that last renewed at `renewed_at` (when that request was sent) may
    act; -inf when it never did."""
    return -math.inf if renewed_at is None else renewed_at + timings.renew_deadline


def _micro_time(moment: datetime) -> str:
    """A MicroTime as the API server writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(
    name: str,
    namespace: str,
    identity: str,
    record: LeaseRecord | None,
    timings: Timings,
    now: datetime,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Lease that records `identity` as holder: a renewal keeps acquireTime, a takeover counts a transition.
    Written with the resourceVersion it was read at, so of two replicas writing at once, one gets 409. A change of
    holder (a released Lease included) counts in leaseTransitions, as client-go counts it."""
    renewing = record is not None and record.holder == identity
    stamp = _micro_time(now)
    acquired = record.acquire_time if record is not None and renewing and record.acquire_time else stamp
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if record is not None and record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    transitions = 0 if record is None else record.transitions + (0 if renewing else 1)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": math.ceil(timings.lease_duration),
            "acquireTime": acquired,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


def released_body(
    name: str, namespace: str, record: LeaseRecord, now: datetime, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Lease given up by its holder: no holder, so the next poll of a standby takes it."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {"leaseDurationSeconds": 1, "renewTime": _micro_time(now), "leaseTransitions": record.transitions},
    }


class LeaderElector:
    """Holds (or waits for) one Lease. `acquire()` returns once this replica leads; `hold()` renews until the
    lead is lost and then returns; `release()` gives the Lease up on shutdown. Calls go through a thread of their
    own, so a reconcile pass that keeps the API workers busy never delays a renewal."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timings: Timings,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings
        self.metrics = metrics
        self.clock = clock
        self.labels = dict(labels or {})
        self.renewed_at: float | None = None
        self.seen: Observation | None = None
        self.holder: str | None = None  # the holder as last read
        self.lost = False  # set by hold() when the lead was lost (the process then exits, to come back a standby)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self._timeout = max(timings.renew_deadline / 2, 1.0)  # one hung request must not use up the deadline

    @property
    def leading(self) -> bool:
        """Whether this replica may act now."""
        return self.clock() < leading_until(self.renewed_at, self.timings)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def try_once(self) -> bool:
        """Read the Lease and take or renew it when the rules allow; True when this replica holds it now."""
        sent = self.clock()
        self.metrics.lease_checked = sent
        try:
            lease = await self._call(self.kube.get_lease, self.namespace, self.name, self._timeout)
        except Exception as e:
            log.warning("cannot read Lease %s/%s: %s", self.namespace, self.name, describe(e))
            return False
        record = LeaseRecord.from_lease(lease) if lease is not None else None
        now = self.clock()
        self.seen = observe(self.seen, record, now)
        self.holder = record.holder if record is not None else None
        decision = decide(record, self.identity, self.seen, now, self.timings)
        if decision is Decision.WAIT:
            self.renewed_at = None  # another holds it: we never act on an old renewal
            return False
        body = lease_body(
            self.name, self.namespace, self.identity, record, self.timings, datetime.now(UTC), self.labels
        )
        sent = self.clock()
        try:
            if decision is Decision.CREATE:
                await self._call(self.kube.create_lease, body, self._timeout)
            else:
                await self._call(self.kube.replace_lease, body, self._timeout)
        except ApiError as e:
            if e.status != 409:  # 409: another replica wrote it first; the next read tells who
                log.warning("cannot write Lease %s/%s: %s", self.namespace, self.name, describe(e))
            return False
        except Exception as e:
            log.warning("cannot write Lease %s/%s: %s", self.namespace, self.name, describe(e))
            return False
        if decision is not Decision.RENEW or self.renewed_at is None:
            log.info(
                "acquired Lease %s/%s as %s (previous holder: %s)",
                self.namespace,
                self.name,
                self.identity,
                (record.holder if record is not None else None) or "none",
            )
        self.renewed_at = sent
        self.holder = self.identity
        return True

    async def acquire(self) -> None:
        """Wait (standing by) until this replica holds the Lease."""
        self.metrics.set_leading(False)
        log.info("standing by: waiting for Lease %s/%s", self.namespace, self.name)
        while not await self.try_once():
            await asyncio.sleep(self.timings.retry_period)
        self.metrics.set_leading(True)
        log.info("leading: this replica admits and writes", extra={"identity": self.identity})

    async def hold(self) -> None:
        """Renew every retry_period; return when the lead is lost (renew_deadline passed without a renewal, or
        another replica holds the Lease)."""
        while True:
            await asyncio.sleep(self.timings.retry_period)
            held = await self.try_once()
            if not self.leading or (not held and self.holder not in (None, self.identity)):
                self.lost = True
                self.stop_acting()
                log.error(
                    "lost Lease %s/%s (holder now: %s): stopped acting",
                    self.namespace,
                    self.name,
                    self.holder or "none",
                )
                return

    def stop_acting(self) -> None:
        """From now on `leading` is False (the reconcile loop's calls are refused), whatever the Lease says."""
        self.renewed_at = None
        self.metrics.set_leading(False)

    async def release(self) -> None:
        """Give the Lease up if it names this replica (call stop_acting first): a standby takes it at its next
        poll. Best effort: if this fails, the Lease expires."""
        self.stop_acting()
        try:
            lease = await self._call(self.kube.get_lease, self.namespace, self.name, self._timeout)
            record = LeaseRecord.from_lease(lease) if lease is not None else None
            if record is None or record.holder != self.identity:
                return
            await self._call(
                self.kube.replace_lease,
                released_body(self.name, self.namespace, record, datetime.now(UTC), self.labels),
                self._timeout,
            )
            log.info("released Lease %s/%s", self.namespace, self.name)
        except Exception as e:
            log.warning("cannot release Lease %s/%s (it expires instead): %s", self.namespace, self.name, describe(e))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
