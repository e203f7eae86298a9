"""The operator's configuration: one typed model, read from environment variables.

Every field is one environment variable, named in its `env` metadata and documented in its description
(`python -m videojob.controller.settings` prints the table; the Helm chart maps its values onto these).
Scalars are written plainly (`VIDEOJOB_MAX_RUNNING=4`), lists of names comma-separated
(`VIDEOJOB_NAMESPACES=media,ads`), structured values as JSON (`VIDEOJOB_GPU_NODE_SELECTOR={"pool": "gpu"}`).
An unknown `VIDEOJOB_*` variable is not an error (the transcoder shares the prefix), a malformed one is.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from videojob.api.models import Hardware

PriorityBand = Literal["urgent", "normal", "low"]
_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def priority_band(priority: int) -> PriorityBand:
    """The seeds' bands: 1-3 urgent, 4-7 normal, 8-10 low."""
    if priority <= 3:
        return "urgent"
    if priority <= 7:
        return "normal"
    return "low"


def _env(name: str, description: str, default: Any = ..., **kw: Any) -> Any:
    if default is ...:
        return Field(description=description, json_schema_extra={"env": name}, **kw)
    if callable(default):
        return Field(default_factory=default, description=description, json_schema_extra={"env": name}, **kw)
    return Field(default=default, description=description, json_schema_extra={"env": name}, **kw)


def _default_gpu_tolerations() -> list[dict[str, Any]]:
    return [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


# Local disk (ephemeral-storage): a job's /work (inputs, result) up to WORKDIR_SIZE_LIMIT and /tmp up to
# TMP_SIZE_LIMIT count against its limit, with its log; the kubelet evicts a pod that goes over, instead of a node
# running out of disk under every tenant's pods.
WORKDIR_SIZE_LIMIT = "50Gi"
TMP_SIZE_LIMIT = "1Gi"
_EPHEMERAL = {"requests": "4Gi", "limits": "56Gi"}


def _default_cpu_resources() -> dict[str, Any]:
    return {
        "requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": _EPHEMERAL["requests"]},
        "limits": {"memory": "4Gi", "ephemeral-storage": _EPHEMERAL["limits"]},
    }


def _default_nvidia_resources() -> dict[str, Any]:
    return {
        "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": _EPHEMERAL["requests"]},
        "limits": {"memory": "8Gi", "ephemeral-storage": _EPHEMERAL["limits"]},
    }


def _default_priority_classes() -> dict[str, str]:
    return {"urgent": "videojob-urgent", "normal": "videojob-normal", "low": "videojob-low"}


RUN_AS_USER = 65532  # the conventional "nonroot" uid of distroless images, and our images' USER


def _default_pod_security_context() -> dict[str, Any]:
    """The "restricted" Pod Security Standard with our images' uid; drop the ids for a platform that assigns its
    own (OpenShift's restricted-v2 SCC)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _default_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# What every transcoder pod gets besides what the operator sets; the names are those of the PodSpec.
RESERVED_VOLUMES = frozenset({"work", "tmp", "spec", "web-identity"})  # the operator's own (jobs.py)
RESERVED_PATHS = ("/work/", "/tmp/")  # noqa: S108 - where those emptyDirs are mounted, not a use of /tmp


class TranscoderPod(BaseModel):
    """Platform additions merged into every transcoder Job's pod (VIDEOJOB_TRANSCODER_POD). Kubernetes objects are
    passed on as given (the API server checks them); what would clash with the operator's own is refused here."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    image_pull_secrets: list[dict[str, str]] = Field(default_factory=list, alias="imagePullSecrets")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list, alias="volumeMounts")
    priority_class_name: str = Field(default="", alias="priorityClassName")

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: Any) -> Any:
        return [{"name": item} if isinstance(item, str) else item for item in value or []]

    @field_validator("volumes")
    @classmethod
    def _volume_names(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [str(v.get("name") or "") for v in value]
        if not all(names) or len(set(names)) != len(names):
            raise ValueError("every volume needs a name of its own")
        if clash := sorted(RESERVED_VOLUMES & set(names)):
            raise ValueError(f"volume names {clash} are the operator's own")
        return value

    @model_validator(mode="after")
    def _mounts(self) -> TranscoderPod:
        declared = {v["name"] for v in self.volumes}
        for mount in self.volume_mounts:
            if mount.get("name") not in declared or not str(mount.get("mountPath") or "").startswith("/"):
                raise ValueError(
                    f"volumeMount {mount} must name one of volumes {sorted(declared)} and an absolute mountPath"
                )
            path = str(mount["mountPath"]).rstrip("/") + "/"
            if path == "/" or path.startswith(RESERVED_PATHS) or any(own.startswith(path) for own in RESERVED_PATHS):
                raise ValueError(f"mountPath {mount['mountPath']} is or holds one of the operator's own")
        return self

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_defaults=True)


class Settings(BaseModel):
    """Everything the platform team can tune. Defaults suit a small production cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- scope and queue -----------------------------------------------------------------------------------
    namespaces: list[str] = _env(
        "VIDEOJOB_NAMESPACES",
        "Namespaces to watch, comma-separated; empty watches the whole cluster.",
        list,
    )
    max_running: int = _env(
        "VIDEOJOB_MAX_RUNNING", "Most VideoJobs running at once (all hardware together).", 10, ge=1, le=100_000
    )
    max_running_gpu: int = _env(
        "VIDEOJOB_MAX_RUNNING_GPU",
        "Most VideoJobs running on GPU nodes at once (normally the number of GPUs); 0 disables GPU jobs.",
        1,
        ge=0,
        le=10_000,
    )
    max_running_per_namespace: int = _env(
        "VIDEOJOB_MAX_RUNNING_PER_NAMESPACE",
        "Most VideoJobs of one namespace running at once; 0: no limit of its own (maxRunning still holds).",
        0,
        ge=0,
        le=100_000,
    )
    namespace_max_running: dict[str, int] = _env(
        "VIDEOJOB_NAMESPACE_MAX_RUNNING",
        "Per-namespace limits over VIDEOJOB_MAX_RUNNING_PER_NAMESPACE, JSON {namespace: count}; 0 holds a "
        "namespace's VideoJobs in the queue.",
        dict,
    )
    fair_sharing: bool = _env(
        "VIDEOJOB_FAIR_SHARING",
        "Within one priority, admit from the namespace with the fewest running VideoJobs per unit of weight first "
        "(false: first come first served across namespaces).",
        True,
    )
    namespace_weights: dict[str, float] = _env(
        "VIDEOJOB_NAMESPACE_WEIGHTS",
        "Fair-sharing weights, JSON {namespace: weight}; a namespace not listed weighs 1, one of weight 2 gets "
        "twice the running VideoJobs of a namespace of weight 1 when both wait.",
        dict,
    )

    # --- the transcoder Job --------------------------------------------------------------------------------
    transcoder_image: str = _env(
        "VIDEOJOB_TRANSCODER_IMAGE", "Image of the transcoder container.", "videojob-transcoder:dev", min_length=1
    )
    transcoder_pull_policy: Literal["Always", "IfNotPresent", "Never"] = _env(
        "VIDEOJOB_TRANSCODER_PULL_POLICY", "imagePullPolicy of the transcoder container.", "IfNotPresent"
    )
    transcoder_command: list[str] = _env(
        "VIDEOJOB_TRANSCODER_COMMAND",
        "Command of the transcoder container: a JSON list or a shell-style string (split, never run by a shell).",
        lambda: ["videojob-transcode"],
        min_length=1,
    )
    transcoder_env: dict[str, str] = _env(
        "VIDEOJOB_TRANSCODER_ENV",
        "Extra environment for the transcoder, JSON object (e.g. VIDEOJOB_STT_MODEL_DIRS, VIDEOJOB_MAX_INPUT_BYTES).",
        dict,
    )
    transcoder_service_account: str = _env(
        "VIDEOJOB_TRANSCODER_SERVICE_ACCOUNT",
        "ServiceAccount (and Role/RoleBinding) the operator keeps in each namespace for transcoder pods.",
        "videojob-transcoder",
        min_length=1,
    )
    transcoder_service_account_annotations: dict[str, str] = _env(
        "VIDEOJOB_TRANSCODER_SERVICE_ACCOUNT_ANNOTATIONS",
        "Annotations of the transcoders' ServiceAccount, JSON (e.g. eks.amazonaws.com/role-arn or "
        "iam.gke.io/gcp-service-account for VIDEOJOB_S3_AUTH=workloadIdentity).",
        dict,
    )
    transcoder_pod: dict[str, Any] = _env(
        "VIDEOJOB_TRANSCODER_POD",
        "Merged into every transcoder pod, JSON: nodeSelector, tolerations, affinity, imagePullSecrets, labels, "
        "annotations, volumes, volumeMounts (of the transcoder container), priorityClassName (instead of the "
        "bands' classes). GPU jobs add the GPU nodeSelector and tolerations; the operator's own labels, "
        "annotations and volumes win.",
        dict,
    )
    transcoder_pod_security_context: dict[str, Any] = _env(
        "VIDEOJOB_TRANSCODER_POD_SECURITY_CONTEXT",
        "securityContext of transcoder pods, JSON (default: restricted, uid/gid/fsGroup 65532; leave the ids out "
        "where the platform assigns them, e.g. OpenShift's restricted-v2).",
        _default_pod_security_context,
    )
    transcoder_security_context: dict[str, Any] = _env(
        "VIDEOJOB_TRANSCODER_SECURITY_CONTEXT",
        "securityContext of the transcoder container, JSON (default: restricted, read-only root, no capabilities, "
        "uid/gid 65532).",
        _default_security_context,
    )
    cpu_resources: dict[str, Any] = _env(
        "VIDEOJOB_CPU_RESOURCES", "Container resources (requests/limits, JSON) of a CPU job.", _default_cpu_resources
    )
    nvidia_resources: dict[str, Any] = _env(
        "VIDEOJOB_NVIDIA_RESOURCES",
        "Container resources (JSON) of a GPU job; the GPU limit is added from VIDEOJOB_GPU_RESOURCE.",
        _default_nvidia_resources,
    )
    workdir_size_limit: str = _env(
        "VIDEOJOB_WORKDIR_SIZE_LIMIT",
        "sizeLimit of each job's /work emptyDir (inputs and result); keep the ephemeral-storage limit of the "
        "resources above it (/tmp adds 1Gi).",
        WORKDIR_SIZE_LIMIT,
        min_length=1,
    )
    priority_classes: dict[PriorityBand, str] = _env(
        "VIDEOJOB_PRIORITY_CLASSES",
        'PriorityClass per band, JSON {"urgent": .., "normal": .., "low": ..} (priority 1-3, 4-7, 8-10); '
        "an empty name sets none.",
        _default_priority_classes,
    )
    default_active_deadline_seconds: int = _env(
        "VIDEOJOB_DEFAULT_ACTIVE_DEADLINE_SECONDS",
        "activeDeadlineSeconds of a Job whose VideoJob sets none.",
        6 * 3600,
        ge=1,
    )
    stuck_timeout_seconds: int | None = _env(
        "VIDEOJOB_STUCK_TIMEOUT_SECONDS",
        "A Job whose pod cannot start because of its configuration (missing credentials Secret or key, image that "
        "cannot be pulled) is stopped and its VideoJob Failed after this long, so it stops holding a running slot; "
        "`never` waits for activeDeadlineSeconds.",
        900,
        ge=1,
    )
    default_ttl_seconds: int | None = _env(
        "VIDEOJOB_DEFAULT_TTL_SECONDS",
        "Delete a finished VideoJob this long after it finishes, unless it sets its own; `never` keeps them.",
        7 * 86_400,
        ge=0,
    )
    progress_interval: float = _env(
        "VIDEOJOB_PROGRESS_INTERVAL", "Seconds between the transcoder's progress patches.", 5.0, gt=0, le=3600
    )

    # --- GPU placement ---------------------------------------------------------------------------------------
    gpu_node_selector: dict[str, str] = _env(
        "VIDEOJOB_GPU_NODE_SELECTOR",
        "nodeSelector of GPU jobs, JSON.",
        lambda: {"nvidia.com/gpu.present": "true"},
    )
    gpu_tolerations: list[dict[str, Any]] = _env(
        "VIDEOJOB_GPU_TOLERATIONS", "Tolerations of GPU jobs, JSON list.", _default_gpu_tolerations
    )
    gpu_resource: str = _env(
        "VIDEOJOB_GPU_RESOURCE", "Extended resource a GPU job requests one of.", "nvidia.com/gpu", min_length=1
    )

    # --- storage and inputs ----------------------------------------------------------------------------------
    s3_secret: str = _env(
        "VIDEOJOB_S3_SECRET",
        "Default Secret (in the VideoJob's namespace) with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
        "videojob-s3",
        min_length=1,
    )
    s3_endpoint_url: str | None = _env(
        "VIDEOJOB_S3_ENDPOINT_URL",
        "S3 endpoint for transcoders and artifact deletion (MinIO etc.); falls back to S3_ENDPOINT_URL; unset = AWS.",
        None,
    )
    s3_region: str = _env("VIDEOJOB_S3_REGION", "AWS_DEFAULT_REGION given to transcoders.", "us-east-1")
    s3_auth: Literal["secret", "workloadIdentity"] = _env(
        "VIDEOJOB_S3_AUTH",
        "How transcoders authenticate to S3: `secret` (keys from VIDEOJOB_S3_SECRET or the VideoJob's "
        "credentialsSecretRef) or `workloadIdentity` (their ServiceAccount's identity: EKS IRSA or Pod Identity, GKE "
        "Workload Identity, or the token VIDEOJOB_S3_ROLE_ARN projects; a credentialsSecretRef still wins).",
        "secret",
    )
    s3_role_arn: str | None = _env(
        "VIDEOJOB_S3_ROLE_ARN",
        "With workloadIdentity: the role transcoders assume with a ServiceAccount token the operator projects into "
        "the pod (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE: what EKS' IRSA webhook adds), for clusters without "
        "such a webhook (self-managed OIDC federation, MinIO STS); unset leaves it to the platform.",
        None,
    )
    s3_token_audience: str = _env(
        "VIDEOJOB_S3_TOKEN_AUDIENCE",
        "Audience of the projected ServiceAccount token.",
        "sts.amazonaws.com",
        min_length=1,
    )
    s3_sts_endpoint_url: str | None = _env(
        "VIDEOJOB_S3_STS_ENDPOINT_URL",
        "STS endpoint of AssumeRoleWithWebIdentity (AWS_ENDPOINT_URL_STS of transcoders), e.g. MinIO's URL; unset "
        "= AWS STS.",
        None,
    )
    allow_http: bool = _env("VIDEOJOB_ALLOW_HTTP", "Accept http:// inputs (https:// and s3:// always).", False)
    allowed_hosts: list[str] = _env(
        "VIDEOJOB_ALLOWED_HOSTS",
        "Hosts (or .suffixes) http(s) inputs may come from, comma-separated; empty = any public host.",
        list,
    )

    # --- notifications (webhooks) -----------------------------------------------------------------------------
    notify_webhooks: list[dict[str, Any]] = _env(
        "VIDEOJOB_NOTIFY_WEBHOOKS",
        'Webhooks told of every VideoJob\'s phase changes, JSON list of {"url", "events", "secretRef": {"name", '
        '"key"}} (as spec.notify.webhooks); their Secrets live in VIDEOJOB_OPERATOR_NAMESPACE.',
        list,
    )
    operator_namespace: str = _env(
        "VIDEOJOB_OPERATOR_NAMESPACE",
        "The operator's own namespace (where the default webhooks' Secrets are).",
        "videojob-system",
        min_length=1,
    )
    notify_allow_http: bool = _env(
        "VIDEOJOB_NOTIFY_ALLOW_HTTP", "Send notifications to http:// URLs too (https:// only by default).", False
    )
    notify_allowed_networks: list[str] = _env(
        "VIDEOJOB_NOTIFY_ALLOWED_NETWORKS",
        "Private networks (CIDRs, comma-separated) webhooks may resolve to; loopback, private, link-local and the "
        "cloud metadata addresses are refused otherwise.",
        list,
    )
    notify_ca_bundle: str | None = _env(
        "VIDEOJOB_NOTIFY_CA_BUNDLE", "PEM certificates trusted for webhooks besides the system's (a private CA).", None
    )
    notify_attempts: int = _env(
        "VIDEOJOB_NOTIFY_ATTEMPTS",
        "Requests per notification before giving up (exponential backoff between).",
        8,
        ge=1,
        le=100,
    )
    notify_max_backoff_seconds: float = _env(
        "VIDEOJOB_NOTIFY_MAX_BACKOFF_SECONDS",
        "Longest wait between two attempts of one notification.",
        300.0,
        gt=0,
        le=86_400,
    )
    notify_max_age_seconds: int = _env(
        "VIDEOJOB_NOTIFY_MAX_AGE_SECONDS",
        "Phase changes older than this are not announced (e.g. when a default webhook is added to a cluster with "
        "old jobs).",
        3600,
        ge=1,
    )

    # --- the operator process --------------------------------------------------------------------------------
    metrics_port: int = _env(
        "VIDEOJOB_METRICS_PORT", "Port of /metrics (Prometheus) and /healthz; 0 disables.", 8080, ge=0, le=65535
    )
    resync_seconds: float = _env(
        "VIDEOJOB_RESYNC_SECONDS", "Reconcile everything at least this often, even without events.", 30.0, gt=0
    )
    relist_seconds: float = _env(
        "VIDEOJOB_RELIST_SECONDS",
        "Read every watched object from the API server again this often, in case a watch event was missed (the "
        "watches feed the operator between lists).",
        600.0,
        gt=0,
    )
    debounce_seconds: float = _env(
        "VIDEOJOB_DEBOUNCE_SECONDS",
        "Start a reconcile pass no sooner than this after the last one ended: events arriving meanwhile are handled "
        "in one pass (an event after a quieter spell, at once).",
        0.02,
        ge=0,
        le=10,
    )
    api_workers: int = _env(
        "VIDEOJOB_API_WORKERS", "Parallel API requests when applying a pass (creates, patches).", 8, ge=1, le=64
    )
    worker_limit: int = _env(
        "VIDEOJOB_WORKER_LIMIT",
        "Kopf's limit of concurrent per-object workers. The operator's handlers only update memory (API calls are "
        "bounded by VIDEOJOB_API_WORKERS), so this only caps tasks; too low a value delays events of new objects.",
        1000,
        ge=1,
    )
    watch_server_timeout: int = _env(
        "VIDEOJOB_WATCH_SERVER_TIMEOUT", "Seconds the API server keeps one watch request open.", 300, ge=1
    )
    watch_client_timeout: int = _env(
        "VIDEOJOB_WATCH_CLIENT_TIMEOUT", "Seconds before the operator abandons a silent watch request.", 330, ge=1
    )

    # --- high availability (leader.py) -------------------------------------------------------------------------
    leader_election: bool = _env(
        "VIDEOJOB_LEADER_ELECTION",
        "Elect a leader with a coordination.k8s.io Lease in VIDEOJOB_OPERATOR_NAMESPACE: only its holder admits, "
        "creates Jobs and writes; other replicas stand by. Needed for more than one replica (the chart turns it "
        "on); off, the process always acts.",
        False,
    )
    leader_election_lease_name: str = _env(
        "VIDEOJOB_LEADER_ELECTION_LEASE_NAME",
        "Name of that Lease (one per operator installation).",
        "videojob-operator",
        min_length=1,
        max_length=253,
    )
    leader_election_lease_duration: float = _env(
        "VIDEOJOB_LEADER_ELECTION_LEASE_DURATION",
        "Seconds a standby waits after the Lease's last renewal before taking it over (the failover time after a "
        "crash is about this plus two retry periods).",
        10.0,
        ge=2,
        le=600,
    )
    leader_election_renew_deadline: float = _env(
        "VIDEOJOB_LEADER_ELECTION_RENEW_DEADLINE",
        "Seconds the leader goes on acting without a successful renewal; then it stops (and restarts as a "
        "standby). Must be below the lease duration: the difference is the safety margin.",
        7.0,
        gt=0,
        le=600,
    )
    leader_election_retry_period: float = _env(
        "VIDEOJOB_LEADER_ELECTION_RETRY_PERIOD",
        "Seconds between the leader's renewals and between a standby's checks of the Lease; below the renew deadline.",
        1.0,
        gt=0,
        le=60,
    )
    log_format: Literal["json", "text"] = _env("VIDEOJOB_LOG_FORMAT", "json (structured) or text logs.", "json")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _env("VIDEOJOB_LOG_LEVEL", "Log level.", "INFO")

    @field_validator("transcoder_command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            return json.loads(value) if value.startswith("[") else shlex.split(value)
        return value

    @field_validator("transcoder_pod")
    @classmethod
    def _pod(cls, value: dict[str, Any]) -> dict[str, Any]:
        return TranscoderPod.model_validate(value).to_wire()

    @field_validator("notify_webhooks")
    @classmethod
    def _webhooks(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from videojob.api.models import Webhook

        return [Webhook.model_validate(item).to_wire() for item in value]

    @field_validator("namespace_max_running", "namespace_weights")
    @classmethod
    def _per_namespace(cls, value: dict[str, float]) -> dict[str, float]:
        for namespace, number in value.items():
            if not _NAMESPACE_NAME.fullmatch(namespace):
                raise ValueError(f"{namespace!r} is not a namespace name")
            if number < 0 or number > 100_000:
                raise ValueError(f"{namespace}: {number} is out of range (0 to 100000)")
        return value

    @field_validator("namespace_weights")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        for namespace, weight in value.items():
            if weight <= 0:
                raise ValueError(f"{namespace}: a weight must be above 0, got {weight}")
        return value

    @field_validator("notify_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        return [str(ipaddress.ip_network(item, strict=False)) for item in value]

    @field_validator("namespaces", "allowed_hosts", "notify_allowed_networks", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):
            return json.loads(value)  # a JSON list works too
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _election_timings(self) -> Settings:
        # client-go's rule: a leader must stop acting (renew deadline) before a standby may take over (lease
        # duration), and must get more than one renewal attempt within its deadline.
        if (
            not self.leader_election_retry_period
            < self.leader_election_renew_deadline
            < (self.leader_election_lease_duration)
        ):
            raise ValueError(
                "leader election needs VIDEOJOB_LEADER_ELECTION_RETRY_PERIOD < VIDEOJOB_LEADER_ELECTION_RENEW_DEADLINE"
                f" < VIDEOJOB_LEADER_ELECTION_LEASE_DURATION, got {self.leader_election_retry_period} < "
                f"{self.leader_election_renew_deadline} < {self.leader_election_lease_duration}"
            )
        return self

    # --- derived ---------------------------------------------------------------------------------------------

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def namespace_limit(self, namespace: str) -> int | None:
        """Most running VideoJobs of `namespace`, or None when only the global limits hold."""
        limit = self.namespace_max_running.get(namespace, self.max_running_per_namespace or None)
        return None if limit is None else int(limit)

    def namespace_weight(self, namespace: str) -> float:
        return float(self.namespace_weights.get(namespace, 1.0))

    def priority_class(self, priority: int) -> str | None:
        """The PriorityClass of a job: transcoder_pod's priorityClassName when set, else its band's (or none)."""
        pinned = self.transcoder_pod.get("priorityClassName")
        return pinned or self.priority_classes.get(priority_band(priority)) or None

    def resources(self, hardware: Hardware | str) -> dict[str, Any]:
        """Container resources for a job on this hardware (a fresh copy, GPU limit included for nvidia)."""
        if hardware == Hardware.NVIDIA:
            res = json.loads(json.dumps(self.nvidia_resources))
            res.setdefault("limits", {})[self.gpu_resource] = 1
            return res
        return json.loads(json.dumps(self.cpu_resources))

    # --- reading the environment -----------------------------------------------------------------------------

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable name."""
        return {name: (f.json_schema_extra or {})["env"] for name, f in cls.model_fields.items()}  # type: ignore[index,misc]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `environ` (default: the process environment). Raises ValueError naming the
        variable when one is malformed."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in cls.env_names().items():
            raw = environ.get(var)
            if raw is None and name == "s3_endpoint_url":
                raw = environ.get("S3_ENDPOINT_URL")
            if raw is None or raw == "":
                continue
            values[name] = _parse(cls.model_fields[name].annotation, raw, var)
        try:
            return cls(**values)
        except ValidationError as exc:
            env = cls.env_names()
            problems = "; ".join(
                f"{env.get(str(err['loc'][0]), err['loc'][0])}: {err['msg']}"
                if err["loc"]
                else str(err["msg"]).removeprefix("Value error, ")  # a rule across fields names them itself
                for err in exc.errors()
            )
            raise ValueError(f"invalid operator settings: {problems}") from None


NEVER = "never"


def _parse(annotation: Any, raw: str, var: str) -> Any:
    """Strings stay strings (validators split lists); JSON for dicts and lists of objects; bools by word."""
    text = str(annotation)
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"invalid operator settings: {var}: expected true or false, got {raw!r}")
    if text.startswith("int | None") and raw.strip().lower() == NEVER:
        return None  # an empty variable means "the default", so switching a duration off needs a word
    if text.startswith(("dict", "list[dict")):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid operator settings: {var}: not valid JSON ({exc.msg})") from None
    return raw


def describe() -> str:
    """A Markdown table of every setting: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    defaults = Settings()
    for name, field in Settings.model_fields.items():
        var = (field.json_schema_extra or {})["env"]  # type: ignore[index]
        default = getattr(defaults, name)
        shown = json.dumps(default) if isinstance(default, dict | list) else ("" if default is None else str(default))
        rows.append(f"| `{var}` | `{shown}` | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(describe() + "\n")
