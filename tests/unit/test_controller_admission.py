"""The admission queue: order, limits, hardware choice, queue positions."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from videojob.api.models import VideoJobSpec
from videojob.controller.admission import (
    RunningCounts,
    admission_order,
    check_admissible,
    plan_admission,
)
from videojob.controller.settings import Settings


def vj(
    name: str,
    priority: int = 5,
    created: str = "2026-01-01T00:00:00Z",
    hardware: str = "auto",
    codec: str = "h264",
    namespace: str = "media",
    queued_at: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "creationTimestamp": created},
        "spec": {"priority": priority, "hardware": hardware, "output": {"video": {"codec": codec}}},
    }
    if queued_at is not None:
        body["status"] = {"phase": "Pending", "queuedAt": queued_at}
    return body


def names(items: list[Any]) -> list[str]:
    return [(i[0] if isinstance(i, tuple) else i)["metadata"]["name"] for i in items]


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        pytest.param([vj("a", 5), vj("b", 1), vj("c", 10)], ["b", "a", "c"], id="priority 1 comes first"),
        pytest.param(
            [vj("late", 3, "2026-01-01T00:00:09Z"), vj("early", 3, "2026-01-01T00:00:01Z")],
            ["early", "late"],
            id="first come first served within a priority",
        ),
        pytest.param([vj("b", 3), vj("a", 3)], ["a", "b"], id="same second: name breaks the tie"),
        pytest.param([vj("x", 3, namespace="zz"), vj("x", 3, namespace="aa")], ["x", "x"], id="namespaces sort too"),
        pytest.param(
            [vj("old-low", 9, "2026-01-01T00:00:00Z"), vj("new-high", 2, "2026-01-02T00:00:00Z")],
            ["new-high", "old-low"],
            id="priority outranks age",
        ),
    ],
)
def test_admission_order(jobs: list[dict[str, Any]], expected: list[str]) -> None:
    assert names(admission_order(jobs)) == expected


T0 = "2026-01-01T00:00:00"


@pytest.mark.parametrize(
    ("jobs", "arrivals", "expected"),
    [
        pytest.param(
            [
                vj("a", queued_at=f"{T0}.000300Z"),
                vj("b", queued_at=f"{T0}.000200Z"),
                vj("c", queued_at=f"{T0}.000100Z"),
            ],
            {},
            ["c", "b", "a"],
            id="same second: the recorded precise arrival, not the name",
        ),
        pytest.param(
            [vj("a"), vj("b"), vj("c")],
            {"uid-a": f"{T0}.000003Z", "uid-b": f"{T0}.000002Z", "uid-c": f"{T0}.000001Z"},
            ["c", "b", "a"],
            id="same second, nothing recorded yet: the in-memory arrival",
        ),
        pytest.param(
            [vj("a", queued_at=f"{T0}.000001Z"), vj("b")],
            {"uid-a": f"{T0}.000009Z", "uid-b": f"{T0}.000005Z"},
            ["a", "b"],
            id="a recorded arrival wins over an in-memory one (after a restart)",
        ),
        pytest.param(
            [vj("a", queued_at=f"{T0}.500000Z"), vj("b", queued_at=f"{T0}Z")],
            {},
            ["b", "a"],
            id="seconds-only and microsecond times compare as times, not strings",
        ),
        pytest.param(
            [vj("a", queued_at=f"{T0}.000002+00:00"), vj("b", queued_at=f"{T0}.000001Z")],
            {},
            ["b", "a"],
            id="any RFC 3339 offset form compares as a time",
        ),
        pytest.param(
            [
                vj("early", created=f"{T0}Z", queued_at="2026-01-01T00:00:05.000000Z"),
                vj("late", created="2026-01-01T00:00:01Z", queued_at="2026-01-01T00:00:01.000000Z"),
            ],
            {},
            ["early", "late"],
            id="the creation second comes before the arrival (seen late, created early)",
        ),
        pytest.param(
            [vj("z", 5, queued_at=f"{T0}.000001Z"), vj("y", 1, queued_at=f"{T0}.000009Z")],
            {},
            ["y", "z"],
            id="priority outranks arrival",
        ),
        pytest.param(
            [vj("b", queued_at=f"{T0}.000001Z"), vj("a", queued_at=f"{T0}.000001Z")],
            {},
            ["a", "b"],
            id="equal arrivals: the name still decides",
        ),
        pytest.param(
            [vj("b"), vj("a", queued_at="not a time")],
            {},
            ["a", "b"],
            id="no arrival known at all: the creation second, then the name",
        ),
    ],
)
def test_admission_order_within_a_second(
    jobs: list[dict[str, Any]], arrivals: dict[str, str], expected: list[str]
) -> None:
    assert names(admission_order(jobs, arrivals)) == expected


def test_plan_admission_admits_a_same_second_burst_by_arrival() -> None:
    burst = [vj(name, queued_at=f"{T0}.{index:06d}Z") for index, name in enumerate("fedcba")]
    plan = plan_admission(burst, RunningCounts(), Settings(max_running=1))
    assert names(plan.to_admit) == ["f"]
    assert plan.positions == {"uid-e": 1, "uid-d": 2, "uid-c": 3, "uid-b": 4, "uid-a": 5}


def test_admission_order_ties_across_namespaces_are_deterministic() -> None:
    ordered = admission_order([vj("x", 3, namespace="zz"), vj("x", 3, namespace="aa")])
    assert [j["metadata"]["namespace"] for j in ordered] == ["aa", "zz"]


S = Settings(max_running=2, max_running_gpu=1)


@pytest.mark.parametrize(
    ("pending", "running", "settings", "admitted", "positions"),
    [
        pytest.param(
            [
                vj("a", 5, "2026-01-01T00:00:02Z", "cpu"),
                vj("b", 1, "2026-01-01T00:00:03Z", "cpu"),
                vj("c", 5, "2026-01-01T00:00:01Z", "cpu"),
            ],
            RunningCounts(),
            S,
            [("b", "cpu"), ("c", "cpu")],
            {"uid-a": 1},
            id="two slots go to the highest priority then the oldest",
        ),
        pytest.param(
            [vj("a", hardware="cpu"), vj("b", hardware="cpu")],
            RunningCounts(total=2),
            S,
            [],
            {"uid-a": 1, "uid-b": 2},
            id="full: nothing admitted, positions from 1",
        ),
        pytest.param(
            [vj("a"), vj("b")],
            RunningCounts(),
            S,
            [("a", "nvidia"), ("b", "cpu")],
            {},
            id="auto takes the free GPU, the next auto runs on CPU",
        ),
        pytest.param(
            [vj("a", codec="vp9")],
            RunningCounts(),
            S,
            [("a", "cpu")],
            {},
            id="auto with a codec without NVENC stays on CPU",
        ),
        pytest.param(
            [vj("a", codec="h265")],
            RunningCounts(),
            S,
            [("a", "nvidia")],
            {},
            id="auto with h265 uses NVENC",
        ),
        pytest.param(
            [vj("a")],
            RunningCounts(total=1, gpu=1),
            S,
            [("a", "cpu")],
            {},
            id="auto with the GPU busy runs on CPU",
        ),
        pytest.param(
            [vj("gpu", 1, hardware="nvidia"), vj("cpu", 5, hardware="cpu")],
            RunningCounts(total=1, gpu=1),
            S,
            [("cpu", "cpu")],
            {"uid-gpu": 1},
            id="a job waiting for a GPU slot does not block CPU jobs behind it",
        ),
        pytest.param(
            [vj("gpu", 1, hardware="nvidia"), vj("cpu", 5, hardware="cpu")],
            RunningCounts(total=1, gpu=0),
            S,
            [("gpu", "nvidia")],
            {"uid-cpu": 1},
            id="the total limit is strict priority order",
        ),
        pytest.param(
            [vj("g1", 1, hardware="nvidia"), vj("g2", 2, hardware="nvidia")],
            RunningCounts(),
            Settings(max_running=5, max_running_gpu=1),
            [("g1", "nvidia")],
            {"uid-g2": 1},
            id="one GPU slot: the second nvidia job waits",
        ),
        pytest.param(
            [vj("a")],
            RunningCounts(),
            Settings(max_running=1, max_running_gpu=0),
            [("a", "cpu")],
            {},
            id="GPUs disabled: auto runs on CPU",
        ),
        pytest.param(
            [vj("a", hardware="cpu")],
            RunningCounts(total=3),
            S,
            [],
            {"uid-a": 1},
            id="over the limit (after the limit was lowered): nothing admitted",
        ),
    ],
)
def test_plan_admission(
    pending: list[dict[str, Any]],
    running: RunningCounts,
    settings: Settings,
    admitted: list[tuple[str, str]],
    positions: dict[str, int],
) -> None:
    plan = plan_admission(pending, running, settings)
    assert [(v["metadata"]["name"], hw) for v, hw in plan.to_admit] == admitted
    assert plan.positions == positions


def test_raising_priority_of_a_pending_job_moves_it_ahead() -> None:
    settings = Settings(max_running=1, max_running_gpu=0)
    a, b = vj("a", 5, "2026-01-01T00:00:01Z"), vj("b", 5, "2026-01-01T00:00:02Z")
    queue = plan_admission([a, b], RunningCounts(total=1), settings).positions
    assert queue == {"uid-a": 1, "uid-b": 2}
    b["spec"]["priority"] = 2
    queue = plan_admission([a, b], RunningCounts(total=1), settings).positions
    assert queue == {"uid-b": 1, "uid-a": 2}


def spec(uri: str, hardware: str = "auto") -> VideoJobSpec:
    return VideoJobSpec.model_validate(
        {"hardware": hardware, "inputs": [{"name": "in", "uri": uri}], "output": {"uri": "s3://out/x/"}}
    )


@pytest.mark.parametrize(
    ("uri", "hardware", "settings", "problem"),
    [
        pytest.param("s3://media/in.mp4", "auto", Settings(), None, id="s3 is always fine"),
        pytest.param("https://cdn.example.com/a.mp4", "auto", Settings(), None, id="https to any host by default"),
        pytest.param("http://cdn.example.com/a.mp4", "auto", Settings(), "http:// is not allowed", id="http refused"),
        pytest.param("http://cdn.example.com/a.mp4", "auto", Settings(allow_http=True), None, id="http allowed"),
        pytest.param(
            "https://evil.test/a.mp4",
            "auto",
            Settings(allowed_hosts=[".example.com"]),
            "not in the operator",
            id="host outside the allowed suffixes",
        ),
        pytest.param(
            "https://cdn.example.com/a.mp4",
            "auto",
            Settings(allowed_hosts=[".example.com"]),
            None,
            id="host under an allowed suffix",
        ),
        pytest.param(
            "https://example.com.evil.test/a.mp4",
            "auto",
            Settings(allowed_hosts=["example.com"]),
            "not in the",
            id="exact host entries match exactly",
        ),
        pytest.param(
            "s3://media/in.mp4",
            "nvidia",
            Settings(max_running_gpu=0),
            "GPU jobs are disabled",
            id="nvidia with GPUs disabled can never run",
        ),
    ],
)
def test_check_admissible(uri: str, hardware: str, settings: Settings, problem: str | None) -> None:
    result = check_admissible(spec(uri, hardware), settings)
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


# --- sharing between namespaces ---------------------------------------------------------------------------------


def at(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}Z"


def burst(namespace: str, count: int, first_second: int, priority: int = 5) -> list[dict[str, Any]]:
    """`count` VideoJobs of one namespace arriving one second apart (names ns-1, ns-2, ...)."""
    return [
        vj(f"{namespace}-{i}", priority, at(first_second + i), hardware="cpu", namespace=namespace)
        for i in range(1, count + 1)
    ]


@pytest.mark.parametrize(
    ("pending", "running", "settings", "order"),
    [
        pytest.param(
            burst("a", 4, 0) + burst("b", 2, 10),
            {},
            Settings(),
            ["a-1", "b-1", "a-2", "b-2", "a-3", "a-4"],
            id="a later namespace takes turns with the one that queued first",
        ),
        pytest.param(
            burst("a", 4, 0) + burst("b", 2, 10),
            {},
            Settings(fair_sharing=False),
            ["a-1", "a-2", "a-3", "a-4", "b-1", "b-2"],
            id="without fair sharing: first come first served across namespaces",
        ),
        pytest.param(
            burst("a", 3, 0) + burst("b", 3, 10),
            {"a": 2},
            Settings(),
            ["b-1", "b-2", "a-1", "b-3", "a-2", "a-3"],
            id="running VideoJobs count: the namespace running fewer catches up first",
        ),
        pytest.param(
            burst("a", 6, 0) + burst("b", 3, 10),
            {},
            Settings(namespace_weights={"a": 2}),
            ["a-1", "b-1", "a-2", "a-3", "b-2", "a-4", "a-5", "b-3", "a-6"],
            id="weight 2 gets two turns for one",
        ),
        pytest.param(
            burst("a", 3, 0) + burst("b", 1, 10, priority=2),
            {"b": 5},
            Settings(),
            ["b-1", "a-1", "a-2", "a-3"],
            id="priority outranks shares: a busy namespace's urgent job still goes first",
        ),
        pytest.param(
            burst("a", 2, 0) + burst("b", 2, 10) + burst("c", 2, 20),
            {},
            Settings(),
            ["a-1", "b-1", "c-1", "a-2", "b-2", "c-2"],
            id="three namespaces round robin, ties to the earliest arrival",
        ),
    ],
)
def test_fair_sharing_order(
    pending: list[dict[str, Any]], running: dict[str, int], settings: Settings, order: list[str]
) -> None:
    counts = RunningCounts(total=sum(running.values()), namespaces=running)
    plan = plan_admission(pending, counts, settings.model_copy(update={"max_running": 100}))
    assert names(plan.to_admit) == order[: len(plan.to_admit)] == order  # 100 slots: all admitted, in this order
    # with no free slot the same order is the queue
    full = RunningCounts(total=100, namespaces=running)
    plan = plan_admission(pending, full, settings.model_copy(update={"max_running": 100}))
    assert sorted(plan.positions, key=plan.positions.__getitem__) == [f"uid-{name}" for name in order]


@pytest.mark.parametrize(
    ("settings", "running", "admitted", "held"),
    [
        pytest.param(
            Settings(max_running=10, max_running_per_namespace=2),
            {},
            ["a-1", "b-1", "a-2", "b-2"],
            {"a-3": "namespace a runs its limit of 2 VideoJobs at once"},
            id="default limit per namespace",
        ),
        pytest.param(
            Settings(max_running=10, max_running_per_namespace=2, namespace_max_running={"b": 1}),
            {"a": 1},
            ["b-1", "a-1"],
            {"a-2": "runs its limit of 2", "a-3": "runs its limit of 2", "b-2": "limit of 1 VideoJob "},
            id="an override, and running VideoJobs count against the limit",
        ),
        pytest.param(
            Settings(max_running=10, namespace_max_running={"a": 0}),
            {},
            ["b-1", "b-2"],
            {"a-1": "may run no VideoJobs", "a-2": "may run no VideoJobs", "a-3": "may run no VideoJobs"},
            id="0 holds a namespace",
        ),
        pytest.param(
            Settings(max_running=3, max_running_per_namespace=1),
            {},
            ["a-1", "b-1"],
            {"a-2": "limit of 1", "a-3": "limit of 1", "b-2": "limit of 1"},
            id="a namespace at its limit does not hold back the other's",
        ),
    ],
)
def test_namespace_limits(
    settings: Settings, running: dict[str, int], admitted: list[str], held: dict[str, str]
) -> None:
    pending = burst("a", 3, 0) + burst("b", 2, 10)
    counts = RunningCounts(total=sum(running.values()), namespaces=running)
    plan = plan_admission(pending, counts, settings)
    assert names(plan.to_admit) == admitted
    assert set(plan.held) == {f"uid-{name}" for name in held}
    for name, words in held.items():
        assert words in plan.held[f"uid-{name}"], plan.held
    assert set(plan.positions) == {f"uid-{v['metadata']['name']}" for v in pending} - {f"uid-{n}" for n in admitted}


def test_ten_thousand_queued_in_fifty_namespaces_give_each_a_turn_in_the_first_fifty_places() -> None:
    """With FIFO the first 50 places would go to the ~8 namespaces of the first second."""
    pending = [vj(f"j{i}", 5, at(i % 60), hardware="cpu", namespace=f"ns{i % 50}") for i in range(10_000)]
    plan = plan_admission(pending, RunningCounts(total=10), Settings(max_running=10))
    first = sorted(plan.positions, key=plan.positions.__getitem__)[:50]
    assert len({uid for uid in first}) == 50
    assert {int(uid.removeprefix("uid-j")) % 50 for uid in first} == set(range(50))


def test_a_kept_order_is_the_admission_order_as_the_queue_changes() -> None:
    """KeptOrder merges new VideoJobs into the last pass's order: after every change of a random queue (arrivals,
    admissions, a priority raised: a new object for the same VideoJob) it equals admission_order of the queue."""
    import random

    from videojob.controller.admission import KeptOrder, sort_key

    rng = random.Random(13)  # noqa: S311 (a reproducible test sequence)
    arrivals: dict[str, str] = {}
    kept = KeptOrder(lambda body: sort_key(body, arrivals))
    pending: list[dict[str, Any]] = []
    serial = 0
    for _ in range(200):
        burst = rng.random() < 0.05  # now and then more than KeptOrder bisects: merged by one sort
        for _ in range(rng.randrange(300, 400) if burst else rng.randrange(0, 6)):  # arrivals, some in one second
            serial += 1
            created = f"2026-01-01T00:{serial // 120:02d}:{serial % 60:02d}Z"
            body = vj(f"j{serial:04d}", rng.choice([1, 5, 5, 9]), created, namespace=rng.choice(["a", "b", "c"]))
            arrivals[body["metadata"]["uid"]] = f"2026-01-01T00:00:00.{serial:06d}Z"
            pending.append(body)
        for _ in range(rng.randrange(200, 300) if burst else rng.randrange(0, 3)):  # admitted or deleted
            if pending:
                pending.pop(rng.randrange(len(pending)))
        if pending and rng.random() < 0.3:  # a priority raised: the index holds a new object
            i = rng.randrange(len(pending))
            pending[i] = {**pending[i], "spec": {**pending[i]["spec"], "priority": 1}}
        rng.shuffle(pending)  # the pass finds them in any order
        assert kept.order(pending) == admission_order(pending, arrivals)
        assert kept.namespaces == len({body["metadata"]["namespace"] for body in pending})
        waiting = kept.waiting_by_priority(pending[:2])
        assert waiting == Counter(body["spec"]["priority"] for body in pending[2:])
