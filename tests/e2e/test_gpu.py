"""GPU placement end to end on the local GPU node (gpu-0: label, taint, one nvidia.com/gpu, no real GPU).

1. A `hardware: nvidia` job's pod lands on gpu-0 with the GPU limit, node selector and toleration. Its input
   download is held by a loopback HTTP server, so the job keeps the only GPU slot busy (maxRunningGpu 1).
2. Meanwhile an `auto` job (h264, which has an NVENC encoder) runs on CPU: the GPU is taken.
3. Released, the nvidia job tries NVENC on a node without a GPU: it must fail fast with a clear reason in the
   VideoJob status, spend no retries, and not hang. That is the expected outcome on this machine.
4. With the GPU slot free again, an `auto` job is placed on gpu-0, where NVENC cannot start: `auto` means "a GPU
   when one is free", so the transcoder falls back to CPU encoding in the same pod and the job succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from devkit.harness import Diagnostics, HeldInput, JobRecorder, MediaFactory, ScriptedHTTPServer, VideoJobs
from devkit.operator_release import OperatorRelease
from devkit.specs import encode_spec

pytestmark = pytest.mark.e2e

GPU = "nvidia.com/gpu"


def test_nvidia_job_on_gpu_node_auto_falls_back_to_cpu_and_nvenc_fails_clearly(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    held_input: Callable[[str], HeldInput],
    job_recorder: JobRecorder,
    http_server: ScriptedHTTPServer,
    media: MediaFactory,
    bucket: str,
    core_v1: Any,
    namespace: str,
) -> None:
    held = held_input("gpu")
    gpu_input = held.uri
    cpu_input = media.upload(media.video(), bucket, "in/auto.mp4")
    run_operator(max_running_gpu=1, allow_http=True)

    videojobs.create("on-gpu", encode_spec(gpu_input, f"s3://{bucket}/out/gpu/", hardware="nvidia", retries=2))
    running = diagnostics.wait_phase("on-gpu", "Running", timeout=90)
    assert running["status"].get("hardware") == "nvidia", diagnostics.report(["on-gpu"])
    job_name = running["status"]["jobName"]

    def gpu_pod() -> Any:
        pods = core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
        return next((p for p in pods if p.spec.node_name), None)

    pod = diagnostics.wait(gpu_pod, timeout=60, message="the nvidia job's pod scheduled")
    assert pod.spec.node_name == "gpu-0", f"nvidia pod on {pod.spec.node_name}"
    limits = pod.spec.containers[0].resources.limits or {}
    assert str(limits.get(GPU)) == "1", f"GPU limit missing: {limits}"
    assert (pod.spec.node_selector or {}).get("nvidia.com/gpu.present") == "true", pod.spec.node_selector
    assert any(t.key == GPU and t.effect == "NoSchedule" for t in pod.spec.tolerations or []), pod.spec.tolerations
    diagnostics.wait(
        lambda: http_server.arrived("/gpu.mp4"), timeout=60, message="the nvidia job's transcoder to start downloading"
    )

    # The GPU slot is taken: an auto job with an NVENC-capable codec runs on CPU instead of waiting.
    videojobs.create("auto-cpu", encode_spec(cpu_input, f"s3://{bucket}/out/auto/", hardware="auto"))
    done = diagnostics.wait_phase("auto-cpu", "Succeeded", timeout=180)
    assert done["status"].get("hardware") == "cpu", diagnostics.report(["auto-cpu"])
    assert done["status"].get("node") == "cpu-0", diagnostics.report(["auto-cpu"])
    assert diagnostics.videojobs.status("on-gpu").get("phase") == "Running", diagnostics.report(["on-gpu"])

    # NVENC on a node without a GPU: a clear, fast failure, not a hang, no retries spent.
    held.release()
    failed = diagnostics.wait_phase("on-gpu", "Failed", timeout=120)
    status = failed["status"]
    context = diagnostics.report(["on-gpu"])
    text = f"{status.get('reason')} {status.get('message')}"
    assert re.search(r"nvenc|gpu|cuda|nvidia", text, re.I), f"the failure does not say why: {text!r}\n{context}"
    assert status.get("attempts") == 1, f"retries were spent on a missing GPU\n{context}"
    pods = core_v1.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    assert len(pods) == 1, f"{len(pods)} pods ran for the nvidia job (retried)\n{context}"
    assert len(job_recorder.by_owner().get("on-gpu", [])) == 1

    # The GPU slot is free again: an auto job is placed on gpu-0, NVENC cannot start there, auto encodes on CPU.
    videojobs.create("auto-gpu", encode_spec(cpu_input, f"s3://{bucket}/out/auto-gpu/", hardware="auto"))
    done = diagnostics.wait_phase("auto-gpu", "Succeeded", timeout=180)
    status = done["status"]
    context = diagnostics.report(["auto-gpu"])
    assert status.get("node") == "gpu-0", f"the auto job did not get the free GPU slot\n{context}"
    assert status.get("attempts") == 1, f"the fallback took a retry instead of happening in the pod\n{context}"
    assert "NVENC unavailable" in (status.get("message") or ""), f"the status does not say why CPU\n{context}"
    video = next(a for a in status.get("artifacts", []) if a.get("kind") == "video")
    assert video.get("videoCodec") == "h264" and video["uri"].startswith(f"s3://{bucket}/out/auto-gpu/"), context
    # placed on the GPU node, encoded on CPU: the status says what really encoded
    assert status.get("hardware") == "cpu", f"status.hardware should come from the transcoder's result\n{context}"
