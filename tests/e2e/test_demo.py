"""`make demo`, the README's first command, really works: hack/demo.py installs the chart and runs its chained
VideoJob to Succeeded, with the operator and the transcoder in containers of our images.

It runs against the session's environment (TESTENV_DIR) and uses the demo's own namespaces and bucket, as a
developer's `make demo` would; it leaves them in place, as the demo does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devkit.containers import container_processes
from tests.conftest import REPO, TestEnv

pytestmark = pytest.mark.e2e


def host_operators_of(namespace: str) -> list[int]:
    """`videojob-operator` processes in this machine's own mount namespace (in no container) that handle
    `namespace`: watching it or the whole cluster. (Other work on the machine may run operators of its own for
    other namespaces, e.g. the integration tests or a benchmark.)"""
    own = os.readlink("/proc/self/ns/mnt")
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if not any(a.endswith(b"videojob-operator") for a in argv[:2]):
                continue
            if os.readlink(f"/proc/{entry}/ns/mnt") != own:
                continue
            environ = dict(
                v.split(b"=", 1) for v in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") if b"=" in v
            )
        except OSError:
            continue
        watched = environ.get(b"VIDEOJOB_NAMESPACES", b"").decode().split(",")
        if namespace in watched or watched == [""]:
            out.append(int(entry))
    return out


def test_make_demo_runs_a_chained_videojob_to_succeeded(testenv: TestEnv, s3: Any, core_v1: Any) -> None:
    env = {**os.environ, "TESTENV_DIR": str(testenv.dir)}
    run = subprocess.run(
        [sys.executable, str(REPO / "hack" / "demo.py"), "--timeout", "300"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert re.search(r"^promo-\d{6}\s+Succeeded\s+100\.0%", run.stdout, flags=re.M), output
    video = re.search(r"^\s+(s3://videojob-demo/out/promo-\d{6}/promo\.mp4)$", run.stdout, flags=re.M)
    assert video, output
    assert re.search(r"duration \d+\.\d+s, resolution \d+x\d+, codecs h264/aac", run.stdout), output
    bucket, key = video.group(1).removeprefix("s3://").split("/", 1)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0

    # The operator is the chart's pod, from our image, running in a container; nothing runs it on this machine.
    helm = subprocess.run([str(testenv.dir / "bin" / "helm"), "list", "-A", "-o", "json"], capture_output=True,
                          text=True, env=testenv.subprocess_env(), check=True)  # fmt: skip
    releases = {(r["name"], r["namespace"], r["status"]) for r in json.loads(helm.stdout)}
    assert ("videojob-operator", "videojob-system", "deployed") in releases, releases
    (pod,) = core_v1.list_namespaced_pod("videojob-system", label_selector="app.kubernetes.io/component=operator").items
    assert pod.status.phase == "Running" and pod.spec.containers[0].image == "videojob-operator:dev"
    cid = pod.status.container_statuses[0].container_id.split("://")[-1]
    assert container_processes(cid), "the operator pod's container has no process"
    assert not host_operators_of("videojob-demo"), "an operator of the demo runs on this machine, in no container"
    # The transcoder ran as the pod of its Job, from the transcoder image.
    name = re.search(r"transcoder pod (\S+) on (cpu-0|gpu-0): image videojob-transcoder:dev, Succeeded", run.stdout)
    assert name, output
    pod = core_v1.read_namespaced_pod(name.group(1), "videojob-demo")
    assert pod.status.container_statuses[0].image_id, "the runtime reports no image for the transcoder container"
