"""The operator's thin layer of Kubernetes API calls (synchronous; the reconcile loop runs them in threads).

Objects travel as plain dicts (the JSON the API server speaks): the generated client's model classes are slow to
build for hundreds of objects and would be converted back to dicts anyway. Every call is idempotent, so a pass
that is interrupted, or repeated after a restart, does no harm:
- creating a Job that already exists (409) returns the existing one if it belongs to the same VideoJob (its
  controller reference), which is how a restarted operator adopts its Jobs instead of duplicating them;
- deleting something already gone (404) is success; status patches of a VideoJob that is gone return None.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from videojob.api.models import API_VERSION, CLUSTER_PRESET_PLURAL, GROUP, KIND, PLURAL, PRESET_PLURAL, VERSION
from videojob.controller.jobs import MANAGED_BY, owned_by
from videojob.kubeapi import MERGE_PATCH, ApiError, Client, load_connection

log = logging.getLogger(__name__)

LIST_PAGE = 200  # items per list page: bounds the memory a relist takes at once


class NotOurs(Exception):
    """A Job with the deterministic name exists but belongs to something else."""


def describe(error: BaseException) -> str:
    """One line about a failed call: the API server's status and message, not the whole response."""
    if isinstance(error, ApiError):
        return f"{error.status} {error.reason}: {error.message}".strip()
    return f"{type(error).__name__}: {error}"


def api_client(pool_size: int = 8, kubeconfig: str | None = None) -> Client:
    """A client for the cluster we run in, or for the kubeconfig (`kubeconfig`, else $KUBECONFIG or
    ~/.kube/config) outside a cluster."""
    return Client(load_connection(kubeconfig), pool_size=max(pool_size, 4))


def videojobs_path(namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{PLURAL}"
    if name:
        path += f"/{quote(name)}"
    if sub:
        path += f"/{sub}"
    return path


def presets_path(namespace: str | None = None) -> str:
    return f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{PRESET_PLURAL}"


def cluster_presets_path() -> str:
    return f"/apis/{GROUP}/{VERSION}/{CLUSTER_PRESET_PLURAL}"


def jobs_path(namespace: str | None = None, name: str | None = None) -> str:
    path = "/apis/batch/v1" + (f"/namespaces/{quote(namespace)}" if namespace else "") + "/jobs"
    return path + (f"/{quote(name)}" if name else "")


def lease_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"
    return path + (f"/{quote(name)}" if name else "")


def pods_path(namespace: str | None = None) -> str:
    return "/api/v1" + (f"/namespaces/{quote(namespace)}" if namespace else "") + "/pods"


class Kube:
    """Kubernetes API calls the operator makes; nothing else in the operator talks to the API server."""

    def __init__(self, api: Client, component: str = MANAGED_BY) -> None:
        self.api = api
        self.component = component
        self.instance = os.environ.get("POD_NAME") or socket.gethostname()

    # --- transport ----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, **options: Any) -> dict[str, Any]:
        """One call, its JSON answer as a dict (`kubeapi.Client.request` for the options)."""
        return self.api.request_json(method, path, body, **options)

    def list_page(
        self, path: str, label_selector: str | None, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None, str]:
        """One page of a collection: its items, the continue token (None after the last page) and the list's
        resourceVersion."""
        page = self.request("GET", path, query={"labelSelector": label_selector, "limit": LIST_PAGE, "continue": token})
        meta = page.get("metadata") or {}
        return page.get("items") or [], meta.get("continue") or None, str(meta.get("resourceVersion", ""))

    # --- VideoJobs -----------------------------------------------------------------------------------------

    def patch_videojob_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """Merge-patch the status subresource; None when the VideoJob is gone."""
        try:
            return self.request(
                "PATCH", videojobs_path(namespace, name, "status"), {"status": dict(status)}, content_type=MERGE_PATCH
            )
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def patch_videojob_finalizers(
        self, namespace: str, name: str, finalizers: list[str], resource_version: str
    ) -> dict[str, Any] | None:
        """Set metadata.finalizers, only if the object is unchanged since `resource_version` (409 otherwise)."""
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        try:
            return self.request("PATCH", videojobs_path(namespace, name), body, content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def delete_videojob(self, namespace: str, name: str, uid: str) -> None:
        """Delete this very VideoJob (uid precondition: never a re-created one of the same name)."""
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": {"uid": uid},
            "propagationPolicy": "Background",
        }
        try:
            self.request("DELETE", videojobs_path(namespace, name), body)
        except ApiError as e:
            if e.status not in (404, 409):
                raise

    # --- Jobs ----------------------------------------------------------------------------------------------

    def create_job(self, manifest: Mapping[str, Any], owner_uid: str) -> tuple[dict[str, Any], bool]:
        """Create the Job: (job, True); if it exists already and is this VideoJob's: (that job, False), which is
        how a restarted operator adopts its Jobs. NotOurs when the name is taken by something else."""
        namespace = manifest["metadata"]["namespace"]
        try:
            return self.request("POST", jobs_path(namespace), manifest), True
        except ApiError as e:
            if e.status != 409:
                raise
        existing = self.request("GET", jobs_path(namespace, manifest["metadata"]["name"]))
        if not owned_by(existing, owner_uid):
            raise NotOurs(f"Job {namespace}/{manifest['metadata']['name']} exists and belongs to another owner")
        return existing, False

    def read_job(self, namespace: str, name: str) -> dict[str, Any]:
        """The whole Job (the index keeps Jobs slimmed, without their pod template's annotations)."""
        return self.request("GET", jobs_path(namespace, name))

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job; its pods go through the garbage collector (Background), which stops them with SIGTERM."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self.request("DELETE", jobs_path(namespace, name), body)
        except ApiError as e:
            if e.status != 404:
                raise

    # --- pods ----------------------------------------------------------------------------------------------

    def pod_log_tail(self, namespace: str, name: str, container: str, lines: int, limit_bytes: int) -> str:
        """The last `lines` lines of a container's log (at most `limit_bytes`); "" when the pod or its log is gone
        or not there yet."""
        query = {"container": container, "tailLines": lines, "limitBytes": limit_bytes}
        try:
            return self.api.request_text(
                "GET", f"{pods_path(namespace)}/{quote(name)}/log", query=query, timeout=10, accept="*/*"
            )
        except ApiError as e:
            if e.status in (400, 404):  # no such pod, or its container has not started
                return ""
            raise

    # --- Events --------------------------------------------------------------------------------------------

    def create_event(self, vj: Mapping[str, Any], event_type: str, reason: str, message: str, timestamp: str) -> None:
        """A core/v1 Event about a VideoJob (what `kubectl describe vj` and `kubectl get events` show)."""
        meta = vj["metadata"]
        namespace = meta["namespace"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name'][:200]}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta["uid"],
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance[:128],
        }
        self.request("POST", f"/api/v1/namespaces/{quote(namespace)}/events", event)

    # --- the leader election Lease (leader.py) ---------------------------------------------------------------

    def get_lease(self, namespace: str, name: str, timeout: float = 30) -> dict[str, Any] | None:
        """The Lease, or None when there is none yet."""
        try:
            return self.request("GET", lease_path(namespace, name), timeout=timeout)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def create_lease(self, lease: Mapping[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Create the Lease (409 when another replica created it first)."""
        return self.request("POST", lease_path(lease["metadata"]["namespace"]), lease, timeout=timeout)

    def replace_lease(self, lease: Mapping[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Replace the Lease; its metadata.resourceVersion makes this fail with 409 if anyone wrote it since."""
        meta = lease["metadata"]
        return self.request("PUT", lease_path(meta["namespace"], meta["name"]), lease, timeout=timeout)

    # --- per-namespace objects -----------------------------------------------------------------------------

    def ensure(self, manifests: Iterable[Mapping[str, Any]]) -> None:
        """Create each object, or merge-patch it to the manifest when it exists (e.g. a Role's rules)."""
        for manifest in manifests:
            path = _collection_path(manifest)
            try:
                self.request("POST", path, manifest)
            except ApiError as e:
                if e.status != 409:
                    raise
                self.request(
                    "PATCH", f"{path}/{quote(manifest['metadata']['name'])}", manifest, content_type=MERGE_PATCH
                )

    def delete_if_ours(self, namespace: str, api_version: str, kind: str, name: str) -> bool:
        """Delete a namespaced object this operator made (its managed-by label says so); True when it did."""
        path = f"{_collection_path({'apiVersion': api_version, 'kind': kind, 'metadata': {'namespace': namespace}})}"
        path += f"/{quote(name)}"
        try:
            existing = self.request("GET", path)
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        if ((existing.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/managed-by") != MANAGED_BY:
            return False
        uid = (existing.get("metadata") or {}).get("uid")
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        try:
            self.request("DELETE", path, body)
        except ApiError as e:
            if e.status not in (404, 409):
                raise
        return True


def _collection_path(manifest: Mapping[str, Any]) -> str:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    namespace = quote(manifest["metadata"]["namespace"])
    plural = {"ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings"}[kind]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}"
