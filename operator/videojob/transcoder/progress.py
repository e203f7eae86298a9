"""Progress: FFmpeg's `-progress` output → a percentage → a reporter (a log line, nothing, or the VideoJob status).

`ProgressParser` is pure: feed it the lines FFmpeg writes to `-progress pipe:1` (blocks of key=value ending in
`progress=continue` or `progress=end`) and it gives a percent of the expected duration, never going back.
Reporters never fail the job: a reporting error is logged once and the work goes on.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, TextIO
from urllib.parse import quote

from videojob.api import runtime
from videojob.api.models import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 5.0  # seconds between status patches: the API server has better things to do


class Reporter(Protocol):
    def report(self, percent: float) -> None: ...


class NullReporter:
    def report(self, percent: float) -> None:
        pass


class ProgressParser:
    """Percent done from `-progress` lines, given the output's expected duration in seconds."""

    def __init__(self, duration: float) -> None:
        self.duration = max(duration, 1e-3)
        self.percent = 0.0
        self.done = False

    def feed(self, line: str) -> float | None:
        """One line; returns the new percent at the end of a block (or None when nothing new is known)."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key in ("out_time_us", "out_time_ms"):  # both are microseconds (out_time_ms is misnamed in FFmpeg)
            try:
                micros = int(value)
            except ValueError:
                return None  # "N/A" before the first frame
            self.percent = max(self.percent, min(99.9, 100.0 * micros / 1e6 / self.duration))
            return None
        if key == "progress":
            if value.strip() == "end":
                self.done = True
                self.percent = 100.0
            return self.percent
        return None


class Throttled:
    """Passes a report on at most every `interval` seconds (monotonic clock); 0 and 100 always go through."""

    def __init__(self, inner: Reporter, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.interval = interval
        self.clock = clock
        self.last_time: float | None = None
        self.last_percent: float | None = None

    def report(self, percent: float) -> None:
        now = self.clock()
        if percent == self.last_percent:
            return
        due = self.last_time is None or now - self.last_time >= self.interval
        if due or percent >= 100.0:
            self.inner.report(percent)
            self.last_time, self.last_percent = now, percent


class LogReporter:
    """A progress line on stderr (a bar on a terminal, plain lines otherwise) for --local runs."""

    def __init__(self, stream: TextIO | None = None, label: str = "transcoding") -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.tty = self.stream.isatty()

    def report(self, percent: float) -> None:
        if self.tty:
            filled = int(percent / 100 * 30)
            end = "\n" if percent >= 100 else ""
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {percent:5.1f}%{end}")
        else:
            self.stream.write(f"{self.label}: {percent:.1f}%\n")
        self.stream.flush()


class KubernetesReporter:
    """Merge-patches `status.progress` of the VideoJob through the API server, with the pod's service account."""

    def __init__(self, name: str, namespace: str, host: str, port: str, token_path: Path, ca_path: Path,
                 timeout: float = 5.0) -> None:
        self.url = (
            f"https://{_host(host)}:{port}/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}"
            f"/{PLURAL}/{quote(name, safe='')}/status"
        )
        self.token_path = token_path
        self.context = ssl.create_default_context(cafile=str(ca_path)) if ca_path.is_file() else None
        self.timeout = timeout
        self.failed_once = False

    def report(self, percent: float) -> None:
        body = json.dumps({"status": {"progress": round(percent, 1)}}).encode()
        try:
            token = self.token_path.read_text().strip()
            request = urllib.request.Request(self.url, data=body, method="PATCH", headers={  # noqa: S310
                "Content-Type": "application/merge-patch+json",
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
            })
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:  # noqa: S310
                response.read()
        except (OSError, urllib.error.URLError, ValueError) as e:
            if not self.failed_once:  # one line, not one per report
                self.failed_once = True
                print(f"videojob-transcode: cannot report progress to the API server: {e}", file=sys.stderr)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def reporter_from_env(environ: Mapping[str, str] | None = None, local: bool = False) -> Reporter:
    """VIDEOJOB_PROGRESS: "kubernetes", "log" or "none" (default: log for --local, kubernetes in a pod when the
    service account and VIDEOJOB_NAME are there, none otherwise), throttled to VIDEOJOB_PROGRESS_INTERVAL."""
    env = os.environ if environ is None else environ
    interval = _interval(env)
    kind = env.get(runtime.ENV_PROGRESS, "").strip().lower()
    sa_dir = Path(env.get(runtime.ENV_SERVICEACCOUNT_DIR) or runtime.DEFAULT_SERVICEACCOUNT_DIR)
    name = env.get(runtime.ENV_NAME, "")
    if not kind:
        if local:
            kind = "log"
        elif name and (sa_dir / "token").is_file() and env.get("KUBERNETES_SERVICE_HOST"):
            kind = "kubernetes"
        else:
            kind = "none"
    if kind == "none":
        return NullReporter()
    if kind == "log":
        return Throttled(LogReporter(), min(interval, 1.0))
    if kind == "kubernetes":
        namespace = env.get(runtime.ENV_NAMESPACE) or _read(sa_dir / "namespace") or "default"
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        if not name or not host:
            print("videojob-transcode: progress reporting off: VIDEOJOB_NAME or KUBERNETES_SERVICE_HOST unset",
                  file=sys.stderr)
            return NullReporter()
        return Throttled(KubernetesReporter(name, namespace, host, port, sa_dir / "token", sa_dir / "ca.crt"),
                         interval)
    raise ValueError(f"{runtime.ENV_PROGRESS}={kind!r}: use kubernetes, log or none")


def _interval(env: Mapping[str, str]) -> float:
    raw = env.get(runtime.ENV_PROGRESS_INTERVAL, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{runtime.ENV_PROGRESS_INTERVAL}={raw!r} is not a number of seconds") from None
    if not 0 <= value < 86400:
        raise ValueError(f"{runtime.ENV_PROGRESS_INTERVAL}={raw!r} is out of range")
    return value


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
