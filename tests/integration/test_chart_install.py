"""The Helm chart applied to the real API server: every rendered object is accepted (schema, admission, RBAC's
escalation check), and the RBAC it installs lets the operator's ServiceAccount do its work and nothing more.

The chart is rendered with `helm template` and applied with kubectl's server-side apply into a fresh namespace,
under a release name of the test's own; its cluster-scoped objects are deleted afterwards. There, the operator's
Deployment is applied with 0 replicas: the RBAC checks need no running operator, and a cluster-wide one would also
take other tests' VideoJobs.

`test_helm_install_upgrade_uninstall` then does what a platform team does: `helm install` of the chart with the
image `make images` built, the operator running as the Deployment's pod in a container, in-cluster config and the
chart's RBAC; `helm upgrade` with a changed value (a new pod with the new setting); `helm uninstall`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_chart import CHART, HELM, helm
from videojob.controller.rbac import build_transcoder_rbac
from videojob.controller.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not HELM.exists(), reason="helm is absent: build it with `make tools`"),
]

REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".testenv" / "bin" / "kubectl"
CLUSTER_KINDS = "clusterrole,clusterrolebinding,priorityclass"


def kubectl(testenv: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), "--kubeconfig", testenv.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def render(release: str, namespace: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    # The cluster's CRD belongs to the environment and every test: the chart's is checked on its own below.
    values = {**values, "crds": {"install": False}}
    r = helm("template", release, str(CHART), "--namespace", namespace, values=values)
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    for d in docs:
        if d["kind"] == "Deployment":
            d["spec"]["replicas"] = 0  # see the module docstring
    return docs


@pytest.fixture
def release(testenv: Any) -> Iterator[str]:
    """A release name of this test's own; its cluster-scoped objects are deleted afterwards."""
    name = f"chart-{uuid.uuid4().hex[:6]}"
    try:
        yield name
    finally:
        r = kubectl(testenv, "delete", CLUSTER_KINDS, "-l", f"app.kubernetes.io/instance={name}", "--wait=true")
        assert r.returncode == 0, r.stderr


def apply(testenv: Any, docs: list[dict[str, Any]], *extra: str) -> subprocess.CompletedProcess[str]:
    manifest = "\n---\n".join(json.dumps(d) for d in docs)
    return kubectl(testenv, "apply", "--server-side", "--field-manager=chart-test", *extra, "-f", "-", stdin=manifest)


def can(
    k8s_client: Any,
    user: str,
    namespace: str | None,
    verb: str,
    resource: str,
    group: str = "",
    subresource: str = "",
    name: str | None = None,
) -> bool:
    from kubernetes import client

    attrs = client.V1ResourceAttributes(
        namespace=namespace, verb=verb, group=group, resource=resource, subresource=subresource or None, name=name
    )
    ns = user.split(":")[2]
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            resource_attributes=attrs,
        )
    )
    status = client.AuthorizationV1Api(k8s_client).create_subject_access_review(review).status
    assert status is not None
    return bool(status.allowed)


# (verb, resource, group, subresource, allowed): what the operator needs, and some of what it must not hold.
NEEDED = [
    ("watch", "videojobs", "videojob.dev", "", True),
    ("patch", "videojobs", "videojob.dev", "status", True),
    ("create", "jobs", "batch", "", True),
    ("delete", "jobs", "batch", "", True),
    ("list", "pods", "", "", True),
    ("create", "events", "", "", True),
    ("get", "pods", "", "log", True),
    ("create", "serviceaccounts", "", "", True),
    ("create", "rolebindings", "rbac.authorization.k8s.io", "", False),
    ("create", "roles", "rbac.authorization.k8s.io", "", False),
    ("patch", "serviceaccounts", "", "", False),  # only the transcoders' one, by name (checked below)
    ("create", "videojobs", "videojob.dev", "", False),
    ("delete", "pods", "", "", False),
    ("create", "pods", "", "", False),
    ("get", "secrets", "", "", False),
    ("list", "secrets", "", "", False),
    ("create", "events", "events.k8s.io", "", False),
    ("update", "deployments", "apps", "", False),
    ("escalate", "roles", "rbac.authorization.k8s.io", "", False),
]


@pytest.mark.parametrize(
    "watch_own_namespace",
    [pytest.param(False, id="cluster-wide"), pytest.param(True, id="watching its own namespace")],
)
def test_chart_installs_and_grants_the_operator_what_it_needs(
    testenv: Any,
    k8s_client: Any,
    namespace: str,
    release: str,
    wait_for: Callable[..., Any],
    watch_own_namespace: bool,
) -> None:
    credentials = {"accessKeyId": "AK", "secretAccessKey": "SK"}
    values: dict[str, Any] = {"s3": {"createSecret": True, "credentials": credentials}}
    if watch_own_namespace:
        values["watchNamespaces"] = [namespace]
    docs = render(release, namespace, values)
    r = apply(testenv, docs)
    assert r.returncode == 0, f"the API server refused the chart's objects:\n{r.stderr}"

    # Every object is there, as applied.
    got = kubectl(testenv, "get", "-f", "-", "-o", "json", stdin="\n---\n".join(json.dumps(d) for d in docs))
    assert got.returncode == 0, got.stderr
    items = json.loads(got.stdout)["items"]
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in docs
    )
    deployment = next(d for d in docs if d["kind"] == "Deployment")["metadata"]["name"]

    def deployment_observed() -> bool:
        out = kubectl(testenv, "-n", namespace, "get", "deployment", deployment, "-o", "json")
        return out.returncode == 0 and json.loads(out.stdout).get("status", {}).get("observedGeneration", 0) >= 1

    wait_for(deployment_observed, timeout=60, message="the deployment controller to observe the Deployment")

    sa = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    user = f"system:serviceaccount:{namespace}:{sa}"
    decisions = {
        (verb, resource, sub): can(k8s_client, user, namespace, verb, resource, group, sub)
        for verb, resource, group, sub, _ in NEEDED
    }
    assert decisions == {(verb, resource, sub): allowed for verb, resource, _, sub, allowed in NEEDED}
    assert can(k8s_client, user, None, "watch", "customresourcedefinitions", "apiextensions.k8s.io")
    assert can(k8s_client, user, None, "list", "namespaces")
    # Scope: cluster-wide sees every namespace; watching one namespace sees no other.
    assert can(k8s_client, user, "default", "create", "jobs", "batch") is not watch_own_namespace
    assert can(k8s_client, user, None, "list", "videojobs", "videojob.dev") is not watch_own_namespace

    # By name, the transcoders' ServiceAccount (and the Role and RoleBinding of earlier versions, to remove them).
    for verb, resource, group in [
        ("patch", "serviceaccounts", ""),
        ("delete", "roles", "rbac.authorization.k8s.io"),
        ("delete", "rolebindings", "rbac.authorization.k8s.io"),
    ]:
        assert can(k8s_client, user, namespace, verb, resource, group, name="videojob-transcoder")
        assert not can(k8s_client, user, namespace, verb, resource, group, name="someone-elses")

    # Leader election: create Leases, get and update only the release's own (named as the Deployment), in the
    # release's namespace only; never delete it or touch another.
    coordination = "coordination.k8s.io"
    assert can(k8s_client, user, namespace, "create", "leases", coordination)
    for verb in ("get", "update"):
        assert can(k8s_client, user, namespace, verb, "leases", coordination, name=deployment)
        assert not can(k8s_client, user, namespace, verb, "leases", coordination, name="someone-elses")
    assert not can(k8s_client, user, namespace, "delete", "leases", coordination, name=deployment)
    assert not can(k8s_client, user, namespace, "list", "leases", coordination)
    assert not can(k8s_client, user, "default", "create", "leases", coordination)

    # The operator, as itself, can make the transcoders' ServiceAccount (no Role: transcoders hold no rights).
    transcoder = build_transcoder_rbac(namespace, Settings())
    as_operator = kubectl(
        testenv,
        f"--as={user}",
        "--as-group=system:serviceaccounts",
        "apply",
        "--server-side",
        "--field-manager=videojob-operator",
        "-f",
        "-",
        stdin="\n---\n".join(json.dumps(d) for d in transcoder),
    )
    assert as_operator.returncode == 0, as_operator.stderr


def test_namespace_editors_may_create_videojobs_and_viewers_read_them(
    testenv: Any, namespace: str, release: str, wait_for: Callable[..., Any]
) -> None:
    """The chart's aggregated ClusterRoles on the real API server: a user bound to the built-in `edit` ClusterRole in
    a namespace may create VideoJobs there (the aggregation controller adds the chart's editor rules to `edit`), one
    bound to `view` may read but not create them, and neither reaches another namespace. Asked as a person would:
    `kubectl auth can-i ... --as`."""
    roles = [
        d
        for d in render(release, namespace, {})
        if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith(("-viewer", "-editor"))
    ]
    assert len(roles) == 2
    r = apply(testenv, roles)
    assert r.returncode == 0, r.stderr
    editor, viewer = f"editor-{release}", f"viewer-{release}"
    for user, role in ((editor, "edit"), (viewer, "view")):
        r = kubectl(
            testenv,
            "-n",
            namespace,
            "create",
            "rolebinding",
            f"{role}-{release}",
            f"--clusterrole={role}",
            f"--user={user}",
        )
        assert r.returncode == 0, r.stderr

    def can_i(user: str, verb: str, ns: str = namespace) -> str:
        r = kubectl(testenv, "auth", "can-i", verb, "videojobs.videojob.dev", "-n", ns, "--as", user)
        return r.stdout.strip()

    wait_for(
        lambda: can_i(editor, "create") == "yes",
        timeout=60,
        message="kubectl auth can-i create videojobs --as a namespace editor to answer yes",
    )
    wait_for(lambda: can_i(viewer, "list") == "yes", timeout=60, message="a namespace viewer to list videojobs")
    assert {verb: can_i(editor, verb) for verb in ("get", "list", "watch", "patch", "delete")} == dict.fromkeys(
        ("get", "list", "watch", "patch", "delete"), "yes"
    )
    assert can_i(viewer, "create") == "no" and can_i(viewer, "delete") == "no"
    assert can_i(editor, "create", "default") == "no", "the binding holds in its namespace only"
    r = kubectl(
        testenv,
        "auth",
        "can-i",
        "patch",
        "videojobs.videojob.dev",
        "--subresource=status",
        "-n",
        namespace,
        "--as",
        editor,
    )
    assert r.stdout.strip() == "no", "the status is the operator's"


def test_chart_crd_is_accepted_by_the_api_server(testenv: Any) -> None:
    """The CRD the chart's template renders (generated from the models) passes the API server's validation. A dry
    run: the cluster's CRD belongs to the environment and other tests."""
    r = helm("template", "crd-check", str(CHART), "--show-only", "templates/crd-videojobs.yaml")
    assert r.returncode == 0, r.stderr
    (crd,) = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert crd["kind"] == "CustomResourceDefinition"
    r = kubectl(
        testenv,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "--field-manager=chart-test",
        "-f",
        "-",
        stdin=json.dumps(crd),
    )
    assert r.returncode == 0, r.stderr


def notes_commands(notes: str) -> list[str]:
    """The shell commands NOTES.txt shows (indented lines starting with kubectl, continuation lines joined); a
    `-w` (watch) runs for a few seconds, with `timeout`."""
    text = re.sub(r"\\\n\s*", " ", notes)
    commands = [line.strip() for line in text.splitlines() if line.startswith("     kubectl ")]
    assert commands, notes
    return [f"timeout 5 {c}" if c.endswith(" -w") else c for c in commands]


def test_helm_install_upgrade_uninstall(
    testenv: Any, core_v1: Any, apps_v1: Any, namespace: str, release: str, wait_for: Callable[..., Any]
) -> None:
    import urllib.request

    from kubernetes.client.exceptions import ApiException

    from devkit.harness import ensure_s3_secret
    from devkit.operator_release import helm as helm_cmd
    from devkit.operator_release import release_values

    ensure_s3_secret(core_v1, namespace, testenv)  # the operator's own credentials (release_values' extraEnv)
    values = release_values(testenv, namespace, release)
    helm_cmd(testenv, "install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", "300s",
             values=values)  # fmt: skip
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"

    def running_pod() -> Any:
        pods = [p for p in core_v1.list_namespaced_pod(namespace, label_selector=selector).items
                if p.metadata.deletion_timestamp is None and p.status.phase == "Running"]  # fmt: skip
        return pods[0] if len(pods) == 1 else None

    pod = wait_for(running_pod, timeout=60, message="the operator pod Running")
    (container,) = pod.spec.containers
    assert container.image == "videojob-operator:dev"
    assert pod.status.container_statuses[0].image_id, "the runtime reports no image for the operator container"
    env = {e.name: e.value for e in container.env}
    assert env["VIDEOJOB_MAX_RUNNING"] == "10" and env["VIDEOJOB_NAMESPACES"] == namespace

    def healthz() -> bool:
        with urllib.request.urlopen(f"http://{running_pod().status.pod_ip}:8080/healthz", timeout=3) as r:
            return bool(r.status == 200)

    wait_for(healthz, timeout=60, ignore=(OSError, AttributeError), message="the operator's /healthz in its pod")
    # In-cluster config and the chart's RBAC at work: the operator, from its pod, reached the API server through
    # the `kubernetes` Service and watches its namespace.
    log = core_v1.read_namespaced_pod_log(pod.metadata.name, namespace)
    assert "operator started" in log, log[-2000:]

    # NOTES.txt: every command it prints works when pasted (from the repository, as it says).
    notes = helm_cmd(testenv, "get", "notes", release, "--namespace", namespace)
    for command in notes_commands(notes):
        r = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=200,
            env={**testenv.subprocess_env(), "KUBECONFIG": testenv.kubeconfig},
        )
        watching = command.endswith(" -w")
        assert r.returncode == 0 or (watching and r.returncode == 124), f"{command!r} failed:\n{r.stdout}{r.stderr}"
        if watching:
            assert "NAME" in r.stdout and "sample-transcode" in r.stdout, r.stdout + r.stderr

    values["maxRunning"] = 3
    helm_cmd(testenv, "upgrade", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", "300s",
             values=values)  # fmt: skip

    def upgraded() -> Any:
        new = running_pod()
        if new is None or new.metadata.uid == pod.metadata.uid:
            return None
        return new if {e.name: e.value for e in new.spec.containers[0].env}["VIDEOJOB_MAX_RUNNING"] == "3" else None

    new_pod = wait_for(upgraded, timeout=90, message="a new operator pod with maxRunning 3 (Recreate)")
    status = json.loads(helm_cmd(testenv, "status", release, "--namespace", namespace, "-o", "json"))
    assert status["version"] == 2 and status["info"]["status"] == "deployed"

    helm_cmd(testenv, "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "90s")

    def gone() -> bool:
        try:
            apps_v1.read_namespaced_deployment(release, namespace)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, timeout=60, message="the Deployment removed by helm uninstall")
    wait_for(lambda: not running_pod(), timeout=60, message="the operator pod gone")
    left = kubectl(testenv, "get", CLUSTER_KINDS, "-l", f"app.kubernetes.io/instance={release}", "-o", "name")
    assert left.returncode == 0 and not left.stdout.strip(), f"cluster-scoped objects left: {left.stdout}"
    assert new_pod.metadata.name != pod.metadata.name
    # helm keeps the CRD (crds/ is install-only): VideoJobs of other releases survive an uninstall.
    assert kubectl(testenv, "get", "crd", "videojobs.videojob.dev").returncode == 0


# ---------------------------------------------------------------------------------------------------------------
# Upgrading the chart: the CRD


def previous_chart() -> tuple[str, str]:
    """(commit, version) of the newest commit whose chart has another version than this one: the chart as the
    previous version was last released."""
    current = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    rel = str(CHART.relative_to(REPO) / "Chart.yaml")
    revs = subprocess.run(
        ["git", "-C", str(REPO), "log", "--format=%H", "--", str(CHART.relative_to(REPO))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rev in revs:
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:{rel}"], capture_output=True, text=True, check=True
        ).stdout
        version = yaml.safe_load(shown)["version"]
        if version != current:
            return rev, str(version)
    raise AssertionError(f"no earlier version of the chart than {current} in the history of {rel}")


def extract_chart(rev: str, into: Path) -> Path:
    """The chart as it was at `rev`, from git."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, str(CHART.relative_to(REPO))], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / CHART.relative_to(REPO)


def crd_in_chart(chart: Path) -> Path:
    """Where a chart keeps the VideoJob CRD: crds/ before 0.2.0, a template since."""
    old = chart / "crds" / "videojobs.yaml"
    return old if old.exists() else chart / "templates" / "crd-videojobs.yaml"


def rename_group(chart: Path, group: str, older: bool) -> None:
    """Point the chart's CRDs at an API group of the test's own (the cluster's videojob.dev CRDs belong to the
    environment and every other test, and a release that owned them would keep them after uninstall with its
    ownership annotations); `older`: drop a printer column too, so that the upgrade has something to change even
    when the models did not change between the two versions."""
    path = crd_in_chart(chart)
    paths = [path, *sorted(p for p in path.parent.glob("crd-*.yaml") if p != path)]  # presets since 0.3.0
    for crd in paths:
        text = crd.read_text()
        plural = re.search(r"\n  name: ([a-z]+)\.videojob\.dev\n", text)
        assert plural and "\n  group: videojob.dev\n" in text, crd
        text = text.replace(f"\n  name: {plural[1]}.videojob.dev\n", f"\n  name: {plural[1]}.{group}\n")
        text = text.replace("\n  group: videojob.dev\n", f"\n  group: {group}\n")
        # No short name or category of its own: `kubectl get vj` and `kubectl get media` in other tests must keep
        # meaning the environment's VideoJobs (kubectl caches discovery on disk for minutes).
        text = re.sub(r"\n    shortNames:\n    - [a-z]+\n", "\n", text).replace(
            "\n    categories:\n    - media\n", "\n"
        )
        if older and crd == path:
            column = r"\n    - description: Position in the admission queue[^\n]*\n(      [^\n]*\n)+"
            text = re.sub(column, "\n", text, count=1)
            assert "Position in the admission queue" not in text
        crd.write_text(text)


@pytest.mark.parametrize(
    "adopt",
    [
        pytest.param("take-ownership", id="helm upgrade --take-ownership"),
        pytest.param("label-and-annotate", id="label and annotate the CRD, then helm upgrade"),
    ],
)
def test_helm_upgrade_from_the_previous_chart_version_updates_the_crd(
    testenv: Any,
    namespace: str,
    release: str,
    tmp_path: Path,
    custom_objects: Any,
    wait_for: Callable[..., Any],
    adopt: str,
) -> None:
    """The documented upgrade from the previous chart version (its CRD in crds/, installed once by helm and never
    owned by the release) to this one (the CRD a template of the release): the CRD is adopted by the release and
    updated by `helm upgrade`, VideoJobs survive it, and `helm uninstall` keeps the CRD."""
    from devkit.operator_release import helm as helm_cmd

    rev, version = previous_chart()
    group = f"{release}.chart-test.videojob.dev"
    crd_name = f"videojobs.{group}"
    old_chart = extract_chart(rev, tmp_path / "old")
    new_chart = tmp_path / "new" / "videojob-operator"
    shutil.copytree(CHART, new_chart)
    rename_group(old_chart, group, older=True)
    rename_group(new_chart, group, older=False)
    # An operator watching only this namespace; its readiness does not matter here (no --wait).
    values = {
        "fullnameOverride": release,
        "watchNamespaces": [namespace],
        "image": {"repository": "videojob-operator", "tag": "dev"},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
    }
    try:
        helm_cmd(testenv, "install", release, str(old_chart), "--namespace", namespace, values=values)
        crd = json.loads(kubectl(testenv, "get", "crd", crd_name, "-o", "json").stdout)
        assert "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {}), "crds/ is not owned"
        columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
        assert "Queue" not in columns, columns

        wait_for(
            lambda: (
                kubectl(testenv, "wait", "--for=condition=Established", f"crd/{crd_name}", "--timeout=5s").returncode
                == 0
            ),
            timeout=60,
            message=f"{crd_name} Established",
        )
        sample = yaml.safe_load((REPO / "manifests" / "samples" / "transcode.yaml").read_text())
        sample["apiVersion"] = f"{group}/v1alpha1"
        custom_objects.create_namespaced_custom_object(group, "v1alpha1", namespace, "videojobs", sample)

        if adopt == "take-ownership":
            helm_cmd(
                testenv, "upgrade", release, str(new_chart), "--namespace", namespace, "--take-ownership", values=values
            )
        else:
            with pytest.raises(AssertionError, match="invalid ownership metadata"):
                helm_cmd(testenv, "upgrade", release, str(new_chart), "--namespace", namespace, values=values)
            for args in (
                ["label", "--overwrite", "crd", crd_name, "app.kubernetes.io/managed-by=Helm"],
                [
                    "annotate",
                    "--overwrite",
                    "crd",
                    crd_name,
                    f"meta.helm.sh/release-name={release}",
                    f"meta.helm.sh/release-namespace={namespace}",
                ],
            ):
                r = kubectl(testenv, *args)
                assert r.returncode == 0, r.stderr
            helm_cmd(testenv, "upgrade", release, str(new_chart), "--namespace", namespace, values=values)

        crd = json.loads(kubectl(testenv, "get", "crd", crd_name, "-o", "json").stdout)
        rendered = helm(
            "template",
            release,
            str(new_chart),
            "--namespace",
            namespace,
            "--show-only",
            "templates/crd-videojobs.yaml",
            values=values,
        )
        assert rendered.returncode == 0, rendered.stderr
        expected = yaml.safe_load(rendered.stdout)
        assert crd["spec"]["versions"] == expected["spec"]["versions"], "the CRD is the new chart's"
        assert "Queue" in [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert custom_objects.get_namespaced_custom_object(
            group, "v1alpha1", namespace, "videojobs", sample["metadata"]["name"]
        ), "the VideoJob survived"
        (listed,) = json.loads(helm_cmd(testenv, "list", "--namespace", namespace, "-o", "json"))
        assert listed["revision"] == "2" and listed["chart"] != f"videojob-operator-{version}", listed

        helm_cmd(testenv, "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "90s")
        assert kubectl(testenv, "get", "crd", crd_name).returncode == 0, "crds.keep keeps the CRD (and VideoJobs)"
    finally:
        for plural in ("videojobs", "videojobpresets", "clustervideojobpresets"):
            kubectl(testenv, "delete", "crd", f"{plural}.{group}", "--ignore-not-found", "--wait=true")
        # kubectl's discovery cache would still list the deleted group for minutes.
        shutil.rmtree(Path.home() / ".kube" / "cache" / "discovery", ignore_errors=True)
