"""The Helm chart applied to the real API server: every rendered object is accepted (schema, admission, RBAC's
escalation check), and the RBAC it installs lets the operator's ServiceAccount do its work and nothing more.

The chart is rendered with `helm template` and applied with kubectl's server-side apply into a fresh namespace,
under a release name of the test's own; its cluster-scoped objects are deleted afterwards. The operator's
Deployment is applied with 0 replicas: the node agent runs a container's `command` as a local process and ignores
the image, and this Deployment (rightly) has no command, only the image's ENTRYPOINT.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_chart import CHART, HELM, helm
from videojob.controller.rbac import build_transcoder_rbac
from videojob.controller.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not HELM.exists(), reason="helm is absent: build it with `make tools`"),
]

REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".testenv" / "bin" / "kubectl"
CLUSTER_KINDS = "clusterrole,clusterrolebinding,priorityclass"


def kubectl(testenv: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), "--kubeconfig", testenv.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def render(release: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    r = helm("template", release, str(CHART), "--namespace", namespace, values=values)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    for d in docs:
        if d["kind"] == "Deployment":
            d["spec"]["replicas"] = 0  # see the module docstring
    return docs


@pytest.fixture
def release(testenv: Any) -> Iterator[str]:
    """A release name of this test's own; its cluster-scoped objects are deleted afterwards."""
    name = f"chart-{uuid.uuid4().hex[:6]}"
    try:
        yield name
    finally:
        r = kubectl(testenv, "delete", CLUSTER_KINDS, "-l", f"app.kubernetes.io/instance={name}", "--wait=true")
        assert r.returncode == 0, r.stderr


def apply(testenv: Any, docs: list[dict[str, Any]], *extra: str) -> subprocess.CompletedProcess[str]:
    manifest = "\n---\n".join(json.dumps(d) for d in docs)
    return kubectl(testenv, "apply", "--server-side", "--field-manager=chart-test", *extra, "-f", "-", stdin=manifest)


def can(k8s_client: Any, user: str, namespace: str | None, verb: str, resource: str, group: str = "",
        subresource: str = "") -> bool:
    from kubernetes import client

    attrs = client.V1ResourceAttributes(
        namespace=namespace, verb=verb, group=group, resource=resource, subresource=subresource or None
    )
    ns = user.split(":")[2]
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            resource_attributes=attrs,
        )
    )
    status = client.AuthorizationV1Api(k8s_client).create_subject_access_review(review).status
    assert status is not None
    return bool(status.allowed)


# (verb, resource, group, subresource, allowed): what the operator needs, and some of what it must not hold.
NEEDED = [
    ("watch", "videojobs", "videojob.dev", "", True),
    ("patch", "videojobs", "videojob.dev", "status", True),
    ("create", "jobs", "batch", "", True),
    ("delete", "jobs", "batch", "", True),
    ("list", "pods", "", "", True),
    ("create", "events", "", "", True),
    ("create", "rolebindings", "rbac.authorization.k8s.io", "", True),
    ("create", "videojobs", "videojob.dev", "", False),
    ("delete", "pods", "", "", False),
    ("create", "pods", "", "", False),
    ("get", "secrets", "", "", False),
    ("list", "secrets", "", "", False),
    ("create", "events", "events.k8s.io", "", False),
    ("update", "deployments", "apps", "", False),
    ("escalate", "roles", "rbac.authorization.k8s.io", "", False),
]


@pytest.mark.parametrize(
    "watch_own_namespace",
    [pytest.param(False, id="cluster-wide"), pytest.param(True, id="watching its own namespace")],
)
def test_chart_installs_and_grants_the_operator_what_it_needs(
    testenv: Any, k8s_client: Any, namespace: str, release: str, wait_for: Callable[..., Any],
    watch_own_namespace: bool,
) -> None:
    credentials = {"accessKeyId": "AK", "secretAccessKey": "SK"}
    values: dict[str, Any] = {"s3": {"createSecret": True, "credentials": credentials}}
    if watch_own_namespace:
        values["watchNamespaces"] = [namespace]
    docs = render(release, namespace, values)
    r = apply(testenv, docs)
    assert r.returncode == 0, f"the API server refused the chart's objects:\n{r.stderr}"

    # Every object is there, as applied.
    got = kubectl(testenv, "get", "-f", "-", "-o", "json", stdin="\n---\n".join(json.dumps(d) for d in docs))
    assert got.returncode == 0, got.stderr
    items = json.loads(got.stdout)["items"]
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in docs
    )
    deployment = next(d for d in docs if d["kind"] == "Deployment")["metadata"]["name"]

    def deployment_observed() -> bool:
        out = kubectl(testenv, "-n", namespace, "get", "deployment", deployment, "-o", "json")
        return out.returncode == 0 and json.loads(out.stdout).get("status", {}).get("observedGeneration", 0) >= 1

    wait_for(deployment_observed, timeout=60, message="the deployment controller to observe the Deployment")

    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    user = f"system:serviceaccount:{namespace}:{sa}"
    decisions = {
        (verb, resource, sub): can(k8s_client, user, namespace, verb, resource, group, sub)
        for verb, resource, group, sub, _ in NEEDED
    }
    assert decisions == {(verb, resource, sub): allowed for verb, resource, _, sub, allowed in NEEDED}
    assert can(k8s_client, user, None, "watch", "customresourcedefinitions", "apiextensions.k8s.io")
    assert can(k8s_client, user, None, "list", "namespaces")
    # Scope: cluster-wide sees every namespace; watching one namespace sees no other.
    assert can(k8s_client, user, "default", "create", "jobs", "batch") is not watch_own_namespace
    assert can(k8s_client, user, None, "list", "videojobs", "videojob.dev") is not watch_own_namespace

    # The operator, as itself, can make the transcoders' ServiceAccount, Role and RoleBinding: RBAC lets it grant
    # patch on videojobs/status only because the chart gave it that permission in this namespace.
    transcoder = build_transcoder_rbac(namespace, Settings())
    as_operator = kubectl(
        testenv, f"--as={user}", "--as-group=system:serviceaccounts", "apply", "--server-side",
        "--field-manager=videojob-operator", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in transcoder),
    )
    assert as_operator.returncode == 0, as_operator.stderr


def test_chart_crd_is_accepted_by_the_api_server(testenv: Any) -> None:
    """The CRD the chart ships (crds/, generated from the models) passes the API server's validation. A dry run:
    the cluster's CRD belongs to the environment and other tests."""
    crds = sorted((CHART / "crds").glob("*.yaml"))
    assert crds, "the chart ships no CRD"
    for path in crds:
        r = kubectl(testenv, "apply", "--server-side", "--dry-run=server", "--force-conflicts",
                    "--field-manager=chart-test", "-f", str(path))
        assert r.returncode == 0, f"{path.name}: {r.stderr}"
