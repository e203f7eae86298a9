#!/usr/bin/env python3
"""How much the transcoder runner costs on top of FFmpeg itself, and whether its memory stays flat for big inputs.

Measured side by side in one run, alternating, on the same clip (1080p, 60 s, testsrc2 + sine; generated once and
cached in the temp dir):

- raw:    `ffmpeg -i clip.mp4 <encoder options> -movflags +faststart out.mp4` on a local file: the planner's own
          command, with FFmpeg's faststart (the runner writes the index last and moves it itself while uploading,
          so both make the same file);
- runner: `videojob-transcode` end to end with the same encoder options: spec from VIDEOJOB_SPEC, the input read
          by FFmpeg from MinIO (the local environment's, loopback) while it downloads, probe, FFmpeg with progress,
          the output uploaded while it is written, sha256, result JSON.

Prints the median wall time of each, their ratio (target <= 1.01) and the ratio of the fastest runs, the median of
the pairwise differences (runner - raw of the runs made back to back: the fixed cost the ratio is made of), CPU
seconds of each side's process tree, and the runner's peak RSS: the Python process alone (VmHWM polled from /proc)
and its whole process tree including FFmpeg (wait4's ru_maxrss). The machine's load average is printed beside
them: on 2 shared cores a run-to-run spread of several percent is common, so read the ratio with it.

Then the big-input run (--big-gb, default 2): an input of that size made cheaply by stream-copying the clip in a
loop (no encoding), streamed through the runner with a stream-copy job (the whole input read, the whole output
written and uploaded), and its peak RSS printed beside the 60 s clip's: flat means the runner's own memory does
not grow with the input.

    .venv/bin/python bench/transcoder_overhead.py            # 3 runs each and the 2 GB run (~10 min on 2 cores)
    .venv/bin/python bench/transcoder_overhead.py --quick    # 5 s clip, 1 run each, a 0.2 GB input: a smoke run

Needs the local environment up (`hack/testenv.py status`); it reads S3 settings from `.testenv/env`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "operator"))

from videojob.api.models import VideoJobSpec  # noqa: E402
from videojob.storage import s3_client_from_env, upload  # noqa: E402
from videojob.transcoder import encoders  # noqa: E402

TARGET_RATIO = 1.01
FLAT_RSS_MIB = 16.0  # the big input may raise the runner's own peak RSS by at most this much


@dataclass
class Timing:
    seconds: float
    tree_max_rss_kib: int
    own_hwm_kib: int | None = None
    cpu_seconds: float = 0.0  # user + system of the whole process tree


def read_env_file(path: Path) -> dict[str, str]:
    """The `export NAME=value` lines of .testenv/env (PATH is left to the caller's)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m and m.group(1) != "PATH":
            values[m.group(1)] = "".join(shlex.split(m.group(2)))
    return values


def make_clip(path: Path, seconds: float, size: str = "1920x1080", fps: int = 30) -> Path:
    """A test clip (moving test pattern + tone), made once and reused."""
    if path.exists():
        return path
    partial = path.with_suffix(".part.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate={fps}:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "18",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
            str(partial),
        ],
        check=True,
    )
    partial.replace(path)
    return path


def raw_ffmpeg_argv(spec: VideoJobSpec, clip: Path, workdir: Path) -> tuple[list[str], Path, str]:
    """The FFmpeg command the runner runs for `spec` on the CPU, on the local clip; its output; its origin.

    Taken from the planner (the very argument list the runner executes, minus `-progress pipe:1 -nostats`,
    which only feed the runner's progress reporter). Falls back to the encoder tables while no planner exists.
    """
    planner: Any
    try:
        planner = importlib.import_module("videojob.transcoder.planner")
    except ImportError:
        planner = None
    if planner is not None:
        from videojob.transcoder.probe import probe

        plan = planner.plan(spec, {"clip": probe(clip)}, {"clip": clip}, "cpu", workdir)
        argv = list(plan.main)
        if "-progress" in argv:
            at = argv.index("-progress")
            del argv[at : at + 2]
        argv = [a for a in argv if a != "-nostats"]
        if getattr(plan, "index_last", False):  # the runner moves the index itself; FFmpeg alone must do it
            argv[-1:-1] = ["-movflags", "+faststart"]
        return argv, Path(plan.output), "planner.plan"
    output = spec.output
    out = workdir / "out" / "output.mp4"
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-i",
        str(clip),
        *encoders.video_options(output.video, "cpu", output.container),
        *encoders.audio_options(output.audio),
        *encoders.muxer_options(output.container),
        str(out),
    ]
    return argv, out, "encoders (no planner yet)"


def _poll_hwm(pid: int, sink: list[int], done: threading.Event) -> None:
    status = Path(f"/proc/{pid}/status")
    while not done.is_set():
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    sink.append(int(line.split()[1]))
                    break
        except OSError:
            return
        done.wait(0.1)


def timed(argv: list[str], env: dict[str, str], poll_own_rss: bool = False) -> Timing:
    """Run a command, return its wall time and peak RSS; fail loudly with its output if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    hwm: list[int] = []
    done = threading.Event()
    poller = threading.Thread(target=_poll_hwm, args=(proc.pid, hwm, done), daemon=True)
    if poll_own_rss:
        poller.start()
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read() if proc.stdout else b""), daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    reader.join()
    if poll_own_rss:
        poller.join()
    if proc.returncode != 0:
        sys.stderr.write(b"".join(output).decode(errors="replace")[-4000:])
        raise SystemExit(f"{argv[0]} exited {proc.returncode}")
    return Timing(elapsed, usage.ru_maxrss, max(hwm) if hwm else None, usage.ru_utime + usage.ru_stime)


def make_big_input(clip: Path, gigabytes: float, cache: Path) -> Path:
    """An input of about `gigabytes` GB: the clip stream-copied in a loop (no encoding), made once and reused."""
    loops = max(1, round(gigabytes * 1e9 / clip.stat().st_size))
    path = cache / f"{clip.stem}-x{loops}.mp4"
    if path.exists():
        return path
    partial = path.with_suffix(".part.mp4")
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-stream_loop",
            str(loops - 1),
            "-i",
            str(clip),
            "-c",
            "copy",
            "-f",
            "mp4",
            str(partial),
        ],
        check=True,
    )
    partial.replace(path)
    return path


def run_runner(spec: VideoJobSpec, env: dict[str, str], runner: Path, work: Path, tag: str) -> tuple[Timing, dict]:
    workdir = work / f"runner-{tag}"
    workdir.mkdir()
    result = work / f"result-{tag}.json"
    run_env = {
        **env,
        "VIDEOJOB_SPEC": json.dumps(spec.to_wire()),
        "VIDEOJOB_WORKDIR": str(workdir),
        "VIDEOJOB_RESULT_PATH": str(result),
        "VIDEOJOB_HARDWARE": "cpu",
        "VIDEOJOB_PROGRESS": "none",
    }
    timing = timed([str(runner)], run_env, poll_own_rss=True)
    subprocess.run(["rm", "-rf", str(workdir)], check=True)
    return timing, json.loads(result.read_text())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s clip, one run each, 0.2 GB input (smoke run)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each (default 3, 1 with --quick)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset of the spec (default veryfast)")
    parser.add_argument("--big-gb", type=float, default=None, help="size of the big input (default 2, 0: none)")
    parser.add_argument("--testenv", type=Path, default=REPO / ".testenv", help="the local environment's dir")
    args = parser.parse_args()
    seconds = 5 if args.quick else 60
    runs = args.runs or (1 if args.quick else 3)
    big_gb = args.big_gb if args.big_gb is not None else (0.2 if args.quick else 2.0)

    env_file = args.testenv / "env"
    if not env_file.exists():
        raise SystemExit(f"{env_file} not found: the local environment is not up (hack/testenv.py status)")
    s3_env = read_env_file(env_file)
    env = {**os.environ, **s3_env}
    runner = REPO / ".venv" / "bin" / "videojob-transcode"
    if not runner.exists():
        raise SystemExit(f"{runner} not found: install the package into .venv")

    cache = Path(tempfile.gettempdir()) / "videojob-bench"
    cache.mkdir(exist_ok=True)
    clip = make_clip(cache / f"clip-1080p-{seconds}s.mp4", seconds)

    s3 = s3_client_from_env(s3_env)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    upload(clip, f"s3://{bucket}/in/clip.mp4", s3=s3)
    spec = VideoJobSpec.model_validate(
        {
            "hardware": "cpu",
            "inputs": [{"name": "clip", "uri": f"s3://{bucket}/in/clip.mp4"}],
            "output": {
                "uri": f"s3://{bucket}/out/",
                "container": "mp4",
                "video": {"codec": "h264", "crf": 23, "preset": args.preset},
                "audio": {"codec": "aac", "bitrate": "128k"},
            },
        }
    )

    raw: list[Timing] = []
    wrapped: list[Timing] = []
    results: list[dict[str, Any]] = []
    big: tuple[Timing, dict[str, Any], int] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="videojob-bench-") as scratch:
            work = Path(scratch)
            for i in range(runs):

                def run_raw(i: int = i) -> None:
                    raw_dir = work / f"raw-{i}"
                    argv, out, _ = raw_ffmpeg_argv(spec, clip, raw_dir)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    raw.append(timed(argv, env))
                    subprocess.run(["rm", "-rf", str(raw_dir)], check=True)

                def run_wrapped(i: int = i) -> None:
                    run_spec = spec.model_copy(
                        update={"output": spec.output.model_copy(update={"uri": f"s3://{bucket}/out/run-{i}/"})}
                    )
                    timing, result = run_runner(run_spec, env, runner, work, str(i))
                    wrapped.append(timing)
                    results.append(result)

                # Alternate which goes first, so a drift in machine load hits both sides alike.
                for step in (run_raw, run_wrapped) if i % 2 == 0 else (run_wrapped, run_raw):
                    step()
            if big_gb > 0:
                big_input = make_big_input(clip, big_gb, cache)
                upload(big_input, f"s3://{bucket}/in/big.mp4", s3=s3)
                big_spec = VideoJobSpec.model_validate(
                    {
                        "hardware": "cpu",
                        "inputs": [{"name": "big", "uri": f"s3://{bucket}/in/big.mp4"}],
                        "output": {
                            "uri": f"s3://{bucket}/out/big/",
                            "container": "mp4",
                            "video": {"codec": "copy"},
                            "audio": {"codec": "copy"},
                        },
                    }
                )
                timing, result = run_runner(big_spec, env, runner, work, "big")
                big = (timing, result, big_input.stat().st_size)
    finally:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
        for pending in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=pending["Key"], UploadId=pending["UploadId"])
        s3.delete_bucket(Bucket=bucket)

    bad = [r for r in results + ([big[1]] if big else []) if not r.get("ok")]
    if bad:
        raise SystemExit(f"the runner reported failure: {bad[0]}")
    raw_median = statistics.median(t.seconds for t in raw)
    runner_median = statistics.median(t.seconds for t in wrapped)
    ratio = runner_median / raw_median
    # On a shared machine the run-to-run spread can exceed the overhead itself; the ratio of the fastest runs
    # (each side's least-disturbed run) and the median of back-to-back differences are steadier, printed beside.
    best_ratio = min(t.seconds for t in wrapped) / min(t.seconds for t in raw)
    paired = statistics.median(w.seconds - r.seconds for w, r in zip(wrapped, raw, strict=True))
    cpu_ratio = statistics.median(t.cpu_seconds for t in wrapped) / statistics.median(t.cpu_seconds for t in raw)
    own = [t.own_hwm_kib for t in wrapped if t.own_hwm_kib]
    artifact = results[-1]["artifacts"][0]
    argv, _, source = raw_ffmpeg_argv(spec, clip, Path("/tmp/bench"))
    load = os.getloadavg()
    report: dict[str, Any] = {
        "clip": f"1920x1080 30 fps {seconds} s ({clip.stat().st_size / 1e6:.1f} MB)",
        "raw_ffmpeg_argv": argv,
        "raw_ffmpeg_argv_from": source,
        "runs_each": runs,
        "raw_seconds": [round(t.seconds, 2) for t in raw],
        "runner_seconds": [round(t.seconds, 2) for t in wrapped],
        "raw_median_s": round(raw_median, 2),
        "runner_median_s": round(runner_median, 2),
        "ratio": round(ratio, 4),
        "ratio_of_fastest": round(best_ratio, 4),
        "median_paired_difference_s": round(paired, 3),
        "cpu_ratio": round(cpu_ratio, 4),
        "target_ratio": TARGET_RATIO,
        "load_average_1_5_15": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
        "runner_python_peak_rss_mib": round(max(own) / 1024, 1) if own else None,
        "runner_tree_peak_rss_mib": round(max(t.tree_max_rss_kib for t in wrapped) / 1024, 1),
        "raw_ffmpeg_peak_rss_mib": round(max(t.tree_max_rss_kib for t in raw) / 1024, 1),
        "output": {k: artifact.get(k) for k in ("size", "duration", "width", "height", "videoCodec")},
    }
    print(f"clip                 {report['clip']}")
    print(f"raw ffmpeg command   {shlex.join(argv)}  (from {source})")
    print(f"raw ffmpeg           median {raw_median:.2f} s  runs {report['raw_seconds']}")
    print(
        f"videojob-transcode   median {runner_median:.2f} s  runs {report['runner_seconds']}  "
        "(S3 reads and writes included, streamed)"
    )
    print(
        f"ratio runner/raw     {ratio:.4f} of medians (target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)}), "
        f"{best_ratio:.4f} of the fastest runs; runner - raw back to back: median {paired:+.2f} s; "
        f"CPU seconds ratio {cpu_ratio:.4f}"
    )
    print(
        f"machine              load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {report['cpus']} CPUs "
        "(at the end of the runs)"
    )
    print(
        f"runner peak RSS      python {report['runner_python_peak_rss_mib']} MiB, "
        f"with ffmpeg {report['runner_tree_peak_rss_mib']} MiB (raw ffmpeg {report['raw_ffmpeg_peak_rss_mib']} MiB)"
    )
    if big is not None:
        timing, result, size = big
        big_own = (timing.own_hwm_kib or 0) / 1024
        small_own = max(own) / 1024 if own else 0.0
        growth = big_own - small_own
        out = result["artifacts"][0]
        report["big_input"] = {
            "bytes": size,
            "seconds": round(timing.seconds, 2),
            "runner_python_peak_rss_mib": round(big_own, 1),
            "runner_tree_peak_rss_mib": round(timing.tree_max_rss_kib / 1024, 1),
            "output_bytes": out.get("size"),
            "output_duration": out.get("duration"),
        }
        print(
            f"big input            {size / 1e9:.2f} GB ({out.get('duration')} s of media), stream copy, "
            f"{timing.seconds:.1f} s ({size / 1e6 / timing.seconds:.0f} MB/s in and out)"
        )
        print(
            f"big input peak RSS   python {big_own:.1f} MiB (60 s clip: {small_own:.1f} MiB, "
            f"{growth:+.1f} MiB; flat within {FLAT_RSS_MIB:g} MiB: {verdict(growth <= FLAT_RSS_MIB)}), "
            f"with ffmpeg {timing.tree_max_rss_kib / 1024:.1f} MiB"
        )
    out_dir = REPO / "bench" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"transcoder_overhead{'-quick' if args.quick else ''}.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
