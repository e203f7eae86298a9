"""Object storage and HTTP(S) transfers: the only code that moves bytes between S3, the web and local files.

Shared by the transcoder (fetch inputs, upload outputs) and the operator (delete artifacts when a VideoJob with
`artifactReclaimPolicy: Delete` goes away), so it imports nothing of either.

Every failure becomes one of the transcoder's error classes, with a message naming the URI:
- BadInput: the object or bucket does not exist, access is denied, the input is over the size cap, the URL is
  refused by the input policy, the server answers 4xx. Retrying cannot help.
- Transient: connection trouble, timeouts, 5xx, throttling, a truncated transfer. Worth retrying.

Nothing is ever held in memory whole: S3 goes through boto3's managed transfers (multipart, a few threads, a
`TransferConfig` tuned for media files), HTTP(S) is streamed to disk in 1 MiB chunks with the cap counted as
bytes arrive.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import mimetypes
import os
import secrets
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from videojob.api import runtime
from videojob.api.conditions import Reason
from videojob.errors import BadInput, TranscodeError, Transient
from videojob.inputs import InputPolicy, ParsedURI, check_address, check_uri, parse_uri

MiB = 1024 * 1024
MULTIPART_THRESHOLD = 32 * MiB  # below this a single PUT/GET is faster than the multipart bookkeeping
MULTIPART_CHUNKSIZE = 32 * MiB  # 10,000 parts x 32 MiB = 312 GiB, far above any input cap
MAX_CONCURRENCY = 4  # parallel parts; the transcoder shares its CPU with FFmpeg
HTTP_CHUNK = 1 * MiB
HTTP_TIMEOUT = 30.0  # seconds per socket operation (connect, each read), not for the whole transfer
MAX_REDIRECTS = 5
USER_AGENT = "videojob-transcoder"

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
_BAD_REQUEST = {"400", "InvalidBucketName", "KeyTooLongError", "InvalidArgument", "EntityTooLarge"}


# ---------------------------------------------------------------------------------------------------------------
# S3 client and URIs


def s3_client_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client configured from S3_ENDPOINT_URL, AWS_DEFAULT_REGION and the AWS_* credentials.

    With an endpoint (MinIO, Ceph, ...) addressing is path-style, which every S3-compatible store understands;
    without one it is AWS and boto3 picks. Missing credentials fall back to boto3's own chain (IRSA, instance
    profiles). Retries use botocore's "standard" mode (backoff with jitter, throttling-aware).
    """
    import boto3
    from botocore.config import Config

    env = os.environ if environ is None else environ
    endpoint = env.get(runtime.ENV_S3_ENDPOINT) or None
    config = Config(
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max(10, MAX_CONCURRENCY * 2),
        user_agent_extra=USER_AGENT,
    )
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
        region_name=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
    )
    return session.client("s3", endpoint_url=endpoint, config=config)


def transfer_config(
    multipart_threshold: int = MULTIPART_THRESHOLD,
    multipart_chunksize: int = MULTIPART_CHUNKSIZE,
    max_concurrency: int = MAX_CONCURRENCY,
) -> Any:
    """boto3 TransferConfig for media files (large sequential objects)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
        max_concurrency=max_concurrency,
        use_threads=max_concurrency > 1,
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`; the key may be empty or end with "/" (a prefix). Pure.

    Keys with "..", "." or empty segments, or a leading "/", are refused (BadInput): they would mean different
    objects to different S3 implementations, or a local path outside the work dir.
    """
    if not uri.startswith("s3://"):
        raise BadInput(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if key:
        stem = key[:-1] if key.endswith("/") else key
        parse_uri(f"s3://{bucket}/{stem}", InputPolicy())  # same bucket and key rules as inputs
    else:
        parse_uri(f"s3://{bucket}/x", InputPolicy())  # the bucket rules alone
    return bucket, key


def _error_code(error: BaseException) -> tuple[str, int]:
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def _client_error_in(error: BaseException) -> BaseException | None:
    """The botocore ClientError behind `error` (boto3's transfer errors wrap it, sometimes only as a cause)."""
    from botocore.exceptions import ClientError

    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ClientError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _not_found_reason(action: str) -> Reason:
    # A missing output bucket is the platform's configuration, not the user's input: say which side is wrong.
    return Reason.OUTPUT_BUCKET_NOT_FOUND if action == "write" else Reason.INPUT_NOT_FOUND


def _s3_error(error: BaseException, uri: str, action: str) -> TranscodeError:
    """Classify an exception from boto3 into BadInput (do not retry) or Transient (retry)."""
    from botocore.exceptions import BotoCoreError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return BadInput(f"cannot {action} {uri}: no S3 credentials configured", reason=Reason.STORAGE_ACCESS_DENIED)
    client_error = _client_error_in(error)
    if client_error is not None:
        code, status = _error_code(client_error)
        if code in _NOT_FOUND or status == 404:
            what = "bucket" if code == "NoSuchBucket" else "object"
            return BadInput(f"cannot {action} {uri}: the {what} does not exist", reason=_not_found_reason(action))
        if code in _DENIED or status in (401, 403):
            return BadInput(
                f"cannot {action} {uri}: access denied ({code or status})", reason=Reason.STORAGE_ACCESS_DENIED
            )
        if code in _BAD_REQUEST:
            return BadInput(f"cannot {action} {uri}: {code}", reason=Reason.BAD_INPUT)
        return Transient(f"cannot {action} {uri}: storage error {code or status}", reason=Reason.STORAGE_UNAVAILABLE)
    if isinstance(error, BotoCoreError | OSError):
        return Transient(f"cannot {action} {uri}: {error}", reason=Reason.STORAGE_UNAVAILABLE)
    text = str(error)
    if "NoSuchBucket" in text or "Not Found" in text or "(404)" in text:  # S3UploadFailedError keeps only text
        return BadInput(f"cannot {action} {uri}: {text}", reason=_not_found_reason(action))
    if "AccessDenied" in text or "(403)" in text:
        return BadInput(f"cannot {action} {uri}: {text}", reason=Reason.STORAGE_ACCESS_DENIED)
    return Transient(f"cannot {action} {uri}: {text}", reason=Reason.STORAGE_UNAVAILABLE)


# ---------------------------------------------------------------------------------------------------------------
# Fetch


def fetch(
    uri: str,
    dest: Path,
    policy: InputPolicy,
    s3: Any = None,
    transfer: Any = None,
) -> int:
    """Copy an input to `dest` and return its size in bytes. The URI is checked against `policy` first.

    `dest` appears only complete: the bytes go to a sibling temporary file renamed at the end, and a failed
    transfer leaves nothing behind.
    """
    parsed = check_uri(uri, policy)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if parsed.is_s3:
        return _fetch_s3(parsed, dest, policy, s3 if s3 is not None else s3_client_from_env(), transfer)
    return _fetch_http(parsed, dest, policy)


def _too_big(uri: str, size: int, policy: InputPolicy) -> BadInput:
    return BadInput(
        f"input {uri} is {size} bytes, over the limit of {policy.max_bytes} bytes", reason=Reason.INPUT_TOO_LARGE
    )


def _fetch_s3(parsed: ParsedURI, dest: Path, policy: InputPolicy, s3: Any, transfer: Any) -> int:
    uri = parsed.uri
    try:
        head = s3.head_object(Bucket=parsed.bucket, Key=parsed.key)
    except Exception as e:
        raise _s3_error(e, uri, "read") from e
    size = int(head.get("ContentLength", 0))
    if size > policy.max_bytes:
        raise _too_big(uri, size, policy)
    partial = dest.with_name(dest.name + ".part")
    try:
        s3.download_file(parsed.bucket, parsed.key, str(partial), Config=transfer or transfer_config())
        got = partial.stat().st_size
        if got > policy.max_bytes:  # replaced by a bigger object after the HEAD
            raise _too_big(uri, got, policy)
        if got != size:
            raise Transient(
                f"input {uri} changed while it was read ({size} bytes, then {got})", reason=Reason.INPUT_CHANGED
            )
        partial.replace(dest)
    except TranscodeError:
        partial.unlink(missing_ok=True)
        raise
    except Exception as e:
        partial.unlink(missing_ok=True)
        raise _s3_error(e, uri, "read") from e
    return got


class _GuardedConnectionMixin:
    """Opens the TCP connection itself, to an address it checked against the input policy just now.

    http.client resolves the host again when it connects; checking here (not only in `check_uri`) means a DNS
    answer that changes in between cannot point the fetch at a private address. `_create_connection` is the
    documented-in-source hook http.client uses for exactly this (tests and proxies replace it too).
    """

    def __init__(self, *args: Any, policy: InputPolicy, uri: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._policy = policy
        self._uri = uri
        self._create_connection = self._connect_checked

    def _connect_checked(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        host, port = address
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for info in infos:  # every answer must be allowed, not just the one we happen to reach first
            check_address(self._uri, host, str(info[4][0]), self._policy)
        last: OSError | None = None
        for family, socktype, proto, _, sockaddr in infos:
            sock = socket.socket(family, socktype, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                last = e
        raise last or OSError(f"no address for {host}")


class _GuardedHTTPConnection(_GuardedConnectionMixin, http.client.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, http.client.HTTPSConnection):
    pass


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, policy: InputPolicy) -> None:
        super().__init__()
        self._policy = policy

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if not self._policy.allow_http:
            raise BadInput(f"input URI {req.full_url!r} is refused: http:// is not allowed by the operator")
        factory = functools.partial(_GuardedHTTPConnection, policy=self._policy, uri=req.full_url)
        return self.do_open(factory, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, policy: InputPolicy, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self._policy = policy
        self._context = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        factory = functools.partial(_GuardedHTTPSConnection, policy=self._policy, uri=req.full_url)
        return self.do_open(factory, req, context=self._context)


class _CheckedRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URI the input policy accepts (scheme, allowlist, addresses)."""

    max_redirections = MAX_REDIRECTS

    def __init__(self, policy: InputPolicy) -> None:
        super().__init__()
        self._policy = policy

    def _check_target(self, req: urllib.request.Request, location: str) -> None:
        target = urljoin(req.full_url, location)
        try:
            check_uri(target, self._policy)
        except BadInput as e:
            raise BadInput(f"input URI {req.full_url!r} redirects to a refused location: {e}") from None

    def http_error_302(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any) -> Any:
        # Checked before urllib's own scheme check, so every refusal reads the same way.
        location = headers.get("location") or headers.get("uri")
        if location:
            self._check_target(req, location)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        self._check_target(req, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(policy: InputPolicy) -> urllib.request.OpenerDirector:
    """An opener that speaks only http(s), never through a proxy, with checked connections and redirects.

    Built by hand rather than with build_opener(), which would add file:, ftp: and data: handlers.
    """
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.UnknownHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.HTTPDefaultErrorHandler(),
        _CheckedRedirectHandler(policy),
        _GuardedHTTPHandler(policy),
        _GuardedHTTPSHandler(policy, ssl.create_default_context()),
    ):
        opener.add_handler(handler)
    return opener


def _fetch_http(parsed: ParsedURI, dest: Path, policy: InputPolicy) -> int:
    uri = parsed.uri
    # S310: the scheme was checked by check_uri, and the opener has only http(s) handlers.
    request = urllib.request.Request(uri, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})  # noqa: S310
    partial = dest.with_name(dest.name + ".part")
    try:
        with _opener(policy).open(request, timeout=HTTP_TIMEOUT) as response:
            declared = response.headers.get("Content-Length")
            expected = int(declared) if declared and declared.isdigit() else None
            if expected is not None and expected > policy.max_bytes:
                raise _too_big(uri, expected, policy)
            got = 0
            with partial.open("wb") as out:
                while chunk := response.read(HTTP_CHUNK):
                    got += len(chunk)
                    if got > policy.max_bytes:
                        raise BadInput(
                            f"input {uri} is over the limit of {policy.max_bytes} bytes", reason=Reason.INPUT_TOO_LARGE
                        )
                    out.write(chunk)
        if expected is not None and got != expected:
            raise Transient(f"input {uri} was cut short: {got} of {expected} bytes", reason=Reason.INPUT_TRUNCATED)
        partial.replace(dest)
        return got
    except TranscodeError:
        partial.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        partial.unlink(missing_ok=True)
        raise http_failure(e, uri) from None


def http_failure(error: Exception, uri: str) -> TranscodeError:
    """Classify a failed HTTP(S) read: 4xx and untrusted certificates are BadInput, the rest Transient."""
    if isinstance(error, urllib.error.HTTPError):
        if error.code in (408, 425, 429) or error.code >= 500:
            return Transient(f"cannot read {uri}: HTTP {error.code} {error.reason}", reason=Reason.INPUT_UNAVAILABLE)
        return BadInput(f"cannot read {uri}: HTTP {error.code} {error.reason}", reason=Reason.INPUT_NOT_FOUND)
    reason = getattr(error, "reason", error)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return BadInput(f"cannot read {uri}: TLS certificate not trusted ({reason})", reason=Reason.INPUT_TLS)
    return Transient(f"cannot read {uri}: {reason}", reason=Reason.INPUT_UNAVAILABLE)


# ---------------------------------------------------------------------------------------------------------------
# Upload, checksums, deletion


# --- who wrote an object ---------------------------------------------------------------------------------------
#
# Every object a VideoJob writes carries its identity in S3 user metadata (x-amz-meta-videojob-uid, ...-namespace,
# ...-name). Writes are conditional (If-None-Match: * for a new object, If-Match: <etag> for one this VideoJob wrote
# in an earlier attempt; AWS S3 and MinIO honour both), so a VideoJob never silently replaces an object someone
# else wrote, unless its spec says `output.overwrite: true`. Deletion goes by the same metadata: only objects whose
# uid is the VideoJob's are removed.

META_UID, META_NAMESPACE, META_NAME = "videojob-uid", "videojob-namespace", "videojob-name"


@dataclass(frozen=True)
class Owner:
    """The VideoJob that writes: its uid, namespace and name, and whether it may replace others' objects."""

    uid: str
    namespace: str = ""
    name: str = ""
    overwrite: bool = False

    def metadata(self) -> dict[str, str]:
        return {
            k: v for k, v in {META_UID: self.uid, META_NAMESPACE: self.namespace, META_NAME: self.name}.items() if v
        }


def precondition_failed(error: BaseException) -> bool:
    client_error = _client_error_in(error)
    if client_error is not None:
        code, status = _error_code(client_error)
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "412") or status in (409, 412)
    return "PreconditionFailed" in str(error) or "(412)" in str(error)


def output_exists_error(uri: str) -> BadInput:
    return BadInput(
        f"{uri} exists and was not written by this VideoJob (another job, or someone else, wrote it); "
        "choose another output.uri or output.name, or set output.overwrite: true to replace it",
        reason=Reason.OUTPUT_EXISTS,
    )


def _head(client: Any, uri: str) -> dict[str, Any] | None:
    """HeadObject of `uri`, or None when there is no such object (or bucket)."""
    bucket, key = parse_s3_uri(uri)
    try:
        return dict(client.head_object(Bucket=bucket, Key=key))
    except Exception as e:
        error = _s3_error(e, uri, "read")
        if error.reason == Reason.INPUT_NOT_FOUND:
            return None
        raise error from e


def claim_outputs(uris: list[str], owner: Owner, s3: Any = None) -> dict[str, dict[str, str]]:
    """Before any work: the write condition for each output (URI -> extra PutObject/CompleteMultipartUpload
    arguments), or BadInput(OutputExists) when one exists that another wrote and the spec does not say overwrite.

    A new object: If-None-Match: *; one this VideoJob wrote before (an earlier attempt): If-Match its ETag;
    overwrite: no condition. A HEAD that is refused (credentials that may write but not read) counts as new: the
    conditional write then refuses what it must."""
    client = s3 if s3 is not None else s3_client_from_env()
    conditions: dict[str, dict[str, str]] = {}
    for uri in uris:
        try:
            head = _head(client, uri)
        except BadInput as e:
            if e.reason != Reason.STORAGE_ACCESS_DENIED:
                raise
            head = None
        if head is None:
            conditions[uri] = {"IfNoneMatch": "*"}
        elif (head.get("Metadata") or {}).get(META_UID) == owner.uid:
            conditions[uri] = {"IfMatch": str(head.get("ETag") or "")}
        elif owner.overwrite:
            conditions[uri] = {}
        else:
            raise output_exists_error(uri)
    return conditions


@contextlib.contextmanager
def _conditional(client: Any, condition: Mapping[str, str]) -> Iterator[None]:
    """Add `condition` to the PutObject and CompleteMultipartUpload calls boto3's managed transfer makes (its
    ExtraArgs do not take If-None-Match / If-Match)."""
    if not condition:
        yield
        return

    def add(params: dict[str, Any], **_: Any) -> None:
        params.update(condition)

    events = client.meta.events
    # one unique id per event: botocore keeps a second registration under the same id as a no-op
    names = {
        f"before-parameter-build.s3.{op}": f"videojob-condition-{op}-{secrets.token_hex(4)}"
        for op in ("PutObject", "CompleteMultipartUpload")
    }
    for name, unique in names.items():
        events.register(name, add, unique_id=unique)
    try:
        yield
    finally:
        for name, unique in names.items():
            events.unregister(name, unique_id=unique)


def upload(
    path: Path,
    uri: str,
    content_type: str | None = None,
    s3: Any = None,
    transfer: Any = None,
    metadata: Mapping[str, str] | None = None,
    condition: Mapping[str, str] | None = None,
) -> int:
    """Store a local file at `s3://bucket/key` (multipart above the threshold) and return its size; with
    `metadata` (S3 user metadata) and a write `condition` (from `claim_outputs`): a refused condition is
    BadInput(OutputExists)."""
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise BadInput(f"cannot upload to {uri}: an object URI needs a key, not a prefix")
    content_type = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    client = s3 if s3 is not None else s3_client_from_env()
    extra: dict[str, Any] = {"ContentType": content_type}
    if metadata:
        extra["Metadata"] = dict(metadata)
    try:
        with _conditional(client, condition or {}):
            client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=transfer or transfer_config())
    except Exception as e:
        if precondition_failed(e):
            raise output_exists_error(uri) from e
        raise _s3_error(e, uri, "write") from e
    return path.stat().st_size


def delete_owned(uris: list[str], uid: str, s3: Any = None) -> list[str]:
    """Delete each object at `uris` whose metadata names VideoJob `uid` (and nothing else: an object another job
    wrote at the same name, or one it replaced ours with, stays); returns the URIs deleted. A missing object or
    bucket is nothing to delete."""
    client = s3 if s3 is not None else s3_client_from_env()
    deleted: list[str] = []
    for uri in uris:
        head = _head(client, uri)
        if head is None or (head.get("Metadata") or {}).get(META_UID) != uid:
            continue
        bucket, key = parse_s3_uri(uri)
        try:
            client.delete_object(Bucket=bucket, Key=key)
        except Exception as e:
            raise _s3_error(e, uri, "delete") from e
        deleted.append(uri)
    return deleted


def check_output_bucket(uri: str, s3: Any = None) -> None:
    """Fail in seconds, not after the whole transcode, when the output bucket does not exist.

    Only a definite "no such bucket" fails: credentials allowed to write objects may still be refused HeadBucket
    (it needs s3:ListBucket), and any other trouble is left for the upload to report."""
    bucket, _ = parse_s3_uri(uri)
    client = s3 if s3 is not None else s3_client_from_env()
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as e:
        error = _s3_error(e, uri, "write")
        if error.reason == Reason.OUTPUT_BUCKET_NOT_FOUND:
            raise error from e


def sha256_file(path: Path, chunk_size: int = HTTP_CHUNK) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def delete_prefix(uri: str, s3: Any = None) -> int:
    """Delete every object under an `s3://bucket/prefix/` and return how many there were.

    The prefix is taken as a folder: "s3://b/out/job1" deletes "out/job1/..." but not "out/job10/...". A bare
    bucket is refused: reclaiming a job's artifacts must never empty a whole bucket.
    """
    bucket, prefix = parse_s3_uri(uri)
    if not prefix:
        raise BadInput(f"refusing to delete {uri}: a whole bucket is never an artifact prefix")
    if not prefix.endswith("/"):
        prefix += "/"
    client = s3 if s3 is not None else s3_client_from_env()
    deleted = 0
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            answer = client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            errors = answer.get("Errors", [])
            if errors:
                first = errors[0]
                raise Transient(
                    f"cannot delete s3://{bucket}/{first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                    reason=Reason.STORAGE_UNAVAILABLE,
                )
            deleted += len(keys)
    except TranscodeError:
        raise
    except Exception as e:
        error = _s3_error(e, uri, "delete")
        if isinstance(error, BadInput) and error.reason == Reason.INPUT_NOT_FOUND:
            return deleted  # the bucket is gone: nothing left to reclaim
        raise error from e
    return deleted
