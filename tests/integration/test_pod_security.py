"""The container runtime enforces the transcoder pod's security settings.

The Job is the operator's own (`build_job_manifest`, less its owner reference: there is no VideoJob here), running
the real `videojob-transcode` entrypoint of `videojob-transcoder:dev`. Its one input is an http URL of a server
this test runs on TESTENV_HOST_IP that answers with a body it trickles out a byte at a time until the test ends, so
the transcoder stays Running, in the middle of its fetch, while the test looks at it:

- from this machine's /proc (the container's processes run here; the test runs as root): uid and gid 65532, no
  capabilities (effective, permitted or bounding), no_new_privs, a seccomp filter, a PID namespace of its own, a
  root that is not this machine's, and a read-only root mount;
- through `kubectl exec` (the API server -> kubelet -> containerd path): writes to the root filesystem fail with
  EROFS while /work and /tmp are writable, and the `ffmpeg` the transcoder would run is the image's
  /usr/bin/ffmpeg, a different file from this machine's.
"""

from __future__ import annotations

import contextlib
import errno
import http.server
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TestEnv
from videojob.controller.jobs import CONTAINER_NAME, RUN_AS_USER, build_job_manifest
from videojob.controller.settings import Settings

pytestmark = pytest.mark.integration


class TricklingServer:
    """An HTTP server on `host` whose every GET answers 200 with a large Content-Length, then one byte every second
    until `release()`: a fetch that neither finishes nor times out."""

    def __init__(self, host: str) -> None:
        self.released = threading.Event()
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                with contextlib.suppress(OSError):
                    while not outer.released.wait(1.0):
                        self.wfile.write(b"\0")
                        self.wfile.flush()

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="trickling-http", daemon=True)

    def __enter__(self) -> TricklingServer:
        self._thread.start()
        return self

    def release(self) -> None:
        self.released.set()

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def trickling_server(testenv: TestEnv) -> Iterator[TricklingServer]:
    with TricklingServer(testenv.host_ip) as server:
        yield server


# ---------------------------------------------------------------------------------------------------------------
# helpers


# What a failure shows of /proc/PID/status.
STATUS_FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


def _proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def processes_with_env(entry: str) -> list[int]:
    """This machine's running processes whose environment has `entry` (NAME=value)."""
    needle = entry.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state not in ("Z", "X"):
            found.append(int(name))
    return sorted(found)


def root_mount_options(pid: int) -> str:
    """The mount options of / as process `pid` sees it (the last mount there: the one in effect)."""
    found = None
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/":
            found = fields[5]
    if found is not None:
        return found
    raise AssertionError(f"no / in /proc/{pid}/mountinfo")


def kubectl_exec(testenv: TestEnv, namespace: str, pod: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "exec", "-n", namespace, pod, "-c", CONTAINER_NAME, "--", *command],
        capture_output=True, text=True, env=testenv.subprocess_env(), check=False, timeout=60,
    )  # fmt: skip


# Run inside the container by `kubectl exec`: tries each path, prints {path: "ok" | errno name} as JSON, and the
# process's uid/gid/groups/CapEff and the ffmpeg on PATH.
PROBE = """
import errno, json, os, shutil, sys
out = {"paths": {}}
for path in sys.argv[1:]:
    try:
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
        out["paths"][path] = "ok"
    except OSError as e:
        out["paths"][path] = errno.errorcode.get(e.errno, str(e.errno))
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
out["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())]
out["CapEff"] = status["CapEff"].strip()
out["ffmpeg"] = shutil.which("ffmpeg")
st = os.stat(out["ffmpeg"])
out["ffmpeg_stat"] = [st.st_dev, st.st_ino]
print(json.dumps(out))
"""


# ---------------------------------------------------------------------------------------------------------------


def test_transcoder_pod_runs_non_root_without_capabilities_on_a_read_only_root(
    testenv: TestEnv,
    core_v1: Any,
    batch_v1: Any,
    namespace: str,
    bucket: str,
    trickling_server: TricklingServer,
    wait_for: Any,
) -> None:
    settings = Settings(
        allow_http=True,
        transcoder_env={"VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "true"},  # TESTENV_HOST_IP is a private address
        s3_endpoint_url=testenv.s3_endpoint_url,
        priority_classes={"urgent": "", "normal": "", "low": ""},  # none are installed in this environment
        progress_interval=3600,
    )
    # What the operator keeps in each namespace: the transcoder's ServiceAccount and the S3 credentials Secret.
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": settings.transcoder_service_account}}
    core_v1.create_namespaced_service_account(namespace, account)
    core_v1.create_namespaced_secret(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": settings.s3_secret},
            "stringData": {
                "AWS_ACCESS_KEY_ID": testenv.aws_access_key_id,
                "AWS_SECRET_ACCESS_KEY": testenv.aws_secret_access_key,
            },
        },
    )
    name = f"secure-{uuid.uuid4().hex[:10]}"
    input_path = f"/{name}.mp4"
    vj = {
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": {
            "inputs": [{"name": "in", "uri": trickling_server.url + input_path}],
            "output": {"uri": f"s3://{bucket}/out/"},  # checked before the fetch; never written
            "retries": 0,
        },
    }
    job = build_job_manifest(vj, "cpu", settings)
    del job["metadata"]["ownerReferences"]  # no VideoJob: the garbage collector would delete an orphan at once
    batch_v1.create_namespaced_job(namespace, job)
    job_name = job["metadata"]["name"]

    def fetching() -> Any:
        pods = core_v1.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}").items
        ended = [(p.metadata.name, p.status.phase, p.status.container_statuses) for p in pods if p.status.phase in
                 ("Succeeded", "Failed")]  # fmt: skip
        assert not ended, f"the transcoder pod ended instead of fetching: {ended}"
        running = [p for p in pods if p.status.phase == "Running"]
        return running[0] if running and input_path in trickling_server.requests else None

    pod = wait_for(fetching, timeout=120, message="the transcoder pod to run and fetch its input")
    pod_name = pod.metadata.name
    assert pod.spec.node_name == "cpu-0"

    # --- this machine's view of the container's processes ---------------------------------------------------
    pids = processes_with_env(f"VIDEOJOB_NAME={name}")
    assert pids, "no process of the transcoder container found in /proc"
    for pid in pids:
        st = _proc_status(pid)
        shown = {k: st.get(k) for k in STATUS_FIELDS}
        ctx = f"pid {pid} {Path(f'/proc/{pid}/cmdline').read_bytes()!r}: {shown}"
        assert st["Uid"].split() == [str(RUN_AS_USER)] * 4, ctx
        assert st["Gid"].split() == [str(RUN_AS_USER)] * 4, ctx
        assert st["Groups"].split() == [str(RUN_AS_USER)], ctx  # fsGroup, and nothing of the image's /etc/group
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            assert int(st[cap], 16) == 0, f"{cap}: {ctx}"
        assert st["NoNewPrivs"] == "1", ctx  # allowPrivilegeEscalation: false
        assert st["Seccomp"] == "2", ctx  # a filter: the RuntimeDefault profile
        assert len(st["NSpid"].split()) == 2, f"not in a PID namespace of its own: {ctx}"
        mount_opts = root_mount_options(pid)
        assert "ro" in mount_opts.split(","), f"root mounted {mount_opts}: {ctx}"
        root = os.stat(f"/proc/{pid}/root/")
        assert (root.st_dev, root.st_ino) != (os.stat("/").st_dev, os.stat("/").st_ino), "the container's / is ours"
    transcoder = next(p for p in pids if b"videojob-transcode" in Path(f"/proc/{p}/cmdline").read_bytes())
    image_ffmpeg = os.stat(f"/proc/{transcoder}/root/usr/bin/ffmpeg")
    if Path("/usr/bin/ffmpeg").exists():
        host_ffmpeg = os.stat("/usr/bin/ffmpeg")
        assert (image_ffmpeg.st_dev, image_ffmpeg.st_ino) != (host_ffmpeg.st_dev, host_ffmpeg.st_ino)

    # --- inside the container, through the API server and the kubelet --------------------------------------------
    r = kubectl_exec(
        testenv, namespace, pod_name, "python3", "-c", PROBE,
        "/etc/videojob-probe", "/usr/videojob-probe", "/videojob-probe", "/work/videojob-probe", "/tmp/videojob-probe",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    probe = json.loads(r.stdout)
    assert probe["paths"] == {
        "/etc/videojob-probe": errno.errorcode[errno.EROFS],
        "/usr/videojob-probe": errno.errorcode[errno.EROFS],
        "/videojob-probe": errno.errorcode[errno.EROFS],
        "/work/videojob-probe": "ok",
        "/tmp/videojob-probe": "ok",
    }, probe
    assert probe["ids"] == [RUN_AS_USER, RUN_AS_USER, RUN_AS_USER, RUN_AS_USER, [RUN_AS_USER]], probe
    assert int(probe["CapEff"], 16) == 0, probe
    assert probe["ffmpeg"] == "/usr/bin/ffmpeg", probe
    # The same file the transcoder's own mount namespace has at /usr/bin/ffmpeg (the image's).
    assert probe["ffmpeg_stat"] == [image_ffmpeg.st_dev, image_ffmpeg.st_ino], probe
    version = kubectl_exec(testenv, namespace, pod_name, "ffmpeg", "-hide_banner", "-version")
    assert version.returncode == 0 and version.stdout.startswith("ffmpeg version"), version.stdout + version.stderr

    # Still fetching: everything above happened to the one pod, which has not been restarted.
    pod = core_v1.read_namespaced_pod(pod_name, namespace)
    (cs,) = pod.status.container_statuses
    assert pod.status.phase == "Running" and cs.restart_count == 0 and cs.state.running, cs
