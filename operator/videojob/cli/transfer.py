"""S3 transfers of `kubectl videojob` with progress bars: local inputs up, artifacts down, presigned URLs.

Credentials are the user's own, found the way the AWS CLI finds them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
AWS_PROFILE and ~/.aws/config, SSO, ...); the endpoint of an S3-compatible store comes from --s3-endpoint or
S3_ENDPOINT_URL (as for the transcoder), else AWS.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from videojob import storage


class TransferError(Exception):
    """An S3 problem, as one line."""


def s3_client(endpoint: str | None) -> Any:
    env = dict(os.environ)
    if endpoint:
        env["S3_ENDPOINT_URL"] = endpoint
    return storage.s3_client_from_env(env)


def _split(uri: str) -> tuple[str, str]:
    bucket, key = storage.parse_s3_uri(uri)
    return bucket, key


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _why(error: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return f"{err.get('Code', '')} {err.get('Message', '')}".strip()
    return " ".join(str(error).split())


@dataclass(frozen=True)
class Upload:
    path: Path
    uri: str


def upload(s3: Any, uploads: Sequence[Upload], console: Console) -> None:
    """Upload each local file with a progress bar."""
    with _progress(console) as progress:
        for item in uploads:
            size = item.path.stat().st_size
            task = progress.add_task(f"upload {item.path.name}", total=size)
            bucket, key = _split(item.uri)
            try:
                s3.upload_file(str(item.path), bucket, key, Callback=lambda n, task=task: progress.advance(task, n))
            except Exception as e:
                raise TransferError(f"cannot upload {item.path} to {item.uri}: {_why(e)}") from None
            progress.update(task, completed=size)


def download(s3: Any, artifacts: Sequence[dict[str, Any]], directory: Path, console: Console) -> list[Path]:
    """Download each artifact into `directory` with a progress bar, checking its sha256 against the status."""
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    with _progress(console) as progress:
        for artifact in artifacts:
            bucket, key = _split(str(artifact["uri"]))
            target = directory / Path(key).name
            task = progress.add_task(f"download {target.name}", total=artifact.get("size"))
            try:
                s3.download_file(bucket, key, str(target), Callback=lambda n, task=task: progress.advance(task, n))
            except Exception as e:
                raise TransferError(f"cannot download {artifact['uri']}: {_why(e)}") from None
            expected = artifact.get("sha256")
            if expected and sha256_file(target) != expected:
                raise TransferError(f"{target}: sha256 differs from the one in the VideoJob's status")
            done.append(target)
    return done


def presigned_url(s3: Any, uri: str, expires: int) -> str:
    bucket, key = _split(uri)
    try:
        return str(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires))
    except Exception as e:
        raise TransferError(f"cannot sign a URL for {uri}: {_why(e)}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
