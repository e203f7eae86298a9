"""What a pod in a tenant's namespace can do to VideoJobs, on the real cluster.

Any pod of a namespace may run as the transcoders' ServiceAccount (a `serviceAccountName` in its spec is all it
takes). That ServiceAccount used to be bound to a Role allowing `patch` on `videojobs/status` of every VideoJob in
the namespace, so a pod could write `Succeeded` on another VideoJob. Here a pod runs as that ServiceAccount, asks
for a token (automountServiceAccountToken: true, which the operator's own pods never do) and tries: every call is
refused by the API server, and the other VideoJob is unchanged.

Progress now travels in the transcoder's own log: a real pod prints progress lines and the operator's API layer
reads them back through the API server and the kubelet (`pods/log`), the only way the operator learns it.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from tests.conftest import wait_for
from videojob.api.models import GROUP, PLURAL, VERSION
from videojob.api.runtime import PROGRESS_TAIL_BYTES, PROGRESS_TAIL_LINES, parse_progress, progress_line
from videojob.controller.kube import Kube
from videojob.controller.rbac import build_transcoder_rbac
from videojob.controller.settings import Settings

pytestmark = pytest.mark.integration

OPERATOR_IMAGE = "videojob-operator:dev"  # has Python and a Kubernetes client: a handy attacker's toolbox

FORGER = textwrap.dedent("""
    import json
    from videojob.kubeapi import ApiError, Client, load_connection

    api = Client(load_connection())
    ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
    vjs = f"/apis/videojob.dev/v1alpha1/namespaces/{ns}/videojobs"
    forged = {"status": {"phase": "Succeeded", "progress": 100, "reason": "Succeeded",
                         "artifacts": [{"uri": "s3://other-tenant/precious.mp4", "size": 1, "sha256": "0" * 64}]}}
    patch, cancel = "application/merge-patch+json", {"spec": {"cancel": True}}
    attempts = {
        "patch status": lambda: api.request_json("PATCH", f"{vjs}/victim/status", forged, content_type=patch),
        "patch spec": lambda: api.request_json("PATCH", f"{vjs}/victim", cancel, content_type=patch),
        "delete": lambda: api.request_json("DELETE", f"{vjs}/victim"),
        "list": lambda: api.request_json("GET", vjs),
        "read secrets": lambda: api.request_json("GET", f"/api/v1/namespaces/{ns}/secrets"),
        "read pods": lambda: api.request_json("GET", f"/api/v1/namespaces/{ns}/pods"),
    }
    outcome = {}
    for what, call in attempts.items():
        try:
            call()
            outcome[what] = 200
        except ApiError as e:
            outcome[what] = e.status
    print("RESULT " + json.dumps(outcome))
""")


def videojob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {"inputs": [{"name": "a", "uri": "s3://bucket/a.mp4"}], "output": {"uri": f"s3://bucket/{name}/"}},
    }


def restricted_pod(name: str, command: list[str], service_account: str, automount: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": service_account,
            "automountServiceAccountToken": automount,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": OPERATOR_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                }
            ],
        },
    }


def finished_log(core_v1: Any, namespace: str, name: str) -> str:
    def done() -> Any:
        pod = core_v1.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(done, timeout=120, interval=0.5, message=f"pod {name} to finish")
    log = str(core_v1.read_namespaced_pod_log(name, namespace))
    assert pod.status.phase == "Succeeded", f"pod {name} {pod.status.phase}:\n{log}"
    return log


def test_a_pod_running_as_the_transcoders_service_account_changes_no_videojob(
    crd: Any, kube_api: Any, namespace: str, core_v1: Any, custom_objects: Any
) -> None:
    Kube(kube_api).ensure(build_transcoder_rbac(namespace, Settings()))  # as the operator makes it
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, videojob("victim"))
    before = custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "victim")

    sa = Settings().transcoder_service_account
    core_v1.create_namespaced_pod(namespace, restricted_pod("forger", ["python", "-c", FORGER], sa, automount=True))
    log = finished_log(core_v1, namespace, "forger")
    outcome = json.loads(next(line for line in log.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])

    assert outcome == {what: 403 for what in outcome}, f"everything refused: {outcome}"
    after = custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "victim")
    assert after.get("status") == before.get("status") and after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_the_transcoders_service_account_mounts_no_token_by_default(
    kube_api: Any, namespace: str, core_v1: Any
) -> None:
    """A pod that does not ask for a token (the operator's Jobs never do) gets none from this ServiceAccount."""
    Kube(kube_api).ensure(build_transcoder_rbac(namespace, Settings()))
    check = "import os; print('TOKEN', os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token'))"
    pod = restricted_pod("no-token", ["python", "-c", check], Settings().transcoder_service_account, automount=True)
    del pod["spec"]["automountServiceAccountToken"]  # the ServiceAccount's own setting decides
    core_v1.create_namespaced_pod(namespace, pod)
    assert "TOKEN False" in finished_log(core_v1, namespace, "no-token")


def test_the_operator_reads_progress_from_the_pods_log(kube_api: Any, namespace: str, core_v1: Any) -> None:
    lines = [progress_line(12.5), progress_line(47.5), "videojob-transcode: some other line"]
    script = "import sys, time\n" + "".join(f"print({line!r}, flush=True)\n" for line in lines) + "time.sleep(600)\n"
    core_v1.create_namespaced_pod(namespace, restricted_pod("printer", ["python", "-c", script], "default", False))
    kube = Kube(kube_api)

    def progress() -> float | None:
        tail = kube.pod_log_tail(namespace, "printer", "main", PROGRESS_TAIL_LINES, PROGRESS_TAIL_BYTES)
        return parse_progress(tail)

    assert wait_for(progress, timeout=120, interval=0.5, message="a progress line in the pod's log") == 47.5
    assert kube.pod_log_tail(namespace, "no-such-pod", "main", 4, 1024) == "", "a pod that is gone: nothing"
