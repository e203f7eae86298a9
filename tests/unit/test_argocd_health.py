"""The Argo CD health check for VideoJob, run in a real Lua interpreter (lupa) on the statuses the operator writes."""

from pathlib import Path

import pytest
import yaml

lupa = pytest.importorskip("lupa")

HERE = Path(__file__).resolve().parents[2] / "manifests" / "argocd"
SCRIPT = (HERE / "videojob-health.lua").read_text()


def health(status: dict | None) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    obj = {"apiVersion": "videojob.dev/v1alpha1", "kind": "VideoJob"}
    if status is not None:
        obj["status"] = status
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(SCRIPT)
    return result["status"], result["message"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(None, ("Progressing", "Waiting for the operator"), id="no status yet is progressing"),
        pytest.param({"phase": "Pending", "queuePosition": 3}, ("Progressing", "Queued at position 3"), id="queued"),
        pytest.param({"phase": "Pending"}, ("Progressing", "Pending"), id="pending without position"),
        pytest.param({"phase": "Running", "progress": 42.7}, ("Progressing", "Running: 42%"), id="running: progress"),
        pytest.param({"phase": "Succeeded", "progress": 100}, ("Healthy", "Succeeded"), id="succeeded is healthy"),
        pytest.param(
            {"phase": "Failed", "message": "input s3://b/k not found"},
            ("Degraded", "input s3://b/k not found"),
            id="failed is degraded with the reason",
        ),
        pytest.param({"phase": "Cancelled"}, ("Suspended", "Cancelled"), id="cancelled is suspended"),
    ],
)
def test_health_of_each_phase(status: dict | None, expected: tuple[str, str]) -> None:
    assert health(status) == expected


def test_configmap_patch_embeds_the_same_script() -> None:
    patch = yaml.safe_load((HERE / "argocd-cm-patch.yaml").read_text())
    assert patch["data"]["resource.customizations.health.videojob.dev_VideoJob"] == SCRIPT
