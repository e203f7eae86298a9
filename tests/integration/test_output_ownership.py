"""Outputs against the real MinIO: a VideoJob never silently replaces an object another wrote, and removes what
it wrote when it fails.

Two VideoJobs in any namespaces with the same output URI used to overwrite each other's objects, and a failure
halfway through uploading left objects no status listed and nothing removed. Now each object carries its writer's
uid in its metadata, writes are conditional (If-None-Match / If-Match, which MinIO honours as S3 does) unless the
spec says `output.overwrite: true`, and deletion (a failed run's, or the operator's for artifactReclaimPolicy:
Delete) removes only objects whose metadata names the VideoJob.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TestEnv
from videojob import storage, streaming
from videojob.api.models import VideoJobSpec
from videojob.api.runtime import TranscodeResult, output_uris
from videojob.errors import BadInput
from videojob.storage import Owner, claim_outputs, delete_owned, s3_client_from_env, transfer_config, upload
from videojob.transcoder import cli

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SMALL_PARTS = transfer_config(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
A = Owner(uid="uid-a", namespace="team-a", name="promo")
B = Owner(uid="uid-b", namespace="team-b", name="promo")


@pytest.fixture
def client(testenv: TestEnv) -> Any:
    return s3_client_from_env(testenv.variables)


def a_file(tmp_path: Path, size: int = 1000, name: str = "f") -> Path:
    path = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}"
    path.write_bytes(os.urandom(size))
    return path


def writer_of(s3: Any, bucket: str, key: str) -> str | None:
    return str(s3.head_object(Bucket=bucket, Key=key)["Metadata"].get("videojob-uid"))


@pytest.mark.parametrize("size", [pytest.param(1000, id="one PUT"), pytest.param(11 * MiB, id="multipart")])
def test_a_job_never_replaces_an_object_another_wrote(
    tmp_path: Path, client: Any, s3: Any, bucket: str, size: int
) -> None:
    uri = f"s3://{bucket}/out/output.mp4"
    conditions = claim_outputs([uri], A, client)
    assert conditions == {uri: {"IfNoneMatch": "*"}}
    upload(
        a_file(tmp_path, size), uri, s3=client, transfer=SMALL_PARTS, metadata=A.metadata(), condition=conditions[uri]
    )
    assert writer_of(s3, bucket, "out/output.mp4") == "uid-a"

    with pytest.raises(BadInput) as refused:  # B, before any work: the object is A's
        claim_outputs([uri], B, client)
    assert refused.value.reason == "OutputExists" and uri in str(refused.value)
    with pytest.raises(BadInput) as raced:  # B claimed while the name was free, A wrote first: the write refuses
        upload(
            a_file(tmp_path, size),
            uri,
            s3=client,
            transfer=SMALL_PARTS,
            metadata=B.metadata(),
            condition={"IfNoneMatch": "*"},
        )
    assert raced.value.reason == "OutputExists"
    assert writer_of(s3, bucket, "out/output.mp4") == "uid-a", "A's object is untouched"


def test_a_retry_of_the_same_job_replaces_its_own_object(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    uri = f"s3://{bucket}/out/output.mp4"
    upload(a_file(tmp_path), uri, s3=client, metadata=A.metadata(), condition=claim_outputs([uri], A, client)[uri])
    again = claim_outputs([uri], A, client)[uri]
    assert set(again) == {"IfMatch"}, again
    second = a_file(tmp_path)
    upload(second, uri, s3=client, metadata=A.metadata(), condition=again)
    assert s3.get_object(Bucket=bucket, Key="out/output.mp4")["Body"].read() == second.read_bytes()


def test_overwrite_replaces_another_jobs_object(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    uri = f"s3://{bucket}/out/output.mp4"
    upload(a_file(tmp_path), uri, s3=client, metadata=A.metadata(), condition={"IfNoneMatch": "*"})
    forced = Owner(uid="uid-b", overwrite=True)
    condition = claim_outputs([uri], forced, client)[uri]
    assert condition == {}
    upload(a_file(tmp_path), uri, s3=client, metadata=forced.metadata(), condition=condition)
    assert writer_of(s3, bucket, "out/output.mp4") == "uid-b"


def test_a_streamed_upload_commits_only_under_its_condition(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    uri = f"s3://{bucket}/out/stream.mp4"
    upload(a_file(tmp_path), uri, s3=client, metadata=A.metadata(), condition={"IfNoneMatch": "*"})
    path = a_file(tmp_path, 12 * MiB)
    theirs = streaming.StreamedUpload(
        path, uri, "video/mp4", client, metadata=B.metadata(), condition={"IfNoneMatch": "*"}
    )
    theirs.start().stop()
    theirs.finish(streaming.whole_file(path))
    with pytest.raises(BadInput) as refused:
        theirs.commit()
    assert refused.value.reason == "OutputExists"
    assert writer_of(s3, bucket, "out/stream.mp4") == "uid-a"


def test_deletion_removes_only_the_jobs_own_objects(tmp_path: Path, client: Any, s3: Any, bucket: str) -> None:
    mine, theirs, missing = (f"s3://{bucket}/out/{n}" for n in ("output.mp4", "output.jpg", "output.srt"))
    upload(a_file(tmp_path), mine, s3=client, metadata=A.metadata())
    upload(a_file(tmp_path), theirs, s3=client, metadata=B.metadata())
    s3.put_object(Bucket=bucket, Key="out/unrelated.mp4", Body=b"x")  # not an output name at all
    assert delete_owned([mine, theirs, missing], "uid-a", client) == [mine]
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert left == ["out/output.jpg", "out/unrelated.mp4"]


def test_a_failed_run_removes_what_it_uploaded(
    tmp_path: Path, testenv: TestEnv, client: Any, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transcoder itself (videojob-transcode): the result and its thumbnail are uploaded, then an emitted
    subtitle file's upload is refused (another job wrote that name meanwhile): the run fails with OutputExists,
    its own two objects are deleted, the other job's object stays."""
    from devkit import mediagen

    src = mediagen.video(duration=1.0, size=(160, 120))
    s3.upload_file(str(src), bucket, "in/in.mp4")
    s3.put_object(Bucket=bucket, Key="in/subs.srt", Body=b"1\n00:00:00,000 --> 00:00:00,500\nhi\n")
    spec = VideoJobSpec.model_validate(
        {
            "inputs": [
                {"name": "in", "uri": f"s3://{bucket}/in/in.mp4"},
                {"name": "subs", "uri": f"s3://{bucket}/in/subs.srt"},
            ],
            "operations": [{"subtitles": {"input": "subs", "burn": False, "emit": ["srt"]}}],
            "output": {"uri": f"s3://{bucket}/out/", "thumbnail": {"at": 0}},
        }
    )
    assert output_uris(spec)[-1] == f"s3://{bucket}/out/output.srt"

    real_upload = storage.upload

    def upload_racing(path: Path, uri: str, *args: Any, **kwargs: Any) -> int:
        if uri.endswith(".srt"):  # another job gets there first
            s3.put_object(Bucket=bucket, Key="out/output.srt", Body=b"theirs", Metadata={"videojob-uid": "uid-b"})
        return real_upload(path, uri, *args, **kwargs)

    env = {
        **testenv.variables,
        "VIDEOJOB_UID": "uid-a",
        "VIDEOJOB_NAMESPACE": "team-a",
        "VIDEOJOB_NAME": "promo",
        "VIDEOJOB_SPEC": json.dumps(spec.to_wire()),
        "VIDEOJOB_PROGRESS": "none",
        "VIDEOJOB_ALLOW_PRIVATE_NETWORKS": "true",
    }
    # In a pod the environment is the process's; the storage client reads credentials from there too.
    for var in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(var, testenv.variables[var])
    result_path = tmp_path / "result.json"
    storage.upload = upload_racing
    try:
        code = cli.main(["--result", str(result_path), "--workdir", str(tmp_path / "work")], env)
    finally:
        storage.upload = real_upload
    result = TranscodeResult.model_validate_json(result_path.read_text())
    assert (code, result.reason) == (65, "OutputExists"), result
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="out/").get("Contents", []))
    assert keys == ["out/output.srt"], "its mp4 and jpg were deleted; the other job's srt stays"
    assert writer_of(s3, bucket, "out/output.srt") == "uid-b"
