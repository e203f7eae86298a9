"""Shared pytest fixtures.

Integration fixtures run against the real local environment of hack/testenv.py (control plane, real nodes,
MinIO). They are lazy: a test that asks for none of them (every unit test) starts nothing. The session-wide
`testenv` fixture reuses a live environment when `.testenv/env` points at one, otherwise it runs
`hack/testenv.py up` and, having started it, runs `hack/testenv.py down` at the end of the session. If the
environment cannot start, the tests that need it error with the reason; nothing is skipped silently.

Fixtures:
    testenv                      TestEnv: kubeconfig, S3 settings, host_ip, pod logs
    k8s_client                   kubernetes.client.ApiClient for the admin kubeconfig
    crd                          the CRDs installed from crds/ (session)
    kube_api                     videojob.kubeapi.Client (the operator's own) for the admin kubeconfig
    core_v1, batch_v1, apps_v1, rbac_v1, custom_objects, apiextensions_v1, coordination_v1
    namespace                    str: a fresh namespace (its default ServiceAccount exists), deleted after the test
    s3                           boto3 S3 client for MinIO
    bucket                       str: a fresh bucket, emptied and removed after the test
    wait_for                     devkit.testenv.wait_for, as a fixture
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.testenv import DEFAULT_TESTENV_DIR, REPO, TESTENV_SCRIPT, TestEnv, load_testenv, wait_for


@pytest.fixture(name="wait_for", scope="session")
def _wait_for_fixture() -> Callable[..., Any]:
    return wait_for


# ---------------------------------------------------------------------------------------------------------------
# The environment


def _testenv(*args: str, testenv_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TESTENV_DIR"}
    return subprocess.run(
        [sys.executable, str(TESTENV_SCRIPT), "--dir", str(testenv_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=REPO,
    )


@pytest.fixture(scope="session")
def testenv() -> Iterator[TestEnv]:
    """The live local environment: reused if `.testenv/env` points at a live one (its nodes get the images rebuilt
    since), else started (and stopped at the end)."""
    testenv_dir = Path(os.environ.get("TESTENV_DIR") or DEFAULT_TESTENV_DIR)
    # `up` of a live environment only imports the images rebuilt since it started (`make images`).
    started_here = _testenv("status", "--quiet", testenv_dir=testenv_dir).returncode != 0
    t0 = time.monotonic()
    r = _testenv("up", testenv_dir=testenv_dir)
    if r.returncode != 0:
        pytest.fail(
            f"the local environment did not start (hack/testenv.py up exited {r.returncode}):\n{r.stdout}\n{r.stderr}",
            pytrace=False,
        )
    if started_here:
        sys.stderr.write(f"\n[testenv] started in {time.monotonic() - t0:.1f}s\n")
    try:
        yield load_testenv(testenv_dir)
    finally:
        if started_here and os.environ.get("TESTENV_KEEP") != "1":
            r = _testenv("down", testenv_dir=testenv_dir)
            if r.returncode != 0:
                sys.stderr.write(f"[testenv] down failed:\n{r.stdout}\n{r.stderr}\n")


# ---------------------------------------------------------------------------------------------------------------
# Kubernetes clients


@pytest.fixture(scope="session")
def k8s_client(testenv: TestEnv) -> Iterator[Any]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=testenv.kubeconfig)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def crd(testenv: TestEnv, apiextensions_v1: Any) -> dict[str, Any]:
    """The CRDs, installed (or updated) from crds/ and established."""
    from devkit.harness import install_crds

    return install_crds(apiextensions_v1)


@pytest.fixture(scope="session")
def kube_api(testenv: TestEnv) -> Iterator[Any]:
    """The operator's own API client (videojob.kubeapi) on the test cluster's kubeconfig."""
    from videojob.controller.kube import api_client

    client = api_client(kubeconfig=str(testenv.kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def core_v1(k8s_client: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(k8s_client)


@pytest.fixture(scope="session")
def batch_v1(k8s_client: Any) -> Any:
    from kubernetes import client

    return client.BatchV1Api(k8s_client)


@pytest.fixture(scope="session")
def apps_v1(k8s_client: Any) -> Any:
    from kubernetes import client

    return client.AppsV1Api(k8s_client)


@pytest.fixture(scope="session")
def rbac_v1(k8s_client: Any) -> Any:
    from kubernetes import client

    return client.RbacAuthorizationV1Api(k8s_client)


@pytest.fixture(scope="session")
def custom_objects(k8s_client: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(k8s_client)


@pytest.fixture(scope="session")
def apiextensions_v1(k8s_client: Any) -> Any:
    from kubernetes import client

    return client.ApiextensionsV1Api(k8s_client)


@pytest.fixture(scope="session")
def coordination_v1(k8s_client: Any) -> Any:
    from kubernetes import client

    return client.CoordinationV1Api(k8s_client)


def _dns_label(text: str, prefix: str, max_len: int = 63) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    suffix = uuid.uuid4().hex[:6]
    base = base[: max_len - len(prefix) - len(suffix) - 2].strip("-")
    return f"{prefix}-{base}-{suffix}" if base else f"{prefix}-{suffix}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, core_v1: Any) -> Iterator[str]:
    """A fresh namespace whose `default` ServiceAccount exists; deleted (and waited for) after the test."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = _dns_label(request.node.name, "t")
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"videojob.test/namespace": "true"}))
    )
    try:
        # The ServiceAccount admission plugin rejects pods until the serviceaccount controller made `default`.
        wait_for(
            lambda: core_v1.read_namespaced_service_account("default", name),
            timeout=30,
            message=f"ServiceAccount default in namespace {name}",
            ignore=(ApiException,),
        )
        yield name
    finally:
        try:
            core_v1.delete_namespace(name, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise

        def gone() -> bool | str:
            try:
                ns = core_v1.read_namespace(name)
            except ApiException as e:
                if e.status == 404:
                    return True
                raise
            return f"phase {ns.status.phase}, conditions {[(c.type, c.status) for c in ns.status.conditions or []]}"

        # Waiting keeps one test's pods (and their processes, and the GPU) from leaking into the next test.
        wait_for(gone, timeout=120, interval=0.5, message=f"namespace {name} to be deleted")


# ---------------------------------------------------------------------------------------------------------------
# S3 (MinIO)


@pytest.fixture(scope="session")
def s3(testenv: TestEnv) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=testenv.s3_endpoint_url,
        aws_access_key_id=testenv.aws_access_key_id,
        aws_secret_access_key=testenv.aws_secret_access_key,
        region_name=testenv.aws_default_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


@pytest.fixture
def bucket(request: pytest.FixtureRequest, s3: Any) -> Iterator[str]:
    """A fresh bucket; emptied and removed after the test."""
    name = _dns_label(request.node.name, "t")
    s3.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)
