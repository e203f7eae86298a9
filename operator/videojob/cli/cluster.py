"""The only place `kubectl videojob` talks to the Kubernetes API (the user's kubeconfig, as kubectl does)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from videojob.api.models import GROUP, PLURAL, VERSION

LABEL_UID = "videojob.dev/uid"  # set by the operator on each Job and its pods (controller/jobs.py)
CONTAINER = "transcode"
CLI_CONFIGMAP = "videojob-cli"  # per-namespace defaults for the plugin, set by the platform team (optional)


class ClusterError(Exception):
    """An API error, as one line."""


def _message(error: Exception) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        try:
            body = json.loads(error.body or "{}")
        except ValueError:
            body = {}
        return str(body.get("message") or f"{error.status} {error.reason}")
    return " ".join(str(error).split())


@dataclass
class Cluster:
    namespace: str
    api: Any  # kubernetes.client.ApiClient

    @classmethod
    def connect(cls, namespace: str | None, context: str | None, kubeconfig: str | None) -> Cluster:
        from kubernetes import config

        try:
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            contexts = {c["name"]: c for c in config.list_kube_config_contexts(config_file=kubeconfig)[0]}
            chosen = contexts.get(context) if context else active
            if context and chosen is None:
                raise ClusterError(f"context {context!r} is not in the kubeconfig")
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except ClusterError:
            raise
        except Exception as e:
            raise ClusterError(f"no usable kubeconfig: {_message(e)}") from None
        default_namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
        return cls(namespace=namespace or default_namespace, api=api)

    # --- VideoJobs -------------------------------------------------------------------------------------------

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            if e.status == 404 and what.startswith("videojob "):
                raise ClusterError(f"{what} not found in namespace {self.namespace!r}") from None
            raise ClusterError(f"{what}: {_message(e)}") from None
        except OSError as e:
            raise ClusterError(f"{what}: cannot reach the API server ({_message(e)})") from None

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            f"videojob {name!r}", self.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, name
        )
        return result

    def videojobs(self, all_namespaces: bool = False) -> list[dict[str, Any]]:
        if all_namespaces:
            got = self._call("listing videojobs", self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        else:
            got = self._call(
                "listing videojobs", self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL
            )
        items: list[dict[str, Any]] = got["items"]
        return sorted(
            items,
            key=lambda o: (
                o["metadata"].get("namespace", ""),
                o["metadata"].get("creationTimestamp", ""),
                o["metadata"]["name"],
            ),
        )

    def create(self, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        extra = {"dry_run": "All"} if dry_run else {}
        result: dict[str, Any] = self._call(
            f"creating videojob {body['metadata'].get('name')!r}",
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            body,
            field_validation="Strict",
            **extra,
        )
        return result

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except ClusterError:
            return False
        return True

    def cancel(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            f"videojob {name!r}",
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"spec": {"cancel": True}},
        )
        return result

    def watch(self, name: str, timeout: float = 60) -> Iterator[dict[str, Any]]:
        """The VideoJob now, then each change; polls when a watch breaks. Ends only when the caller stops."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        current = self.get(name)
        yield current
        version = current["metadata"].get("resourceVersion")
        while True:
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=int(timeout),
                ):
                    obj = event["object"]
                    if event["type"] == "DELETED":
                        raise ClusterError(f"videojob {name!r} was deleted")
                    if event["type"] in ("ADDED", "MODIFIED"):
                        version = obj["metadata"].get("resourceVersion")
                        yield obj
            except ApiException as e:
                if e.status != 410:  # expired: read it again; other errors too, after a pause
                    time.sleep(1)
                current = self.get(name)
                version = current["metadata"].get("resourceVersion")
                yield current
            except OSError:
                time.sleep(1)
            finally:
                stream.stop()

    # --- pods and logs ---------------------------------------------------------------------------------------

    def pods(self, vj: dict[str, Any]) -> list[Any]:
        """The transcoder pods of a VideoJob, oldest first: found by the operator's uid label, kept only when
        their owner is the VideoJob's Job (a label anyone can set; the owner reference is the proof)."""
        uid = vj["metadata"]["uid"]
        job = (vj.get("status") or {}).get("jobName")
        got = self._call(
            "listing pods", self.core.list_namespaced_pod, self.namespace, label_selector=f"{LABEL_UID}={uid}"
        )
        owned = [
            p
            for p in got.items
            if job
            and any(
                ref.kind == "Job" and ref.name == job and ref.controller for ref in p.metadata.owner_references or []
            )
        ]
        return sorted(owned, key=lambda p: p.metadata.creation_timestamp)

    def log_lines(self, pod: str, follow: bool) -> Iterator[str]:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self.core.read_namespaced_pod_log(
                pod, self.namespace, container=CONTAINER, follow=follow, _preload_content=False
            )
        except ApiException as e:
            raise ClusterError(f"logs of pod {pod}: {_message(e)}") from None
        try:
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")
        finally:
            response.release_conn()

    def config_defaults(self) -> dict[str, str]:
        """The namespace's `videojob-cli` ConfigMap (e.g. uploadTo), or {} when there is none or it is not
        readable."""
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.core.read_namespaced_config_map(CLI_CONFIGMAP, self.namespace)
        except (ApiException, OSError):
            return {}
        return dict(cm.data or {})
