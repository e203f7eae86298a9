"""bench/operator_latency.py counts the API server's requests per round from its own counter; these tables check
the reading of /metrics and the summary it prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "operator_latency.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_operator_latency", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# the API server's lines, less the labels the count does not read (component, group, scope, version)
METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",dry_run="",resource="jobs",subresource="",verb="POST"} 40
apiserver_request_total{code="201",dry_run="All",resource="jobs",subresource="",verb="POST"} 2
apiserver_request_total{code="200",dry_run="",resource="videojobs",subresource="status",verb="PATCH"} 7
apiserver_request_total{code="500",dry_run="",resource="",subresource="/readyz",verb="GET"} 3
apiserver_request_duration_seconds_count{verb="POST",resource="jobs"} 99
"""


@pytest.mark.parametrize(
    ("key", "count"),
    [
        ("POST jobs 201", 42.0),  # summed over the labels not in the key (dry_run here)
        ("PATCH videojobs/status 200", 7.0),
        ("GET /readyz 500", 3.0),  # a URL that is no resource: its path
    ],
)
def test_requests_by_kind_sums_the_counter_by_verb_resource_and_code(bench: ModuleType, key: str, count: float) -> None:
    counted = bench.requests_by_kind(METRICS)
    assert counted[key] == count
    assert len(counted) == 3  # other metrics are not the request counter


def test_a_label_value_with_an_escaped_quote_does_not_end_it(bench: ModuleType) -> None:
    line = 'apiserver_request_total{code="200",resource="x\\"y",subresource="",verb="GET"} 5\n'
    assert bench.requests_by_kind(line) == {'GET x\\"y 200': 5.0}


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (None, "API requests: n/a (the API server's /metrics could not be read)"),
        (
            {"POST jobs 201": 100.0, "PATCH videojobs/status 200": 100.0, "POST pods 403": 4.0, "GET jobs 200": 50.0},
            # 4 pod creates are 0.04 per VideoJob: counted in the total, not listed
            "API writes: 2.04 per VideoJob, 51/s (POST jobs 201 1.00, PATCH videojobs/status 200 1.00); "
            "reads (GET, LIST) 0.50 per VideoJob; kube-apiserver 4.9 ms of CPU per write",
        ),
    ],
)
def test_requests_summary(bench: ModuleType, used: dict[str, float] | None, expected: str) -> None:
    assert bench.requests_summary(used, 100, 4.0, 1.0) == expected


@pytest.mark.parametrize(
    ("n", "apiserver_cpu", "cores"),
    [
        (100, 1.0, 2.0),  # 10 ms per VideoJob (4 writes at 2.5 ms): 200/s needs 2 cores, whatever the round's rate
        (10_000, 43.0, 0.86),
    ],
)
def test_apiserver_cores_at_the_target_rate(bench: ModuleType, n: int, apiserver_cpu: float, cores: float) -> None:
    assert bench.apiserver_cores_at(200.0, n, apiserver_cpu) == pytest.approx(cores)
