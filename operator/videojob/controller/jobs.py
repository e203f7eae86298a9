"""The Kubernetes Job that runs one VideoJob: pure builders, no I/O.

How the spec reaches the transcoder: as a file, `runtime.SPEC_FILE`, which the kubelet writes from an annotation of
the pod template (`runtime.SPEC_ANNOTATION`, a downwardAPI volume), holding the parts of the validated spec the
transcoder reads (`runtime.spec_json`). Not an environment variable: Linux refuses one over 128 KiB, and JSON that
escapes non-ASCII made a valid spec of emoji text operations 423,637 bytes, a job that could never start. Not a
ConfigMap, because
- the Job stays one self-contained object: nothing extra to create before it, to garbage-collect after it, or to
  grant RBAC for, and no window in which the pod starts before its ConfigMap exists;
- the parts of the spec the transcoder reads are immutable (CEL transition rules), so a copy taken at admission
  never goes stale;
- the CRD's size rule keeps any accepted spec's copy under `runtime.MAX_SPEC_BYTES`, within the 256 KiB that
  an object's annotations may hold (a unit test builds the largest spec the rules allow).

Security: the pod runs under the "restricted" Pod Security Standard (non-root uid 65532, no privilege escalation,
all capabilities dropped, seccomp RuntimeDefault, read-only root filesystem); FFmpeg writes only to the
`/work` and `/tmp` emptyDirs.

Reporting back, and why the pod holds no API token: the transcoder writes its progress as lines in its own log
(`runtime.progress_line`) and its outcome in its termination message; the operator reads both from the pod it
owns (proved by controller references, see index.py), through the API server (`pods/log`, `pods`). The pod's
ServiceAccount has no Role and no token is mounted, so nothing that runs in the pod, however FFmpeg was made to
misbehave by an input, can write to the API, and nothing the operator reads from one pod can touch another
VideoJob. Alternatives considered:
- the transcoder patches `status.progress` itself (the first design): its ServiceAccount needed `patch` on
  `videojobs/status` of every VideoJob in the namespace (RBAC's resourceNames are fixed names, not "my own"),
  and any pod in the namespace may run as that ServiceAccount: it could forge any VideoJob's status;
- a ServiceAccount, Role (resourceNames: the VideoJob) and RoleBinding per VideoJob: three more objects per job,
  and the operator would need to create Roles, a right that can grant whatever it holds;
- per-pod result objects (Argo Workflows' WorkflowTaskResult): still needs a token and create rights in the pod;
- an HTTP endpoint in the pod the operator polls: needs a network path from the operator to every pod.
Reading a log tail is one small GET per running pod every `progressInterval` seconds (the kubelet serves it from
a file), bounded by `maxRunning`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from videojob.api import runtime
from videojob.api.models import API_VERSION, GROUP, KIND, Hardware, VideoJobSpec
from videojob.controller import settings as settings_module
from videojob.controller.settings import TMP_SIZE_LIMIT, Settings

CONTAINER_NAME = "transcode"
WORKDIR = "/work"
TMPDIR = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, not a shared host directory
RUN_AS_USER = settings_module.RUN_AS_USER  # the default uid (VIDEOJOB_TRANSCODER_*SECURITY_CONTEXT may drop it)
WEB_IDENTITY_DIR = "/var/run/secrets/videojob.dev/serviceaccount"  # the projected token (s3_role_arn), as IRSA's

MANAGED_BY = "videojob-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_NAME = "videojob.dev/name"
LABEL_UID = "videojob.dev/uid"  # for people's selectors (kubectl get pods -l); never proof of ownership
LABEL_HARDWARE = "videojob.dev/hardware"
# A chunked VideoJob (spec.parallelism) has two Jobs: its segments (an Indexed Job) and then its join. The part and
# the number of segments are labels of the pod template, fixed at creation: the operator reads them back from there.
LABEL_PART = "videojob.dev/part"  # "segments" or "join"; absent: the whole job in one pod
LABEL_SEGMENTS = "videojob.dev/segments"  # the Indexed Job's completions
LABEL_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # Kubernetes puts it on an Indexed Job's pods
PART_SEGMENTS = "segments"
PART_JOIN = "join"
ANNOTATION_NAME = "videojob.dev/name"
ANNOTATION_PRIORITY = "videojob.dev/priority"
# On the pod template (which cannot change after creation): the preset the spec was merged with, as status.preset
# records it (JSON). The operator reads it back from the Job, so it survives a restart between creating the Job
# and writing the status.
ANNOTATION_PRESET = "videojob.dev/preset"

# Selects every Job and pod this operator made (the operator's watches use it server-side).
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"

MAX_NAME_PREFIX = 52  # 52 + "-" + 10 hex digits = 63, the limit of a label value (pods get job-name labels)

# Environment variables that identify the job: transcoder_env from the settings may not override them.
_PROTECTED_ENV = frozenset(
    {
        runtime.ENV_SPEC,
        runtime.ENV_SPEC_FILE,
        runtime.ENV_NAME,
        runtime.ENV_NAMESPACE,
        runtime.ENV_UID,
        runtime.ENV_HARDWARE,
        runtime.ENV_HARDWARE_REQUESTED,
        runtime.ENV_PART,
        runtime.ENV_SEGMENTS,
        runtime.ENV_COMPLETION_INDEX,
    }
)


def job_name(vj: Mapping[str, Any]) -> str:
    """`<name, at most 52 characters>-<10 hex digits of sha256(uid)>`: deterministic for a VideoJob, different for
    a VideoJob re-created under the same name (so a restarted operator finds its Job, and never adopts another's)."""
    meta = vj["metadata"]
    digest = hashlib.sha256(str(meta["uid"]).encode()).hexdigest()[:10]
    prefix = str(meta["name"])[:MAX_NAME_PREFIX].rstrip("-.")
    return f"{prefix}-{digest}"


def join_job_name(vj: Mapping[str, Any]) -> str:
    """The join Job of a chunked VideoJob: `job_name` with its name part shortened by 5, then "-join"."""
    meta = vj["metadata"]
    digest = hashlib.sha256(str(meta["uid"]).encode()).hexdigest()[:10]
    prefix = str(meta["name"])[: MAX_NAME_PREFIX - 5].rstrip("-.")
    return f"{prefix}-{digest}-join"


def label_value(text: str) -> str:
    """A label value (at most 63 characters, alphanumeric at both ends) made from a name."""
    value = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:63]
    return value.strip("-._")


def owner_reference(vj: Mapping[str, Any]) -> dict[str, Any]:
    meta = vj["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(vj: Mapping[str, Any], hardware: str) -> dict[str, str]:
    meta = vj["metadata"]
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "transcoder",
        LABEL_NAME: label_value(str(meta["name"])),
        LABEL_UID: str(meta["uid"]),
        LABEL_HARDWARE: hardware,
    }


def transcoder_env(
    vj: Mapping[str, Any], spec: VideoJobSpec, hardware: str, settings: Settings
) -> list[dict[str, Any]]:
    """The container's environment: the runtime contract of videojob.api.runtime, then the platform's extras."""
    meta = vj["metadata"]
    plain: dict[str, str] = {
        runtime.ENV_SPEC_FILE: runtime.SPEC_FILE,
        runtime.ENV_NAME: str(meta["name"]),
        runtime.ENV_NAMESPACE: str(meta["namespace"]),
        runtime.ENV_UID: str(meta["uid"]),  # in the metadata of every object it writes (storage.Owner)
        runtime.ENV_HARDWARE: hardware,
        runtime.ENV_HARDWARE_REQUESTED: str(spec.hardware),  # "auto" lets the transcoder fall back to CPU
        runtime.ENV_WORKDIR: WORKDIR,
        runtime.ENV_RESULT_PATH: runtime.DEFAULT_RESULT_PATH,
        runtime.ENV_PROGRESS: "lines",
        runtime.ENV_PROGRESS_INTERVAL: f"{settings.progress_interval:g}",
        runtime.ENV_ALLOW_HTTP: "true" if settings.allow_http else "false",
        runtime.ENV_ALLOWED_HOSTS: ",".join(settings.allowed_hosts),
        # Libraries that cache (fontconfig, model hubs) write under HOME: keep them off the read-only root.
        "HOME": TMPDIR,
        "XDG_CACHE_HOME": f"{TMPDIR}/.cache",
        "AWS_DEFAULT_REGION": settings.s3_region,
    }
    if settings.s3_endpoint_url:
        plain[runtime.ENV_S3_ENDPOINT] = settings.s3_endpoint_url
    for key, value in settings.transcoder_env.items():
        if key not in _PROTECTED_ENV:
            plain[key] = value
    if uses_web_identity(spec, settings):
        # IRSA's way, without its webhook: boto3 assumes the role with the projected token (AssumeRoleWithWebIdentity)
        plain["AWS_ROLE_ARN"] = str(settings.s3_role_arn)
        plain["AWS_WEB_IDENTITY_TOKEN_FILE"] = f"{WEB_IDENTITY_DIR}/token"
        plain["AWS_ROLE_SESSION_NAME"] = label_value(f"videojob-{meta['namespace']}-{meta['name']}")[:64]
        if settings.s3_sts_endpoint_url:
            plain["AWS_ENDPOINT_URL_STS"] = settings.s3_sts_endpoint_url
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    secret = s3_secret_name(spec, settings)
    if secret is not None:
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        ]
    return env


def s3_secret_name(spec: VideoJobSpec, settings: Settings) -> str | None:
    """The Secret the transcoder's S3 keys come from: the VideoJob's own, else the default one; None with workload
    identity (no keys at all: the SDK finds the pod's identity, see `uses_web_identity`)."""
    if spec.credentials_secret_ref:
        return spec.credentials_secret_ref.name
    return settings.s3_secret if settings.s3_auth == "secret" else None


def uses_web_identity(spec: VideoJobSpec, settings: Settings) -> bool:
    """Workload identity through a token the operator projects itself (s3_role_arn set); without it the platform
    provides the identity (EKS' webhook adds the same token and variables, GKE a metadata server)."""
    return s3_secret_name(spec, settings) is None and bool(settings.s3_role_arn)


def merge_pod(pod_spec: dict[str, Any], template_meta: dict[str, Any], settings: Settings) -> None:
    """Add the platform's transcoder_pod to a built pod (in place): the operator's own labels, annotations,
    volumes and GPU placement win; lists are appended to, maps merged."""
    extra = settings.transcoder_pod
    template_meta["labels"] = {**extra.get("labels", {}), **template_meta["labels"]}
    template_meta["annotations"] = {**extra.get("annotations", {}), **template_meta["annotations"]}
    if extra.get("nodeSelector"):
        pod_spec["nodeSelector"] = {**extra["nodeSelector"], **pod_spec.get("nodeSelector", {})}
    if extra.get("tolerations"):
        pod_spec["tolerations"] = [*pod_spec.get("tolerations", []), *copy.deepcopy(extra["tolerations"])]
    if extra.get("affinity"):
        pod_spec["affinity"] = copy.deepcopy(extra["affinity"])
    if extra.get("imagePullSecrets"):
        pod_spec["imagePullSecrets"] = copy.deepcopy(extra["imagePullSecrets"])
    pod_spec["volumes"] += copy.deepcopy(extra.get("volumes", []))
    pod_spec["containers"][0]["volumeMounts"] += copy.deepcopy(extra.get("volumeMounts", []))


def pod_failure_policy() -> dict[str, Any]:
    """Bad input and unsupported requests fail the Job at once (a retry cannot help); a pod evicted or pre-empted
    (DisruptionTarget) is replaced without spending a retry."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": sorted(int(code) for code in runtime.NOT_RETRIED),
                },
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }


def build_job_manifest(
    vj: Mapping[str, Any],
    hardware: str,
    settings: Settings,
    preset: Mapping[str, Any] | None = None,
    segments: int = 1,
    part: str | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job for a VideoJob admitted on `hardware` ("cpu" or "nvidia"). `vj` carries the spec the job
    runs: with a preset, the merged one (presets.resolve), and `preset` says which preset that was.

    `segments` above 1: a chunked VideoJob's segments, an Indexed Job of that many completions that all run at
    once, each index retried on its own (`backoffLimitPerIndex`), any index that fails for good failing the Job;
    with `part` "join", the Job that joins those segments once they are all done (`build_join_manifest`).
    No `ttlSecondsAfterFinished` on the Job: it is owned by the VideoJob, whose own TTL removes both.
    """
    if hardware not in (Hardware.CPU.value, Hardware.NVIDIA.value):
        raise ValueError(f"hardware must be cpu or nvidia, not {hardware!r}")
    spec = VideoJobSpec.model_validate(vj["spec"])
    meta = vj["metadata"]
    part = part or (PART_SEGMENTS if segments > 1 else None)
    job_labels = labels(vj, hardware)
    env = transcoder_env(vj, spec, hardware, settings)
    if part is not None:
        job_labels |= {LABEL_PART: part, LABEL_SEGMENTS: str(segments)}
        role = runtime.PART_SEGMENT if part == PART_SEGMENTS else runtime.PART_JOIN
        env += [{"name": runtime.ENV_PART, "value": role}, {"name": runtime.ENV_SEGMENTS, "value": str(segments)}]
    annotations = {ANNOTATION_NAME: str(meta["name"]), ANNOTATION_PRIORITY: str(spec.priority)}

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.transcoder_image,
        "imagePullPolicy": settings.transcoder_pull_policy,
        "command": list(settings.transcoder_command),
        "env": env,
        "resources": settings.resources(hardware),
        "workingDir": WORKDIR,
        "terminationMessagePath": runtime.DEFAULT_RESULT_PATH,
        "terminationMessagePolicy": "File",  # the TranscodeResult JSON, not the log tail
        "securityContext": copy.deepcopy(settings.transcoder_security_context),
        "volumeMounts": [
            {"name": "work", "mountPath": WORKDIR},
            {"name": "tmp", "mountPath": TMPDIR},
            {"name": "spec", "mountPath": runtime.SPEC_DIR, "readOnly": True},
        ],
    }
    work_volume: dict[str, Any] = {"sizeLimit": settings.workdir_size_limit}

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.transcoder_service_account,
        "automountServiceAccountToken": False,  # the transcoder never talks to the API (see the module docstring)
        "enableServiceLinks": False,
        "securityContext": copy.deepcopy(settings.transcoder_pod_security_context),
        "containers": [container],
        "volumes": [
            {"name": "work", "emptyDir": work_volume},
            {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
            {
                "name": "spec",
                "downwardAPI": {
                    "items": [
                        {
                            "path": runtime.SPEC_FILE.removeprefix(runtime.SPEC_DIR + "/"),
                            "fieldRef": {"fieldPath": f"metadata.annotations['{runtime.SPEC_ANNOTATION}']"},
                        }
                    ]
                },
            },
        ],
    }
    priority_class = settings.priority_class(spec.priority)
    if priority_class:
        pod_spec["priorityClassName"] = priority_class
    if hardware == Hardware.NVIDIA.value:
        pod_spec["nodeSelector"] = dict(settings.gpu_node_selector)
        pod_spec["tolerations"] = [dict(t) for t in settings.gpu_tolerations]
    if uses_web_identity(spec, settings):
        pod_spec["volumes"].append(
            {
                "name": "web-identity",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": settings.s3_token_audience,
                                "expirationSeconds": 3600,
                                "path": "token",
                            }
                        }
                    ]
                },
            }
        )
        container["volumeMounts"].append({"name": "web-identity", "mountPath": WEB_IDENTITY_DIR, "readOnly": True})

    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": join_job_name(vj) if part == PART_JOIN else job_name(vj),
            "namespace": meta["namespace"],
            "labels": job_labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(vj)],
        },
        "spec": {
            "backoffLimit": spec.retries,
            "activeDeadlineSeconds": spec.active_deadline_seconds or settings.default_active_deadline_seconds,
            "podFailurePolicy": pod_failure_policy(),
            "template": {
                "metadata": {
                    "labels": dict(job_labels),
                    "annotations": {**annotations, runtime.SPEC_ANNOTATION: runtime.spec_json(spec)},
                },
                "spec": pod_spec,
            },
        },
    }
    if preset is not None:
        job["spec"]["template"]["metadata"]["annotations"][ANNOTATION_PRESET] = json.dumps(
            dict(preset), separators=(",", ":"), sort_keys=True
        )
    if part == PART_SEGMENTS:
        del job["spec"]["backoffLimit"]  # per index instead: a failed segment is retried alone
        job["spec"] |= {
            "completionMode": "Indexed",
            "completions": segments,
            "parallelism": segments,
            "backoffLimitPerIndex": spec.retries,
            "maxFailedIndexes": 0,
        }
    merge_pod(pod_spec, job["spec"]["template"]["metadata"], settings)
    return job


def build_join_manifest(vj: Mapping[str, Any], segments_job: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The Job that joins a chunked VideoJob's segments (a CPU pod: it copies the picture and encodes the sound),
    created by the operator once its segments' Indexed Job (`segments_job`) completed. It runs the spec the
    segments ran, taken from their pod template (a preset merged at admission may have changed since), with the
    VideoJob's own fields for the rest (priority, credentials: immutable or the operator's)."""
    template = ((segments_job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    annotations = template.get("annotations") or {}
    labels = template.get("labels") or {}
    spec = dict(vj["spec"])
    if runtime.SPEC_ANNOTATION in annotations:
        spec |= json.loads(annotations[runtime.SPEC_ANNOTATION])
    preset = json.loads(annotations[ANNOTATION_PRESET]) if ANNOTATION_PRESET in annotations else None
    segments = int(labels.get(LABEL_SEGMENTS, "1"))
    return build_job_manifest({**vj, "spec": spec}, Hardware.CPU.value, settings, preset, segments, PART_JOIN)


def segments_wanted(spec: Mapping[str, Any]) -> int:
    """How many segments a VideoJob asks for (spec.parallelism; 1 when unset)."""
    try:
        return max(1, int(spec.get("parallelism") or 1))
    except (TypeError, ValueError):
        return 1


def controller_uid(obj: Mapping[str, Any], kind: str, group: str) -> str | None:
    """The uid of the object's controller (its ownerReference with `controller: true`) when that controller is a
    `kind` of API group `group` ("" for the core group), else None.

    Labels prove nothing: anyone who may create a pod can give it any label. A controller reference is set by
    whoever created the object too, but the API server allows one controller per object, the garbage collector
    removes objects whose owner is gone or in another namespace, and the operator checks the namespace as well.
    """
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        api_version = str(ref.get("apiVersion") or "")
        ref_group = api_version.rpartition("/")[0] if "/" in api_version else ""
        if ref.get("kind") == kind and ref_group == group and ref.get("uid"):
            return str(ref["uid"])
        return None  # there is one controller at most
    return None


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """True when a Job's controller reference is this VideoJob (by uid; the caller compares namespaces)."""
    return controller_uid(obj, KIND, GROUP) == uid
