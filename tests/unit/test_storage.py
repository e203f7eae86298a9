"""Pure parts of videojob.storage: S3 URIs and how storage errors are classified (retry or not).

The errors are real botocore/boto3 exception objects built from the response shapes S3 returns.
"""

from __future__ import annotations

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from videojob.api.runtime import ExitCode
from videojob.errors import BadInput, Transient
from videojob.storage import _s3_error, parse_s3_uri, transfer_config

URI = "s3://media/in/x.mp4"


def client_error(code: str, status: int, operation: str = "HeadObject") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def _wrapped(inner: Exception) -> Exception:
    """What boto3's upload_file raises: the ClientError only as context, its text in the message."""
    try:
        raise inner
    except Exception as e:
        try:
            raise S3UploadFailedError(f"Failed to upload x to media/x: {e}") from e
        except S3UploadFailedError as outer:
            return outer


@pytest.mark.parametrize(
    ("error", "kind", "reason", "text"),
    [
        (client_error("404", 404), BadInput, "InputNotFound", "object does not exist"),
        (client_error("NoSuchKey", 404, "GetObject"), BadInput, "InputNotFound", "object does not exist"),
        (client_error("NoSuchBucket", 404), BadInput, "InputNotFound", "bucket does not exist"),
        (client_error("403", 403), BadInput, "StorageAccessDenied", "access denied"),
        (client_error("AccessDenied", 403), BadInput, "StorageAccessDenied", "access denied"),
        (client_error("SignatureDoesNotMatch", 403), BadInput, "StorageAccessDenied", "access denied"),
        (client_error("InvalidBucketName", 400), BadInput, "BadInput", "InvalidBucketName"),
        (client_error("InternalError", 500), Transient, "StorageUnavailable", "InternalError"),
        (client_error("SlowDown", 503), Transient, "StorageUnavailable", "SlowDown"),
        (client_error("503", 503), Transient, "StorageUnavailable", "503"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), Transient, "StorageUnavailable", "127.0.0.1:1"),
        (ReadTimeoutError(endpoint_url="http://x"), Transient, "StorageUnavailable", "timeout"),
        (ConnectionResetError("reset by peer"), Transient, "StorageUnavailable", "reset by peer"),
        (NoCredentialsError(), BadInput, "StorageAccessDenied", "no S3 credentials"),
        (_wrapped(client_error("NoSuchBucket", 404, "CreateMultipartUpload")), BadInput, "InputNotFound", "bucket"),
        (_wrapped(client_error("AccessDenied", 403, "PutObject")), BadInput, "StorageAccessDenied", "access"),
        (_wrapped(client_error("InternalError", 500, "PutObject")), Transient, "StorageUnavailable", "InternalError"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_storage_errors_are_classified(error: Exception, kind: type, reason: str, text: str) -> None:
    classified = _s3_error(error, URI, "read")
    assert type(classified) is kind
    assert classified.reason == reason
    assert URI in str(classified) and text.lower() in str(classified).lower()
    assert classified.exit_code == (ExitCode.BAD_INPUT if kind is BadInput else ExitCode.TRANSIENT)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (client_error("NoSuchBucket", 404), "OutputBucketNotFound"),
        (_wrapped(client_error("NoSuchBucket", 404, "CreateMultipartUpload")), "OutputBucketNotFound"),
        (_wrapped(client_error("AccessDenied", 403, "PutObject")), "StorageAccessDenied"),
    ],
    ids=["missing bucket", "missing bucket in a multipart upload", "denied"],
)
def test_write_errors_name_the_output_side(error: Exception, reason: str) -> None:
    assert _s3_error(error, URI, "write").reason == reason


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://media/out/job/", ("media", "out/job/")),
        ("s3://media/out/a.mp4", ("media", "out/a.mp4")),
        ("s3://media", ("media", "")),
        ("s3://media/", ("media", "")),
        ("s3://my-bucket.v2/a/b/c.srt", ("my-bucket.v2", "a/b/c.srt")),
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    "uri", ["s3://media/../x", "s3://media//x", "s3://media/a//b/", "s3://media/a/./b", "https://media/x", "s3://M/x"]
)
def test_parse_s3_uri_refuses(uri: str) -> None:
    with pytest.raises(BadInput):
        parse_s3_uri(uri)


def test_transfer_config_is_tuned_for_media() -> None:
    default = transfer_config()
    assert 16 * 2**20 <= default.multipart_threshold <= 64 * 2**20
    assert default.multipart_chunksize == default.multipart_threshold
    assert 2 <= default.max_concurrency <= 8 and default.use_threads
    single = transfer_config(max_concurrency=1)
    assert not single.use_threads
