"""The spec reaches the transcoder, whatever its size, on the real cluster.

The spec used to travel in the environment variable VIDEOJOB_SPEC, as JSON that escapes non-ASCII: a valid spec of
emoji text operations made it 423,637 bytes, and Linux refuses an environment string over 131,072 bytes, so the
container could never start. Now the operator's Job carries it in an annotation of its pod template that the
kubelet writes to a file, and the CRD's size rule refuses what could not fit:

- the API server refuses a spec over the rule, with the rule's sentence;
- a Job built by the operator for the largest emoji spec the rule accepts starts its transcoder (`videojob-transcoder:
  dev`), which reads the whole spec from the file and goes on to fetch its (missing) input: it fails for that,
  InputNotFound, not for the spec.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import wait_for
from videojob.api.models import GROUP, MAX_OPERATIONS, MAX_SPEC_TEXT_BYTES, PLURAL, VERSION, VideoJobSpec
from videojob.api.runtime import TranscodeResult
from videojob.controller.jobs import CONTAINER_NAME, build_job_manifest
from videojob.controller.kube import Kube
from videojob.controller.rbac import build_transcoder_rbac
from videojob.controller.settings import Settings

pytestmark = pytest.mark.integration

EMOJI_TEXTS = MAX_SPEC_TEXT_BYTES // 4000 - 1  # text operations of 1000 emoji (4 bytes each) that fit the rule


def emoji_spec(texts: int, bucket: str) -> dict[str, Any]:
    return {
        "hardware": "cpu",
        "inputs": [{"name": "in", "uri": f"s3://{bucket}/missing.mp4"}],
        "operations": [{"text": {"text": "🎬" * 1000, "start": i / 10, "end": i / 10 + 1}} for i in range(texts)],
        "output": {"uri": f"s3://{bucket}/out/"},
    }


@pytest.fixture
def crd(apiextensions_v1: Any) -> None:
    from devkit.harness import install_crd

    install_crd(apiextensions_v1)


def test_the_api_server_refuses_a_spec_over_the_size_rule(crd: None, custom_objects: Any, namespace: str) -> None:
    from kubernetes.client.exceptions import ApiException

    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VideoJob",
        "metadata": {"name": "too-big"},
        "spec": emoji_spec(MAX_OPERATIONS, "bucket"),
    }
    with pytest.raises(ApiException) as refused:
        custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert refused.value.status == 422
    assert f"may hold {MAX_SPEC_TEXT_BYTES} bytes (UTF-8) together" in json.loads(refused.value.body or "{}")["message"]
    body["spec"] = emoji_spec(EMOJI_TEXTS, "bucket")
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, dry_run="All")


def _starting(reason: str | None, message: str | None) -> bool:
    """A waiting container that may still start. The kubelet reads a pod's Secrets through a watch of its own; when
    that watch is not in sync yet it reports CreateContainerConfigError "failed to sync secret cache" and tries
    again (seen once in CI on a loaded machine), unlike a Secret that is missing."""
    if reason in (None, "ContainerCreating", "PodInitializing"):
        return True
    return reason == "CreateContainerConfigError" and "failed to sync" in (message or "")


def test_the_largest_emoji_spec_starts_and_is_read_whole(
    testenv: Any, kube_api: Any, namespace: str, core_v1: Any, batch_v1: Any, bucket: str
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
    settings = Settings(
        s3_endpoint_url=testenv.s3_endpoint_url,
        priority_classes={"urgent": "", "normal": "", "low": ""},
        transcoder_env={"VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "true"},
        cpu_resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    )
    Kube(kube_api).ensure(build_transcoder_rbac(namespace, settings))
    vj = {
        "metadata": {"name": "emoji", "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": emoji_spec(EMOJI_TEXTS, bucket),
    }
    manifest = build_job_manifest(vj, "cpu", settings)
    manifest["metadata"].pop("ownerReferences")  # no VideoJob object here
    manifest["spec"]["backoffLimit"] = 0
    escaped = json.dumps(VideoJobSpec.model_validate(vj["spec"]).to_wire(), separators=(",", ":"), sort_keys=True)
    assert len(escaped.encode()) > 131_072, "as an environment variable (the old way) it could not have started"
    batch_v1.create_namespaced_job(namespace, manifest)

    def terminated() -> Any:
        pods = core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={manifest['metadata']['name']}").items
        for pod in pods:
            for status in pod.status.container_statuses or []:
                if status.name == CONTAINER_NAME and status.state.terminated:
                    return status.state.terminated
                waiting = status.state.waiting
                if waiting and not _starting(waiting.reason, waiting.message):
                    return waiting  # e.g. CreateContainerError: it never started
        return None

    state = wait_for(terminated, timeout=180, interval=0.5, message="the transcoder to start and stop")
    assert getattr(state, "exit_code", None) == 65, f"the transcoder did not run to its input: {state}"
    result = TranscodeResult.model_validate(json.loads(state.message))
    assert result.reason == "InputNotFound", result
