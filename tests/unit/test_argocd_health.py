"""The Argo CD health check for VideoJob, tested the way argo-cd tests its own: `health_test.yaml` lists
(testdata/*.yaml, expected health) pairs beside `health.lua` in the resource_customizations layout
(manifests/argocd/resource_customizations/videojob.dev/VideoJob/), and each object is run through the script in a
real Lua interpreter (lupa) with the object as the global `obj`, as Argo CD does. The testdata are checked
against the API models, so they stay objects the operator could write; argocd-cm-patch.yaml embeds the same
script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob.api.models import VideoJob

lupa = pytest.importorskip("lupa")

ARGOCD = Path(__file__).resolve().parents[2] / "manifests" / "argocd"
CHECK = ARGOCD / "resource_customizations" / "videojob.dev" / "VideoJob"
SCRIPT = (CHECK / "health.lua").read_text()
TESTS = yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"]


def health(obj: dict[str, Any]) -> dict[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(SCRIPT)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", TESTS, ids=[Path(t["inputPath"]).stem for t in TESTS])
def test_health_test_yaml(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert health(obj) == case["healthStatus"]


def test_every_phase_deletion_and_a_stale_generation_have_a_case() -> None:
    objects = [yaml.safe_load((CHECK / t["inputPath"]).read_text()) for t in TESTS]
    phases = {(o.get("status") or {}).get("phase") for o in objects}
    assert {None, "Pending", "Running", "Succeeded", "Failed", "Cancelled"} <= phases
    assert any(o["metadata"].get("deletionTimestamp") for o in objects)
    assert any((o.get("status") or {}).get("observedGeneration", 0) < o["metadata"]["generation"] for o in objects)
    statuses = {t["healthStatus"]["status"] for t in TESTS}
    assert "Suspended" not in statuses, "Suspended means paused in Argo CD; a finished VideoJob is not paused"
    used = {(CHECK / t["inputPath"]).resolve() for t in TESTS}
    assert set((CHECK / "testdata").glob("*.yaml")) == used, "every testdata file belongs to a test"


@pytest.mark.parametrize("case", TESTS, ids=[Path(t["inputPath"]).stem for t in TESTS])
def test_testdata_are_videojobs_the_api_accepts(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    VideoJob.model_validate(obj)


def test_an_unknown_phase_is_unknown() -> None:
    assert health({"metadata": {"generation": 1}, "status": {"phase": "Paused"}})["status"] == "Unknown"


def test_configmap_patch_embeds_the_same_script() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["data"]["resource.customizations.health.videojob.dev_VideoJob"] == SCRIPT
