"""videojob.streaming without a network: byte ranges, the part schedule, and StreamedUpload's bookkeeping.

StreamedUpload runs here against a small in-memory stand-in for the five S3 calls it makes (the same class runs
against MinIO in tests/integration/test_streaming.py); the file it follows is written by a thread of the test.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from videojob import streaming
from videojob.errors import Transient
from videojob.streaming import (
    MAX_PARTS,
    Layout,
    MiB,
    StreamedUpload,
    content_range_start,
    content_range_total,
    parse_range,
    part_size,
    streamed_parts,
    strong_validator,
)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-", 100, (0, 100)),
        ("bytes=10-", 100, (10, 100)),
        ("bytes=10-19", 100, (10, 20)),
        ("bytes=90-1000", 100, (90, 100)),
        ("bytes=-30", 100, (70, 100)),
        ("bytes=-300", 100, (0, 100)),
        ("bytes=0-0", 100, (0, 1)),
        ("bytes=0-1,5-9", 100, None),
        ("items=0-5", 100, None),
        ("bytes=0-", 0, None),
    ],
    ids=[
        "no Range header serves it all",
        "from the start to the end",
        "from an offset to the end",
        "a closed range",
        "a range past the end is cut at the end",
        "a suffix range",
        "a suffix longer than it all",
        "the first byte",
        "several ranges are served whole",
        "another unit is served whole",
        "an empty object",
    ],
)
def test_ranges_ffmpeg_asks_for(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "header",
    ["bytes=100-", "bytes=200-300", "bytes=50-40", "bytes=x-", "bytes=-0"],
    ids=["at the end", "past the end", "backwards", "not a number", "an empty suffix"],
)
def test_unsatisfiable_ranges_are_refused(header: str) -> None:
    with pytest.raises(ValueError, match=r"unsatisfiable|empty"):
        parse_range(header, 100)


def test_content_range_headers() -> None:
    assert content_range_total("bytes 0-0/12345") == 12345
    assert content_range_total("bytes 0-0/*") is None
    assert content_range_total(None) is None
    assert content_range_start("bytes 500-999/1000") == 500
    assert content_range_start("items 5-9/10") is None


def test_if_range_takes_a_strong_etag_else_the_date() -> None:
    assert strong_validator({"ETag": '"abc"', "Last-Modified": "Sun"}) == '"abc"'
    assert strong_validator({"ETag": 'W/"abc"', "Last-Modified": "Sun"}) == "Sun"
    assert strong_validator({}) is None


def test_part_schedule_starts_small_and_holds_hundreds_of_gigabytes() -> None:
    parts = list(streamed_parts(6 * MiB, 6 * MiB + 3 * 8 * MiB + 5))
    assert [(n, s, e) for n, s, e in parts] == [
        (2, 6 * MiB, 14 * MiB),
        (3, 14 * MiB, 22 * MiB),
        (4, 22 * MiB, 30 * MiB),
    ]
    assert part_size(2) == part_size(1001) == 8 * MiB and part_size(1002) == 16 * MiB
    capacity = 6 * MiB + sum(part_size(n) for n in range(2, MAX_PARTS))
    assert capacity > 400 * 1024 * MiB
    assert all(part_size(n) >= 5 * MiB for n in range(2, MAX_PARTS))
    assert max(n for n, _, _ in streamed_parts(6 * MiB, 1 << 50)) == MAX_PARTS - 1  # the last one is the rest


# --- StreamedUpload against an in-memory S3 --------------------------------------------------------------------


class FakeS3:
    """The calls StreamedUpload makes, keeping parts and objects in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.calls: list[tuple[str, int | None]] = []
        self.lock = threading.Lock()
        self.fail_parts = False

    def create_multipart_upload(self, Bucket: str, Key: str, ContentType: str) -> dict[str, Any]:
        with self.lock:
            upload_id = f"u{len(self.uploads)}"
            self.uploads[upload_id] = {}
            self.calls.append(("create", None))
        return {"UploadId": upload_id}

    def upload_part(self, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes) -> dict[str, Any]:
        if self.fail_parts:
            raise ConnectionResetError("storage went away")
        with self.lock:
            self.uploads[UploadId][PartNumber] = bytes(Body)
            self.calls.append(("part", PartNumber))
        return {"ETag": hashlib.md5(Body).hexdigest()}  # noqa: S324 (S3's own part ETag)

    def complete_multipart_upload(self, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict[str, Any]) -> None:
        parts = self.uploads.pop(UploadId)
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        assert numbers == sorted(numbers) and numbers[0] == 1
        for part in MultipartUpload["Parts"][:-1]:
            assert len(parts[part["PartNumber"]]) >= 5 * MiB, "S3 refuses a part under 5 MiB but the last"
        for part in MultipartUpload["Parts"]:
            assert hashlib.md5(parts[part["PartNumber"]]).hexdigest() == part["ETag"]  # noqa: S324
        self.objects[Key] = b"".join(parts[n] for n in numbers)
        self.calls.append(("complete", None))

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        self.objects[Key] = bytes(Body)
        self.calls.append(("put", None))

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> None:
        self.uploads.pop(UploadId, None)
        self.calls.append(("abort", None))


def _pattern(n: int, seed: int = 0) -> bytes:
    """n bytes that differ at every offset within 251 bytes (and between seeds), made fast."""
    cycle = bytes((i * 7 + seed) % 251 for i in range(251))
    return (cycle * (n // 251 + 1))[:n]


def _write_slowly(path: Path, data: bytes, chunk: int, wrote: threading.Event, go_on: threading.Event) -> None:
    with path.open("wb") as f:
        for i in range(0, len(data), chunk):
            f.write(data[i : i + chunk])
            f.flush()
            if i >= len(data) * 3 // 4 and not wrote.is_set():
                wrote.set()  # three quarters written: let the test look at what was uploaded so far
                go_on.wait(10)


def test_parts_upload_while_the_file_is_written_and_the_object_is_the_layout(tmp_path: Path) -> None:
    s3 = FakeS3()
    path = tmp_path / "out.mkv"
    data = _pattern(40 * MiB + 123)
    upload = StreamedUpload(path, "s3://media/out/job/out.mkv", "video/x-matroska", s3, poll=0.01).start()
    most, go_on = threading.Event(), threading.Event()
    writer = threading.Thread(target=_write_slowly, args=(path, data, MiB, most, go_on))
    writer.start()
    assert most.wait(10)
    for _ in range(500):  # the writer waits at 31 MiB: parts 2 and 3 (6-22 MiB) are due by now
        if ("part", 3) in s3.calls:
            break
        threading.Event().wait(0.01)
    assert ("part", 2) in s3.calls and ("part", 3) in s3.calls and "out.mkv" not in s3.objects
    go_on.set()
    writer.join()
    upload.stop()
    size, sha = upload.complete(streaming.whole_file(path))
    assert s3.objects["out/job/out.mkv"] == data
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert upload.uploaded_while_writing >= 16 * MiB and upload.reuploaded == 0


def test_a_region_the_muxer_rewrote_after_it_was_sent_is_sent_again(tmp_path: Path) -> None:
    s3 = FakeS3()
    path = tmp_path / "out.mkv"
    path.write_bytes(_pattern(30 * MiB))
    upload = StreamedUpload(path, "s3://media/out/out.mkv", "video/x-matroska", s3, poll=0.01).start()
    for _ in range(500):
        if ("part", 3) in s3.calls:
            break
        threading.Event().wait(0.01)
    upload.stop()
    with path.open("r+b") as f:  # the head (never sent early) and one byte of part 2 change at the end
        f.write(b"HEAD")
        f.seek(7 * MiB)
        f.write(b"!")
    final = path.read_bytes()
    _, sha = upload.complete(streaming.whole_file(path))
    assert s3.objects["out/out.mkv"] == final and sha == hashlib.sha256(final).hexdigest()
    assert upload.reuploaded == 1
    assert s3.calls.count(("part", 2)) == 2 and s3.calls.count(("part", 3)) == 1


def test_a_layout_puts_built_bytes_first_and_drops_parts_past_the_body(tmp_path: Path) -> None:
    """The MP4 case: the index FFmpeg wrote last goes to the front; a part that already held some of it is
    not part of the object."""
    s3 = FakeS3()
    path = tmp_path / "out.mp4"
    body, index = _pattern(23 * MiB, 1), _pattern(9 * MiB, 2)
    path.write_bytes(b"ftyp" + body + index)
    upload = StreamedUpload(path, "s3://media/out/out.mp4", "video/mp4", s3, poll=0.01).start()
    for _ in range(500):  # 32 MiB are written: parts 2-4 (6-30 MiB) go early, and part 4 holds some of the index
        if ("part", 4) in s3.calls:
            break
        threading.Event().wait(0.01)
    upload.stop()
    layout = Layout(b"ftyp" + b"INDEX", (4, 4 + len(body)))
    size, sha = upload.complete(layout)
    expected = b"ftyp" + b"INDEX" + body
    assert s3.objects["out/out.mp4"] == expected
    assert (size, sha) == (len(expected), hashlib.sha256(expected).hexdigest())
    assert s3.calls.count(("part", 4)) == 2 and upload.reuploaded == 1  # part 4 is now the rest of the body


def test_a_small_result_is_one_put(tmp_path: Path) -> None:
    s3 = FakeS3()
    path = tmp_path / "out.mp4"
    path.write_bytes(_pattern(3 * MiB))
    upload = StreamedUpload(path, "s3://media/out/out.mp4", "video/mp4", s3, poll=0.01).start()
    upload.stop()
    upload.finish(streaming.whole_file(path))
    assert "out/out.mp4" not in s3.objects, "nothing is visible before commit"
    upload.commit()
    assert s3.objects["out/out.mp4"] == path.read_bytes() and s3.calls == [("put", None)]


def test_a_failed_run_leaves_no_object_and_no_upload(tmp_path: Path) -> None:
    s3 = FakeS3()
    path = tmp_path / "out.mkv"
    path.write_bytes(_pattern(20 * MiB))
    upload = StreamedUpload(path, "s3://media/out/out.mkv", "video/x-matroska", s3, poll=0.01).start()
    for _ in range(500):
        if ("part", 2) in s3.calls:
            break
        threading.Event().wait(0.01)
    upload.abort()
    assert s3.calls[-1] == ("abort", None) and not s3.uploads and not s3.objects


def test_storage_trouble_while_streaming_is_reported_when_finishing(tmp_path: Path) -> None:
    s3 = FakeS3()
    s3.fail_parts = True
    path = tmp_path / "out.mkv"
    path.write_bytes(_pattern(20 * MiB))
    upload = StreamedUpload(path, "s3://media/out/out.mkv", "video/x-matroska", s3, poll=0.01).start()
    threading.Event().wait(0.1)
    with pytest.raises(Transient, match="storage went away"):
        upload.complete(streaming.whole_file(path))
    assert not s3.uploads and not s3.objects


def test_the_head_is_never_smaller_than_an_s3_part(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        StreamedUpload(tmp_path / "x", "s3://media/out/x.mp4", "video/mp4", FakeS3(), head=MiB)


# --- InputServer: inputs served by range, and reserved before they are opened ----------------------------------


class MemoryInput:
    """An opened input held in memory, counting the ranged reads made of it."""

    def __init__(self, data: bytes) -> None:
        self.uri = "s3://media/in/tone.wav"
        self.size = len(data)
        self.data = data
        self.reads = 0

    def read_range(self, start: int, end: int) -> Iterator[bytes]:
        self.reads += 1
        yield self.data[start:end]


def _get(url: str, got: list[Any]) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            got.append(response.read())
    except urllib.error.HTTPError as e:
        got.append(e.code)
    except (urllib.error.URLError, ConnectionError) as e:  # the server stopped before it answered
        got.append(e)


def test_a_reserved_input_is_served_once_it_is_filled() -> None:
    data = _pattern(300_000)
    got: list[Any] = []
    with streaming.InputServer() as server:
        url = server.reserve()
        reader = threading.Thread(target=_get, args=(url, got))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive() and not got, "the request waits for its input"
        source = MemoryInput(data)
        server.fill(url, source)
        reader.join(30)
        assert server.add(MemoryInput(b"x")) != url  # reserved and added inputs never share a URL
    assert got == [data] and source.reads == 1


def test_a_request_for_an_input_never_filled_ends_when_the_server_stops() -> None:
    got: list[Any] = []
    with streaming.InputServer() as server:
        url = server.reserve()
        reader = threading.Thread(target=_get, args=(url, got))
        reader.start()
        reader.join(0.2)
    reader.join(30)
    assert not reader.is_alive() and len(got) == 1 and not isinstance(got[0], bytes)  # 404, or refused if not yet in


def test_the_server_stops_when_told() -> None:
    """It sleeps until a connection comes or `__exit__` wakes it (no polling): without that wake-up it would sleep
    on, and stopping would wait out the 5 s join."""
    server = streaming.InputServer().__enter__()
    url = server.add(MemoryInput(b"abc"))
    got: list[Any] = []
    _get(url, got)
    started = time.monotonic()
    server.__exit__(None, None, None)
    assert got == [b"abc"] and time.monotonic() - started < 1.0
