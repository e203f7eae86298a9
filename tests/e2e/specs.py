"""Small VideoJob specs for the e2e tests: the cheapest work that still runs the real transcoder."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any


def encode_spec(input_uri: str, output_uri: str, **overrides: Any) -> dict[str, Any]:
    """Re-encode one input with the fastest settings (ultrafast, low quality, tiny audio)."""
    spec: dict[str, Any] = {
        "inputs": [{"name": "main", "uri": input_uri}],
        "output": {
            "uri": output_uri,
            "container": "mp4",
            "video": {"codec": "h264", "preset": "ultrafast", "crf": 35},
            "audio": {"codec": "aac", "bitrate": "64k"},
        },
        "retries": 0,
    }
    spec.update(overrides)
    return spec


def copy_spec(input_uri: str, output_uri: str, **overrides: Any) -> dict[str, Any]:
    """Copy the video stream (no re-encode) and re-encode a tiny audio track: the least CPU a real transcode takes.

    Audio is re-encoded rather than copied because `audio: {codec: copy}` fails in the planner as of this writing
    (an unused asetpts chain is left unconnected in the filter graph); see the e2e report.
    """
    spec: dict[str, Any] = {
        "inputs": [{"name": "main", "uri": input_uri}],
        "output": {
            "uri": output_uri,
            "container": "mp4",
            "video": {"codec": "copy"},
            "audio": {"codec": "aac", "bitrate": "32k"},
        },
        "retries": 0,
        "hardware": "cpu",
    }
    spec.update(overrides)
    return spec


# --- processes of pods (containers, seen from this machine: the tests run where the nodes run) ---------------------


def container_id(pod: Any) -> str | None:
    """The runtime's id of a pod's first running container (containerd://<id> in its status), or None."""
    for cs in pod.status.container_statuses or []:
        if cs.state and cs.state.running and cs.container_id:
            return str(cs.container_id).split("://", 1)[-1]
    return None


def container_processes(container: str) -> list[int]:
    """Live (non-zombie) processes of a container on this machine, found by the container's cgroup: its main
    process and anything it started. The tests run as root on the node's machine, so /proc shows them all."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if container not in (entry / "cgroup").read_text():
                continue
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X"):
                alive.append(int(entry.name))
    return sorted(alive)


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
