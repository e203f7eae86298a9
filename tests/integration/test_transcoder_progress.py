"""The Kubernetes progress reporter against the real API server: a service account allowed only to patch
`videojobs/status` sets `status.progress`; a broken one costs one log line and never an exception."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from videojob.api.models import GROUP, PLURAL, VERSION
from videojob.transcoder.progress import reporter_from_env

pytestmark = pytest.mark.integration


def _service_account_dir(testenv: Any, namespace: str, core_v1: Any, rbac_v1: Any, tmp_path: Path) -> Path:
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "transcoder"}})
    rbac_v1.create_namespaced_role(namespace, {
        "metadata": {"name": "transcoder"},
        "rules": [{"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]}],
    })
    rbac_v1.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "transcoder"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "transcoder"},
        "subjects": [{"kind": "ServiceAccount", "name": "transcoder", "namespace": namespace}],
    })
    token = core_v1.create_namespaced_service_account_token(
        "transcoder", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token
    kubeconfig = yaml.safe_load(Path(testenv.kubeconfig).read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(token)
    (sa_dir / "namespace").write_text(namespace)
    (sa_dir / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    return sa_dir


def _env(testenv: Any, sa_dir: Path, name: str) -> dict[str, str]:
    kubeconfig = yaml.safe_load(Path(testenv.kubeconfig).read_text())
    host, port = kubeconfig["clusters"][0]["cluster"]["server"].removeprefix("https://").rsplit(":", 1)
    return {"VIDEOJOB_NAME": name, "VIDEOJOB_SERVICEACCOUNT_DIR": str(sa_dir), "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port, "VIDEOJOB_PROGRESS_INTERVAL": "0"}


def test_kubernetes_reporter_patches_status_progress(testenv: Any, namespace: str, core_v1: Any, rbac_v1: Any,
                                                     custom_objects: Any, wait_for: Any, tmp_path: Path) -> None:
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoJob", "metadata": {"name": "clip"},
        "spec": {"inputs": [{"name": "a", "uri": "s3://bucket/a.mp4"}], "output": {"uri": "s3://bucket/out/"}},
    })
    sa_dir = _service_account_dir(testenv, namespace, core_v1, rbac_v1, tmp_path)
    reporter = reporter_from_env(_env(testenv, sa_dir, "clip"))
    reporter.report(42.5)

    def progress() -> Any:
        obj = custom_objects.get_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "clip")
        return (obj.get("status") or {}).get("progress") == 42.5

    wait_for(progress, timeout=10, message="status.progress to become 42.5")
    reporter.report(100.0)
    wait_for(lambda: custom_objects.get_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "clip")["status"]["progress"] == 100, timeout=10)


def test_a_failing_reporter_logs_one_line_and_goes_on(testenv: Any, namespace: str, core_v1: Any, rbac_v1: Any,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sa_dir = _service_account_dir(testenv, namespace, core_v1, rbac_v1, tmp_path)
    reporter = reporter_from_env(_env(testenv, sa_dir, "no-such-job"))
    for percent in (10.0, 20.0, 30.0):
        reporter.report(percent)  # 404 every time: never raises
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot report progress" in lines[0] and "404" in lines[0]
