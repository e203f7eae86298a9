"""Fixtures of the end-to-end tests: the operator runs for real against the local environment.

    crd              the CRDs of crds/ (VideoJob and the presets), created or replaced once per session, Established;
                     the VideoJob's is returned
    s3_secret        the `videojob-s3` Secret (MinIO credentials of the testenv) in the test's namespace
    videojobs        VideoJobs of the test's namespace (create, get, patch_spec, delete, phases)
    run_operator     run_operator(**settings) -> OperatorRelease: the Helm chart installed into the test's namespace,
                     watching it, its operator pod healthy (/healthz) before it returns, uninstalled at the end
    diagnostics      Diagnostics: phase, message, conditions, Jobs, pods, pod logs and the operator log tail,
                     for assertion messages; `wait_phase` / `wait_all` use it
    job_recorder     JobRecorder: every Job created in the namespace during the test (by uid, with its owner)
    media            MediaFactory: tiny generated media files, uploaded to MinIO on request
    http_server      ScriptedHTTPServer on the address pods reach (stall, 503, serve), for inputs the test controls
    held_input       held_input(name) -> HeldInput: a small video at /<name>.mp4 on http_server whose requests wait
                     until `.release()` (all are released when the test ends): a job that stays Running
    more_namespaces  more_namespaces(count, prefix) -> names: namespaces with the S3 Secret, for the operator to
                     watch beside the test's own; removed at the end

Settings given to run_operator are Settings field names, turned into the chart's values: run_operator(max_running=1).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from devkit.harness import (
    Diagnostics,
    HeldInput,
    JobRecorder,
    MediaFactory,
    ScriptedHTTPServer,
    VideoJobs,
    ensure_s3_secret,
)
from devkit.operator_release import OperatorRelease
from tests.conftest import TestEnv


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The chaos scenarios' rows of this session as one table (tests/e2e/chaos.py)."""
    from tests.e2e.chaos import FULL, ROWS, table

    if ROWS:
        terminalreporter.write_sep("=", f"chaos ({'full' if FULL else 'short'} sizes)")
        terminalreporter.write_line(table(ROWS))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def s3_secret(namespace: str, core_v1: Any, testenv: TestEnv) -> str:
    ensure_s3_secret(core_v1, namespace, testenv)
    return "videojob-s3"


@pytest.fixture
def videojobs(crd: dict[str, Any], custom_objects: Any, namespace: str) -> VideoJobs:
    return VideoJobs(custom_objects, namespace)


@pytest.fixture
def diagnostics(testenv: TestEnv, namespace: str, videojobs: VideoJobs, batch_v1: Any, core_v1: Any) -> Diagnostics:
    return Diagnostics(testenv=testenv, namespace=namespace, videojobs=videojobs, batch_v1=batch_v1, core_v1=core_v1)


@pytest.fixture
def run_operator(
    testenv: TestEnv,
    core_v1: Any,
    apps_v1: Any,
    namespace: str,
    s3_secret: str,
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., OperatorRelease]]:
    started: list[OperatorRelease] = []

    def run(start: bool = True, **settings: Any) -> OperatorRelease:
        op = OperatorRelease.for_testenv(
            testenv, core_v1, apps_v1, namespace, tmp_path / f"operator-{len(started)}.log", **settings
        )
        started.append(op)
        diagnostics.operator = op
        if start:
            op.start()
        return op

    try:
        yield run
    finally:
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        for op in started:
            op.stop()
            if failed:
                print(f"\n--- operator log {op.log_path} (tail) ---\n{op.log_tail(200)}")
        videojobs.strip_finalizers()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)  # lets run_operator print the operator log after a failure
    return report


@pytest.fixture
def job_recorder(batch_v1: Any, namespace: str) -> Iterator[JobRecorder]:
    with JobRecorder(batch_v1, namespace) as recorder:
        yield recorder


@pytest.fixture
def http_server(testenv: TestEnv) -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer(testenv.host_ip) as server:
        yield server


@pytest.fixture
def held_input(http_server: ScriptedHTTPServer, media: MediaFactory) -> Callable[[str], HeldInput]:
    """The blocker of many tests: an input held back until the test releases it (http_server releases every
    hold when it stops, so nothing waits past the test)."""

    def hold(name: str) -> HeldInput:
        return http_server.hold(f"/{name}.mp4", media.video().read_bytes())

    return hold


# ---------------------------------------------------------------------------------------------------------------
# Media


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("media"), s3)


@pytest.fixture
def more_namespaces(
    core_v1: Any, custom_objects: Any, crd: dict[str, Any], testenv: TestEnv
) -> Iterator[Callable[..., list[str]]]:
    """more_namespaces(count, prefix) makes namespaces, each with the S3 Secret transcoders use, for the test's
    operator to watch beside its own (`run_operator(namespaces=[namespace, *made])`); all are removed afterwards,
    their VideoJobs' finalizers stripped first (the operator may be gone: nothing else would)."""
    made: list[str] = []

    def make(count: int, prefix: str = "more") -> list[str]:
        new = [f"{prefix}-{uuid.uuid4().hex[:10]}" for _ in range(count)]
        for name in new:
            core_v1.create_namespace({"metadata": {"name": name}})
            made.append(name)
            ensure_s3_secret(core_v1, name, testenv)
        return new

    try:
        yield make
    finally:
        for name in made:
            VideoJobs(custom_objects, name).strip_finalizers()
            try:
                core_v1.delete_namespace(name)
            except ApiException as e:
                if e.status != 404:
                    raise
