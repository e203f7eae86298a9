"""Progress: FFmpeg's `-progress` output → a percentage → a reporter (a line for the operator, a line for people, or
nothing).

`ProgressParser` is pure: feed it the lines FFmpeg writes to `-progress pipe:1` (blocks of key=value ending in
`progress=continue` or `progress=end`) and it gives a percent of the expected duration, never going back.
Reporters never fail the job: a reporting error is logged once and the work goes on.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TextIO

from videojob.api import runtime

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 5.0  # seconds between progress lines (the operator reads them about as often)


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


class LineReporter:
    """`runtime.progress_line` on stdout: the operator reads the last one from the pod's log (no API access needed,
    and nothing another pod could write)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def report(self, percent: float) -> None:
        try:
            self.stream.write(runtime.progress_line(percent) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream: progress is not worth failing the job for
            pass


def reporter_from_env(environ: Mapping[str, str] | None = None, local: bool = False) -> Reporter:
    """VIDEOJOB_PROGRESS: "lines" (for the operator, the default in a pod), "log" (for people, the default with
    --local) or "none", throttled to VIDEOJOB_PROGRESS_INTERVAL."""
    env = os.environ if environ is None else environ
    interval = _interval(env)
    kind = env.get(runtime.ENV_PROGRESS, "").strip().lower() or ("log" if local else "lines")
    if kind == "none":
        return NullReporter()
    if kind == "log":
        return Throttled(LogReporter(), min(interval, 1.0))
    if kind == "lines":
        return Throttled(LineReporter(), interval)
    raise ValueError(f"{runtime.ENV_PROGRESS}={kind!r}: use lines, log or none")


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
