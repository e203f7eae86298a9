#!/usr/bin/env python3
"""`make demo`: one real VideoJob, end to end, on the local environment.

    .venv/bin/python hack/demo.py [--keep-operator-log] [--timeout 600]

1. Brings the local environment up if it is not (hack/testenv.py up; it stays up afterwards): a real cluster
   with two nodes (kubelet + containerd) into which `make images` imported our images.
2. Creates the namespace `videojob-demo` and its `videojob-s3` Secret (MinIO's credentials).
3. Installs (or upgrades) the Helm chart charts/videojob-operator as release `videojob-operator` in
   `videojob-system`, exactly as a user would, with the local images and the MinIO endpoint, watching
   `videojob-demo`; the operator runs as the pod of the chart's Deployment (never as a process here), and helm
   installs the chart's CRD.
4. Generates demo media with FFmpeg's test sources and espeak-ng (an intro, a main clip of another size and
   frame rate, music, a camera clip, subtitles) and uploads it to MinIO, bucket `videojob-demo`, under in/.
5. Applies a VideoJob chaining concat, an audio mix, a text overlay, burned-in subtitles and picture-in-picture
   with `kubectl apply`, and prints `kubectl get vj -w`-style lines (phase, progress, queue position, node) until
   it finishes.
6. Lists the artifacts (uri, size, sha256, duration, resolution) and the bucket's contents, shows the operator's
   pod, the transcoder pod's image and the helm release, and says how to look around and how to stop the
   environment. Exits 1, with the reason and the operator's log, if the job fails.

The demo runs on CPU (`hardware: cpu`): the local GPU node has no real GPU, so NVENC cannot work here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.harness import (  # noqa: E402
    TERMINAL,
    MediaFactory,
    VideoJobs,
    ensure_bucket,
    ensure_s3_secret,
    videojob,
)
from devkit.testenv import DEFAULT_TESTENV_DIR, TESTENV_SCRIPT, load_testenv  # noqa: E402

NAMESPACE = "videojob-demo"
BUCKET = "videojob-demo"
OPERATOR_NAMESPACE = "videojob-system"
RELEASE = "videojob-operator"
CHART = REPO / "charts" / "videojob-operator"


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def ensure_environment(testenv_dir: Path) -> None:
    status = subprocess.run(
        [sys.executable, str(TESTENV_SCRIPT), "--dir", str(testenv_dir), "status", "--quiet"], check=False
    )
    if status.returncode == 0:
        say("local environment is up")
        return
    say("starting the local environment (hack/testenv.py up)")
    up = subprocess.run([sys.executable, str(TESTENV_SCRIPT), "--dir", str(testenv_dir), "up"], check=False)
    if up.returncode != 0:
        raise SystemExit(f"demo: the local environment did not start (hack/testenv.py up exited {up.returncode})")


def make_media(media: MediaFactory) -> dict[str, Path]:
    """Small, varied inputs: concat must normalise size and frame rate; the intro speaks."""
    intro = media.with_speech(media.video(seconds=3.0, size="320x240", fps=25))
    main = media.video(seconds=3.0, size="240x180", fps=15, container="avi")
    cam = media.video(seconds=2.0, size="160x120", fps=25, audio=False, color=True)
    music = media.audio(seconds=6.0, fmt="mp3")
    subs = media.root / "demo.srt"
    subs.write_text(
        "1\n00:00:00,500 --> 00:00:02,500\nHello from the VideoJob operator\n\n"
        "2\n00:00:03,000 --> 00:00:05,500\nconcat, audio, text, subtitles, pip\n"
    )
    return {"intro.mp4": intro, "main.avi": main, "cam.mp4": cam, "music.mp3": music, "demo.srt": subs}


def chain_spec(name: str) -> dict[str, Any]:
    src = f"s3://{BUCKET}/in"
    return {
        "priority": 2,
        "hardware": "cpu",
        "retries": 1,
        "inputs": [
            {"name": "intro", "uri": f"{src}/intro.mp4"},
            {"name": "main", "uri": f"{src}/main.avi"},
            {"name": "music", "uri": f"{src}/music.mp3"},
            {"name": "subs", "uri": f"{src}/demo.srt"},
            {"name": "cam", "uri": f"{src}/cam.mp4"},
        ],
        "operations": [
            {"concat": {"inputs": ["intro", "main"]}},
            {"audio": {"input": "music", "mode": "mix", "offset": 0.5, "volume": 0.3, "fadeOut": 1}},
            {
                "text": {
                    "text": "Launch day",
                    "size": 24,
                    "color": "white",
                    "position": "top-center",
                    "box": True,
                    "start": 0,
                    "end": 3,
                }
            },
            {"subtitles": {"input": "subs", "emit": ["vtt"]}},
            {"pip": {"input": "cam", "position": "bottom-right", "scale": 0.3, "start": 1}},
        ],
        "output": {
            "uri": f"s3://{BUCKET}/out/{name}/",
            "name": "promo",
            "container": "mp4",
            "video": {"codec": "h264", "crf": 28, "preset": "veryfast", "resolution": "320x240", "fps": 25},
            "audio": {"codec": "aac", "bitrate": "96k"},
            "thumbnail": {"at": 1.0, "width": 160},
        },
    }


def progress_line(obj: dict[str, Any], started: float) -> str:
    st = obj.get("status") or {}
    queue = st.get("queuePosition")
    return (
        f"{obj['metadata']['name']:<22} {st.get('phase') or '-'!s:<10} {float(st.get('progress') or 0):>6.1f}% "
        f"{str(queue) if queue else '-':>5}  {st.get('hardware') or '-'!s:<8} {st.get('node') or '-'!s:<6} "
        f"{time.monotonic() - started:>5.0f}s"
    )


def tool(testenv: Any, name: str, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """kubectl or helm of the local environment, with its kubeconfig; a failure ends the demo with its output."""
    r = subprocess.run(
        [str(testenv.dir / "bin" / name), *args], input=stdin, capture_output=True, text=True, check=False,
        env=testenv.subprocess_env(), timeout=300,
    )  # fmt: skip
    if check and r.returncode != 0:
        raise SystemExit(f"demo: {name} {' '.join(args[:3])} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def install_operator(testenv: Any) -> None:
    """helm upgrade --install of our chart with the images `make images` built and this environment's MinIO."""
    values = {
        "image": {"repository": "videojob-operator", "tag": "dev"},
        "transcoder": {
            "image": {"repository": "videojob-transcoder", "tag": "dev"},
            "progressInterval": 1,
            # MinIO listens on this machine's private address, which the input policy refuses by default.
            "env": {"VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "true"},
            # Two cores here: a demo transcoder asks for half of one so it never waits for a whole core.
            "resources": {"cpu": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}},
        },
        # Only the demo's namespace: the tests' own operators watch theirs on the same cluster.
        "watchNamespaces": [NAMESPACE],
        # The CRD is the environment's (applied above), shared with the tests' releases: no release owns it.
        "crds": {"install": False},
        "maxRunning": 2,
        "maxRunningGpu": 0,  # the local GPU node has no GPU: NVENC cannot work here
        "s3": {"endpointUrl": testenv.s3_endpoint_url, "region": testenv.aws_default_region},
    }
    tool(testenv, "helm", "upgrade", "--install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE,
         "--create-namespace", "--wait", "--timeout", "180s", "--values", "-", stdin=json.dumps(values))  # fmt: skip


def operator_log(testenv: Any, lines: int = 40) -> str:
    return tool(testenv, "kubectl", "-n", OPERATOR_NAMESPACE, "logs", f"deployment/{RELEASE}", f"--tail={lines}",
                check=False)  # fmt: skip


def watch(videojobs: VideoJobs, name: str, timeout: float, operator_running: Any) -> dict[str, Any]:
    print(f"{'NAME':<22} {'PHASE':<10} {'PROGRESS':>7} {'QUEUE':>5}  {'HARDWARE':<8} {'NODE':<6} {'AGE':>6}")
    started = time.monotonic()
    last = ""
    while True:
        obj = videojobs.get(name)
        line = progress_line(obj, started)
        if line.rsplit(None, 1)[0] != last:
            print(line, flush=True)
            last = line.rsplit(None, 1)[0]
        if (obj.get("status") or {}).get("phase") in TERMINAL:
            return obj
        if not operator_running():
            raise SystemExit("demo: the operator's Deployment has no ready pod")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"demo: {name} did not finish within {timeout:.0f}s; last: {line}")
        time.sleep(0.5)  # a progress display polls at human speed


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def main() -> int:
    parser = argparse.ArgumentParser(description="Run one VideoJob end to end on the local environment.")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the VideoJob")
    args = parser.parse_args()

    testenv_dir = Path(os.environ.get("TESTENV_DIR") or DEFAULT_TESTENV_DIR)
    ensure_environment(testenv_dir)
    testenv = load_testenv(testenv_dir)

    import boto3
    from botocore.config import Config
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = config.new_client_from_config(config_file=testenv.kubeconfig)
    core_v1 = client.CoreV1Api(api)
    s3 = boto3.client(
        "s3",
        endpoint_url=testenv.s3_endpoint_url,
        aws_access_key_id=testenv.aws_access_key_id,
        aws_secret_access_key=testenv.aws_secret_access_key,
        region_name=testenv.aws_default_region,
        config=Config(s3={"addressing_style": "path"}),
    )

    try:
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    except ApiException as e:
        if e.status != 409:
            raise
    ensure_s3_secret(core_v1, NAMESPACE, testenv)
    say("installing the CRD: kubectl apply --server-side -f crds/videojobs.yaml (the environment's, shared)")
    tool(testenv, "kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / "videojobs.yaml"))
    tool(testenv, "kubectl", "wait", "--for=condition=Established", "crd/videojobs.videojob.dev", "--timeout=60s")
    say(f"installing the operator: helm upgrade --install {RELEASE} charts/videojob-operator -n {OPERATOR_NAMESPACE}")
    install_operator(testenv)
    apps_v1 = client.AppsV1Api(api)

    def operator_running() -> bool:
        dep = apps_v1.read_namespaced_deployment_status(RELEASE, OPERATOR_NAMESPACE)
        return bool(dep.status and dep.status.ready_replicas)

    print(tool(testenv, "kubectl", "-n", OPERATOR_NAMESPACE, "get", "pods", "-o", "wide"), end="")

    say(f"generating demo media and uploading it to s3://{BUCKET}/in/")
    work = testenv.dir / "demo-media"
    work.mkdir(parents=True, exist_ok=True)
    ensure_bucket(s3, BUCKET)
    for key, path in make_media(MediaFactory(work, s3)).items():
        s3.upload_file(str(path), BUCKET, f"in/{key}")
        print(f"    s3://{BUCKET}/in/{key:<10} {human(path.stat().st_size):>10}")

    videojobs = VideoJobs(client.CustomObjectsApi(api), NAMESPACE)
    name = f"promo-{time.strftime('%H%M%S')}"
    say(f"kubectl apply: VideoJob {NAMESPACE}/{name}: concat -> audio mix -> text -> subtitles -> pip")
    manifest = {**videojob(name, chain_spec(name)), "metadata": {"name": name, "namespace": NAMESPACE}}
    print("    " + tool(testenv, "kubectl", "apply", "-f", "-", stdin=json.dumps(manifest)).strip())
    final = watch(videojobs, name, args.timeout, operator_running)

    status = final.get("status") or {}
    if status.get("phase") != "Succeeded":
        print(
            f"\ndemo: VideoJob {name} ended {status.get('phase')}: {status.get('reason')}: {status.get('message')}",
            file=sys.stderr,
        )
        print(
            f"operator log (kubectl -n {OPERATOR_NAMESPACE} logs deployment/{RELEASE}):\n{operator_log(testenv)}",
            file=sys.stderr,
        )
        return 1

    say("artifacts")
    for a in status.get("artifacts", []):
        size = f"{a.get('width')}x{a.get('height')}" if a.get("width") else "-"
        duration = f"{a['duration']:.2f}s" if a.get("duration") is not None else "-"
        codecs = f"{a.get('videoCodec') or '-'}/{a.get('audioCodec') or '-'}"
        print(
            f"    {a['uri']}\n        kind {a.get('kind', 'video')}, {human(a['size'])}, duration {duration}, "
            f"resolution {size}, codecs {codecs}\n        sha256 {a['sha256']}"
        )
    say("where it ran")
    pods = core_v1.list_namespaced_pod(NAMESPACE, label_selector=f"videojob.dev/name={name}").items
    for pod in pods:
        assert pod.metadata and pod.spec and pod.status  # a pod read from the API has all three
        images = ", ".join(str(c.image) for c in pod.spec.containers)
        print(f"    transcoder pod {pod.metadata.name} on {pod.spec.node_name}: image {images}, {pod.status.phase}")
    op_pods = core_v1.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector="app.kubernetes.io/component=operator")
    for pod in op_pods.items:
        assert pod.metadata and pod.spec and pod.status
        print(
            f"    operator pod {pod.metadata.name} on {pod.spec.node_name}: image {pod.spec.containers[0].image}, "
            f"{pod.status.phase}"
        )
    print("    " + tool(testenv, "helm", "list", "-A").strip().replace("\n", "\n    "))
    say(f"bucket s3://{BUCKET}")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            print(f"    {o['Key']:<44} {human(o['Size']):>10}")

    print(f"""
The environment is still up. Look around:
    source {testenv.dir.relative_to(REPO) if testenv.dir.is_relative_to(REPO) else testenv.dir}/env
    kubectl get vj -A
    kubectl describe vj -n {NAMESPACE} {name}
    kubectl get jobs,pods -n {NAMESPACE}
    kubectl -n {OPERATOR_NAMESPACE} logs deployment/{RELEASE}
    helm list -A
The operator keeps running in the cluster. Stop the environment: make testenv-down""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
