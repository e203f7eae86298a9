"""The operator runs with exactly OPERATOR_CLUSTER_RULES (the chart's ClusterRole) and nothing more.

A ServiceAccount bound to a ClusterRole made from the rules gets a token; the operator runs with a kubeconfig
holding only that token, and a VideoJob must go all the way to Succeeded, with its Events, the per-namespace
transcoder ServiceAccount (bound to nothing), and the removal of a transcoder Role an earlier version made.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.harness import OperatorProcess
from tests.conftest import TestEnv, wait_for
from tests.integration.test_operator_smoke import GROUP, PLURAL, STAND_IN, VERSION, get_vj, videojob
from videojob.controller.rbac import OPERATOR_CLUSTER_RULES

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def operator_kubeconfig(testenv: TestEnv, namespace: str, core_v1: Any, rbac_v1: Any, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig for a ServiceAccount that holds OPERATOR_CLUSTER_RULES only."""
    from kubernetes import client

    name = f"{namespace}-operator"
    rbac_v1.create_cluster_role({"metadata": {"name": name}, "rules": OPERATOR_CLUSTER_RULES})
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "videojob-operator"}})
    rbac_v1.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "videojob-operator", "namespace": namespace}],
        }
    )
    try:
        token = core_v1.create_namespaced_service_account_token(
            "videojob-operator",
            namespace,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
        ).status.token
        admin = yaml.safe_load(Path(testenv.kubeconfig).read_text())
        cluster = admin["clusters"][0]["cluster"]
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testenv", "cluster": cluster}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "testenv", "user": "operator"}}],
            "current-context": "operator",
        }
        path = tmp_path / "operator.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        path.chmod(0o600)
        yield path
    finally:
        rbac_v1.delete_cluster_role_binding(name)
        rbac_v1.delete_cluster_role(name)


def test_the_operator_needs_nothing_beyond_its_cluster_rules(
    testenv: TestEnv,
    crd: dict[str, Any],
    namespace: str,
    operator_kubeconfig: Path,
    core_v1: Any,
    custom_objects: Any,
    rbac_v1: Any,
    tmp_path: Path,
) -> None:
    core_v1.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "videojob-s3"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": testenv.aws_access_key_id,
                "AWS_SECRET_ACCESS_KEY": testenv.aws_secret_access_key,
            },
        },
    )
    # What an earlier version made: a Role letting the transcoders' ServiceAccount patch every VideoJob's status.
    labels = {"app.kubernetes.io/managed-by": "videojob-operator"}
    rbac_v1.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "videojob-transcoder", "labels": labels},
            "rules": [{"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]}],
        },
    )
    rbac_v1.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "videojob-transcoder", "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "videojob-transcoder"},
            "subjects": [{"kind": "ServiceAccount", "name": "videojob-transcoder", "namespace": namespace}],
        },
    )
    process = OperatorProcess.for_testenv(
        testenv,
        [namespace],
        tmp_path / "operator.log",
        VIDEOJOB_TRANSCODER_COMMAND=["python3", "-c", STAND_IN],
        VIDEOJOB_PRIORITY_CLASSES={"urgent": "", "normal": "", "low": ""},
        VIDEOJOB_LOG_FORMAT="json",
    )
    process.env["KUBECONFIG"] = str(operator_kubeconfig)  # the operator's own least-privilege identity
    try:
        process.start()
        custom_objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, videojob("least", hardware="cpu")
        )

        def finished() -> dict[str, Any] | None:
            status = get_vj(custom_objects, namespace, "least").get("status") or {}
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        status = wait_for(finished, timeout=90, message=f"the VideoJob to finish; log:\n{process.log_tail()}")
        assert status["phase"] == "Succeeded", status
        reasons = {
            e.reason for e in core_v1.list_namespaced_event(namespace, field_selector="involvedObject.name=least").items
        }
        assert {"Admitted", "Succeeded"} <= reasons
        assert [b.metadata.name for b in rbac_v1.list_namespaced_role_binding(namespace).items] == []
        assert core_v1.read_namespaced_service_account("videojob-transcoder", namespace)
        assert [r.metadata.name for r in rbac_v1.list_namespaced_role(namespace).items] == [], (
            "the Role of an earlier version was removed"
        )
        log = process.log_path.read_text(errors="replace")
        # A refusal reads "forbidden" in the API server's message, or 403 as a token of its own: not inside a
        # random port number (40397) or a timestamp's milliseconds (.403Z), which once failed this test.
        refusals = re.findall(r"(?i)forbidden|(?<![\w.:])403(?![\w.])", log)
        assert refusals == [], process.log_tail()
    finally:
        process.stop()
