"""Fixtures of the end-to-end tests: the operator runs for real against the local environment.

    crd              the VideoJob CRD from crds/videojobs.yaml, created or replaced once per session, Established
    s3_secret        the `videojob-s3` Secret (MinIO credentials of the testenv) in the test's namespace
    videojobs        VideoJobs of the test's namespace (create, get, patch_spec, delete, phases)
    run_operator     run_operator(**settings) -> OperatorProcess: `videojob-operator` watching the test's namespace,
                     healthy (/healthz) before it returns, always stopped at the end of the test
    diagnostics      Diagnostics: phase, message, conditions, Jobs, pods, pod logs and the operator log tail,
                     for assertion messages; `wait_phase` / `wait_all` use it
    job_recorder     JobRecorder: every Job created in the namespace during the test (by uid, with its owner)
    media            MediaFactory: tiny generated media files, uploaded to MinIO on request
    http_server      ScriptedHTTPServer on 127.0.0.1 (stall, 503, serve), for inputs the test controls

Settings given to run_operator are either VIDEOJOB_* names or Settings field names: run_operator(max_running=1).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TestEnv
from tests.e2e.harness import (
    Diagnostics,
    JobRecorder,
    OperatorProcess,
    ScriptedHTTPServer,
    VideoJobs,
    ensure_s3_secret,
    install_crd,
)

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def crd(testenv: TestEnv, apiextensions_v1: Any) -> dict[str, Any]:
    return install_crd(apiextensions_v1)


@pytest.fixture
def s3_secret(namespace: str, core_v1: Any, testenv: TestEnv) -> str:
    ensure_s3_secret(core_v1, namespace, testenv)
    return "videojob-s3"


@pytest.fixture
def videojobs(crd: dict[str, Any], custom_objects: Any, namespace: str) -> VideoJobs:
    return VideoJobs(custom_objects, namespace)


@pytest.fixture
def diagnostics(testenv: TestEnv, namespace: str, videojobs: VideoJobs, batch_v1: Any, core_v1: Any) -> Diagnostics:
    return Diagnostics(testenv=testenv, namespace=namespace, videojobs=videojobs, batch_v1=batch_v1, core_v1=core_v1)


@pytest.fixture
def run_operator(
    testenv: TestEnv,
    namespace: str,
    s3_secret: str,
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def run(start: bool = True, **settings: Any) -> OperatorProcess:
        op = OperatorProcess.for_testenv(
            testenv, [namespace], tmp_path / f"operator-{len(started)}.log", **settings
        )
        started.append(op)
        diagnostics.operator = op
        if start:
            op.start()
        return op

    try:
        yield run
    finally:
        failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
        for op in started:
            op.stop()
            if failed:
                print(f"\n--- operator log {op.log_path} (tail) ---\n{op.log_tail(200)}")
        videojobs.strip_finalizers()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def job_recorder(batch_v1: Any, namespace: str) -> Iterator[JobRecorder]:
    with JobRecorder(batch_v1, namespace) as recorder:
        yield recorder


@pytest.fixture
def http_server() -> Iterator[ScriptedHTTPServer]:
    with ScriptedHTTPServer() as server:
        yield server


# ---------------------------------------------------------------------------------------------------------------
# Media


class MediaFactory:
    """Tiny media made with FFmpeg's lavfi sources (and espeak-ng for speech), cached per test session."""

    def __init__(self, root: Path, s3: Any) -> None:
        self.root = root
        self.s3 = s3
        self._made: dict[tuple[Any, ...], Path] = {}

    def video(
        self, seconds: float = 1.0, size: str = "160x120", fps: int = 15, audio: bool = True, container: str = "mp4",
        color: bool = False,
    ) -> Path:
        key = ("video", seconds, size, fps, audio, container, color)
        if key in self._made:
            return self._made[key]
        path = self.root / f"v-{seconds}-{size}-{fps}-{int(audio)}-{int(color)}.{container}"
        source = f"color=c=blue:size={size}:rate={fps}" if color else f"testsrc2=size={size}:rate={fps}"
        argv = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}:duration={seconds}"]
        if audio:
            argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
        vcodec = {"webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"]}.get(
            container, ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        )
        acodec = {"webm": ["-c:a", "libopus"], "avi": ["-c:a", "libmp3lame"]}.get(container, ["-c:a", "aac"])
        argv += vcodec + (acodec if audio else []) + ["-shortest", str(path)]
        self._run(argv)
        self._made[key] = path
        return path

    def audio(self, seconds: float = 1.0, fmt: str = "mp3") -> Path:
        key = ("audio", seconds, fmt)
        if key in self._made:
            return self._made[key]
        path = self.root / f"a-{seconds}.{fmt}"
        self._run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                   f"sine=frequency=660:sample_rate=44100:duration={seconds}", str(path)])
        self._made[key] = path
        return path

    def speech(self, text: str = "hello world this is a test of subtitles") -> Path:
        key = ("speech", text)
        if key in self._made:
            return self._made[key]
        path = self.root / "speech.wav"
        self._run(["espeak-ng", "-w", str(path), text])
        self._made[key] = path
        return path

    def with_speech(self, video: Path) -> Path:
        """The video with its sound replaced by espeak-ng speech (for speech-to-text)."""
        path = video.with_name(f"{video.stem}-speech{video.suffix}")
        if path.exists():
            return path
        ext = video.suffix.lstrip(".")
        acodec = {"webm": "libopus", "avi": "libmp3lame"}.get(ext, "aac")
        self._run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video), "-i", str(self.speech()),
                   "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", acodec, str(path)])
        return path

    def subtitles(self, fmt: str = "srt") -> Path:
        path = self.root / f"subs.{fmt}"
        if fmt == "srt":
            path.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello <b>world</b>\n")
        elif fmt == "vtt":
            path.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello world\n")
        else:
            path.write_text(
                "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 240\n\n[V4+ Styles]\n"
                "Format: Name, Fontname, Fontsize, PrimaryColour, Alignment\n"
                "Style: Default,DejaVu Sans,20,&H00FFFFFF,2\n"
                "\n[Events]\nFormat: Layer, Start, End, Style, Text\nDialogue: 0,0:00:00.00,0:00:01.00,Default,Hello\n"
            )
        return path

    def upload(self, path: Path, bucket: str, key: str) -> str:
        self.s3.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{key}"

    @staticmethod
    def _run(argv: list[str]) -> None:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        assert out.returncode == 0, f"{argv[0]} failed ({out.returncode}): {out.stderr[-2000:]}"


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory, s3: Any) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("media"), s3)
