"""LeaderElector against the real API server: Leases created, renewed, taken over after expiry, released, and two
replicas racing for one Lease (the API server's optimistic concurrency lets exactly one win). Short timings keep
it quick; the operator's defaults are longer (see docs/operations.md, "High availability")."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from videojob.controller.kube import Kube
from videojob.controller.leader import LeaderElector, Timings
from videojob.controller.metrics import Metrics

pytestmark = pytest.mark.integration

TIMINGS = Timings(lease_duration=3, renew_deadline=2, retry_period=0.25)
LEASE = "videojob-operator"


def elector(kube_api: Any, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(Kube(kube_api), namespace, LEASE, identity, TIMINGS, Metrics())


def holder(coordination_v1: Any, namespace: str) -> str | None:
    return coordination_v1.read_namespaced_lease(LEASE, namespace).spec.holder_identity or None


def test_one_holder_expiry_takeover_and_release(kube_api: Any, coordination_v1: Any, namespace: str) -> None:
    a, b = elector(kube_api, namespace, "pod-a"), elector(kube_api, namespace, "pod-b")

    async def scenario() -> dict[str, float]:
        assert await a.try_once() and a.leading  # no Lease yet: a creates it
        assert holder(coordination_v1, namespace) == "pod-a"
        assert not await b.try_once() and not b.leading  # a's Lease is fresh: b waits
        lease = coordination_v1.read_namespaced_lease(LEASE, namespace).spec
        assert (lease.lease_duration_seconds, lease.lease_transitions) == (3, 0)

        # a renews twice: b's clock restarts at each change it sees, so it keeps waiting
        for _ in range(2):
            await asyncio.sleep(1)
            assert await a.try_once()
            assert not await b.try_once()

        # a stops renewing (a crash): it stops acting after its renew deadline, b takes over after the duration
        crashed = time.monotonic()
        await asyncio.wait_for(b.acquire(), timeout=10)
        takeover = time.monotonic() - crashed
        assert not a.leading
        assert holder(coordination_v1, namespace) == "pod-b"
        assert coordination_v1.read_namespaced_lease(LEASE, namespace).spec.lease_transitions == 1
        assert not await a.try_once()  # a, back, sees b's Lease and stands by

        # b shuts down: it releases the Lease, and a takes it at its next try
        await b.release()
        assert not b.leading and holder(coordination_v1, namespace) is None
        released = time.monotonic()
        await asyncio.wait_for(a.acquire(), timeout=5)
        return {"takeover": takeover, "after_release": time.monotonic() - released}

    times = asyncio.run(scenario())
    # b first saw a's last renewal no earlier than a made it, so it waited at least the lease duration since
    assert TIMINGS.lease_duration - 0.3 <= times["takeover"] < TIMINGS.lease_duration + 2 * TIMINGS.retry_period + 1
    assert times["after_release"] < 1
    assert holder(coordination_v1, namespace) == "pod-a"


def test_two_replicas_racing_for_a_free_lease_one_wins(kube_api: Any, coordination_v1: Any, namespace: str) -> None:
    electors = [elector(kube_api, namespace, f"pod-{i}") for i in range(4)]

    async def race() -> list[bool]:
        return list(await asyncio.gather(*(e.try_once() for e in electors)))

    won = asyncio.run(race())
    assert won.count(True) == 1, won  # everyone read "no Lease" or one version; one create or update succeeded
    winner = electors[won.index(True)]
    assert holder(coordination_v1, namespace) == winner.identity
    assert [e.leading for e in electors] == won
