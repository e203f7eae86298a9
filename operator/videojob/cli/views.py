"""What `kubectl videojob` shows and builds: pure functions over VideoJob bodies (dicts), no I/O.

Kept apart from the commands so that the table rows, the live line, durations, ETA and the VideoJob built from
flags are tested without a cluster or a terminal.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from videojob.api.models import API_VERSION, KIND, MAX_NAME_LENGTH, TERMINAL_PHASES

Body = Mapping[str, Any]

PHASE_STYLES = {
    "Pending": "yellow",
    "Running": "cyan",
    "Succeeded": "green",
    "Failed": "bold red",
    "Cancelled": "magenta",
}
TERMINAL = tuple(p.value for p in TERMINAL_PHASES)
URI_SCHEMES = ("s3", "http", "https")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def human_duration(seconds: float | None) -> str:
    """`42s`, `3m05s`, `2h04m`, `3d4h`: kubectl's style, never longer than 6 characters."""
    if seconds is None:
        return "-"
    total = max(int(seconds), 0)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def human_size(size: float | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def run_seconds(vj: Body, now: datetime) -> float | None:
    """How long it ran: start to finish, or start to now while it runs; None before it started."""
    status = vj.get("status") or {}
    started = parse_time(status.get("startedAt"))
    if started is None:
        return None
    finished = parse_time(status.get("completedAt")) if status.get("phase") in TERMINAL else None
    return ((finished or now) - started).total_seconds()


def eta_seconds(vj: Body, now: datetime) -> float | None:
    """Seconds left, from the progress made since the job started (None when there is nothing to go on)."""
    status = vj.get("status") or {}
    progress = float(status.get("progress") or 0)
    elapsed = run_seconds(vj, now)
    if status.get("phase") != "Running" or elapsed is None or not 0 < progress < 100:
        return None
    return elapsed * (100 - progress) / progress


@dataclass(frozen=True)
class Snapshot:
    """What the live line shows at one moment."""

    name: str
    phase: str
    progress: float
    queue_position: int | None
    node: str | None
    eta: float | None
    reason: str | None
    message: str | None

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL

    def where(self) -> str:
        if self.phase == "Pending":
            return f"queue position {self.queue_position}" if self.queue_position else (self.message or "waiting")
        if self.node:
            return f"on {self.node}"
        return ""

    def eta_text(self) -> str:
        return human_duration(self.eta) if self.eta is not None else "-"

    def line(self) -> str:
        """The live line as plain text (for terminals without live display, and for logs)."""
        parts = [self.name, self.phase, f"{self.progress:5.1f}%", f"ETA {self.eta_text()}"]
        if self.where():
            parts.append(self.where())
        return "  ".join(parts)


def snapshot(vj: Body, now: datetime) -> Snapshot:
    status = vj.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    return Snapshot(
        name=str(vj["metadata"]["name"]),
        phase=phase,
        progress=float(status.get("progress") or 0),
        queue_position=status.get("queuePosition"),
        node=status.get("node"),
        eta=eta_seconds(vj, now),
        reason=status.get("reason"),
        message=status.get("message"),
    )


def list_row(vj: Body, now: datetime) -> dict[str, str]:
    """One row of `kubectl videojob list`."""
    meta, spec, status = vj["metadata"], vj.get("spec") or {}, vj.get("status") or {}
    created = parse_time(meta.get("creationTimestamp"))
    phase = str(status.get("phase") or "Pending")
    return {
        "NAMESPACE": str(meta.get("namespace", "")),
        "NAME": str(meta["name"]),
        "PHASE": phase,
        "PROGRESS": f"{float(status.get('progress') or 0):.0f}%",
        "PRIORITY": str(spec.get("priority", 5)),
        "HARDWARE": str(status.get("hardware") or spec.get("hardware") or "-"),
        "QUEUE": str(status.get("queuePosition") or "-"),
        "DURATION": human_duration(run_seconds(vj, now)),
        "AGE": human_duration((now - created).total_seconds()) if created else "-",
        "REASON": str(status.get("reason") or "") if phase in ("Failed", "Cancelled") else "",
    }


def artifact_rows(vj: Body) -> list[dict[str, str]]:
    """One row per artifact of `kubectl videojob artifacts` (and the end of `watch`)."""
    rows = []
    for artifact in (vj.get("status") or {}).get("artifacts") or []:
        size = f"{artifact.get('width')}x{artifact.get('height')}" if artifact.get("width") else "-"
        codecs = "/".join(c for c in (artifact.get("videoCodec"), artifact.get("audioCodec")) if c) or "-"
        duration = artifact.get("duration")
        rows.append(
            {
                "KIND": str(artifact.get("kind", "video")),
                "URI": str(artifact["uri"]),
                "SIZE": human_size(artifact.get("size")),
                "DURATION": f"{duration:.1f}s" if duration is not None else "-",
                "RESOLUTION": size,
                "CODECS": codecs,
                "SHA256": str(artifact.get("sha256", ""))[:12],
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Building a VideoJob


class UsageError(ValueError):
    """A user mistake in the command line or the manifest: one line, exit code 2."""


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_local(uri: str) -> bool:
    """A path on this machine (no scheme, or file://) rather than an s3:// or http(s):// URI."""
    scheme = urlsplit(uri).scheme
    return scheme == "file" or scheme not in URI_SCHEMES or len(scheme) == 1  # "C:\\..." on Windows


def local_path(uri: str) -> Path:
    return Path(urlsplit(uri).path) if uri.startswith("file://") else Path(uri).expanduser()


def dns_name(text: str, limit: int = MAX_NAME_LENGTH) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return name or "videojob"


def generated_name(base: str) -> str:
    """`base` as a DNS label plus a random suffix, within the VideoJob name limit."""
    suffix = secrets.token_hex(3)
    return f"{dns_name(base, MAX_NAME_LENGTH - len(suffix) - 1)}-{suffix}"


def parse_pairs(items: Sequence[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"{flag} {item!r}: use NAME=VALUE")
        pairs.append((key, value))
    return pairs


def spec_from_flags(
    inputs: Sequence[str],
    output: str | None,
    texts: Sequence[str] = (),
    concat: bool = False,
    priority: int | None = None,
    hardware: str | None = None,
    container: str | None = None,
    codec: str | None = None,
    resolution: str | None = None,
    crf: int | None = None,
    thumbnail_at: float | None = None,
    metadata: Sequence[str] = (),
    webhooks: Sequence[str] = (),
) -> dict[str, Any]:
    """The spec of `submit --input NAME=PATH|URI ... --output s3://...`: inputs in order, then concat (all inputs)
    and text overlays; local paths stay as they are (the upload step replaces them)."""
    if not inputs:
        raise UsageError("give at least one --input NAME=PATH or NAME=URI (or a manifest with -f)")
    if not output:
        raise UsageError("give --output s3://BUCKET/PREFIX/ (where the artifacts go)")
    spec: dict[str, Any] = {"inputs": [], "operations": [], "output": {"uri": output}}
    for name, uri in parse_pairs(inputs, "--input"):
        if not _NAME.match(name):
            raise UsageError(f"--input {name}=...: the name must be lower-case letters, digits and dashes")
        spec["inputs"].append({"name": name, "uri": uri})
    if concat:
        if len(spec["inputs"]) < 2:
            raise UsageError("--concat needs at least two --input")
        spec["operations"].append({"concat": {"inputs": [i["name"] for i in spec["inputs"]]}})
    for text in texts:
        spec["operations"].append({"text": {"text": text}})
    if priority is not None:
        spec["priority"] = priority
    if hardware:
        spec["hardware"] = hardware
    if container:
        spec["output"]["container"] = container
    video = {k: v for k, v in (("codec", codec), ("resolution", resolution), ("crf", crf)) if v is not None}
    if video:
        spec["output"]["video"] = video
    if thumbnail_at is not None:
        spec["output"]["thumbnail"] = {"at": thumbnail_at}
    if metadata:
        spec["userMetadata"] = dict(parse_pairs(metadata, "--metadata"))
    if webhooks:
        spec["notify"] = {"webhooks": [{"url": url} for url in webhooks]}
    return spec


def videojob(
    name: str,
    spec: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": dict(spec)}


def upload_key(prefix: str, job_name: str, input_name: str, path: Path) -> str:
    """Where a local input goes: `<prefix><job>/<input>/<file name>` (the prefix ends with a slash)."""
    if not prefix.startswith("s3://"):
        raise UsageError(f"upload location {prefix!r}: use s3://BUCKET/PREFIX/")
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    return f"{prefix}{job_name}/{input_name}/{dns_name(path.stem, 100)}{path.suffix.lower()}"


def default_upload_prefix(spec: Mapping[str, Any]) -> str:
    """Without --upload-to or a namespace default: `uploads/` in the output's bucket (which the job writes to, so
    it exists and its credentials reach it)."""
    output = str((spec.get("output") or {}).get("uri") or "")
    if not output.startswith("s3://"):
        raise UsageError("local inputs need an upload location: --upload-to s3://BUCKET/PREFIX/")
    bucket = output[len("s3://") :].split("/", 1)[0]
    return f"s3://{bucket}/uploads/"


def retry_of(old: Body, name: str) -> dict[str, Any]:
    """A new VideoJob with the old one's spec (not cancelled), labels and user annotations."""
    spec = {k: v for k, v in (old.get("spec") or {}).items() if k != "cancel"}
    meta = old["metadata"]
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("kubectl.kubernetes.io/")
    }
    annotations["videojob.dev/retry-of"] = str(meta["name"])
    return videojob(name, spec, meta.get("labels"), annotations)


def now() -> datetime:
    return datetime.now(UTC)
