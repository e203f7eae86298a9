"""The Kopf wiring: only event handlers, so Kopf may skip building a diff base for every event and keep no memory
of each object between its events."""

from __future__ import annotations

import asyncio

import kopf

from tests.unit.test_controller_reconciler import FakeKube
from videojob.controller.handlers import EventsOnlyDiffBase, EventsOnlyMemories, build_registry, configure_kopf
from videojob.controller.metrics import Metrics
from videojob.controller.reconciler import Reconciler
from videojob.controller.settings import Settings


def test_only_event_handlers_are_registered_so_no_diff_base_is_needed() -> None:
    settings = Settings()
    reconciler = Reconciler(settings, FakeKube(), Metrics())  # type: ignore[arg-type]
    try:
        registry = build_registry(settings, reconciler, reconciler.metrics)
        kinds = {handler.selector.any_name for handler in registry._watching.get_all_handlers() if handler.selector}
        assert {"videojobs", "jobs", "pods"} <= kinds
        assert not registry._changing.get_all_handlers(), "a change handler needs Kopf's diff base back"
        assert not registry._spawning.get_all_handlers(), "a daemon or timer needs Kopf's diff base back"
        kopf_settings = kopf.OperatorSettings()
        configure_kopf(kopf_settings, settings)
        storage = kopf_settings.persistence.diffbase_storage
        assert isinstance(storage, EventsOnlyDiffBase)
        body = kopf.Body({"metadata": {"name": "a", "annotations": {}}, "spec": {"x": 1}})
        assert storage.build(body=body) is None
        assert storage.fetch(body=body) is None
    finally:
        reconciler.executor.shutdown()
        reconciler.status_executor.shutdown()


def test_no_memory_of_an_object_is_kept_between_its_events() -> None:
    async def recall_twice() -> None:
        memories = EventsOnlyMemories()
        bodies: list[kopf.RawBody] = [
            {"metadata": {"uid": f"uid-{i}", "name": f"vj-{i}", "namespace": "ns"}} for i in range(3)
        ]
        first = [await memories.recall(body, noticed_by_listing=True) for body in bodies]
        again = await memories.recall(bodies[0])
        assert list(memories.iter_all_memories()) == []
        assert again is not first[0]  # a fresh memory for each event
        assert first[0].noticed_by_listing and not again.noticed_by_listing
        await memories.forget(bodies[0])  # what Kopf calls on DELETED: nothing to forget, no error

    asyncio.run(recall_twice())
