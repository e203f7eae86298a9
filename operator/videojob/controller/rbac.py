"""Least-privilege RBAC: the operator's own ClusterRole rules, and what it keeps in each namespace for transcoders.

`OPERATOR_CLUSTER_RULES` is the single source of truth for the chart's ClusterRole (a test compares them).
Each rule says why it exists. The operator is cluster-scoped even when it watches a few namespaces, because the
namespaces are configuration; the chart may bind the same rules with RoleBindings per namespace instead
(then only the CRD and namespace reads need a ClusterRoleBinding).
"""

from __future__ import annotations

from typing import Any

from videojob.api.models import GROUP, PLURAL
from videojob.controller.jobs import LABEL_MANAGED_BY, MANAGED_BY
from videojob.controller.settings import Settings

# Verbs the transcoder's Role grants: patch of the status subresource only (progress reports).
TRANSCODER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]},
]

OPERATOR_CLUSTER_RULES: list[dict[str, Any]] = [
    # The VideoJobs: watch them, delete finished ones after their TTL, keep a finalizer on those whose
    # artifacts are to be deleted.
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch", "delete"]},
    # Their status (phase, conditions, queue position). The operator must hold `patch` on videojobs/status
    # itself to grant it to transcoders in a Role (RBAC's escalation check).
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
    # Jobs carry ownerReferences with blockOwnerDeletion: true; clusters that enable the
    # OwnerReferencesPermissionEnforcement admission plugin require update on the owner's finalizers.
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/finalizers"], "verbs": ["update"]},
    # The transcoder Jobs: created, watched, deleted on cancel.
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
    # Their pods: node, start time, exit code and termination message (the TranscodeResult). Read only.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    # Kubernetes Events on every transition (core/v1, as `kubectl describe` shows them; Kopf posts there too).
    # Neither uses the events.k8s.io API, so no rule for it.
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    # Per-namespace ServiceAccount, Role and RoleBinding for transcoder pods (build_transcoder_rbac).
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
     "verbs": ["get", "create", "patch"]},
    # Kopf: discovers the VideoJob resource (and notices a re-installed CRD) and, when given several
    # namespaces, checks which of them exist. Read only.
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
]


def _labels() -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, "app.kubernetes.io/component": "transcoder"}


def build_transcoder_rbac(namespace: str, settings: Settings) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for transcoder pods in one namespace (all named after the
    ServiceAccount setting)."""
    name = settings.transcoder_service_account
    meta = {"name": name, "namespace": namespace, "labels": _labels()}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": dict(meta),
            "rules": [dict(rule) for rule in TRANSCODER_RULES],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": dict(meta),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]
