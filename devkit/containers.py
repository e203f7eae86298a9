"""Processes of pods' containers, seen from this machine: the tests run where the nodes run, as root, so /proc
shows every container's processes (found by the container's cgroup)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any


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
