#!/usr/bin/env python3
"""`make demo`: one real VideoJob, end to end, on the local environment.

    .venv/bin/python hack/demo.py [--keep-operator-log] [--timeout 600]

1. Brings the local environment up if it is not (hack/testenv.py up; it stays up afterwards).
2. Installs (or refreshes) the VideoJob CRD from crds/videojobs.yaml.
3. Starts the operator (`videojob-operator`) as a subprocess watching the namespace `videojob-demo`; its log is
   .testenv/logs/operator-demo.log.
4. Generates demo media with FFmpeg's test sources and espeak-ng (an intro, a main clip of another size and
   frame rate, music, a camera clip, subtitles) and uploads it to MinIO, bucket `videojob-demo`, under in/.
5. Applies a VideoJob chaining concat, an audio mix, a text overlay, burned-in subtitles and picture-in-picture,
   and prints `kubectl get vj -w`-style lines (phase, progress, queue position) until it finishes.
6. Lists the artifacts (uri, size, sha256, duration, resolution) and the bucket's contents, stops the operator,
   and says how to look around and how to stop the environment. Exits 1, with the reason, if the job fails.

The demo runs on CPU (`hardware: cpu`): the local GPU node has no real GPU, so NVENC cannot work here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import DEFAULT_TESTENV_DIR, TESTENV_SCRIPT, load_testenv  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    TERMINAL,
    MediaFactory,
    OperatorProcess,
    VideoJobs,
    ensure_bucket,
    ensure_s3_secret,
    install_crd,
)

NAMESPACE = "videojob-demo"
BUCKET = "videojob-demo"


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def ensure_environment(testenv_dir: Path) -> None:
    status = subprocess.run([sys.executable, str(TESTENV_SCRIPT), "--dir", str(testenv_dir), "status", "--quiet"],
                            check=False)
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
            {"text": {"text": "Launch day", "size": 24, "color": "white", "position": "top-center", "box": True,
                      "start": 0, "end": 3}},
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
    return (f"{obj['metadata']['name']:<22} {st.get('phase') or '-'!s:<10} {float(st.get('progress') or 0):>6.1f}% "
            f"{str(queue) if queue else '-':>5}  {st.get('hardware') or '-'!s:<8} {st.get('node') or '-'!s:<6} "
            f"{time.monotonic() - started:>5.0f}s")


def watch(videojobs: VideoJobs, name: str, timeout: float, operator: OperatorProcess) -> dict[str, Any]:
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
        if not operator.running:
            raise SystemExit(f"demo: the operator exited ({operator.proc and operator.proc.returncode}):\n"
                             f"{operator.log_tail(40)}")
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
        "s3", endpoint_url=testenv.s3_endpoint_url, aws_access_key_id=testenv.aws_access_key_id,
        aws_secret_access_key=testenv.aws_secret_access_key, region_name=testenv.aws_default_region,
        config=Config(s3={"addressing_style": "path"}),
    )

    say("installing the VideoJob CRD (crds/videojobs.yaml)")
    install_crd(client.ApiextensionsV1Api(api))
    try:
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    except ApiException as e:
        if e.status != 409:
            raise
    ensure_s3_secret(core_v1, NAMESPACE, testenv)

    say(f"generating demo media and uploading it to s3://{BUCKET}/in/")
    work = testenv.dir / "demo-media"
    work.mkdir(parents=True, exist_ok=True)
    ensure_bucket(s3, BUCKET)
    for key, path in make_media(MediaFactory(work, s3)).items():
        s3.upload_file(str(path), BUCKET, f"in/{key}")
        print(f"    s3://{BUCKET}/in/{key:<10} {human(path.stat().st_size):>10}")

    log_path = testenv.dir / "logs" / "operator-demo.log"
    operator = OperatorProcess.for_testenv(testenv, [NAMESPACE], log_path, max_running=2, max_running_gpu=0,
                                           progress_interval=1)
    say(f"starting the operator (log: {log_path})")
    operator.start()
    videojobs = VideoJobs(client.CustomObjectsApi(api), NAMESPACE)
    name = f"promo-{time.strftime('%H%M%S')}"
    try:
        say(f"applying VideoJob {NAMESPACE}/{name}: concat -> audio mix -> text -> subtitles -> pip")
        videojobs.create(name, chain_spec(name))
        final = watch(videojobs, name, args.timeout, operator)
    finally:
        say("stopping the operator")
        operator.stop()

    status = final.get("status") or {}
    if status.get("phase") != "Succeeded":
        print(f"\ndemo: VideoJob {name} ended {status.get('phase')}: {status.get('reason')}: {status.get('message')}",
              file=sys.stderr)
        print(f"operator log: {log_path}\n{operator.log_tail(30)}", file=sys.stderr)
        return 1

    say("artifacts")
    for a in status.get("artifacts", []):
        size = f"{a.get('width')}x{a.get('height')}" if a.get("width") else "-"
        duration = f"{a['duration']:.2f}s" if a.get("duration") is not None else "-"
        codecs = f"{a.get('videoCodec') or '-'}/{a.get('audioCodec') or '-'}"
        print(f"    {a['uri']}\n        kind {a.get('kind', 'video')}, {human(a['size'])}, duration {duration}, "
              f"resolution {size}, codecs {codecs}\n        sha256 {a['sha256']}")
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
The operator was stopped; `make run` starts it again (VideoJobs with artifactReclaimPolicy: Delete carry
its finalizer, so deleting those waits for it).
Stop the environment: make testenv-down""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
