"""videojob.storage against the real MinIO of the local environment and a real HTTP(S) server on loopback.

The HTTP server is Python's http.server on 127.0.0.1 in a thread; the HTTPS one wraps it with a certificate made
by the openssl CLI for this test and trusted through SSL_CERT_FILE. Loopback is a private address, so the fetches
that should succeed run with `allow_private_networks=True`, and the same server proves the refusal without it.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TestEnv
from videojob.api.runtime import ExitCode
from videojob.errors import BadInput, Transient
from videojob.inputs import InputPolicy
from videojob.storage import (
    check_output_bucket,
    delete_prefix,
    fetch,
    s3_client_from_env,
    sha256_file,
    transfer_config,
    upload,
)

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SMALL_PARTS = transfer_config(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
LOOPBACK = InputPolicy(allow_http=True, allow_private_networks=True)


def _random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        remaining = size
        while remaining:
            n = min(remaining, MiB)
            f.write(os.urandom(n))
            remaining -= n
    return path


@pytest.fixture
def client(testenv: TestEnv) -> Any:
    """The client the transcoder makes from its environment (not the test's own `s3` fixture)."""
    return s3_client_from_env(testenv.variables)


# --- S3 --------------------------------------------------------------------------------------------------------


def test_multipart_round_trip_keeps_every_byte(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    source = _random_file(tmp_path / "in.mp4", 12 * MiB + 123)
    uri = f"s3://{bucket}/in/clip.mp4"

    assert upload(source, uri, s3=client, transfer=SMALL_PARTS) == source.stat().st_size

    head = s3.head_object(Bucket=bucket, Key="in/clip.mp4")
    assert head["ETag"].strip('"').endswith("-3"), f"expected a 3-part multipart upload, ETag {head['ETag']}"
    assert head["ContentType"] == "video/mp4"
    dest = tmp_path / "fetched" / "clip.mp4"
    size = fetch(uri, dest, InputPolicy(), s3=client, transfer=SMALL_PARTS)
    assert size == source.stat().st_size == dest.stat().st_size
    assert sha256_file(dest) == sha256_file(source)
    assert not dest.with_name("clip.mp4.part").exists()


def test_content_type_can_be_given(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    path = tmp_path / "subs.vtt"
    path.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n")
    upload(path, f"s3://{bucket}/out/subs.vtt", content_type="text/vtt; charset=utf-8", s3=client)
    assert s3.head_object(Bucket=bucket, Key="out/subs.vtt")["ContentType"] == "text/vtt; charset=utf-8"


def test_missing_object_is_bad_input_naming_the_uri(tmp_path: Path, client: Any, bucket: str) -> None:
    uri = f"s3://{bucket}/in/nothing-here.mp4"
    with pytest.raises(BadInput) as caught:
        fetch(uri, tmp_path / "x.mp4", InputPolicy(), s3=client)
    assert uri in str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert not list(tmp_path.iterdir())


def test_missing_bucket_is_bad_input(tmp_path: Path, client: Any, bucket: str) -> None:
    uri = f"s3://{bucket}-gone/in/x.mp4"
    with pytest.raises(BadInput, match=uri):
        fetch(uri, tmp_path / "x.mp4", InputPolicy(), s3=client)
    source = _random_file(tmp_path / "y.mp4", 10)
    with pytest.raises(BadInput, match=f"{bucket}-gone") as refused:
        upload(source, uri, s3=client)
    assert refused.value.reason == "OutputBucketNotFound"


def test_a_missing_output_bucket_is_found_before_any_work(client: Any, bucket: str) -> None:
    check_output_bucket(f"s3://{bucket}/out/job/", s3=client)  # exists: nothing to say
    missing = f"gone-{uuid.uuid4().hex[:12]}"
    with pytest.raises(BadInput, match=missing) as refused:
        check_output_bucket(f"s3://{missing}/out/job/", s3=client)
    assert refused.value.reason == "OutputBucketNotFound"


def test_wrong_credentials_are_bad_input(tmp_path: Path, testenv: TestEnv, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/x.mp4", Body=b"x")
    wrong = s3_client_from_env({**testenv.variables, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    with pytest.raises(BadInput, match="access denied"):
        fetch(f"s3://{bucket}/in/x.mp4", tmp_path / "x.mp4", InputPolicy(), s3=wrong)


def test_object_over_the_size_cap_is_refused_before_download(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="in/big.mp4", Body=b"\0" * 2000)
    uri = f"s3://{bucket}/in/big.mp4"
    with pytest.raises(BadInput, match=r"2000 bytes, over the limit of 1000 bytes") as caught:
        fetch(uri, tmp_path / "big.mp4", InputPolicy(max_bytes=1000), s3=client)
    assert caught.value.reason == "InputTooLarge"
    assert not list(tmp_path.iterdir())


def test_unreachable_storage_is_transient(tmp_path: Path, testenv: TestEnv) -> None:
    # A port nothing listens on: connection refused, a real failure worth retrying.
    dead = s3_client_from_env({**testenv.variables, "S3_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}"})
    with pytest.raises(Transient, match=r"s3://media/in/x\.mp4") as caught:
        fetch("s3://media/in/x.mp4", tmp_path / "x.mp4", InputPolicy(), s3=dead)
    assert caught.value.exit_code == ExitCode.TRANSIENT


def test_delete_prefix_removes_only_that_folder(client: Any, s3: Any, bucket: str) -> None:
    for key in ("out/job1/a.mp4", "out/job1/a.srt", "out/job1/thumb/a.jpg", "out/job10/a.mp4", "out/other.mp4"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    assert delete_prefix(f"s3://{bucket}/out/job1", s3=client) == 3

    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert left == ["out/job10/a.mp4", "out/other.mp4"]
    assert delete_prefix(f"s3://{bucket}/out/job1/", s3=client) == 0
    assert delete_prefix(f"s3://{bucket}-gone/out/job1/", s3=client) == 0
    with pytest.raises(BadInput, match="whole bucket"):
        delete_prefix(f"s3://{bucket}", s3=client)
    with pytest.raises(BadInput, match="whole bucket"):
        delete_prefix(f"s3://{bucket}/", s3=client)


_MEMORY_PROBE = """
import json, sys
from pathlib import Path
from videojob.storage import fetch, s3_client_from_env
from videojob.inputs import InputPolicy

def hwm_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM")

client = s3_client_from_env()
uri, dest = sys.argv[1], Path(sys.argv[2])
client.head_object(Bucket=uri.split("/")[2], Key="/".join(uri.split("/")[3:]))  # load every module first
before = hwm_kib()
size = fetch(uri, dest, InputPolicy(), s3=client)
print(json.dumps({"before_kib": before, "after_kib": hwm_kib(), "size": size}))
"""


def test_fetching_a_large_object_streams_to_disk(tmp_path: Path, testenv: TestEnv, client: Any, bucket: str) -> None:
    size = 200 * MiB
    source = tmp_path / "large.bin"
    with source.open("wb") as f:  # sparse: cheap to make, still 200 MiB of bytes on the wire
        f.truncate(size)
    upload(source, f"s3://{bucket}/in/large.bin", s3=client)
    source.unlink()

    dest = tmp_path / "large-fetched.bin"
    probe = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, f"s3://{bucket}/in/large.bin", str(dest)],
        env=testenv.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    facts = json.loads(probe.stdout)
    growth_mib = (facts["after_kib"] - facts["before_kib"]) / 1024
    print(f"fetching {size // MiB} MiB raised peak RSS by {growth_mib:.1f} MiB")
    assert facts["size"] == size == dest.stat().st_size
    assert growth_mib < 96, f"peak RSS grew by {growth_mib:.0f} MiB while fetching {size // MiB} MiB"


# --- HTTP(S) ---------------------------------------------------------------------------------------------------


def _closed_port() -> int:
    """A loopback port that was free a moment ago and has no listener."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BODY = os.urandom(3 * MiB + 17)


class _Handler(http.server.BaseHTTPRequestHandler):
    redirect_base = ""  # set per server: where /to-allowed points
    server: http.server.HTTPServer  # what serves it (BaseRequestHandler says only BaseServer)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return

    def do_GET(self) -> None:
        routes: dict[str, Callable[[], None]] = {
            "/file.mp4": self._file,
            "/redirect-same": lambda: self._redirect("/file.mp4"),
            "/redirect-other-host": lambda: self._redirect(f"http://localhost:{self.server.server_port}/file.mp4"),
            "/redirect-file": lambda: self._redirect("file:///etc/passwd"),
            "/redirect-metadata": lambda: self._redirect("http://169.254.169.254/latest/meta-data/"),
            "/declares-huge": self._declares_huge,
            "/no-length": self._no_length,
            "/short": self._short,
            "/missing": lambda: self._status(404),
            "/broken": lambda: self._status(503),
        }
        routes.get(self.path, lambda: self._status(404))()

    def _file(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _declares_huge(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 1024**3))
        self.end_headers()
        self.wfile.write(b"\0" * 1024)  # then hangs up: the client must not wait for 10 GiB

    def _no_length(self) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for _ in range(8):
                self.wfile.write(b"\0" * MiB)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at the cap, as it should

    def _short(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5000")
        self.end_headers()
        self.wfile.write(b"\0" * 100)
        self.close_connection = True

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(server: http.server.ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def http_server() -> Iterator[str]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler))


@pytest.fixture
def https_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An HTTPS server with a self-signed certificate for 127.0.0.1, trusted via SSL_CERT_FILE."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    yield from _serve(server)


def test_http_fetch_from_an_allowed_private_network(tmp_path: Path, http_server: str) -> None:
    dest = tmp_path / "in.mp4"
    assert fetch(f"http://{http_server}/file.mp4", dest, LOOPBACK) == len(BODY)
    assert dest.read_bytes() == BODY


def test_https_fetch_verifies_the_certificate(tmp_path: Path, https_server: str) -> None:
    dest = tmp_path / "in.mp4"
    policy = InputPolicy(allow_private_networks=True)  # https only
    assert fetch(f"https://{https_server}/file.mp4", dest, policy) == len(BODY)
    assert dest.read_bytes() == BODY


def test_https_with_an_untrusted_certificate_is_bad_input(
    tmp_path: Path, https_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    uri = f"https://{https_server}/file.mp4"
    with pytest.raises(BadInput, match="certificate"):
        fetch(uri, tmp_path / "in.mp4", InputPolicy(allow_private_networks=True))


def test_loopback_is_refused_unless_private_networks_are_allowed(tmp_path: Path, http_server: str) -> None:
    uri = f"http://{http_server}/file.mp4"
    with pytest.raises(BadInput, match=r"resolves to 127\.0\.0\.1, a loopback address") as caught:
        fetch(uri, tmp_path / "in.mp4", InputPolicy(allow_http=True))
    assert uri in str(caught.value)
    with pytest.raises(BadInput, match="http:// is not allowed"):
        fetch(uri, tmp_path / "in.mp4", InputPolicy(allow_private_networks=True))
    assert not list(tmp_path.iterdir())


def test_redirect_within_the_policy_is_followed(tmp_path: Path, http_server: str) -> None:
    dest = tmp_path / "in.mp4"
    assert fetch(f"http://{http_server}/redirect-same", dest, LOOPBACK) == len(BODY)


@pytest.mark.parametrize(
    ("path", "policy", "why"),
    [
        (
            "/redirect-other-host",
            InputPolicy(allow_http=True, allow_private_networks=True, allowed_hosts=("127.0.0.1",)),
            "not in the allowed hosts",
        ),
        ("/redirect-file", LOOPBACK, "scheme 'file'"),
    ],
    ids=["to a host outside the allowlist", "to file:"],
)
def test_redirect_to_a_refused_location_is_bad_input(
    tmp_path: Path, http_server: str, path: str, policy: InputPolicy, why: str
) -> None:
    with pytest.raises(BadInput, match=why):
        fetch(f"http://{http_server}{path}", tmp_path / "in.mp4", policy)
    assert not list(tmp_path.iterdir())


def test_redirect_to_the_metadata_address_is_refused(tmp_path: Path, http_server: str) -> None:
    # The first hop (loopback) is allowed here only for the test server; the metadata address is not.
    policy = InputPolicy(allow_http=True, allowed_hosts=("127.0.0.1",), allow_private_networks=True)
    with pytest.raises(BadInput, match=r"redirects to a refused location.*169\.254\.169\.254"):
        fetch(f"http://{http_server}/redirect-metadata", tmp_path / "in.mp4", policy)


def test_declared_length_over_the_cap_is_refused_without_reading(tmp_path: Path, http_server: str) -> None:
    policy = InputPolicy(allow_http=True, allow_private_networks=True, max_bytes=MiB)
    with pytest.raises(BadInput, match=r"10737418240 bytes, over the limit of 1048576 bytes"):
        fetch(f"http://{http_server}/declares-huge", tmp_path / "in.mp4", policy)
    assert not list(tmp_path.iterdir())


def test_undeclared_length_is_counted_against_the_cap(tmp_path: Path, http_server: str) -> None:
    policy = InputPolicy(allow_http=True, allow_private_networks=True, max_bytes=2 * MiB)
    with pytest.raises(BadInput, match="over the limit of 2097152 bytes"):
        fetch(f"http://{http_server}/no-length", tmp_path / "in.mp4", policy)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("path", "error", "why"),
    [
        ("/missing", BadInput, "HTTP 404"),
        ("/broken", Transient, "HTTP 503"),
        ("/short", Transient, "cut short|IncompleteRead"),
    ],
)
def test_http_failures_are_classified(
    tmp_path: Path, http_server: str, path: str, error: type[Exception], why: str
) -> None:
    uri = f"http://{http_server}{path}"
    with pytest.raises(error, match=why) as caught:
        fetch(uri, tmp_path / "in.mp4", LOOPBACK)
    assert uri in str(caught.value)
    assert not list(tmp_path.iterdir())


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    port = _closed_port()
    with pytest.raises(Transient, match=f"127.0.0.1:{port}"):
        fetch(f"http://127.0.0.1:{port}/x.mp4", tmp_path / "in.mp4", LOOPBACK)


def test_every_connection_is_checked_not_only_the_first_resolution(tmp_path: Path, http_server: str) -> None:
    # Bypass check_uri, as a DNS answer that changed after it (rebinding) would: the opener itself refuses.
    from videojob.storage import _opener

    with pytest.raises(BadInput, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        _opener(InputPolicy(allow_http=True)).open(f"http://{http_server}/file.mp4", timeout=10)
    with _opener(LOOPBACK).open(f"http://{http_server}/file.mp4", timeout=10) as response:
        assert response.read() == BODY


def test_the_opener_speaks_only_http(tmp_path: Path) -> None:
    import urllib.error

    from videojob.storage import _opener

    secret = tmp_path / "secret.txt"
    secret.write_text("never read")
    for url in (secret.as_uri(), "data:text/plain,hello", "ftp://127.0.0.1/x"):
        with pytest.raises(urllib.error.URLError, match="unknown url type"):
            _opener(LOOPBACK).open(url, timeout=5)
