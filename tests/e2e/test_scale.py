"""Scale: 100 VideoJobs created at once all reach Succeeded; none is lost and none gets two Jobs.

Each is a real transcode (the real `videojob-transcode`, FFmpeg, MinIO) of the smallest media with a remux-only
spec, so the run measures the operator and the platform rather than the encoder. On a shared two-core machine
the pods themselves (a Python process and FFmpeg each) dominate the wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from devkit.harness import Diagnostics, JobRecorder, MediaFactory, VideoJobs
from devkit.operator_release import OperatorRelease
from devkit.specs import copy_spec

pytestmark = pytest.mark.e2e

COUNT = 100
MAX_RUNNING = 8


@pytest.mark.timeout(1200)
def test_hundred_videojobs_all_succeed_without_duplicates(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    job_recorder: JobRecorder,
    media: MediaFactory,
    bucket: str,
    s3: object,
) -> None:
    source = media.upload(media.video(seconds=0.5, size="64x48", fps=10), bucket, "in/smallest.mp4")
    op = run_operator(max_running=MAX_RUNNING, progress_interval=30)
    names = [f"bulk-{i:03d}" for i in range(COUNT)]

    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: videojobs.create(n, copy_spec(source, f"s3://{bucket}/out/{n}/")), names))
    created_s = time.monotonic() - t0

    diagnostics.wait_all(names, "Succeeded", timeout=1000, interval=2)
    total_s = time.monotonic() - t0
    print(
        f"\n{COUNT} VideoJobs: created in {created_s:.1f}s, all Succeeded after {total_s:.1f}s "
        f"(maxRunning {MAX_RUNNING}); operator RSS {op.rss_bytes() / 2**20:.0f} MiB"
    )

    assert len(videojobs.list()) == COUNT
    by_owner = job_recorder.by_owner()
    assert not job_recorder.duplicates(), f"duplicate Jobs: {job_recorder.duplicates()}"
    assert sorted(o for o in by_owner if o) == names, f"{len(by_owner)} VideoJobs got Jobs"
    objs = {o["metadata"]["name"]: o for o in videojobs.list()}
    no_artifacts = [n for n in names if not (objs[n].get("status") or {}).get("artifacts")]
    assert not no_artifacts, f"Succeeded without artifacts: {no_artifacts[:10]}"
    keys = {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="out/")  # type: ignore[attr-defined]
        for o in page.get("Contents", [])
    }
    missing = [n for n in names if not any(k.startswith(f"out/{n}/") for k in keys)]
    assert not missing, f"no output object for {missing[:10]}"
