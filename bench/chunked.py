#!/usr/bin/env python3
"""Chunked encoding on the real local cluster: one pod with 1 CPU against N pods with 1 CPU each, side by side.

    .venv/bin/python bench/chunked.py [--segments 2] [--seconds 120] [--preset ultrafast]   # needs make testenv-up

The operator is our Helm chart installed into a namespace of the bench's own (the e2e tests' values), except that
a CPU transcoder requests 900m and is limited to 1 CPU (`limits.cpu: 1`, enforced by the kubelet's cgroup), and
maxRunning is N. The source is a 1080p30 clip of `--seconds` (testsrc2 + sine, made once, cached in bench/out/) in
a MinIO bucket of the bench's own. Two VideoJobs with the same spec (h264 crf 23 `--preset`, aac, mp4, hardware
cpu), one after the other: the first in one pod, the second with `parallelism: N` (an Indexed Job of N segment
pods, then the join). Each is timed from its create request until the VideoJob is Succeeded (polled every 0.5 s),
and the speedup single / chunked is printed with the target (>= 0.85 x N) and PASS or FAIL. The results' frame
counts and durations are printed beside (they must match), and where the time went: each Job's span, each of its
pods' container span and the transcoder's own seconds (what is not in a pod is the Job controller's).

The machine's cores are shared with other sessions: the 1-min load average before and after each run is printed,
and a warning when it is above the cores the bench uses (then the pods did not get their CPU each, and the speedup
says more about the neighbours than about chunking). Cleans up on success, failure and Ctrl-C. Results also go to
bench/out/chunked.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.harness import empty_and_delete_bucket, ensure_bucket, ensure_s3_secret, install_crds  # noqa: E402
from devkit.operator_release import OperatorRelease, release_values  # noqa: E402
from devkit.testenv import DEFAULT_TESTENV_DIR, load_testenv  # noqa: E402

OUT = REPO / "bench" / "out"
TARGET_EFFICIENCY = 0.85


def job_spans(batch: Any, core: Any, namespace: str, seen: set[str]) -> list[dict[str, Any]]:
    """The Jobs of the namespace not reported before (the run's own: its Job, or its segments' Job and its join),
    each with the seconds from its creation to its start and to its completion (the Job controller's own times),
    and each of its pods: when its container started and ended (the kubelet's times, whole seconds) and how long
    the transcoder itself ran (its termination message), both from the Job's creation."""
    spans = []
    first = None
    for job in sorted(batch.list_namespaced_job(namespace).items, key=lambda j: j.metadata.creation_timestamp):
        if job.metadata.name in seen:
            continue
        seen.add(job.metadata.name)
        created, status = job.metadata.creation_timestamp, job.status
        first = first or created
        pods = []
        for pod in core.list_namespaced_pod(namespace, label_selector=f"job-name={job.metadata.name}").items:
            state = next(iter(pod.status.container_statuses or []), None)
            ended = state.state.terminated if state is not None and state.state else None
            if ended is None or ended.started_at is None or ended.finished_at is None:
                continue
            try:
                transcoder_s = float(json.loads(ended.message or "{}").get("seconds", 0))
            except ValueError:
                transcoder_s = None
            pods.append(
                {
                    "container_start_s": (ended.started_at - created).total_seconds(),
                    "container_end_s": (ended.finished_at - created).total_seconds(),
                    "transcoder_s": transcoder_s,
                }
            )
        spans.append(
            {
                "name": job.metadata.name,
                "completions": job.spec.completions or 1,
                "created_s": (created - first).total_seconds(),  # after the run's first Job
                "start_s": (status.start_time - created).total_seconds() if status.start_time else None,
                "complete_s": (status.completion_time - created).total_seconds() if status.completion_time else None,
                "pods": sorted(pods, key=lambda pod: pod["container_start_s"]),
            }
        )
    return spans


def make_source(seconds: int) -> Path:
    path = OUT / f"chunked-source-1080p-{seconds}s.mp4"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        print(f"making the {seconds} s 1080p source (once) ...", flush=True)
        subprocess.run(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=s=1920x1080:r=30:d={seconds}",
                "-f",
                "lavfi",
                "-i",
                f"sine=f=440:sample_rate=48000:d={seconds}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "18",
                "-g",
                "60",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-t",
                str(seconds),
                str(path.with_suffix(".part.mp4")),
            ],
            check=True,
        )
        path.with_suffix(".part.mp4").replace(path)
    return path


def load() -> float:
    return os.getloadavg()[0]


def wait_succeeded(custom: Any, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = custom.get_namespaced_custom_object("videojob.dev", "v1alpha1", namespace, "videojobs", name)
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Succeeded":
            return dict(obj)
        if phase in ("Failed", "Cancelled"):
            raise SystemExit(f"{name} ended {phase}: {obj['status'].get('message')}")
        time.sleep(0.5)
    raise SystemExit(f"{name} did not succeed within {timeout:.0f} s")


def facts(s3: Any, uri: str, work: Path) -> dict[str, Any]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    path = work / key.replace("/", "_")
    s3.download_file(bucket, key, str(path))
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,nb_read_packets,duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    streams = {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}
    path.unlink()
    return {
        "frames": int(streams["video"]["nb_read_packets"]),
        "video_s": float(streams["video"]["duration"]),
        "audio_s": float(streams["audio"]["duration"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--preset", default="ultrafast")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()

    from kubernetes import client, config

    testenv = load_testenv(Path(os.environ.get("TESTENV_DIR") or DEFAULT_TESTENV_DIR))
    api = config.new_client_from_config(config_file=testenv.kubeconfig)
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    batch = client.BatchV1Api(api)
    seen: set[str] = set()
    install_crds(client.ApiextensionsV1Api(api))
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=testenv.s3_endpoint_url,
        aws_access_key_id=testenv.aws_access_key_id,
        aws_secret_access_key=testenv.aws_secret_access_key,
        region_name=testenv.aws_default_region,
    )
    suffix = uuid.uuid4().hex[:6]
    namespace, bucket = f"bench-chunked-{suffix}", f"bench-chunked-{suffix}"
    source = make_source(args.seconds)
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {
        "segments": args.segments,
        "seconds": args.seconds,
        "preset": args.preset,
        "cores": cores,
    }
    body: Any = {"metadata": {"name": namespace}}
    core.create_namespace(body)
    release = None
    try:
        ensure_s3_secret(core, namespace, testenv)
        ensure_bucket(s3, bucket)
        s3.upload_file(str(source), bucket, "in/source.mp4")
        values = release_values(testenv, namespace, f"vjop-{suffix}", max_running=args.segments)
        one_cpu = {"requests": {"cpu": "900m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
        values["transcoder"]["resources"]["cpu"] = one_cpu
        release = OperatorRelease(testenv, core, apps, namespace, OUT / f"chunked-operator-{suffix}.log", values)
        release.start()
        spec: dict[str, Any] = {
            "hardware": "cpu",
            "inputs": [{"name": "main", "uri": f"s3://{bucket}/in/source.mp4"}],
            "output": {"video": {"codec": "h264", "crf": 23, "preset": args.preset}, "audio": {"codec": "aac"}},
        }
        for label, extra in (("single", {}), ("chunked", {"parallelism": args.segments})):
            body = {
                "apiVersion": "videojob.dev/v1alpha1",
                "kind": "VideoJob",
                "metadata": {"name": label},
                "spec": {**spec, **extra, "output": {**spec["output"], "uri": f"s3://{bucket}/out/{label}/"}},
            }
            before = load()
            started = time.monotonic()
            custom.create_namespaced_custom_object("videojob.dev", "v1alpha1", namespace, "videojobs", body)
            done = wait_succeeded(custom, namespace, label, args.timeout)
            seconds = time.monotonic() - started
            results[label] = {
                "seconds": round(seconds, 1),
                "jobs": job_spans(batch, core, namespace, seen),
                "load_before": before,
                "load_after": load(),
                **facts(s3, done["status"]["artifacts"][0]["uri"], OUT),
            }
            print(f"{label}: {seconds:.1f} s  (load {before:.1f} -> {load():.1f})", flush=True)
    finally:
        if release is not None:
            release.stop()
        core.delete_namespace(namespace)
        empty_and_delete_bucket(s3, bucket)

    single, chunked = results["single"], results["chunked"]
    speedup = single["seconds"] / chunked["seconds"]
    target = TARGET_EFFICIENCY * args.segments
    results["speedup"] = round(speedup, 2)
    results["target"] = target
    results["pass"] = speedup >= target
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "chunked.json").write_text(json.dumps(results, indent=2))
    print()
    print(f"{args.seconds} s 1080p30 -> h264 crf 23 {args.preset}, aac; CPU transcoders limited to 1 CPU each")
    print(f"{'':24}{'1 pod x 1 CPU':>16}{f'{args.segments} pods x 1 CPU':>18}")
    print(f"{'wall time (apply->Succeeded)':28}{single['seconds']:>12.1f} s{chunked['seconds']:>16.1f} s")
    print(f"{'video frames':28}{single['frames']:>14}{chunked['frames']:>18}")
    print(
        f"{'video / audio seconds':28}{single['video_s']:>7.3f}/{single['audio_s']:.3f}"
        f"{chunked['video_s']:>11.3f}/{chunked['audio_s']:.3f}"
    )
    print(
        f"{'1-min load before/after':28}{single['load_before']:>7.1f}/{single['load_after']:<6.1f}"
        f"{chunked['load_before']:>11.1f}/{chunked['load_after']:.1f}"
    )
    for label in ("single", "chunked"):
        for job in results[label]["jobs"]:
            print(
                f"  {label} Job {job['name']} ({job['completions']} pod{'s' if job['completions'] > 1 else ''}): "
                f"created {job['created_s']:.0f} s after the first, -> complete {job['complete_s']} s"
            )
            for pod in job["pods"]:
                print(
                    f"    pod: container {pod['container_start_s']:.0f} -> {pod['container_end_s']:.0f} s after the "
                    f"Job's creation, the transcoder {pod['transcoder_s']} s of it"
                )
    verdict = "PASS" if speedup >= target else "FAIL"
    print(f"speedup {speedup:.2f}x, target >= {target:.2f}x ({TARGET_EFFICIENCY} x {args.segments}): {verdict}")
    busiest = max(single["load_after"], chunked["load_before"], chunked["load_after"])
    if busiest > cores - 0.5:
        print(
            f"note: the 1-min load reached {busiest:.1f} on {cores} cores shared with other sessions: the segment "
            "pods did not each get a whole CPU, so this speedup understates what chunking gives on free cores"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
