"""The generated VideoJob CRD on the real API server: samples accepted, the invalid corpus refused naming the field,
transition rules on updates, every status field kept, and what kubectl shows.

The CRD is created or replaced from crds/videojobs.yaml (the committed file, which the unit tests keep equal to
the models) and waited for until Established and served. The invalid corpus is created for real (not dry-run)
with strict field validation, as `kubectl apply` does, so unknown fields are refused instead of pruned.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from devkit.harness import install_crd
from tests.conftest import REPO, TestEnv, wait_for
from tests.data.full_status import FULL_STATUS
from tests.data.invalid_videojobs import INVALID, Invalid, base_job
from videojob.api import generate
from videojob.api.models import GROUP, PLURAL, VERSION, VideoJobSpec, VideoJobStatus

pytestmark = pytest.mark.integration

CRD_FILE = REPO / generate.CRD_PATH
KUBECTL = REPO / ".testenv" / "bin" / "kubectl"
SAMPLES_DIR = REPO / "manifests" / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def crd(apiextensions_v1: Any, custom_objects: Any, core_v1: Any) -> dict[str, Any]:
    """The committed CRD, created or replaced, Established, and serving its current schema."""
    body = install_crd(apiextensions_v1, CRD_FILE)
    # Established comes before the handler serves the new schema; a 53-character name is refused only then.
    probe = base_job("x" * 53)

    def serving_current_schema() -> bool:
        try:
            custom_objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, probe, dry_run="All")
        except ApiException as e:
            return e.status == 422 and "metadata.name" in str(e.body)
        return False

    wait_for(serving_current_schema, timeout=60, message="the CRD's current schema to be served")
    return body


@pytest.fixture(scope="module")
def corpus_namespace(core_v1: Any) -> Iterator[str]:
    """One namespace for the whole invalid corpus: nothing is created in it when the server refuses as it must."""
    from kubernetes import client

    name = f"t-crd-corpus-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core_v1.delete_namespace(name, propagation_policy="Background")


def create(custom_objects: Any, namespace: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict", **kwargs
    )
    return result


def refusal(call: Any) -> tuple[int, str]:
    """Run `call`, which must be refused; return the status code and the server's message."""
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, str(caught.value.body)


def json_patch(custom_objects: Any, namespace: str, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = custom_objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, ops, _content_type="application/json-patch+json"
    )
    return result


def replace(custom_objects: Any, namespace: str, path: str, value: Any) -> dict[str, Any]:
    """Replace one field of the `transitions` job (a JSON patch, as `kubectl patch --type=json` sends)."""
    return json_patch(custom_objects, namespace, "transitions", [{"op": "replace", "path": path, "value": value}])


def kubectl(testenv: TestEnv, *args: str) -> str:
    done = subprocess.run(
        [str(KUBECTL), *args], capture_output=True, text=True, env=testenv.subprocess_env(), timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# ---------------------------------------------------------------------------------------------------------------
# Samples and the invalid corpus


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.stem for p in SAMPLE_FILES])
def test_sample_is_accepted_by_server_side_dry_run(
    crd: dict[str, Any], custom_objects: Any, corpus_namespace: str, path: Path
) -> None:
    sample = yaml.safe_load(path.read_text())
    stored = create(custom_objects, corpus_namespace, sample, dry_run="All")
    # What the server would store (the sample plus the CRD's defaults) makes what the models make of the sample;
    # the output fields a preset may set keep no default (the operator must tell what a VideoJob leaves to it).
    expected = VideoJobSpec.model_validate(sample["spec"]).to_wire()
    assert VideoJobSpec.model_validate(stored["spec"]).to_wire() == expected
    for field in ("container", "video", "audio"):
        assert stored["spec"]["output"].get(field) == sample["spec"]["output"].get(field), field


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_videojob_is_refused_naming_the_field(
    crd: dict[str, Any], custom_objects: Any, corpus_namespace: str, case: Invalid
) -> None:
    status, message = refusal(lambda: create(custom_objects, corpus_namespace, case.job()))
    assert status in (400, 422), message
    assert case.field in message, f"the refusal does not name {case.field!r}: {message}"
    assert "should match" not in message, f"the refusal shows a regular expression: {message}"
    if case.says is not None:
        assert case.says in message, f"the refusal does not say {case.says!r}: {message}"


def test_the_corpus_is_large_enough() -> None:
    assert len(INVALID) >= 40


# ---------------------------------------------------------------------------------------------------------------
# Updates: transition rules


@pytest.fixture
def job(crd: dict[str, Any], custom_objects: Any, namespace: str) -> dict[str, Any]:
    body = base_job("transitions")
    body["spec"]["operations"] = [{"text": {"text": "hello"}}]
    return create(custom_objects, namespace, body)


def patch_refused(custom_objects: Any, namespace: str, ops: list[dict[str, Any]]) -> str:
    status, message = refusal(lambda: json_patch(custom_objects, namespace, "transitions", ops))
    assert status == 422, message
    return message


@pytest.mark.parametrize(
    ("ops", "field", "message"),
    [
        (
            [{"op": "replace", "path": "/spec/inputs/0/uri", "value": "s3://videojob-samples/in/other.mp4"}],
            "spec.inputs",
            "inputs are immutable",
        ),
        (
            [
                {
                    "op": "add",
                    "path": "/spec/inputs/-",
                    "value": {"name": "extra", "uri": "s3://videojob-samples/in/x.mp4"},
                }
            ],
            "spec.inputs",
            "inputs are immutable",
        ),
        (
            [{"op": "replace", "path": "/spec/operations/0/text/text", "value": "changed"}],
            "spec.operations",
            "operations are immutable",
        ),
        (
            [{"op": "replace", "path": "/spec/output/uri", "value": "s3://videojob-samples/out/elsewhere/"}],
            "spec.output",
            "output is immutable",
        ),
        ([{"op": "replace", "path": "/spec/hardware", "value": "nvidia"}], "spec.hardware", "hardware is immutable"),
        ([{"op": "replace", "path": "/spec/retries", "value": 5}], "spec.retries", "retries is immutable"),
        (
            [{"op": "add", "path": "/spec/activeDeadlineSeconds", "value": 60}],
            "spec.activeDeadlineSeconds",
            "activeDeadlineSeconds is immutable",
        ),
        (
            [{"op": "add", "path": "/spec/credentialsSecretRef", "value": {"name": "s3"}}],
            "spec.credentialsSecretRef",
            "credentialsSecretRef is immutable",
        ),
    ],
    ids=[
        "changing an input",
        "adding an input",
        "changing an operation",
        "changing the output",
        "changing hardware",
        "changing retries",
        "adding a deadline",
        "adding credentials",
    ],
)
def test_the_work_of_an_existing_job_cannot_change(
    job: dict[str, Any], custom_objects: Any, namespace: str, ops: list[dict[str, Any]], field: str, message: str
) -> None:
    refused = patch_refused(custom_objects, namespace, ops)
    assert field in refused and message in refused, refused


def test_cancel_can_be_set_but_not_undone(job: dict[str, Any], custom_objects: Any, namespace: str) -> None:
    assert job["spec"]["cancel"] is False  # the CRD's default
    patched = replace(custom_objects, namespace, "/spec/cancel", True)
    assert patched["spec"]["cancel"] is True
    refused = patch_refused(custom_objects, namespace, [{"op": "replace", "path": "/spec/cancel", "value": False}])
    assert "spec.cancel" in refused and "cancel cannot be undone" in refused


def test_lifecycle_fields_stay_mutable(job: dict[str, Any], custom_objects: Any, namespace: str) -> None:
    patched = json_patch(
        custom_objects,
        namespace,
        "transitions",
        [
            {"op": "add", "path": "/spec/ttlSecondsAfterFinished", "value": 60},
            {"op": "replace", "path": "/spec/artifactReclaimPolicy", "value": "Delete"},
        ],
    )
    assert (patched["spec"]["ttlSecondsAfterFinished"], patched["spec"]["artifactReclaimPolicy"]) == (60, "Delete")


def set_status(custom_objects: Any, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom_objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}
    )
    return result


def test_priority_changes_while_pending_but_not_once_running(
    job: dict[str, Any], custom_objects: Any, namespace: str
) -> None:
    # No status yet (the operator has not seen it): a change is accepted.
    patched = replace(custom_objects, namespace, "/spec/priority", 2)
    assert patched["spec"]["priority"] == 2
    # Queued (Pending): still accepted.
    set_status(custom_objects, namespace, "transitions", {"phase": "Pending", "queuePosition": 4})
    patched = replace(custom_objects, namespace, "/spec/priority", 1)
    assert patched["spec"]["priority"] == 1
    # Running: refused, naming the field. Status updates themselves keep working.
    set_status(custom_objects, namespace, "transitions", {"phase": "Running", "queuePosition": None, "progress": 10})
    refused = patch_refused(custom_objects, namespace, [{"op": "replace", "path": "/spec/priority", "value": 9}])
    assert "spec.priority" in refused and "priority can change only while the job is Pending" in refused
    assert set_status(custom_objects, namespace, "transitions", {"progress": 50})["status"]["progress"] == 50
    # Cancelling a running job is still allowed.
    patched = replace(custom_objects, namespace, "/spec/cancel", True)
    assert patched["spec"]["cancel"] is True


def test_spec_cannot_be_written_through_the_status_subresource(
    job: dict[str, Any], custom_objects: Any, namespace: str
) -> None:
    result = custom_objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "transitions", {"spec": {"priority": 9}, "status": {"phase": "Pending"}}
    )
    assert result["spec"]["priority"] == 5 and result["status"]["phase"] == "Pending"


# ---------------------------------------------------------------------------------------------------------------
# Status


def test_every_status_field_is_kept(job: dict[str, Any], custom_objects: Any, namespace: str) -> None:
    VideoJobStatus.model_validate(FULL_STATUS)  # the status the test writes is a valid model status
    stored = set_status(custom_objects, namespace, "transitions", FULL_STATUS)
    assert stored["status"] == FULL_STATUS, "the server pruned or changed status fields"


def test_conditions_are_a_map_keyed_by_type(job: dict[str, Any], custom_objects: Any, namespace: str) -> None:
    """x-kubernetes-list-type: map: one condition per type, as tools (kubectl wait, server-side apply) assume."""
    condition = {
        "type": "Finished",
        "status": "True",
        "reason": "Succeeded",
        "lastTransitionTime": "2026-01-01T00:00:09Z",
    }
    status, message = refusal(
        lambda: set_status(
            custom_objects, namespace, "transitions", {"conditions": [condition, {**condition, "status": "False"}]}
        )
    )
    assert status == 422 and "status.conditions[1]" in message and "Duplicate value" in message, message
    stored = set_status(custom_objects, namespace, "transitions", {"conditions": [condition]})
    assert stored["status"]["conditions"] == [condition]


def test_invalid_status_is_refused(job: dict[str, Any], custom_objects: Any, namespace: str) -> None:
    status, message = refusal(lambda: set_status(custom_objects, namespace, "transitions", {"progress": 101}))
    assert status == 422 and "status.progress" in message, message


# ---------------------------------------------------------------------------------------------------------------
# kubectl


def test_kubectl_get_shows_the_printer_columns(
    job: dict[str, Any], custom_objects: Any, namespace: str, testenv: TestEnv
) -> None:
    set_status(custom_objects, namespace, "transitions", {"phase": "Running", "progress": 42.5, "hardware": "cpu"})
    set_status(custom_objects, namespace, "transitions", {"message": "encoding"})
    header, row = kubectl(testenv, "get", "vj", "-n", namespace).splitlines()
    assert header.split() == ["NAME", "PHASE", "PRIORITY", "PROGRESS", "HARDWARE", "QUEUE", "AGE"]
    assert row.split()[:5] == ["transitions", "Running", "5", "42.5", "cpu"]
    wide_header = kubectl(testenv, "get", "videojobs", "-n", namespace, "-o", "wide").splitlines()[0]
    assert wide_header.split()[-1] == "MESSAGE"
    assert "transitions" in kubectl(testenv, "get", "media", "-n", namespace), "category media lists VideoJobs"


def test_kubectl_explain_shows_descriptions(crd: dict[str, Any], testenv: TestEnv) -> None:
    def explained() -> str:
        done = subprocess.run(
            [str(KUBECTL), "explain", "videojob.spec.operations"],
            capture_output=True,
            text=True,
            env=testenv.subprocess_env(),
            timeout=60,
            check=False,
        )
        return done.stdout if done.returncode == 0 and "Join inputs one after another" in done.stdout else ""

    # The OpenAPI document is aggregated asynchronously after a CRD changes.
    text = wait_for(explained, timeout=60, interval=1, message="kubectl explain to show the new schema")
    for expected in (
        "Applied in order, each on the result of the previous one",
        "exactly one of its fields is set",
        "concat",
        "audio",
        "text",
        "subtitles",
        "pip",
    ):
        assert expected in text, f"{expected!r} not in kubectl explain:\n{text}"
    field = kubectl(testenv, "explain", "videojob.spec.operations.text.position")
    assert "Anchor on the frame" in field and "bottom-center" in field


# ---------------------------------------------------------------------------------------------------------------
# The sample ResourceQuota


QUOTA_FILE = REPO / "manifests" / "tenancy" / "resourcequota.yaml"


def test_the_sample_resource_quota_caps_videojobs_per_namespace(
    crd: dict[str, Any], custom_objects: Any, core_v1: Any, namespace: str
) -> None:
    quota: dict[str, Any] = yaml.safe_load(QUOTA_FILE.read_text())
    assert "count/videojobs.videojob.dev" in quota["spec"]["hard"]
    quota["spec"]["hard"]["count/videojobs.videojob.dev"] = "2"  # the sample's own kind and key, a small number
    core_v1.create_namespaced_resource_quota(namespace, quota)
    # The quota controller (kube-controller-manager) must have counted before the API server enforces it.
    wait_for(
        lambda: (
            (core_v1.read_namespaced_resource_quota("videojobs", namespace).status.hard or {}).get(
                "count/videojobs.videojob.dev"
            )
            == "2"
        ),
        timeout=60,
        message="the quota counted",
    )

    for name in ("one", "two"):
        custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, base_job(name))
    with pytest.raises(ApiException) as refused:
        custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, base_job("three"))
    assert refused.value.status == 403, refused.value
    assert "exceeded quota: videojobs" in str(refused.value.body), refused.value.body
    assert "count/videojobs.videojob.dev" in str(refused.value.body), refused.value.body
