"""FFmpeg and ffprobe parse untrusted media: they run without the transcoder's credentials in their environment
(they inherited AWS_SECRET_ACCESS_KEY)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from videojob.transcoder import probe as probe_module
from videojob.transcoder import runner
from videojob.transcoder.childenv import child_env, is_sensitive
from videojob.transcoder.progress import NullReporter

TRANSCODER_ENV = {
    "PATH": "/usr/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "S3_ENDPOINT_URL": "http://minio:9000",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_SESSION_TOKEN": "t",
    "AWS_ROLE_ARN": "arn:aws:iam::1:role/x",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/x/token",
    "VIDEOJOB_NAME": "promo",
    "MY_API_KEY": "k",
    "DB_PASSWORD": "p",
    "NVIDIA_VISIBLE_DEVICES": "all",
}


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("AWS_SESSION_TOKEN", True),
        ("AWS_DEFAULT_REGION", True),
        ("GITHUB_TOKEN", True),
        ("db_password", True),
        ("MY_API_KEY", True),
        ("PATH", False),
        ("HOME", False),
        ("S3_ENDPOINT_URL", False),
        ("NVIDIA_VISIBLE_DEVICES", False),
        ("VIDEOJOB_NAME", False),
        ("LD_LIBRARY_PATH", False),
    ],
)
def test_what_counts_as_sensitive(name: str, sensitive: bool) -> None:
    assert is_sensitive(name) is sensitive


def test_child_env_keeps_the_rest() -> None:
    assert child_env(TRANSCODER_ENV) == {
        "PATH": "/usr/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "VIDEOJOB_NAME": "promo",
        "NVIDIA_VISIBLE_DEVICES": "all",
    }


def test_ffmpeg_and_ffprobe_get_no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in TRANSCODER_ENV.items():
        monkeypatch.setenv(name, value)
    seen: list[dict[str, str]] = []

    def popen(argv: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("env") or {})
        raise OSError("not started in this test")

    def run(argv: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("env") or {})
        return subprocess.CompletedProcess(argv, 0, b'{"format": {"format_name": "mov", "duration": "1"}}', b"")

    monkeypatch.setattr(runner.subprocess, "Popen", popen)
    monkeypatch.setattr(probe_module.subprocess, "run", run)
    with pytest.raises(runner.Unsupported):
        runner.FFmpegRun(["ffmpeg", "-version"]).run(None, NullReporter(), None)
    with pytest.raises(probe_module.BadInput):  # the fake answer has no streams: only the environment matters here
        probe_module.probe(tmp_path / "in.mp4", formats=None)
    assert len(seen) == 2
    for env in seen:
        assert env, "an explicit environment, not the transcoder's"
        assert not [name for name in env if name.startswith("AWS_") or "PASSWORD" in name], env
        assert env["PATH"] == "/usr/bin"
