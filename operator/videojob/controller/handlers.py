"""Kopf wiring: watches feed the reconciler's index; the reconcile loop and the metrics server run beside them.

Watched: VideoJobs, the presets they name (VideoJobPresets in the watched namespaces, ClusterVideoJobPresets
cluster-wide: a handful of small objects, held whole), and the operator's own Jobs and pods.

Only `@kopf.on.event` handlers are used, so Kopf itself never writes to a VideoJob: no finalizers of its own,
no handler progress, no results in `status` (its progress storage is set to annotations under the `videojob.dev`
prefix anyway). Nor does any handler look at a diff, so Kopf builds none (`EventsOnlyDiffBase`): it would
deep-copy every object of every event for one. Jobs and pods are watched
with a server-side label selector (`app.kubernetes.io/managed-by=videojob-operator`), so the operator never
holds other workloads' pods in memory.

Nor does Kopf keep a memory of each object between its events (`EventsOnlyMemories`): nothing we register uses one.

Kopf settings: standalone (no peering; why not, see leader.py). Without leader election run ONE replica (the
Deployment strategy `Recreate`), so two operators never act at once; with it (`VIDEOJOB_LEADER_ELECTION`, the
chart's default) every replica watches and keeps its index warm, and only the Lease holder runs the reconcile
loop, whose every API call checks that it still leads. Losing the Lease stops the operator (the kubelet restarts
it as a standby); shutting down releases it. Watch timeouts from the settings (a silent watch is re-established
instead of leaving the operator blind); a worker limit; Kopf posts its own Events at WARNING and above only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from aiohttp import web
from kopf._core.reactor import inventory as kopf_inventory  # not re-exported; kopf.run takes `memories=`

from videojob.api.models import CLUSTER_PRESET_PLURAL, GROUP, PLURAL, PRESET_PLURAL, VERSION
from videojob.controller.jobs import SELECTOR
from videojob.controller.kube import LIST_PAGE
from videojob.controller.leader import LeaderElector
from videojob.controller.metrics import Metrics, serve
from videojob.controller.reconciler import Reconciler
from videojob.controller.settings import Settings
from videojob.kubeapi import Connection, Credentials

log = logging.getLogger("videojob.operator")


def stall_after(settings: Settings) -> float:
    """Seconds without a completed pass after which /healthz reports the loop stalled."""
    return 3 * settings.resync_seconds + 30


def connection_info(connection: Connection) -> kopf.ConnectionInfo:
    token = Credentials(connection).token()
    return kopf.ConnectionInfo(
        server=connection.server,
        ca_path=connection.ca_file,
        insecure=connection.insecure or None,
        token=token,
        certificate_path=connection.cert_file,
        private_key_path=connection.key_file,
        default_namespace=connection.namespace,
    )


class EventsOnlyDiffBase(kopf.AnnotationsDiffBaseStorage):
    """No diff base: Kopf builds one for every event (a deep copy of the object, about a tenth of the operator's
    event-loop time in a burst of 10,000 VideoJobs) for change-detecting handlers, and we register none
    (tests/unit/test_controller_handlers.py fails if one is added: it would need this storage replaced)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return None  # Kopf's processing takes None as "no essence": an empty diff


class EventsOnlyMemories(kopf_inventory.ResourceMemories):
    """No per-object memory kept between events. Kopf keeps one for every object it has seen until the object is
    deleted (a memo, an error throttler, daemon and index state: about 0.8 KB each, 16 MB for 10,000 VideoJobs and
    their Jobs, more with their pods) for daemons, timers, resume handlers and Kopf indexes, none of which we register
    (tests/unit/test_controller_handlers.py fails if one is added). Each event gets a fresh one. What that gives up:
    Kopf's back-off between repeated errors of one object's handlers starts afresh with each event; ours only feed
    the index and do not raise."""

    async def recall(
        self,
        raw_body: kopf.RawBody,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> kopf_inventory.ResourceMemory:
        return await super().recall(raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True)


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    kopf_settings.peering.standalone = True
    kopf_settings.peering.clusterwide = settings.clusterwide
    kopf_settings.watching.server_timeout = settings.watch_server_timeout
    kopf_settings.watching.client_timeout = settings.watch_client_timeout
    kopf_settings.watching.connect_timeout = 30
    # Kopf lists everything in one response unless told otherwise: 10,000 VideoJobs are ~200 MB of Python objects
    # at once, memory the process then keeps. In pages of LIST_PAGE, like the index's own lists.
    kopf_settings.watching.chunk_size = LIST_PAGE
    kopf_settings.queueing.worker_limit = settings.worker_limit
    # A per-object worker lingers this long after its last event, holding a slot of the worker limit: the
    # handlers are instant, so let idle workers go at once.
    kopf_settings.queueing.idle_timeout = 0.05
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.persistence.finalizer = f"{GROUP}/kopf-finalizer"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    kopf_settings.persistence.diffbase_storage = EventsOnlyDiffBase(prefix=GROUP, key="last-handled-configuration")
    kopf_settings.watching.label_selectors["batch", "v1", "jobs"] = SELECTOR
    kopf_settings.watching.label_selectors["v1", "pods"] = SELECTOR


DRAIN_SECONDS = 5.0  # how long a resigning leader waits for API calls already sent before it releases the Lease


def build_registry(
    settings: Settings,
    reconciler: Reconciler,
    metrics: Metrics,
    elector: LeaderElector | None = None,
    stop: asyncio.Event | None = None,
) -> kopf.OperatorRegistry:
    """A Kopf registry with the operator's handlers (a registry of its own: importing this module registers
    nothing globally, so tests can build several). With an `elector`, the reconcile loop runs only while this
    replica leads; when the lead is lost, `stop` is set (kopf.run's stop flag) and the operator shuts down."""
    registry = kopf.OperatorRegistry()
    tasks: list[asyncio.Task[Any]] = []
    runners: list[web.AppRunner] = []

    async def lead(elector: LeaderElector) -> None:
        await elector.acquire()
        tasks.append(asyncio.create_task(reconciler.run(), name="videojob-reconcile"))
        await elector.hold()  # returns when the lead is lost; every API call of the loop is refused from then on
        if stop is not None:
            stop.set()

    async def resign(elector: LeaderElector) -> None:
        """Stop acting, let calls already sent finish (briefly), then give the Lease up for a standby to take."""
        elector.stop_acting()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(
                    asyncio.to_thread(reconciler.executor.shutdown, wait=True, cancel_futures=True),
                    asyncio.to_thread(reconciler.status_executor.shutdown, wait=True, cancel_futures=True),
                ),
                DRAIN_SECONDS,
            )
        await elector.release()
        elector.close()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        """Kopf's watches use the same credentials as the reconciler's calls (read again after a 401)."""
        return connection_info(reconciler.kube.api.connection)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, reconciler.settings)
        port = reconciler.settings.metrics_port
        if port:
            try:
                runners.append(await serve(metrics, port, stall_after(reconciler.settings)))
            except OSError as e:  # fatal: a liveness probe could never succeed
                raise kopf.PermanentError(f"cannot serve /metrics and /healthz on port {port}: {e}") from e
        if elector is None:
            tasks.append(asyncio.create_task(reconciler.run(), name="videojob-reconcile"))
        else:
            reconciler.may_act = lambda: elector.leading
            tasks.append(asyncio.create_task(lead(elector), name="videojob-leader-election"))
        log.info(
            "operator started",
            extra={
                "namespaces": ",".join(reconciler.settings.namespaces) or "*",
                "max_running": reconciler.settings.max_running,
                "max_running_gpu": reconciler.settings.max_running_gpu,
                "metrics_port": reconciler.settings.metrics_port,
                "leader_election": elector is not None,
            },
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if elector is not None:
            await resign(elector)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runner in runners:
            await runner.cleanup()
        reconciler.executor.shutdown(wait=False, cancel_futures=True)
        reconciler.status_executor.shutdown(wait=False, cancel_futures=True)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def videojob_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe("videojobs", event.get("type"), dict(event["object"]))

    @kopf.on.event(GROUP, VERSION, PRESET_PLURAL, registry=registry)
    async def preset_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe("presets", event.get("type"), dict(event["object"]))

    @kopf.on.event(GROUP, VERSION, CLUSTER_PRESET_PLURAL, registry=registry)
    async def cluster_preset_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe("clusterpresets", event.get("type"), dict(event["object"]))

    @kopf.on.event(
        "batch", "v1", "jobs", labels={"app.kubernetes.io/managed-by": "videojob-operator"}, registry=registry
    )
    async def job_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe("jobs", event.get("type"), dict(event["object"]))

    @kopf.on.event("v1", "pods", labels={"app.kubernetes.io/managed-by": "videojob-operator"}, registry=registry)
    async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
        reconciler.observe("pods", event.get("type"), dict(event["object"]))

    return registry
