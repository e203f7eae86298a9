"""The transcoder Job manifest and the RBAC objects: pure builders, checked fact by fact."""

from __future__ import annotations

import json
from typing import Any

import pytest

from videojob.api.models import VideoJobSpec
from videojob.controller.jobs import build_job_manifest, job_name, label_value, owned_by
from videojob.controller.rbac import (
    OPERATOR_CLUSTER_RULES,
    build_transcoder_rbac,
    legacy_transcoder_rbac,
    operator_cluster_rules,
)
from videojob.controller.settings import Settings

UID = "0b6e2a3c-5d4e-4f00-9a1b-123456789abc"


def vj(name: str = "promo", uid: str = UID, **spec: Any) -> dict[str, Any]:
    body = {"inputs": [{"name": "in", "uri": "s3://media/in.mp4"}], "output": {"uri": "s3://media/out/"}}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": "media", "uid": uid}, "spec": body}


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def container_of(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("name", "uid", "expected_prefix"),
    [
        pytest.param("promo", UID, "promo-", id="short names are kept"),
        pytest.param("a" * 200, UID, "a" * 52 + "-", id="long names are cut to 52 characters"),
        pytest.param("x" * 51 + "-yyy", UID, "x" * 51 + "-", id="a cut never leaves a dash before the hash"),
        pytest.param("v1.2.clip", UID, "v1.2.clip-", id="dots are kept"),
    ],
)
def test_job_name(name: str, uid: str, expected_prefix: str) -> None:
    result = job_name(vj(name, uid))
    assert len(result) <= 63
    assert result.startswith(expected_prefix)
    assert result == job_name(vj(name, uid)), "deterministic"
    assert result != job_name(vj(name, "another-uid")), "a re-created VideoJob gets a different Job"


def test_label_value_is_valid_for_long_names() -> None:
    value = label_value("a" * 70 + ".b")
    assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()


S = Settings(s3_endpoint_url="http://minio:9000", workdir_size_limit="20Gi", allowed_hosts=["cdn.example.com"])


def test_metadata_labels_and_owner() -> None:
    job = build_job_manifest(vj(), "cpu", S)
    meta = job["metadata"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert meta["name"] == job_name(vj()) and meta["namespace"] == "media"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "videojob-operator"
    assert meta["labels"]["videojob.dev/name"] == "promo"
    assert meta["labels"]["videojob.dev/uid"] == UID
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "videojob.dev/v1alpha1",
            "kind": "VideoJob",
            "name": "promo",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"]["template"]["metadata"]["labels"] == meta["labels"]
    assert owned_by(job, UID) and not owned_by(job, "other")
    labelled_only = {"metadata": {"labels": meta["labels"]}}
    assert not owned_by(labelled_only, UID), "a label is no proof of ownership (adoption after a 409)"
    assert "ttlSecondsAfterFinished" not in job["spec"], "the VideoJob's TTL governs its owned Job"


def spec_copy(job: dict[str, Any]) -> str:
    """The transcoder's copy of the spec: the pod template's annotation the kubelet writes to the spec file."""
    return str(job["spec"]["template"]["metadata"]["annotations"]["videojob.dev/spec"])


def test_the_spec_reaches_the_pod_as_a_file_from_an_annotation() -> None:
    job = build_job_manifest(vj(priority=2, retries=4, activeDeadlineSeconds=900), "cpu", S)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(job)
    assert "VIDEOJOB_SPEC" not in env, "no environment variable (Linux limits one to 128 KiB)"
    assert env["VIDEOJOB_SPEC_FILE"] == "/etc/videojob/spec.json"
    assert {"name": "spec", "mountPath": "/etc/videojob", "readOnly": True} in container["volumeMounts"]
    volume = {
        "name": "spec",
        "downwardAPI": {
            "items": [{"path": "spec.json", "fieldRef": {"fieldPath": "metadata.annotations['videojob.dev/spec']"}}]
        },
    }
    assert volume in pod["volumes"]
    copy = VideoJobSpec.model_validate(json.loads(spec_copy(job)))
    original = VideoJobSpec.model_validate(vj()["spec"] | {"retries": 4, "activeDeadlineSeconds": 900})
    assert copy == original, "what the transcoder reads, defaults filled in"
    assert "priority" not in json.loads(spec_copy(job)), "not what only the operator reads"
    assert "videojob.dev/spec" not in job["metadata"]["annotations"], "once, on the pod template"


def test_spec_and_runtime_env() -> None:
    job = build_job_manifest(vj(priority=2), "cpu", S)
    env = env_of(job)
    spec = VideoJobSpec.model_validate(json.loads(spec_copy(job)))
    assert spec.inputs[0].uri == "s3://media/in.mp4"
    assert env["VIDEOJOB_NAME"] == "promo" and env["VIDEOJOB_NAMESPACE"] == "media"
    assert env["VIDEOJOB_UID"] == UID, "the identity its objects carry in their metadata"
    assert env["VIDEOJOB_HARDWARE"] == "cpu"
    assert env["VIDEOJOB_WORKDIR"] == "/work"
    assert env["VIDEOJOB_RESULT_PATH"] == "/dev/termination-log"
    assert env["VIDEOJOB_PROGRESS"] == "lines"
    assert env["VIDEOJOB_PROGRESS_INTERVAL"] == "5"
    assert "VIDEOJOB_SERVICEACCOUNT_DIR" not in env
    assert env["VIDEOJOB_ALLOW_HTTP"] == "false"
    assert env["VIDEOJOB_ALLOWED_HOSTS"] == "cdn.example.com"
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "videojob-s3", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "videojob-s3", "key": "AWS_SECRET_ACCESS_KEY"}}


def test_credentials_secret_of_the_videojob_wins() -> None:
    env = env_of(build_job_manifest(vj(credentialsSecretRef={"name": "team-s3"}), "cpu", S))
    assert env["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "team-s3"


def test_transcoder_env_extends_but_cannot_change_identity() -> None:
    settings = Settings(transcoder_env={"VIDEOJOB_STT_MODEL_DIRS": '{"bundled": "/models"}', "VIDEOJOB_NAME": "x"})
    env = env_of(build_job_manifest(vj(), "cpu", settings))
    assert env["VIDEOJOB_STT_MODEL_DIRS"] == '{"bundled": "/models"}'
    assert env["VIDEOJOB_NAME"] == "promo"


def test_restricted_pod_security() -> None:
    job = build_job_manifest(vj(), "cpu", S)
    pod = job["spec"]["template"]["spec"]
    sc = container_of(job)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in container_of(job)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/work"]]["emptyDir"] == {"sizeLimit": "20Gi"}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "videojob-transcoder"
    assert pod["automountServiceAccountToken"] is False, "the transcoder never talks to the API"


def test_job_policy() -> None:
    job = build_job_manifest(vj(retries=3, activeDeadlineSeconds=600), "cpu", S)
    spec = job["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["activeDeadlineSeconds"] == 600
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "transcode", "operator": "In", "values": [65, 69]},
    }
    assert rules[1]["action"] == "Ignore" and rules[1]["onPodConditions"][0]["type"] == "DisruptionTarget"
    container = container_of(job)
    assert container["terminationMessagePolicy"] == "File"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["command"] == ["videojob-transcode"]
    assert container["image"] == "videojob-transcoder:dev" and container["imagePullPolicy"] == "IfNotPresent"


def test_default_deadline_from_settings() -> None:
    assert (
        build_job_manifest(vj(), "cpu", Settings(default_active_deadline_seconds=99))["spec"]["activeDeadlineSeconds"]
        == 99
    )


@pytest.mark.parametrize(
    ("priority", "priority_class"),
    [
        (1, "videojob-urgent"),
        (3, "videojob-urgent"),
        (4, "videojob-normal"),
        (7, "videojob-normal"),
        (8, "videojob-low"),
        (10, "videojob-low"),
    ],
    ids=lambda v: str(v),
)
def test_priority_class_by_band(priority: int, priority_class: str) -> None:
    job = build_job_manifest(vj(priority=priority), "cpu", S)
    assert job["spec"]["template"]["spec"]["priorityClassName"] == priority_class


def test_empty_priority_class_sets_none() -> None:
    settings = Settings(priority_classes={"urgent": "", "normal": "", "low": ""})
    assert "priorityClassName" not in build_job_manifest(vj(), "cpu", settings)["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("hardware", "gpu"),
    [
        pytest.param("nvidia", True, id="nvidia gets selector, toleration and GPU limit"),
        pytest.param("cpu", False, id="cpu gets none of them"),
    ],
)
def test_gpu_placement(hardware: str, gpu: bool) -> None:
    job = build_job_manifest(vj(), hardware, S)
    pod = job["spec"]["template"]["spec"]
    limits = container_of(job)["resources"].get("limits", {})
    assert ("nodeSelector" in pod) is gpu
    assert ("nvidia.com/gpu" in limits) is gpu
    if gpu:
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert limits["nvidia.com/gpu"] == 1
    assert env_of(job)["VIDEOJOB_HARDWARE"] == hardware
    assert job["metadata"]["labels"]["videojob.dev/hardware"] == hardware


@pytest.mark.parametrize(
    ("requested", "placed"),
    [("auto", "nvidia"), ("auto", "cpu"), ("nvidia", "nvidia"), ("cpu", "cpu"), (None, "nvidia")],
    ids=["auto on a GPU", "auto on CPU", "nvidia", "cpu", "default (auto)"],
)
def test_the_transcoder_knows_what_was_asked_as_well_as_where_it_runs(requested: str | None, placed: str) -> None:
    body = vj(**({"hardware": requested} if requested else {}))
    settings = Settings(transcoder_env={"VIDEOJOB_HARDWARE_REQUESTED": "auto"})  # the platform cannot change it
    env = env_of(build_job_manifest(body, placed, settings))
    assert env["VIDEOJOB_HARDWARE_REQUESTED"] == (requested or "auto")
    assert env["VIDEOJOB_HARDWARE"] == placed


def test_auto_is_not_a_placement() -> None:
    with pytest.raises(ValueError, match="cpu or nvidia"):
        build_job_manifest(vj(), "auto", S)


def test_transcoders_get_a_service_account_without_rights_or_token() -> None:
    """The transcoder's ServiceAccount could patch the status of every VideoJob in its namespace, and any pod there
    may run as it: now it is bound to nothing and mounts no token."""
    (sa,) = build_transcoder_rbac("media", Settings())
    assert sa["kind"] == "ServiceAccount" and sa["metadata"] == {
        **sa["metadata"],
        "name": "videojob-transcoder",
        "namespace": "media",
    }
    assert sa["automountServiceAccountToken"] is False
    assert [kind for _, kind, _ in legacy_transcoder_rbac("media", Settings())] == ["RoleBinding", "Role"]


def _grants(rules: list[dict[str, Any]], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    """Whether the rules allow the verb (on the object `name`, or on any object when None)."""
    return any(
        group in r["apiGroups"]
        and resource in r["resources"]
        and verb in r["verbs"]
        and ("resourceNames" not in r or (name is not None and name in r["resourceNames"]))
        for r in rules
    )


@pytest.mark.parametrize(
    ("group", "resource", "verb"),
    [
        ("videojob.dev", "videojobs", "watch"),
        ("videojob.dev", "videojobs", "delete"),
        ("videojob.dev", "videojobs/status", "patch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
        ("", "pods/log", "get"),
        ("", "events", "create"),
        ("", "serviceaccounts", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ],
    ids=lambda v: str(v) or "core",
)
def test_operator_holds_what_it_needs(group: str, resource: str, verb: str) -> None:
    assert _grants(OPERATOR_CLUSTER_RULES, group, resource, verb)


def test_the_transcoders_service_account_and_old_roles_are_the_only_ones_it_may_change() -> None:
    rules = operator_cluster_rules("vj-transcoder")
    for resource, verb in [("serviceaccounts", "get"), ("serviceaccounts", "patch")]:
        assert _grants(rules, "", resource, verb, "vj-transcoder") and not _grants(rules, "", resource, verb, "x")
    for resource in ("roles", "rolebindings"):
        assert _grants(rules, "rbac.authorization.k8s.io", resource, "delete", "vj-transcoder")
        for verb in ("create", "patch", "update", "bind", "escalate"):
            assert not _grants(rules, "rbac.authorization.k8s.io", resource, verb, "vj-transcoder")
        assert not _grants(rules, "rbac.authorization.k8s.io", resource, "delete", "someone-elses-role")


@pytest.mark.parametrize(
    ("group", "resource", "verb"),
    [
        ("", "secrets", "get"),
        ("", "pods", "delete"),
        ("", "pods/exec", "create"),
        ("*", "*", "*"),
        ("rbac.authorization.k8s.io", "clusterroles", "create"),
        ("rbac.authorization.k8s.io", "roles", "create"),
        ("", "pods/status", "patch"),
    ],
    ids=lambda v: str(v) or "core",
)
def test_operator_holds_nothing_more(group: str, resource: str, verb: str) -> None:
    assert not _grants(OPERATOR_CLUSTER_RULES, group, resource, verb)
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in OPERATOR_CLUSTER_RULES)


# ---------------------------------------------------------------------------------------------------------------
# What the platform team adds: storage identity, the pod block, security contexts

ROLE = "arn:minio:iam:::role/videojob"


@pytest.mark.parametrize(
    ("settings", "spec", "secret", "web_identity"),
    [
        pytest.param(Settings(), {}, "videojob-s3", False, id="keys from the default Secret"),
        pytest.param(
            Settings(s3_auth="workloadIdentity"),
            {},
            None,
            False,
            id="workload identity from the platform: no keys, no token of ours (EKS webhook, GKE)",
        ),
        pytest.param(
            Settings(s3_auth="workloadIdentity", s3_role_arn=ROLE),
            {},
            None,
            True,
            id="workload identity with a role: the operator projects the token, as IRSA does",
        ),
        pytest.param(
            Settings(s3_auth="workloadIdentity", s3_role_arn=ROLE),
            {"credentialsSecretRef": {"name": "mine"}},
            "mine",
            False,
            id="a VideoJob's own Secret still wins",
        ),
    ],
)
def test_how_the_transcoder_authenticates_to_s3(
    settings: Settings, spec: dict[str, Any], secret: str | None, web_identity: bool
) -> None:
    job = build_job_manifest(vj(**spec), "cpu", settings)
    env = env_of(job)
    keys = [env.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    if secret is None:
        assert keys == [None, None]
    else:
        assert [k and k["secretKeyRef"]["name"] for k in keys] == [secret, secret]
    pod = job["spec"]["template"]["spec"]
    projected = [v for v in pod["volumes"] if "projected" in v]
    if not web_identity:
        assert "AWS_ROLE_ARN" not in env and not projected
        return
    assert env["AWS_ROLE_ARN"] == ROLE
    (volume,) = projected
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "sts.amazonaws.com" and token["expirationSeconds"] >= 600
    (mount,) = [m for m in container_of(job)["volumeMounts"] if m["name"] == volume["name"]]
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == f"{mount['mountPath']}/{token['path']}" and mount["readOnly"]
    assert pod["automountServiceAccountToken"] is False, "the STS token is no API token"


def test_sts_endpoint_and_audience_for_minio() -> None:
    settings = Settings(
        s3_auth="workloadIdentity", s3_role_arn=ROLE, s3_token_audience="minio", s3_sts_endpoint_url="http://minio:9000"
    )
    job = build_job_manifest(vj(), "cpu", settings)
    assert env_of(job)["AWS_ENDPOINT_URL_STS"] == "http://minio:9000"
    (volume,) = [v for v in job["spec"]["template"]["spec"]["volumes"] if "projected" in v]
    assert volume["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "minio"


def test_the_transcoders_service_account_carries_the_identity_annotations() -> None:
    annotations = {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/videojob"}
    (sa,) = build_transcoder_rbac("media", Settings(transcoder_service_account_annotations=annotations))
    assert sa["metadata"]["annotations"] == annotations
    (plain,) = build_transcoder_rbac("media", Settings())
    assert "annotations" not in plain["metadata"]


POD = {
    "nodeSelector": {"pool": "video", "nvidia.com/gpu.present": "false"},
    "tolerations": [{"key": "video", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "imagePullSecrets": ["regcred"],
    "labels": {"team": "media", "app.kubernetes.io/managed-by": "someone-else"},
    "annotations": {"sidecar.istio.io/inject": "false", "videojob.dev/priority": "1"},
    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "whisper"}}],
    "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
}


@pytest.mark.parametrize("hardware", ["cpu", "nvidia"])
def test_the_pod_block_is_merged_into_every_job_and_the_operators_own_fields_win(hardware: str) -> None:
    settings = Settings(transcoder_pod=POD)
    job = build_job_manifest(vj(priority=5), hardware, settings)
    template = job["spec"]["template"]
    pod = template["spec"]
    assert template["metadata"]["labels"]["team"] == "media"
    assert template["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "videojob-operator"
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert template["metadata"]["annotations"]["videojob.dev/priority"] == "5"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["affinity"] == POD["affinity"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "whisper"}} in pod["volumes"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container_of(job)["volumeMounts"]
    assert {"key": "video", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"]["pool"] == "video"
    if hardware == "nvidia":
        assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true", "the GPU placement wins"
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["priorityClassName"] == "videojob-normal"
    pinned = build_job_manifest(vj(priority=1), hardware, Settings(transcoder_pod={"priorityClassName": "batch"}))
    assert pinned["spec"]["template"]["spec"]["priorityClassName"] == "batch"


def test_no_pod_block_adds_nothing() -> None:
    pod = build_job_manifest(vj(), "cpu", Settings())["spec"]["template"]["spec"]
    assert not {"imagePullSecrets", "affinity", "nodeSelector", "tolerations"} & set(pod)


def test_security_contexts_come_from_the_settings_and_can_drop_the_ids() -> None:
    job = build_job_manifest(vj(), "cpu", Settings())
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["fsGroup"] == 65532
    assert container_of(job)["securityContext"]["readOnlyRootFilesystem"] is True
    openshift = Settings(
        transcoder_pod_security_context={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        transcoder_security_context={
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
    )
    job = build_job_manifest(vj(), "cpu", openshift)
    assert "runAsUser" not in job["spec"]["template"]["spec"]["securityContext"]
    assert "runAsUser" not in container_of(job)["securityContext"]
    job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0  # the manifest is a copy of the settings
    assert "runAsUser" not in openshift.transcoder_pod_security_context


def test_local_disk_is_bounded_by_default() -> None:
    """No ephemeral-storage request or limit and no emptyDir sizeLimit: one job could fill its node's disk under
    every tenant's pods."""
    for hardware in ("cpu", "nvidia"):
        job = build_job_manifest(vj(hardware=hardware), hardware, Settings())
        resources = container_of(job)["resources"]
        assert resources["requests"]["ephemeral-storage"] == "4Gi"
        assert resources["limits"]["ephemeral-storage"] == "56Gi"
        volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
        assert volumes["work"]["emptyDir"] == {"sizeLimit": "50Gi"} and volumes["tmp"]["emptyDir"] == {
            "sizeLimit": "1Gi"
        }
