"""The only place `kubectl videojob` talks to the Kubernetes API (the user's kubeconfig, as kubectl does)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3

from videojob.api.models import GROUP, PLURAL, VERSION
from videojob.kubeapi import (
    JSON,
    MERGE_PATCH,
    ApiError,
    Client,
    KubeconfigError,
    kubeconfig_connection,
    kubeconfig_files,
)

LABEL_UID = "videojob.dev/uid"  # set by the operator on each Job and its pods (controller/jobs.py)
CONTAINER = "transcode"
CLI_CONFIGMAP = "videojob-cli"  # per-namespace defaults for the plugin, set by the platform team (optional)


class ClusterError(Exception):
    """An API error, as one line."""


def _message(error: Exception) -> str:
    if isinstance(error, ApiError):
        return error.message or f"{error.status} {error.reason}"
    return " ".join(str(error).split())


def _videojobs_path(namespace: str | None, name: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{PLURAL}"
    return path + (f"/{quote(name)}" if name else "")


@dataclass
class Cluster:
    namespace: str
    api: Client

    @classmethod
    def connect(cls, namespace: str | None, context: str | None, kubeconfig: str | None) -> Cluster:
        try:
            connection = kubeconfig_connection(kubeconfig_files(kubeconfig), context)
            api = Client(connection, pool_size=4, user_agent="kubectl-videojob")
        except KubeconfigError as e:
            raise ClusterError(f"no usable kubeconfig: {e}") from None
        except (OSError, ValueError) as e:  # e.g. an unreadable certificate file
            raise ClusterError(f"no usable kubeconfig: {_message(e)}") from None
        return cls(namespace=namespace or connection.namespace or "default", api=api)

    def _call(self, what: str, method: str, path: str, body: Any = None, **query: Any) -> dict[str, Any]:
        try:
            return self.api.request_json(method, path, body, query=query or None, content_type=_content_type(method))
        except ApiError as e:
            if e.status == 404 and what.startswith("videojob "):
                raise ClusterError(f"{what} not found in namespace {self.namespace!r}") from None
            raise ClusterError(f"{what}: {_message(e)}") from None
        except (OSError, urllib3.exceptions.HTTPError, KubeconfigError) as e:
            raise ClusterError(f"{what}: cannot reach the API server ({_message(e)})") from None

    # --- VideoJobs -------------------------------------------------------------------------------------------

    def get(self, name: str) -> dict[str, Any]:
        return self._call(f"videojob {name!r}", "GET", _videojobs_path(self.namespace, name))

    def videojobs(self, all_namespaces: bool = False) -> list[dict[str, Any]]:
        got = self._call("listing videojobs", "GET", _videojobs_path(None if all_namespaces else self.namespace))
        items: list[dict[str, Any]] = got.get("items") or []
        return sorted(
            items,
            key=lambda o: (
                o["metadata"].get("namespace", ""),
                o["metadata"].get("creationTimestamp", ""),
                o["metadata"]["name"],
            ),
        )

    def create(self, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        query = {"fieldValidation": "Strict", **({"dryRun": "All"} if dry_run else {})}
        what = f"creating videojob {body['metadata'].get('name')!r}"
        return self._call(what, "POST", _videojobs_path(self.namespace), body, **query)

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except ClusterError:
            return False
        return True

    def cancel(self, name: str) -> dict[str, Any]:
        return self._call(
            f"videojob {name!r}", "PATCH", _videojobs_path(self.namespace, name), {"spec": {"cancel": True}}
        )

    def watch(self, name: str, timeout: float = 60) -> Iterator[dict[str, Any]]:
        """The VideoJob now, then each change; polls when a watch breaks. Ends only when the caller stops."""
        current = self.get(name)
        yield current
        version = current["metadata"].get("resourceVersion")
        while True:
            query = {
                "watch": "true",
                "fieldSelector": f"metadata.name={name}",
                "resourceVersion": version,
                "timeoutSeconds": int(timeout),
                "allowWatchBookmarks": "false",
            }
            try:
                for line in self.api.stream_lines(_videojobs_path(self.namespace), query, timeout=timeout + 10):
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old; read it again
                        raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or ""), json.dumps(obj))
                    if event.get("type") == "DELETED":
                        raise ClusterError(f"videojob {name!r} was deleted")
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        version = obj["metadata"].get("resourceVersion")
                        yield obj
            except ApiError as e:
                if e.status != 410:  # expired: read it again; other errors too, after a pause
                    time.sleep(1)
                current = self.get(name)
                version = current["metadata"].get("resourceVersion")
                yield current
            except (OSError, ValueError, urllib3.exceptions.HTTPError):
                time.sleep(1)

    # --- pods and logs ---------------------------------------------------------------------------------------

    def pods(self, vj: dict[str, Any]) -> list[dict[str, Any]]:
        """The transcoder pods of a VideoJob, oldest first: found by the operator's uid label, kept only when
        their owner is the VideoJob's Job (a label anyone can set; the owner reference is the proof)."""
        uid = vj["metadata"]["uid"]
        job = (vj.get("status") or {}).get("jobName")
        path = f"/api/v1/namespaces/{quote(self.namespace)}/pods"
        got = self._call("listing pods", "GET", path, labelSelector=f"{LABEL_UID}={uid}")
        owned = [
            p
            for p in got.get("items") or []
            if job
            and any(
                ref.get("kind") == "Job" and ref.get("name") == job and ref.get("controller")
                for ref in p["metadata"].get("ownerReferences") or []
            )
        ]
        return sorted(owned, key=lambda p: p["metadata"].get("creationTimestamp", ""))

    def log_lines(self, pod: str, follow: bool) -> Iterator[str]:
        path = f"/api/v1/namespaces/{quote(self.namespace)}/pods/{quote(pod)}/log"
        query = {"container": CONTAINER, "follow": "true" if follow else None}
        try:
            for line in self.api.stream_lines(path, query):
                yield line.decode("utf-8", "replace")
        except ApiError as e:
            raise ClusterError(f"logs of pod {pod}: {_message(e)}") from None

    def config_defaults(self) -> dict[str, str]:
        """The namespace's `videojob-cli` ConfigMap (e.g. uploadTo), or {} when there is none or it is not
        readable."""
        path = f"/api/v1/namespaces/{quote(self.namespace)}/configmaps/{CLI_CONFIGMAP}"
        try:
            cm = self.api.request_json("GET", path)
        except (ApiError, OSError, urllib3.exceptions.HTTPError):
            return {}
        return dict(cm.get("data") or {})


def _content_type(method: str) -> str:
    return MERGE_PATCH if method == "PATCH" else JSON
