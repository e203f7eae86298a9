"""Streaming I/O for real: FFmpeg and ffprobe read inputs from MinIO and from a loopback HTTP server through the
runner's InputServer, results upload to MinIO while FFmpeg writes them, and the MP4 index moved by us is byte for
byte what FFmpeg's own `+faststart` writes.
"""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit import mediagen as mg
from tests.conftest import TestEnv
from videojob import storage, streaming
from videojob.api.models import VideoJobSpec
from videojob.errors import BadInput, Transient
from videojob.inputs import InputPolicy
from videojob.transcoder import mp4, runner
from videojob.transcoder.probe import Streamed, probe

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
LOOPBACK = InputPolicy(allow_http=True, allow_private_networks=True)


@pytest.fixture
def client(testenv: TestEnv) -> Any:
    return storage.s3_client_from_env(testenv.variables)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args], check=True, timeout=300)


def _faststart(path: Path, dest: Path) -> Path:
    with path.open("rb") as f:

        def read(offset: int, n: int) -> bytes:
            f.seek(offset)
            return f.read(n)

        layout = mp4.faststart_layout(mp4.top_level_boxes(read, path.stat().st_size), read)
    runner._write_layout(path, streaming.Layout(layout.prefix, layout.body, layout.tail), dest)
    return dest


def _box_kinds(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [b.kind for b in mp4.top_level_boxes(lambda o, n: data[o : o + n], len(data))]


# --- the MP4 index ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["mp4", "mov"])
def test_our_index_move_writes_the_file_ffmpegs_faststart_writes(tmp_path: Path, container: str) -> None:
    source = mg.video("mkv", duration=3.0)
    plain, theirs = tmp_path / f"plain.{container}", tmp_path / f"theirs.{container}"
    _ffmpeg("-i", str(source), "-c", "copy", "-f", container, str(plain))
    _ffmpeg("-i", str(source), "-c", "copy", "-f", container, "-movflags", "+faststart", str(theirs))
    assert _box_kinds(plain)[-1] == b"moov"

    ours = _faststart(plain, tmp_path / f"ours.{container}")

    assert _box_kinds(ours).index(b"moov") < _box_kinds(ours).index(b"mdat")
    assert ours.read_bytes() == theirs.read_bytes()


# --- inputs ----------------------------------------------------------------------------------------------------


def _get(url: str, range_header: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Range": range_header} if range_header else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_an_s3_input_is_served_by_range_to_ffprobe_and_ffmpeg(tmp_path: Path, client: Any, bucket: str) -> None:
    source = mg.video("mp4", duration=3.0)
    storage.upload(source, f"s3://{bucket}/in/clip.mp4", s3=client)
    data = source.read_bytes()
    remote = streaming.open_input(f"s3://{bucket}/in/clip.mp4", InputPolicy(), client)
    assert remote is not None and remote.size == len(data)

    with streaming.InputServer() as server:
        url = server.add(remote)
        assert probe(Streamed(url)) == probe(source)
        status, headers, body = _get(url, "bytes=100-")
        assert (status, headers["Content-Range"], body) == (206, f"bytes 100-{len(data) - 1}/{len(data)}", data[100:])
        assert _get(url, "bytes=5-9")[2] == data[5:10]
        assert _get(url)[2] == data
        assert _get(url, f"bytes={len(data)}-")[0] == 416
        assert _get(url.rsplit("/", 2)[0] + "/wrong-token/0")[0] == 404
        copy = tmp_path / "copy.mkv"
        _ffmpeg("-protocol_whitelist", "http,tcp", "-f", "mov", "-i", url, "-c", "copy", "-f", "matroska", str(copy))
        assert server.error is None
    assert probe(copy).duration == pytest.approx(3.0, abs=0.1)


def test_a_trim_reads_only_the_ranges_it_needs(tmp_path: Path, client: Any, bucket: str) -> None:
    """A second cut from a 40 s input reads the index (at the end) and about that second, not the whole input."""
    source = mg.video("mp4", duration=40.0, size=(640, 360), fps=25)
    storage.upload(source, f"s3://{bucket}/in/long.mp4", s3=client)
    remote = streaming.open_input(f"s3://{bucket}/in/long.mp4", InputPolicy(), client)
    assert remote is not None
    with streaming.InputServer() as server:
        _ffmpeg(
            "-protocol_whitelist",
            "http,tcp",
            "-f",
            "mov",
            "-ss",
            "2",
            "-i",
            server.add(remote),
            "-t",
            "1",
            "-c",
            "copy",
            "-f",
            "matroska",
            str(tmp_path / "cut.mkv"),
        )
        served = server.bytes_served
    print(f"a 1 s cut at 2 s of a {remote.size} byte input read {served} bytes")
    assert served < remote.size * 0.4
    assert (probe(tmp_path / "cut.mkv").duration or 0) < 3.5  # a copy starts at the keyframe before the cut


def test_an_object_replaced_while_it_is_read_is_a_transient_failure(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="in/x.mp4", Body=b"first version " * 1000)
    remote = streaming.open_input(f"s3://{bucket}/in/x.mp4", InputPolicy(), client)
    assert remote is not None
    client.put_object(Bucket=bucket, Key="in/x.mp4", Body=b"second version" * 1000)
    with streaming.InputServer() as server:
        status, _, _ = _get(server.add(remote), "bytes=0-")
        assert status == 502
        assert isinstance(server.error, Transient) and server.error.reason == "InputChanged"


def test_opening_an_input_applies_the_policy_and_the_cap(client: Any, bucket: str) -> None:
    client.put_object(Bucket=bucket, Key="in/big.mp4", Body=b"x" * 2000)
    with pytest.raises(BadInput, match="over the limit") as caught:
        streaming.open_input(f"s3://{bucket}/in/big.mp4", InputPolicy(max_bytes=1000), client)
    assert caught.value.reason == "InputTooLarge"
    with pytest.raises(BadInput) as missing:
        streaming.open_input(f"s3://{bucket}/in/nothing.mp4", InputPolicy(), client)
    assert missing.value.reason == "InputNotFound"
    with pytest.raises(BadInput, match="file"):
        streaming.open_input("file:///etc/passwd", InputPolicy(), client)


# --- HTTP(S) inputs --------------------------------------------------------------------------------------------


class _RangeServer(http.server.BaseHTTPRequestHandler):
    """Serves one body by range (/clip.mp4), the same without ranges (/no-ranges.mp4), the same from a server
    that fails half way (/breaks.mp4: a body that reaches past the middle breaks off there, and a range from the
    middle on gets 503), and a redirect (/to-metadata)."""

    body = b""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path not in ("/clip.mp4", "/no-ranges.mp4", "/breaks.mp4"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body, middle = self.body, len(self.body) // 2
        if self.path == "/breaks.mp4" and self.headers.get("Range", "").startswith(f"bytes={middle}-"):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        wanted = streaming.parse_range(self.headers.get("Range"), len(body)) if self.path != "/no-ranges.mp4" else None
        start, end = wanted or (0, len(body))
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", '"v1"')
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
        self.end_headers()
        if self.path == "/breaks.mp4" and start < middle < end:
            self.wfile.write(body[start:middle])
            self.close_connection = True
            return
        self.wfile.write(body[start:end])


@pytest.fixture
def web() -> Iterator[str]:
    _RangeServer.body = mg.video("mp4", duration=3.0).read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_input_is_opened_under_the_policy(web: str) -> None:
    with pytest.raises(BadInput, match="loopback"):
        streaming.open_input(f"{web}/clip.mp4", InputPolicy(allow_http=True))
    only_here = InputPolicy(allow_http=True, allow_private_networks=True, allowed_hosts=("127.0.0.1",))
    with pytest.raises(BadInput, match="redirects to a refused location"):
        streaming.open_input(f"{web}/to-metadata", only_here)
    remote = streaming.open_input(f"{web}/clip.mp4", LOOPBACK)
    assert isinstance(remote, streaming.HTTPInput) and remote.size == len(_RangeServer.body)
    assert remote.validator == '"v1"'
    assert streaming.open_input(f"{web}/no-ranges.mp4", LOOPBACK) is None  # fetched whole instead


def _job(tmp_path: Path, uri: str, bucket: str, client: Any, container: str = "mp4") -> runner.Job:
    spec = VideoJobSpec.model_validate(
        {
            "inputs": [{"name": "clip", "uri": uri}],
            "output": {
                "uri": f"s3://{bucket}/out/",
                "container": container,
                "video": {"codec": "h264", "preset": "ultrafast"},
            },
        }
    )
    return runner.Job(spec=spec, workdir=tmp_path / "work", policy=LOOPBACK, s3=client)


@pytest.mark.parametrize("path", ["/clip.mp4", "/no-ranges.mp4"], ids=["streamed by range", "fetched whole"])
def test_the_runner_reads_http_inputs_and_uploads_the_result(
    tmp_path: Path, web: str, path: str, client: Any, s3: Any, bucket: str
) -> None:
    result = runner.run(_job(tmp_path, f"{web}{path}", bucket, client))

    assert result.ok and result.bytes_in == len(_RangeServer.body)
    artifact = result.artifacts[0]
    stored = s3.get_object(Bucket=bucket, Key="out/output.mp4")["Body"].read()
    assert (artifact.size, artifact.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    (tmp_path / "stored.mp4").write_bytes(stored)
    assert _box_kinds(tmp_path / "stored.mp4")[:2] == [b"ftyp", b"moov"]  # the index first
    assert artifact.duration == pytest.approx(3.0, abs=0.1)


def test_an_input_that_breaks_off_fails_the_job_as_transient_whatever_ffmpeg_says(
    tmp_path: Path, web: str, client: Any, s3: Any, bucket: str
) -> None:
    with pytest.raises(Transient, match=r"breaks\.mp4") as caught:
        runner.run(_job(tmp_path, f"{web}/breaks.mp4", bucket, client))
    assert caught.value.reason in ("InputUnavailable", "InputTruncated")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # no result, not even a partial one
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


# --- outputs ---------------------------------------------------------------------------------------------------


def test_a_result_uploads_while_ffmpeg_writes_it(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    """FFmpeg writes a Matroska file at the input's own pace (-re): 10 s, about 5 MB/s. Parts are in MinIO before
    it ends, and the object is the finished file byte for byte (the muxer rewrote its head at the end)."""
    raw = tmp_path / "raw.mkv"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=480x270:r=25:d=10",
        "-c:v",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "matroska",
        str(raw),
    )
    out = tmp_path / "out.mkv"
    upload = streaming.StreamedUpload(out, f"s3://{bucket}/out/out.mkv", "video/x-matroska", client).start()
    ffmpeg = subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-i",
            str(raw),
            "-c",
            "copy",
            "-f",
            "matroska",
            str(out),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while upload.uploaded_while_writing == 0 and time.monotonic() < deadline and ffmpeg.poll() is None:
            time.sleep(0.1)
        still_writing = ffmpeg.poll() is None
        assert ffmpeg.wait(timeout=120) == 0
    finally:
        if ffmpeg.poll() is None:
            ffmpeg.kill()
    assert still_writing and upload.uploaded_while_writing > 0, "no part went up while FFmpeg was writing"
    size, sha = upload.complete(streaming.whole_file(out))

    stored = s3.get_object(Bucket=bucket, Key="out/out.mkv")["Body"].read()
    assert stored == out.read_bytes()
    assert (size, sha) == (len(stored), hashlib.sha256(stored).hexdigest())
    assert s3.head_object(Bucket=bucket, Key="out/out.mkv")["ContentType"] == "video/x-matroska"
