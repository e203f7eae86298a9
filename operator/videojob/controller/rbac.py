"""Least-privilege RBAC: the operator's own ClusterRole rules, and what it keeps in each namespace for transcoders.

`operator_cluster_rules` is the single source of truth for the chart's ClusterRole (a test compares them).
Transcoder pods get no rights at all (see jobs.py: they report through their own log and termination message).
Each rule says why it exists. The operator is cluster-scoped even when it watches a few namespaces, because the
namespaces are configuration; the chart may bind the same rules with RoleBindings per namespace instead
(then only the CRD and namespace reads need a ClusterRoleBinding).
"""

from __future__ import annotations

from typing import Any

from videojob.api.models import CLUSTER_PRESET_PLURAL, GROUP, PLURAL, PRESET_PLURAL
from videojob.controller.jobs import LABEL_MANAGED_BY, MANAGED_BY
from videojob.controller.settings import Settings


def operator_cluster_rules(transcoder_service_account: str) -> list[dict[str, Any]]:
    """The operator's rules; `transcoder_service_account` is the one name it may change ServiceAccounts (and, to
    remove those of earlier versions, Roles and RoleBindings) by. Where a verb acts on one named object, the rule
    names it (resourceNames); create, list and watch cannot be limited by name, and the names of Jobs and VideoJobs
    are the users'."""
    name = [transcoder_service_account]
    return [
        # The VideoJobs: watch them, delete finished ones after their TTL, keep a finalizer on those whose
        # artifacts are to be deleted.
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch", "delete"]},
        # Their status (phase, conditions, progress, queue position): the operator is its only writer.
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
        # Jobs carry ownerReferences with blockOwnerDeletion: true; clusters that enable the
        # OwnerReferencesPermissionEnforcement admission plugin require update on the owner's finalizers.
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/finalizers"], "verbs": ["update"]},
        # The presets VideoJobs name in spec.output.preset (presets.py): watched into the index, read only; the
        # cluster-scoped kind needs the cluster-wide binding (the chart puts it in <fullname>-cluster).
        {"apiGroups": [GROUP], "resources": [PRESET_PLURAL], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [GROUP], "resources": [CLUSTER_PRESET_PLURAL], "verbs": ["get", "list", "watch"]},
        # The transcoder Jobs: created, watched, deleted on cancel.
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
        # Their pods: node, start time, exit code and termination message (the TranscodeResult). Read only.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        # The tail of a running transcoder's log: its progress lines (runtime.progress_line). Read only.
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        # Kubernetes Events on every transition (core/v1, as `kubectl describe` shows them; Kopf posts there too).
        # Neither uses the events.k8s.io API, so no rule for it.
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        # The transcoders' ServiceAccount in each namespace (build_transcoder_rbac): created, then kept as built.
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "patch"], "resourceNames": name},
        # Earlier versions bound that ServiceAccount to a Role that could patch every VideoJob's status; the
        # operator removes them (those it labelled) and can touch no other Role or RoleBinding.
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "rolebindings"],
            "verbs": ["get", "delete"],
            "resourceNames": name,
        },
        # Kopf: discovers the VideoJob resource (and notices a re-installed CRD) and, when given several
        # namespaces, checks which of them exist. Read only.
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    ]


def leader_election_rules(lease_name: str) -> list[dict[str, Any]]:
    """The operator's rules in its own namespace for leader election (leader.py): create the Lease (create cannot
    be limited by name: the name of an object that does not exist yet is not checked), then read and renew that one
    Lease only. No list or watch: replicas poll it by name. No delete: it stays, naming the last holder."""
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "update"],
            "resourceNames": [lease_name],
        },
    ]


# The rules with the default transcoder ServiceAccount name.
OPERATOR_CLUSTER_RULES: list[dict[str, Any]] = operator_cluster_rules(Settings().transcoder_service_account)


def _labels() -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, "app.kubernetes.io/component": "transcoder"}


def build_transcoder_rbac(namespace: str, settings: Settings) -> list[dict[str, Any]]:
    """The ServiceAccount transcoder pods run as in one namespace: no Role, no token mounted. It exists so that a
    platform team can give it an identity for S3 (IRSA, workload identity annotations), not for the API."""
    meta: dict[str, Any] = {"name": settings.transcoder_service_account, "namespace": namespace, "labels": _labels()}
    if settings.transcoder_service_account_annotations:  # e.g. eks.amazonaws.com/role-arn (s3_auth workloadIdentity)
        meta["annotations"] = dict(settings.transcoder_service_account_annotations)
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}]


def legacy_transcoder_rbac(namespace: str, settings: Settings) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of what earlier versions made beside the ServiceAccount, to be removed."""
    name = settings.transcoder_service_account
    return [("rbac.authorization.k8s.io/v1", "RoleBinding", name), ("rbac.authorization.k8s.io/v1", "Role", name)]
