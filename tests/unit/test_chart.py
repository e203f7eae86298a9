"""The Helm chart, rendered by the real helm binary: lint, the objects it makes for default and varied values, the
values schema refusing bad values, and the operator image's Dockerfile.

The chart's contract with the operator is checked against the operator's own code: the env vars the chart sets are
exactly `Settings.env_names()` and parse (with `Settings.from_env`) into the values given; its RBAC rules equal
`OPERATOR_CLUSTER_RULES`; the dashboard's and alerts' metric names exist in `Metrics`.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob.controller.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "videojob-operator"
HELM = REPO / ".testenv" / "bin" / "helm"
RELEASE = "vj"
NAMESPACE = "videojob-system"
FULLNAME = "vj-videojob-operator"

pytestmark = pytest.mark.skipif(
    not HELM.exists(), reason=f"{HELM.relative_to(REPO)} is absent: build it with `make tools` (hack/build-tools.sh)"
)


def kube_version() -> str:
    """The Kubernetes version the local environment runs (hack/versions.env): helm built from Go modules reports
    v1.20 unless told, which the chart's kubeVersion refuses."""
    text = (REPO / "hack" / "versions.env").read_text()
    match = re.search(r"^K8S_VERSION=v?(\S+)$", text, re.MULTILINE)
    assert match, "K8S_VERSION missing from hack/versions.env"
    return match.group(1)


def helm(*args: str, values: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="values-") as f:
        json.dump(values or {}, f)  # JSON is YAML
        f.flush()
        return subprocess.run(
            [str(HELM), *args, "--kube-version", kube_version(), "-f", f.name],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )


@functools.lru_cache(maxsize=64)
def _render(values_json: str) -> tuple[dict[str, Any], ...]:
    r = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=json.loads(values_json))
    assert r.returncode == 0, f"helm template failed:\n{r.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(r.stdout) if doc)


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's objects for these values (a fresh copy each call: tests may change them)."""
    return json.loads(json.dumps(_render(json.dumps(values or {}, sort_keys=True))))


def objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in objects(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def settings_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The VIDEOJOB_* settings the Deployment hands the operator (literal values only)."""
    names = set(Settings.env_names().values())
    return {e["name"]: e["value"] for e in container(docs)["env"] if e["name"] in names}


def settings_of(values: dict[str, Any] | None = None) -> Settings:
    return Settings.from_env(settings_env(render(values)))


def rule_set(rules: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], ...]]:
    """Rules in a comparable form (order of rules and of the lists inside them does not matter)."""
    return sorted(
        (
            tuple(sorted(r.get("apiGroups", []))),
            tuple(sorted(r.get("resources", []))),
            tuple(sorted(r["verbs"])),
            tuple(sorted(r.get("resourceNames", []))),
        )
        for r in rules
    )


# ---------------------------------------------------------------------------------------------------------------
# lint


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="default values lint clean"),
        pytest.param(
            {
                "watchNamespaces": ["media", "ads"],
                "metrics": {"serviceMonitor": {"enabled": True}},
                "prometheusRule": {"enabled": True},
                "s3": {"createSecret": True, "credentials": {"accessKeyId": "AK", "secretAccessKey": "SK"}},
            },
            id="every optional object on lints clean",
        ),
    ],
)
def test_helm_lint(values: dict[str, Any]) -> None:
    r = helm("lint", "--strict", str(CHART), values=values)
    assert r.returncode == 0, r.stdout + r.stderr


def test_chart_metadata_follows_helm_v2() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"].startswith(">=")
    assert chart["appVersion"] and chart["version"]


def test_chart_metadata_for_artifact_hubs_and_people() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["icon"].startswith("https://") and chart["icon"].endswith("/docs/images/icon.svg")
    assert (REPO / "docs" / "images" / "icon.svg").exists(), "the icon the chart points at"
    assert chart["sources"] and chart["maintainers"] and len(chart["keywords"]) >= 5
    assert chart["home"].startswith("https://")


# ---------------------------------------------------------------------------------------------------------------
# the CRD


def crd_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return objects(docs, "CustomResourceDefinition")


def test_the_crd_is_a_template_so_upgrades_update_it() -> None:
    """cert-manager's pattern: the CRD is a template (helm upgrade applies it), not in crds/ (never upgraded)."""
    from videojob.api import generate

    assert not (CHART / "crds").exists(), "a crds/ folder would be installed once and never upgraded"
    crds = {crd["metadata"]["name"]: crd for crd in crd_of(render())}
    expected = [generate.crd(), generate.preset_crd(), generate.cluster_preset_crd()]
    assert (
        set(crds)
        == {e["metadata"]["name"] for e in expected}
        == {"videojobs.videojob.dev", "videojobpresets.videojob.dev", "clustervideojobpresets.videojob.dev"}
    )
    for generated in expected:
        crd = crds[generated["metadata"]["name"]]
        assert crd["spec"] == generated["spec"]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}, "crds.keep is on by default"
        assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


@pytest.mark.parametrize(
    ("crds", "installed", "kept"),
    [
        pytest.param({"install": False}, False, False, id="install false leaves the CRD to the platform team"),
        pytest.param({"keep": False}, True, False, id="keep false lets helm uninstall delete it"),
    ],
)
def test_crd_values(crds: dict[str, bool], installed: bool, kept: bool) -> None:
    found = crd_of(render({"crds": crds}))
    assert bool(found) is installed
    if found:
        assert "helm.sh/resource-policy" not in (found[0]["metadata"].get("annotations") or {})


# ---------------------------------------------------------------------------------------------------------------
# the operator's settings


def test_the_chart_sets_every_operator_setting_and_nothing_else() -> None:
    env = [e["name"] for e in container(render())["env"]]
    assert len(env) == len(set(env)), f"duplicate env vars: {env}"
    assert env[0] == "POD_NAME"  # the pod's identity for leader election, from the downward API: not a setting
    assert set(env[1:]) == set(Settings.env_names().values())


def test_default_values_match_the_operators_defaults() -> None:
    """The chart's defaults are the operator's, except those the chart must decide: the transcoder image is the
    chart's appVersion (not :dev), the PriorityClasses and the Lease are the release's own, and leader election is
    on (a process started by hand acts alone, as before; an installed one may get replicas)."""
    chart = settings_of().model_dump()
    operator = Settings().model_dump()
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert chart.pop("transcoder_image") == f"videojob-transcoder:{app_version}"
    assert chart.pop("priority_classes") == {band: f"{FULLNAME}-{band}" for band in ("urgent", "normal", "low")}
    assert chart.pop("leader_election_lease_name") == FULLNAME
    assert chart.pop("leader_election") is True
    for name in ("transcoder_image", "priority_classes", "leader_election_lease_name", "leader_election"):
        operator.pop(name)
    assert chart == operator


GPU_VALUES = {
    "maxRunningGpu": 4,
    "gpu": {
        # Helm merges maps with the defaults: null drops the default label.
        "nodeSelector": {"cloud.example.com/accelerator": "l4", "nvidia.com/gpu.present": None},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}],
        "resourceName": "amd.com/gpu",
    },
    "transcoder": {"resources": {"nvidia": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "16Gi"}}}},
}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {"watchNamespaces": ["media", "ads"]}, {"namespaces": ["media", "ads"]}, id="watched namespaces as a list"
        ),
        pytest.param(
            GPU_VALUES,
            {
                "max_running_gpu": 4,
                "gpu_node_selector": {"cloud.example.com/accelerator": "l4"},
                "gpu_tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}],
                "gpu_resource": "amd.com/gpu",
                # helm merges maps: the default ephemeral-storage request and limit stay
                "nvidia_resources": {
                    "requests": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "4Gi"},
                    "limits": {"memory": "16Gi", "ephemeral-storage": "56Gi"},
                },
            },
            id="GPU placement and resources changed",
        ),
        pytest.param(
            {"maxRunning": 100000, "defaultTtlSeconds": 31536000, "transcoder": {"activeDeadlineSeconds": 1000000}},
            {"max_running": 100000, "default_ttl_seconds": 31536000, "default_active_deadline_seconds": 1000000},
            id="large integers stay integers not 1e+05",
        ),
        pytest.param({"defaultTtlSeconds": None}, {"default_ttl_seconds": None}, id="null TTL keeps VideoJobs"),
        pytest.param(
            {"transcoder": {"stuckTimeoutSeconds": None}},
            {"stuck_timeout_seconds": None},
            id="null stuck timeout waits for the deadline",
        ),
        pytest.param(
            {"transcoder": {"progressInterval": 0.5}, "reconcile": {"debounceSeconds": 0, "resyncSeconds": 12.5}},
            {"progress_interval": 0.5, "debounce_seconds": 0.0, "resync_seconds": 12.5},
            id="fractional seconds",
        ),
        pytest.param(
            {
                "transcoder": {
                    "image": {
                        "repository": "registry.example.com/media/transcoder",
                        "tag": "1.2.3",
                        "pullPolicy": "Always",
                    },
                    "command": ["python", "-m", "videojob.transcoder.cli", "--flag with space"],
                    "env": {"VIDEOJOB_MAX_INPUT_BYTES": "2000000000"},
                    "serviceAccountName": "media-transcoder",
                    "workdirSizeLimit": "20Gi",
                }
            },
            {
                "transcoder_image": "registry.example.com/media/transcoder:1.2.3",
                "transcoder_pull_policy": "Always",
                "transcoder_command": ["python", "-m", "videojob.transcoder.cli", "--flag with space"],
                "transcoder_env": {"VIDEOJOB_MAX_INPUT_BYTES": "2000000000"},
                "transcoder_service_account": "media-transcoder",
                "workdir_size_limit": "20Gi",
            },
            id="transcoder image command env and workdir",
        ),
        pytest.param(
            {
                "s3": {"secretName": "media-s3", "endpointUrl": "http://minio.storage:9000", "region": "eu-west-1"},
                "inputs": {"allowHttp": True, "allowedHosts": ["cdn.example.com", ".example.org"]},
            },
            {
                "s3_secret": "media-s3",
                "s3_endpoint_url": "http://minio.storage:9000",
                "s3_region": "eu-west-1",
                "allow_http": True,
                "allowed_hosts": ["cdn.example.com", ".example.org"],
            },
            id="storage and input policy",
        ),
        pytest.param(
            {
                "priorityClasses": {
                    "create": False,
                    "bands": {
                        "urgent": {"name": "media-high", "value": 1},
                        "normal": {"name": "", "value": 1},
                        "low": {"name": "", "value": 1},
                    },
                }
            },
            {"priority_classes": {"urgent": "media-high", "normal": "", "low": ""}},
            id="existing PriorityClass for one band and none for the others",
        ),
        pytest.param(
            {
                "logging": {"format": "text", "level": "DEBUG"},
                "metrics": {"port": 9090},
                "reconcile": {"apiWorkers": 16, "workerLimit": 50, "watchServerTimeout": 60, "watchClientTimeout": 90},
            },
            {
                "log_format": "text",
                "log_level": "DEBUG",
                "metrics_port": 9090,
                "api_workers": 16,
                "worker_limit": 50,
                "watch_server_timeout": 60,
                "watch_client_timeout": 90,
            },
            id="process tuning",
        ),
        pytest.param(
            {
                "s3": {
                    "auth": "workloadIdentity",
                    "webIdentity": {
                        "roleArn": "arn:minio:iam:::role/abc",
                        "audience": "minio",
                        "stsEndpointUrl": "http://m:9000",
                    },
                },
                "transcoder": {"serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/v"}},
            },
            {
                "s3_auth": "workloadIdentity",
                "s3_role_arn": "arn:minio:iam:::role/abc",
                "s3_token_audience": "minio",
                "s3_sts_endpoint_url": "http://m:9000",
                "transcoder_service_account_annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/v"},
            },
            id="workload identity and the transcoders' ServiceAccount annotations",
        ),
        pytest.param(
            {
                "transcoder": {
                    "pod": {
                        "nodeSelector": {"pool": "video"},
                        "tolerations": [{"key": "video", "operator": "Exists"}],
                        "affinity": {"podAntiAffinity": {}},
                        "imagePullSecrets": ["regcred", {"name": "other"}],
                        "labels": {"team": "media"},
                        "annotations": {"sidecar.istio.io/inject": "false"},
                        "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "whisper"}}],
                        "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                        "priorityClassName": "batch-low",
                    }
                }
            },
            {
                "transcoder_pod": {
                    "nodeSelector": {"pool": "video"},
                    "tolerations": [{"key": "video", "operator": "Exists"}],
                    "affinity": {"podAntiAffinity": {}},
                    "imagePullSecrets": [{"name": "regcred"}, {"name": "other"}],
                    "labels": {"team": "media"},
                    "annotations": {"sidecar.istio.io/inject": "false"},
                    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "whisper"}}],
                    "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                    "priorityClassName": "batch-low",
                }
            },
            id="the transcoder pod block",
        ),
        pytest.param(
            {
                "transcoder": {
                    "podSecurityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None},
                    "securityContext": {"runAsUser": None, "runAsGroup": None},
                }
            },
            {
                "transcoder_pod_security_context": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "transcoder_security_context": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
            },
            id="null drops the fixed ids for a platform that assigns its own (OpenShift restricted-v2)",
        ),
        pytest.param(
            {
                "transcoder": {
                    "image": {
                        "repository": "registry.example.com/transcoder",
                        "tag": "1.2.3",
                        "digest": "sha256:" + "a" * 64,
                        "pullPolicy": "IfNotPresent",
                    }
                }
            },
            {"transcoder_image": "registry.example.com/transcoder@sha256:" + "a" * 64},
            id="a digest pins the transcoder image",
        ),
    ],
)
def test_values_reach_the_operator_as_settings(values: dict[str, Any], expected: dict[str, Any]) -> None:
    settings = settings_of(values)
    assert {name: getattr(settings, name) for name in expected} == expected


def test_priority_classes_off_means_no_class_on_jobs() -> None:
    docs = render({"priorityClasses": {"create": False}})
    assert objects(docs, "PriorityClass") == []
    settings = Settings.from_env(settings_env(docs))
    assert [settings.priority_class(p) for p in (1, 5, 10)] == [None, None, None]


def test_priority_classes_are_the_ones_jobs_get_ordered_by_band() -> None:
    docs = render()
    classes = {pc["metadata"]["name"]: pc for pc in objects(docs, "PriorityClass")}
    settings = Settings.from_env(settings_env(docs))
    names = [settings.priority_class(p) for p in (1, 5, 10)]
    assert set(names) == set(classes), "the operator must name exactly the classes the chart creates"
    values = [classes[n]["value"] for n in names]
    assert values == sorted(values, reverse=True) and len(set(values)) == 3, values
    assert all(pc["globalDefault"] is False and pc["preemptionPolicy"] == "Never" for pc in classes.values())


def test_extra_env_comes_after_the_settings() -> None:
    extra = [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "ops-s3", "key": "id"}}}]
    env = container(render({"extraEnv": extra}))["env"]
    assert env[-1] == extra[0]
    assert set(settings_env(render({"extraEnv": extra}))) == set(Settings.env_names().values())


# ---------------------------------------------------------------------------------------------------------------
# the Deployment


def test_deployment_is_one_restricted_replica_recreated_on_upgrade() -> None:
    docs = render()
    assert objects(docs, "PodDisruptionBudget") == []  # one replica: a budget would block every node drain
    deploy = one(docs, "Deployment")
    assert deploy["metadata"]["namespace"] == NAMESPACE
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "command" not in c and "args" not in c, "the image's ENTRYPOINT is the operator"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()


def test_replicas_roll_with_a_disruption_budget_and_spread_over_nodes() -> None:
    docs = render({"replicas": 2})
    deploy = one(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deploy["spec"]["template"]["spec"]
    spread = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": deploy["spec"]["selector"]}
    assert pod["containers"][0]["env"][0] == {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    terms: list[Any] = []
    mine = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
    assert one(render({"replicas": 2, "affinity": mine}), "Deployment")["spec"]["template"]["spec"]["affinity"] == mine


def test_replicas_without_leader_election_are_refused() -> None:
    r = helm("template", "vj", str(CHART), values={"replicas": 2, "leaderElection": {"enabled": False}})
    assert r.returncode != 0 and "replicas > 1 needs leaderElection.enabled" in r.stderr, r.stderr


def test_leader_election_timings_reach_the_operator() -> None:
    settings = settings_of(
        {"leaderElection": {"leaseDurationSeconds": 15, "renewDeadlineSeconds": 10, "retryPeriodSeconds": 2}}
    )
    assert (
        settings.leader_election_lease_duration,
        settings.leader_election_renew_deadline,
        settings.leader_election_retry_period,
    ) == (15, 10, 2)


@pytest.mark.parametrize("port", [8080, 9443], ids=["default port", "changed port"])
def test_probes_and_service_use_the_metrics_port(port: int) -> None:
    docs = render({"metrics": {"port": port}})
    c = container(docs)
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"]["port"] == "metrics"
    assert settings_env(docs)["VIDEOJOB_METRICS_PORT"] == str(port)
    svc = one(docs, "Service")
    assert svc["spec"]["ports"][0]["port"] == port and svc["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_image_tag_defaults_to_app_version_and_scheduling_values_pass_through() -> None:
    values = {
        "image": {"repository": "example.com/videojob-operator", "tag": "", "pullPolicy": "Always"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "priorityClassName": "system-cluster-critical",
    }
    deploy = one(render(values), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert pod["containers"][0]["image"] == f"example.com/videojob-operator:{app_version}"
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"


@pytest.mark.parametrize(
    ("values", "image"),
    [
        pytest.param({}, "videojob-operator:0.1.0", id="the tag defaults to the appVersion"),
        pytest.param(
            {
                "image": {
                    "repository": "r.example.com/op",
                    "tag": "9",
                    "digest": "sha256:" + "b" * 64,
                    "pullPolicy": "IfNotPresent",
                }
            },
            "r.example.com/op@sha256:" + "b" * 64,
            id="a digest pins the operator image",
        ),
    ],
)
def test_operator_image(values: dict[str, Any], image: str) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert container(render(values))["image"] == image.replace("0.1.0", app_version)


def test_operator_security_contexts_can_drop_the_fixed_uid() -> None:
    """OpenShift's restricted-v2 assigns a uid of the namespace's range: a fixed one is refused there."""
    docs = render(
        {"podSecurityContext": {"runAsUser": None, "runAsGroup": None}, "securityContext": {"runAsUser": None}}
    )
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    sc = pod["containers"][0]["securityContext"]
    assert "runAsUser" not in sc and sc["runAsNonRoot"] is True and sc["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        pytest.param({"volumes": [{"name": "work", "emptyDir": {}}]}, "operator's own", id="a reserved volume name"),
        pytest.param(
            {"volumes": [{"name": "m", "emptyDir": {}}], "volumeMounts": [{"name": "x", "mountPath": "/m"}]},
            "must name one of volumes",
            id="a mount of no volume",
        ),
        pytest.param(
            {"volumes": [{"name": "m", "emptyDir": {}}], "volumeMounts": [{"name": "m", "mountPath": "/"}]},
            "operator's own",
            id="a mount over the root",
        ),
        pytest.param(
            {"volumes": [{"name": "m", "emptyDir": {}}], "volumeMounts": [{"name": "m", "mountPath": "/work/in"}]},
            "operator's own",
            id="a mount inside the workdir",
        ),
    ],
)
def test_transcoder_pod_block_clashes_stop_the_operator_at_start(pod: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_of({"transcoder": {"pod": pod}})


# ---------------------------------------------------------------------------------------------------------------
# RBAC

try:
    from videojob.controller import rbac as operator_rbac
except ImportError:  # pragma: no cover - the operator's module not written yet
    operator_rbac = None  # type: ignore[assignment]

needs_rules = pytest.mark.skipif(operator_rbac is None, reason="videojob.controller.rbac not there yet")
CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "clustervideojobpresets"}


def cluster_roles(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return one(docs, "ClusterRole", FULLNAME), one(docs, "ClusterRole", f"{FULLNAME}-cluster")


@needs_rules
@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="the chart grants exactly the operator's rules"),
        pytest.param({"watchNamespaces": ["media"]}, id="the same rules when watching namespaces"),
        pytest.param(
            {"transcoder": {"serviceAccountName": "vj-pods"}}, id="names the transcoders' ServiceAccount it may change"
        ),
    ],
)
def test_rbac_rules_equal_the_operators(values: dict[str, Any]) -> None:
    namespaced, cluster = cluster_roles(render(values))
    expected = operator_rbac.operator_cluster_rules(settings_of(values).transcoder_service_account)
    assert rule_set(namespaced["rules"] + cluster["rules"]) == rule_set(expected)
    assert all(set(r["resources"]) <= CLUSTER_SCOPED for r in cluster["rules"])
    assert not any(set(r["resources"]) & CLUSTER_SCOPED for r in namespaced["rules"])


@pytest.mark.parametrize(
    "values",
    [pytest.param({}, id="cluster-wide"), pytest.param({"watchNamespaces": ["media"]}, id="watching namespaces")],
)
def test_rbac_grants_no_secrets_and_no_events_k8s_io(values: dict[str, Any]) -> None:
    """The operator never reads Secrets (transcoders get credentials by secretKeyRef) and posts core/v1 Events
    only (so does Kopf)."""
    rules = [rule for role in cluster_roles(render(values)) for rule in role["rules"]]
    assert not [r for r in rules if "secrets" in r["resources"] or "*" in r["resources"]], rules
    assert not [r for r in rules if "events.k8s.io" in r["apiGroups"] or "*" in r["apiGroups"]], rules


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def test_aggregated_roles_give_view_edit_and_admin_videojobs_and_presets_and_nothing_else() -> None:
    docs = render()
    viewer, editor = one(docs, "ClusterRole", f"{FULLNAME}-viewer"), one(docs, "ClusterRole", f"{FULLNAME}-editor")
    aggregates = {
        name: {
            k.removeprefix(AGGREGATE)
            for k, v in role["metadata"]["labels"].items()
            if k.startswith(AGGREGATE) and v == "true"
        }
        for name, role in (("viewer", viewer), ("editor", editor))
    }
    assert aggregates == {"viewer": {"view"}, "editor": {"edit", "admin"}}
    assert rule_set(viewer["rules"]) == rule_set(
        [
            {
                "apiGroups": ["videojob.dev"],
                "resources": ["videojobs", "videojobpresets", "clustervideojobpresets"],
                "verbs": ["get", "list", "watch"],
            }
        ]
    )
    (rule,) = editor["rules"]
    assert rule["resources"] == ["videojobs", "videojobpresets"], (
        "no status (the operator's), no cluster presets (the platform team's), no other resource"
    )
    assert {"create", "patch", "delete", "get"} <= set(rule["verbs"])
    assert {r["metadata"]["name"] for r in objects(render({"rbac": {"aggregateRoles": False}}), "ClusterRole")} == {
        FULLNAME,
        f"{FULLNAME}-cluster",
        f"{FULLNAME}-clusterpreset-reader",
    }


@pytest.mark.parametrize(
    ("values", "readable"),
    [
        pytest.param({}, True, id="every authenticated user reads cluster presets by default"),
        pytest.param({"rbac": {"clusterPresetsReadableByAllUsers": False}}, False, id="unless the platform says no"),
    ],
)
def test_cluster_presets_are_read_only_for_users(values: dict[str, Any], readable: bool) -> None:
    docs = render(values)
    name = f"{FULLNAME}-clusterpreset-reader"
    bindings = [b for b in objects(docs, "ClusterRoleBinding") if b["roleRef"]["name"] == name]
    if not readable:
        assert bindings == []
        return
    (binding,) = bindings
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
    ]
    assert one(docs, "ClusterRole", name)["rules"] == [
        {"apiGroups": ["videojob.dev"], "resources": ["clustervideojobpresets"], "verbs": ["get", "list", "watch"]}
    ]


def test_the_read_secrets_option_is_gone() -> None:
    r = helm("template", "vj", str(CHART), values={"rbac": {"readSecrets": True}})
    assert r.returncode != 0 and "readSecrets" in r.stderr, r.stdout[-500:] + r.stderr


def subject() -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}


def test_clusterwide_by_default_binds_both_roles_to_the_operators_service_account() -> None:
    docs = render()
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"] == {**sa["metadata"], "name": FULLNAME, "namespace": NAMESPACE}
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == FULLNAME
    bindings = {
        b["roleRef"]["name"]: b
        for b in objects(docs, "ClusterRoleBinding")
        if b["roleRef"]["name"] != f"{FULLNAME}-clusterpreset-reader"
    }
    assert set(bindings) == {FULLNAME, f"{FULLNAME}-cluster"}
    assert all(b["subjects"] == [subject()] for b in bindings.values())
    assert [b["roleRef"]["name"] for b in objects(docs, "RoleBinding")] == [f"{FULLNAME}-leader-election"]


def test_watch_namespaces_binds_the_namespaced_rules_in_those_namespaces_only() -> None:
    docs = render({"watchNamespaces": ["media", "ads"]})
    crbs = objects(docs, "ClusterRoleBinding")
    assert sorted(b["roleRef"]["name"] for b in crbs) == [f"{FULLNAME}-cluster", f"{FULLNAME}-clusterpreset-reader"]
    rbs = [b for b in objects(docs, "RoleBinding") if b["roleRef"]["kind"] == "ClusterRole"]
    assert sorted(b["metadata"]["namespace"] for b in rbs) == ["ads", "media"]
    for b in rbs:
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
        assert b["subjects"] == [subject()]


def test_leader_election_may_create_leases_and_get_and_update_only_its_own_in_the_release_namespace() -> None:
    docs = render({"watchNamespaces": ["media"]})
    role = one(docs, "Role", f"{FULLNAME}-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == operator_rbac.leader_election_rules(FULLNAME)
    assert settings_of({"watchNamespaces": ["media"]}).leader_election_lease_name == FULLNAME
    binding = one(docs, "RoleBinding", f"{FULLNAME}-leader-election")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{FULLNAME}-leader-election",
    }
    assert binding["subjects"] == [subject()]
    for rule in role["rules"]:  # create cannot be limited by name; every other verb is
        assert rule["verbs"] == ["create"] or rule["resourceNames"] == [FULLNAME]
    off = render({"leaderElection": {"enabled": False}})
    assert [r["metadata"]["name"] for r in objects(off, "Role")] == []
    assert settings_of({"leaderElection": {"enabled": False}}).leader_election is False


def test_rbac_and_service_account_can_be_left_to_the_platform_team() -> None:
    docs = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops-videojob"}})
    assert {d["kind"] for d in docs} & {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "RoleBinding"} == set()
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops-videojob"


# ---------------------------------------------------------------------------------------------------------------
# S3 credentials


def test_no_secret_by_default() -> None:
    assert objects(render(), "Secret") == []


@pytest.mark.parametrize(
    ("watch", "namespaces"),
    [
        pytest.param([], [NAMESPACE], id="in the release namespace"),
        pytest.param(["media", "ads"], ["media", "ads"], id="in each watched namespace"),
    ],
)
def test_created_s3_secret_holds_the_credentials_and_no_configmap_does(watch: list[str], namespaces: list[str]) -> None:
    docs = render(
        {
            "watchNamespaces": watch,
            "s3": {
                "createSecret": True,
                "secretName": "media-s3",
                "credentials": {"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalr-SECRET"},
            },
        }
    )
    secrets = objects(docs, "Secret")
    assert [s["metadata"]["namespace"] for s in secrets] == namespaces
    for s in secrets:
        assert s["metadata"]["name"] == "media-s3"
        decoded = {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        assert decoded == {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalr-SECRET"}
    leaked = [d["metadata"]["name"] for d in docs if d["kind"] != "Secret" and "wJalr-SECRET" in json.dumps(d)]
    assert leaked == []


# ---------------------------------------------------------------------------------------------------------------
# monitoring

from prometheus_client.metrics import MetricWrapperBase  # noqa: E402

from videojob.controller import metrics as operator_metrics  # noqa: E402

METRIC = re.compile(r"\b(videojob_[a-z0-9_]+)\b\s*(\{[^}]*\})?")
LABEL_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
# Labels Prometheus adds to every series of a scrape target (a ServiceMonitor's defaults).
LABEL_VALUES = re.compile(r"label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)")
TARGET_LABELS = {"job", "namespace", "instance", "pod", "service", "container", "endpoint"}
RUNBOOK = REPO / "docs" / "operations.md"


def exported_series() -> dict[str, set[str]]:
    """Every series name the operator exposes (counters as _total, histograms as _bucket/_sum/_count) -> its
    labels (`le` on buckets), read from the metric objects of `Metrics` (labelled ones have no sample yet)."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    out: dict[str, set[str]] = {}
    for metric in vars(operator_metrics.Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            assert metric._type is not None, metric  # set by every concrete metric class
            for suffix in suffixes[metric._type]:
                out[metric._name + suffix] = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
    return out


def test_exported_series_are_what_the_operator_renders() -> None:
    """The table above is read from private attributes: check it against a real exposition."""
    rendered = {
        line.split("{")[0].split(" ")[0]
        for line in operator_metrics.Metrics().render().decode().splitlines()
        if line and not line.startswith("#") and not line.split("{")[0].split(" ")[0].endswith("_created")
    }
    assert rendered <= set(exported_series()), rendered - set(exported_series())


def dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(docs, "ConfigMap", f"{FULLNAME}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    return json.loads(cm["data"]["videojob-operator.json"])


def test_dashboard_has_the_panels_the_platform_team_needs() -> None:
    dash = dashboard(render())
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for needed in (
        "phase",
        "queue",
        "admission wait",
        "run duration",
        "bytes",
        "failures by reason",
        "success rate",
        "retries",
        "encode speed",
        "version",
    ):
        assert needed in titles, f"no panel about {needed}: {titles}"
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in dash["panels"])
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_dashboard_shows_one_operator_chosen_by_namespace_and_job() -> None:
    """Two installs scraped by one Prometheus are never summed: every query selects the chosen target."""
    dash = dashboard(render())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "job", "videojob_namespace"} <= set(variables)
    assert 'namespace="$namespace"' in variables["job"]["query"]["query"], "job choices follow the namespace"
    for p in dash["panels"]:
        for t in p["targets"]:
            for _name, selector in METRIC.findall(t["expr"]):
                assert 'namespace="$namespace"' in selector and 'job="$job"' in selector, (p["title"], t["expr"])


def expressions(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard query, dashboard variable and alert."""
    dash = dashboard(docs)
    exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    exprs += [
        (f"variable {v['name']}", v["query"]["query"]) for v in dash["templating"]["list"] if v["type"] == "query"
    ]
    rules = one(docs, "PrometheusRule")["spec"]["groups"][0]["rules"]
    return exprs + [(r["alert"], r["expr"]) for r in rules]


def test_dashboard_and_alerts_use_only_series_and_labels_the_operator_exports() -> None:
    """Every videojob_ series a query names is exported, every label it matches on is one of that series' labels
    (or one Prometheus gives the target), and every label it groups by is one of the labels of a series it uses."""
    exported = exported_series()
    used: set[str] = set()
    for where, expr in expressions(
        render({"prometheusRule": {"enabled": True}, "metrics": {"serviceMonitor": {"enabled": True}}})
    ):
        names = []
        series = LABEL_VALUES.sub(r"\1", GROUPING.sub(" ", expr))  # label names are no series
        for name, selector in METRIC.findall(series):
            assert name in exported, f"{where}: {name} is not exported by the operator"
            names.append(name)
            unknown = set(LABEL_MATCHER.findall(selector)) - exported[name] - TARGET_LABELS
            assert not unknown, f"{where}: {name} has no label {unknown}"
        for group in GROUPING.findall(expr):
            labels = {g.strip() for g in group.split(",") if g.strip()}
            known = set().union(*(exported[n] for n in names)) | TARGET_LABELS
            assert labels <= known, f"{where}: groups by {labels - known}, which no series it uses has"
        used.update(names)
    assert used, "no videojob_ metric found in the expressions"
    families = {n.removesuffix(s) for n in used for s in ("_bucket", "_sum", "_count", "_total") if n.endswith(s)}
    assert {"videojob_finished", "videojob_queue_depth", "videojob_build_info", "videojob_encode_speed_ratio"} <= (
        families | used
    ), "the dashboard shows outcomes, the queue, the version and the encode speed"


def test_every_alert_links_its_runbook_in_the_operations_guide() -> None:
    rules = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")["spec"]["groups"][0]["rules"]
    headings = re.findall(r"^### (\S+)$", RUNBOOK.read_text(), re.MULTILINE)
    base = yaml.safe_load((CHART / "values.yaml").read_text())["prometheusRule"]["runbookBaseUrl"]
    assert base.endswith("/docs/operations.md")
    for rule in rules:
        assert rule["annotations"]["runbook_url"] == f"{base}#{rule['alert'].lower()}", rule["alert"]
        assert rule["alert"] in headings, f"docs/operations.md has no section for {rule['alert']}"
    mine = render({"prometheusRule": {"enabled": True, "runbookBaseUrl": "https://wiki.example.com/videojob"}})
    assert one(mine, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["annotations"]["runbook_url"].startswith(
        "https://wiki.example.com/videojob#"
    )


def test_service_monitor_selects_the_metrics_service() -> None:
    docs = render({"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}}}})
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [e["port"] for e in sm["spec"]["endpoints"]] == [p["name"] for p in svc["spec"]["ports"]]


def test_monitoring_crd_objects_are_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert kinds.isdisjoint({"ServiceMonitor", "PrometheusRule"})


def test_alerts_are_scoped_to_this_release_and_template_their_values() -> None:
    rules = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert len(rules) >= 4
    for rule in rules:
        assert f'job="{FULLNAME}-metrics"' in rule["expr"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
    assert any("{{ $value" in r["annotations"]["description"] for r in rules), "Prometheus templates must survive"


# ---------------------------------------------------------------------------------------------------------------
# the values schema


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"maxRunning": 0}, "/maxRunning", id="maxRunning 0"),
        pytest.param({"maxRunning": "ten"}, "/maxRunning", id="maxRunning not a number"),
        pytest.param({"maxRunningGpu": -1}, "/maxRunningGpu", id="negative GPU limit"),
        pytest.param({"replica": 2}, "additional properties 'replica'", id="unknown top-level key"),
        pytest.param(
            {"leaderElection": {"retryPeriodSeconds": 0}}, "/leaderElection/retryPeriodSeconds", id="retry period 0"
        ),
        pytest.param({"transcoder": {"imag": {}}}, "additional properties 'imag'", id="misspelt nested key"),
        pytest.param({"transcoder": {"progressInterval": 0}}, "/transcoder/progressInterval", id="progress 0"),
        pytest.param(
            {"image": {"repository": "x", "tag": "1", "pullPolicy": "Sometimes"}},
            "/image/pullPolicy",
            id="unknown pull policy",
        ),
        pytest.param({"watchNamespaces": ["Media_NS"]}, "/watchNamespaces/0", id="namespace not a DNS label"),
        pytest.param({"metrics": {"port": 80}}, "/metrics/port", id="privileged metrics port"),
        pytest.param({"logging": {"level": "TRACE"}}, "/logging/level", id="unknown log level"),
        pytest.param({"s3": {"createSecret": True}}, "/s3/credentials", id="secret without credentials"),
        pytest.param(
            {"priorityClasses": {"bands": {"urgent": {"name": "", "value": 2000000000}}}},
            "/priorityClasses/bands/urgent/value",
            id="class value in the system range",
        ),
        pytest.param({"gpu": {"nodeSelector": {"gpu": True}}}, "/gpu/nodeSelector/gpu", id="label value not a string"),
        pytest.param({"defaultTtlSeconds": -1}, "/defaultTtlSeconds", id="negative TTL"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    r = helm("template", RELEASE, str(CHART), values=values)
    assert r.returncode != 0, f"accepted {values}"
    assert "schema" in r.stderr and message in r.stderr, r.stderr


def test_schema_bounds_match_the_operators_settings() -> None:
    """Where a value maps onto a bounded setting, the schema holds the same bounds (or stricter, and says why)."""
    schema = json.loads((CHART / "values.schema.json").read_text())

    def at(path: str) -> dict[str, Any]:
        node = schema
        for key in path.split("."):
            node = node["properties"][key]
        return node

    def bounds(field: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in Settings.model_fields[field].metadata:
            for attr, key in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum")):
                if getattr(m, attr, None) is not None:
                    out[key] = getattr(m, attr)
        return out

    table = {
        "maxRunning": "max_running",
        "maxRunningGpu": "max_running_gpu",
        "transcoder.activeDeadlineSeconds": "default_active_deadline_seconds",
        "transcoder.progressInterval": "progress_interval",
        "defaultTtlSeconds": "default_ttl_seconds",
        "reconcile.resyncSeconds": "resync_seconds",
        "reconcile.relistSeconds": "relist_seconds",
        "reconcile.debounceSeconds": "debounce_seconds",
        "reconcile.apiWorkers": "api_workers",
        "reconcile.workerLimit": "worker_limit",
        "reconcile.watchServerTimeout": "watch_server_timeout",
        "reconcile.watchClientTimeout": "watch_client_timeout",
    }
    for path, field in table.items():
        node = at(path)
        assert {k: node[k] for k in ("minimum", "maximum", "exclusiveMinimum") if k in node} == bounds(field), path
    # The one deliberate difference: the chart needs the port (probes), and a non-root pod cannot bind below 1024.
    assert at("metrics.port")["minimum"] == 1024 and bounds("metrics_port")["maximum"] == at("metrics.port")["maximum"]


# ---------------------------------------------------------------------------------------------------------------
# Argo CD and the operator image


def test_argocd_application_installs_this_chart_with_valid_values() -> None:
    app = yaml.safe_load((REPO / "manifests" / "argocd" / "application.yaml").read_text())
    source = app["spec"]["source"]
    assert (REPO / source["path"]) == CHART
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    assert one(render(source["helm"]["valuesObject"]), "Deployment")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines]


def test_operator_dockerfile_runs_the_operator_as_non_root_in_exec_form() -> None:
    steps = dockerfile_instructions(REPO / "Dockerfile")
    final = steps[max(i for i, (ins, _) in enumerate(steps) if ins == "FROM") :]  # the last stage is the image
    assert final[0][1].startswith("${BASE_IMAGE}"), "one Debian base for both images (make images builds it here)"
    users = [args for ins, args in final if ins == "USER"]
    assert users and users[-1].split(":")[0] == "65532", "the image must end as uid 65532, the chart's runAsUser"
    entrypoints = [args for ins, args in final if ins == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["videojob-operator"], "exec form: signals reach Python"
    installs = [args for ins, args in steps if ins == "RUN" and "pip install" in args]
    assert installs and not any(re.search(r"\S\[", a) for a in installs), "the operator image installs no extras"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".testenv"} <= set(ignored)


# ---------------------------------------------------------------------------------------------------------------
# NetworkPolicy


def _blocks(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer["ipBlock"] for peer in rule.get("to", []) if "ipBlock" in peer]


def test_network_policies_are_off_by_default() -> None:
    assert objects(render(), "NetworkPolicy") == []


def test_network_policies_keep_everything_from_the_metadata_addresses() -> None:
    docs = render({"networkPolicy": {"enabled": True}, "watchNamespaces": ["media", "ads"]})
    policies = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in objects(docs, "NetworkPolicy")}
    assert set(policies) == {
        (NAMESPACE, f"{FULLNAME}-operator"),
        ("media", f"{FULLNAME}-transcoders"),
        ("ads", f"{FULLNAME}-transcoders"),
    }
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for rule in policy["spec"]["egress"]:
            for block in _blocks(rule):
                if block["cidr"] == "0.0.0.0/0":
                    assert {"169.254.0.0/16", "100.100.100.200/32"} <= set(block["except"]), block
                if block["cidr"] == "::/0":
                    assert "fd00:ec2::254/128" in block["except"], block
    transcoders = policies[("media", f"{FULLNAME}-transcoders")]["spec"]
    assert transcoders["ingress"] == [], "nothing reaches a transcoder"
    assert transcoders["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/managed-by": "videojob-operator",
        "app.kubernetes.io/component": "transcoder",
    }
    ports = {port["port"] for rule in transcoders["egress"] for port in rule["ports"]}
    assert 6443 not in ports, "transcoders hold no token: no way to the API server"
    inputs = transcoders["egress"][-1]
    assert "10.0.0.0/8" in _blocks(inputs)[0]["except"], "inputs from public addresses only"
    operator = policies[(NAMESPACE, f"{FULLNAME}-operator")]["spec"]
    assert operator["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}], "its metrics port only"


def test_network_policies_take_precise_addresses() -> None:
    docs = render(
        {
            "networkPolicy": {
                "enabled": True,
                "apiServer": {"cidrs": ["10.0.0.1/32"], "ports": [6443]},
                "s3": {"cidrs": ["10.96.5.0/24"], "ports": [9000]},
                "transcoderNamespaces": ["media"],
                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}],
            }
        }
    )
    operator = one(docs, "NetworkPolicy", f"{FULLNAME}-operator")["spec"]
    assert _blocks(operator["egress"][1]) == [{"cidr": "10.0.0.1/32"}]
    assert operator["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]
    transcoders = one(docs, "NetworkPolicy", f"{FULLNAME}-transcoders")
    assert transcoders["metadata"]["namespace"] == "media"
    assert _blocks(transcoders["spec"]["egress"][1]) == [{"cidr": "10.96.5.0/24"}]
