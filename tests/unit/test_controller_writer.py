"""The background status writer: newest wish per VideoJob, transitions before queue positions."""

from __future__ import annotations

import asyncio
from typing import Any

from videojob.controller.reconciler import EventPoster, StatusWriter, _is_urgent


def run_writer(submissions: list[tuple[str, int, bool]], discard: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    written: list[tuple[str, int]] = []

    async def write(uid: str, status: dict[str, Any], pods: list[Any], basis: str | None, now: Any) -> None:
        written.append((uid, status["n"]))

    async def main() -> None:
        writer = StatusWriter(write, workers=1, on_error=lambda uid, e: None)
        for uid, n, urgent in submissions:
            writer.submit(uid, {"n": n}, [], urgent=urgent)
        for uid in discard:
            writer.discard(uid)
        tasks = writer.start()
        while writer.pending():
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    return written


def test_wishes_coalesce_to_the_newest() -> None:
    assert run_writer([("a", 1, False), ("a", 2, False), ("a", 3, False)]) == [("a", 3)]


def test_urgent_writes_go_first() -> None:
    assert run_writer([("q1", 1, False), ("q2", 1, False), ("admitted", 1, True)]) == [
        ("admitted", 1),
        ("q1", 1),
        ("q2", 1),
    ]


def test_a_wish_that_became_urgent_moves_ahead() -> None:
    assert run_writer([("q1", 1, False), ("q2", 1, False), ("q2", 2, True)]) == [("q2", 2), ("q1", 1)]


def test_discarded_wishes_are_not_written() -> None:
    assert run_writer([("a", 1, False), ("b", 1, False)], discard=("a",)) == [("b", 1)]


def test_a_newer_wish_waits_for_the_write_in_flight_of_the_same_videojob() -> None:
    """With workers to spare, a wish submitted while its VideoJob's status is being written is written after that
    write's answer is in (it is computed against the new status), never beside it; others go on meanwhile."""
    log: list[str] = []

    async def main() -> None:
        answer = asyncio.Event()

        async def write(uid: str, status: dict[str, Any], pods: list[Any], basis: str | None, now: Any) -> None:
            log.append(f"start {uid}{status['n']}")
            if (uid, status["n"]) == ("a", 1):
                await answer.wait()
            log.append(f"end {uid}{status['n']}")

        writer = StatusWriter(write, workers=4, on_error=lambda uid, e: None)
        tasks = writer.start()
        writer.submit("a", {"n": 1}, [], urgent=True)
        await asyncio.sleep(0.01)
        writer.submit("a", {"n": 2}, [], urgent=True)
        writer.submit("b", {"n": 1}, [], urgent=False)
        await asyncio.sleep(0.01)
        log.append("answer")
        answer.set()
        while writer.pending() or writer.writing:
            await asyncio.sleep(0.001)
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    assert log == ["start a1", "start b1", "end b1", "answer", "end a1", "start a2", "end a2"]


def test_what_is_urgent() -> None:
    assert _is_urgent({"phase": "Running", "node": "cpu-0"})
    assert _is_urgent({"jobName": "j", "queuePosition": None})
    assert not _is_urgent({"queuePosition": 3, "message": "position 3 in the queue", "conditions": []})
    assert not _is_urgent({"phase": "Pending", "queuePosition": 1})


VJ = {"metadata": {"name": "a", "namespace": "media", "uid": "uid-a"}}


def test_events_are_posted_in_order_and_beyond_the_limit_the_oldest_are_dropped() -> None:
    posted: list[str] = []

    async def post(vj: Any, event_type: str, reason: str, message: str, when: str) -> None:
        posted.append(reason)

    async def main() -> None:
        poster = EventPoster(post, workers=1, limit=3)
        for reason in ("a", "b", "c", "d", "e"):
            poster.submit(VJ, "Normal", reason, "", "2026-01-01T12:00:00Z")
        assert poster.dropped == 2
        await poster.drain()

    asyncio.run(main())
    assert posted == ["c", "d", "e"]


def test_an_event_that_cannot_be_posted_does_not_stop_the_next() -> None:
    posted: list[str] = []

    async def post(vj: Any, event_type: str, reason: str, message: str, when: str) -> None:
        if reason == "refused":
            raise ConnectionResetError("the API server went away")
        posted.append(reason)

    async def main() -> None:
        poster = EventPoster(post, workers=1)  # one worker: it must survive the failure
        tasks = poster.start()
        for reason in ("refused", "Queued", "Admitted"):
            poster.submit(VJ, "Normal", reason, "", "2026-01-01T12:00:00Z")
        while poster.queue:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    assert posted == ["Queued", "Admitted"]


def test_a_waiting_event_holds_the_videojobs_identity_not_the_videojob() -> None:
    """In a burst thousands of Events wait; each must not keep an old version of its whole VideoJob alive, nor a
    dict of its identity (two dicts were most of a waiting Event)."""
    whole = {
        "metadata": {**VJ["metadata"], "resourceVersion": "7", "labels": {"team": "promo"}},
        "spec": {"inputs": [{"name": "in", "uri": "s3://media/in.mp4"}] * 50},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "message": "x" * 1000}]},
    }
    posted: list[Any] = []

    async def post(vj: Any, event_type: str, reason: str, message: str, when: str) -> None:
        posted.append(vj)

    async def main() -> None:
        poster = EventPoster(post, workers=1)
        poster.submit(whole, "Normal", "Started", "running on cpu-0", "2026-01-01T12:00:00Z")
        assert all(not isinstance(value, dict) for value in poster.queue[0])  # no dict of it, nor a copy
        await poster.drain()

    asyncio.run(main())
    assert posted == [VJ]
