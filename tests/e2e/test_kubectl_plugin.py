"""`kubectl videojob` against the local cluster, with the operator installed by our chart.

The acceptance test drives `kubectl videojob submit --watch` in a real terminal: a tmux session of its own (its
own server socket), whose screen is read with `tmux capture-pane` while the job runs. It checks what a person sees:
the local file uploaded with a progress bar, the live line's progress advancing and never going back, and the
artifacts table at the end. The other commands run as subprocesses (no terminal), as a script would run them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit import mediagen
from devkit.harness import Diagnostics, VideoJobs
from tests.conftest import REPO, TestEnv

pytestmark = pytest.mark.e2e

KUBECTL = REPO / ".testenv" / "bin" / "kubectl"
VENV_BIN = Path(sys.executable).parent
PERCENT = re.compile(r"(\d{1,3}\.\d)%")


def plugin_env(testenv: TestEnv) -> dict[str, str]:
    """The user's environment: kubeconfig, their S3 credentials and endpoint, and the plugin on PATH."""
    env = testenv.subprocess_env()
    env["PATH"] = f"{VENV_BIN}:{KUBECTL.parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.pop("VIDEOJOB_UPLOAD_TO", None)
    return env


def kubectl_videojob(
    testenv: TestEnv, namespace: str, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(KUBECTL), "videojob", *args, "-n", namespace],
        capture_output=True,
        text=True,
        env=plugin_env(testenv),
        timeout=timeout,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"kubectl videojob {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done


class Tmux:
    """A tmux server of the test's own (-L), one window of a fixed size, read with capture-pane."""

    def __init__(self, socket: str, width: int = 250, height: int = 50) -> None:
        self.socket = socket
        self.width, self.height = width, height

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, f"tmux {' '.join(args)}: {done.stderr}"
        return done.stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={_quote(v)}" for k, v in env.items() if k in _PASSED or k.startswith("AWS_"))
        self.run(
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            f"env -u COLUMNS -u LINES {exports} TERM=xterm-256color {command}; echo EXIT=$?; sleep 600",
        )

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-S", "-200", "-t", "t")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30, check=False)


_PASSED = ("PATH", "KUBECONFIG", "S3_ENDPOINT_URL", "HOME")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


@pytest.fixture
def tmux() -> Any:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (hack/install-deps.sh installs it)", pytrace=False)
    session = Tmux(f"vj-{uuid.uuid4().hex[:8]}")
    try:
        yield session
    finally:
        session.close()


def test_submit_watch_in_a_terminal_uploads_shows_advancing_progress_and_the_artifacts(
    run_operator: Any,
    testenv: TestEnv,
    namespace: str,
    bucket: str,
    s3: Any,
    tmux: Tmux,
    tmp_path: Path,
    diagnostics: Diagnostics,
) -> None:
    run_operator(progress_interval=0.3)
    # Long enough to encode for several seconds on two shared cores: the line must show progress in between.
    source = mediagen.video("mp4", size=(640, 360), fps=30, duration=24)
    local = tmp_path / "talk.mp4"
    shutil.copyfile(source, local)
    name = "talk-cut"
    command = (
        f"{KUBECTL} videojob submit -n {namespace} --name {name} --input main={local} "
        f"--text 'Launch day' --resolution 1280x720 --crf 20 --output s3://{bucket}/out/{name}/ --watch"
    )
    tmux.start(command, plugin_env(testenv))

    seen: list[float] = []
    screens: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        screen = tmux.screen()
        screens.append(screen)
        live = [line for line in screen.splitlines() if line.startswith(name) and "ETA" in line]
        if live:
            value = float(PERCENT.findall(live[-1])[-1])
            if not seen or value != seen[-1]:
                seen.append(value)
        if "EXIT=" in screen:
            break
        time.sleep(0.1)  # the terminal is sampled, not waited on: how often decides what is seen of the bar
    final = screens[-1]
    assert "EXIT=0" in final, f"the plugin did not succeed:\n{final}\n{diagnostics.report([name])}"
    # The upload: a progress bar for the local file, which landed in the default place (uploads/ of the bucket).
    assert f"upload {local.name}" in final, final
    assert videojob_input(testenv, namespace, name).startswith(f"s3://{bucket}/uploads/{name}/main/")
    # The live line: never backwards, through intermediate values, to 100.
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert len([v for v in seen if 0 < v < 100]) >= 3, f"too few intermediate progress values seen: {seen}"
    assert seen[-1] == 100.0, seen
    # The end: a success line and the artifacts table (header and the video's URI).
    assert f"{name} Succeeded in" in final, final
    header = next((line for line in final.splitlines() if line.split()[:3] == ["KIND", "URI", "SIZE"]), None)
    assert header is not None, f"no artifacts table:\n{final}"
    assert f"s3://{bucket}/out/{name}/output.mp4" in final, final
    assert "1280x720" in final, final


def videojob_input(testenv: TestEnv, namespace: str, name: str) -> str:
    done = kubectl_videojob(testenv, namespace, "list", "-o", "json")
    items = {o["metadata"]["name"]: o for o in json.loads(done.stdout)["items"]}
    return str(items[name]["spec"]["inputs"][0]["uri"])


def test_the_other_commands_on_one_job(
    run_operator: Any,
    testenv: TestEnv,
    namespace: str,
    bucket: str,
    media: Any,
    videojobs: VideoJobs,
    tmp_path: Path,
    diagnostics: Diagnostics,
) -> None:
    run_operator(progress_interval=0.5)
    clip = media.upload(media.video(seconds=2), bucket, "in/clip.mp4")
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "videojob.dev/v1alpha1",
                "kind": "VideoJob",
                "metadata": {"name": "clip"},
                "spec": {
                    "inputs": [{"name": "main", "uri": clip}],
                    "output": {"uri": f"s3://{bucket}/out/clip/", "thumbnail": {"at": 0.5}},
                },
            }
        )
    )
    # Not a terminal: one line per change, the exit code says Succeeded.
    done = kubectl_videojob(testenv, namespace, "submit", "-f", str(manifest), "--watch", timeout=240)
    assert "clip Succeeded in" in done.stderr and "output.mp4" in done.stdout, done.stderr

    # list: one row, -o json the objects.
    table = kubectl_videojob(testenv, namespace, "list").stdout
    assert re.search(r"^clip\s+Succeeded\s+100%", table, re.M), table
    listed = json.loads(kubectl_videojob(testenv, namespace, "list", "-o", "json").stdout)
    assert [o["metadata"]["name"] for o in listed["items"]] == ["clip"]

    # artifacts: the table, presigned URLs that work, and a download checked against the sha256.
    rows = kubectl_videojob(testenv, namespace, "artifacts", "clip").stdout
    assert "thumbnail" in rows and f"s3://{bucket}/out/clip/output.mp4" in rows, rows
    urls = json.loads(kubectl_videojob(testenv, namespace, "artifacts", "clip", "--url", "-o", "json").stdout)
    import urllib.request

    with urllib.request.urlopen(urls[0]["url"], timeout=10) as response:
        assert response.status == 200 and len(response.read()) == urls[0]["size"]
    kubectl_videojob(testenv, namespace, "artifacts", "clip", "--download", str(tmp_path / "got"))
    assert sorted(p.name for p in (tmp_path / "got").iterdir()) == ["output.jpg", "output.mp4"]

    # logs of a finished job: its transcoder's output.
    logs = kubectl_videojob(testenv, namespace, "logs", "clip").stdout
    assert logs.strip(), "no transcoder output"

    # retry: a new VideoJob from the same spec, marked as a retry.
    kubectl_videojob(testenv, namespace, "retry", "clip")
    again = videojobs.get("clip-retry-1")
    assert again["spec"]["inputs"] == videojobs.get("clip")["spec"]["inputs"]
    assert again["metadata"]["annotations"]["videojob.dev/retry-of"] == "clip"
    # cancel it (whether it is still queued or already running) and watch: exit 1, one line saying Cancelled.
    kubectl_videojob(testenv, namespace, "cancel", "clip-retry-1")
    watched = kubectl_videojob(testenv, namespace, "watch", "clip-retry-1", check=False, timeout=120)
    assert watched.returncode == 1 and "clip-retry-1 Cancelled" in watched.stderr, watched.stderr
    # `kubectl wait --for=condition=Finished` returns for a cancelled job too (Succeeded would never come).
    waited = subprocess.run(
        [str(KUBECTL), "wait", "-n", namespace, "--for=condition=Finished", "--timeout=30s", "vj/clip-retry-1"],
        capture_output=True,
        text=True,
        env=plugin_env(testenv),
        timeout=60,
        check=False,
    )
    assert waited.returncode == 0, waited.stderr
    # cancelling a finished job is an error in one line.
    refused = kubectl_videojob(testenv, namespace, "cancel", "clip", check=False)
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        "error: videojob 'clip' already finished (Succeeded); nothing to cancel"
    ], refused.stderr


def test_errors_are_one_line(testenv: TestEnv, namespace: str, crd: Any, tmp_path: Path) -> None:
    missing = kubectl_videojob(testenv, namespace, "watch", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"error: videojob 'nope' not found in namespace '{namespace}'"]
    bad = kubectl_videojob(
        testenv,
        namespace,
        "submit",
        "--input",
        "main=s3://media/in/a.mp4",
        "--text",
        "hi",
        "--output",
        "s3://media/out/x/",
        "--resolution",
        "1281x720",
        check=False,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "resolution" in bad.stderr and "must be WIDTHxHEIGHT" in bad.stderr
    no_file = kubectl_videojob(
        testenv,
        namespace,
        "submit",
        "--input",
        f"main={tmp_path}/none.mp4",
        "--output",
        "s3://media/out/x/",
        check=False,
    )
    assert no_file.returncode == 2 and "is not a file" in no_file.stderr, no_file.stderr
