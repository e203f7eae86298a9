"""`s3.auth: workloadIdentity` on the local cluster, the way IRSA works: no S3 keys anywhere near the transcoder.

The transcoder pod gets a ServiceAccount token projected by the kubelet (audience of our choosing) and
AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE, exactly what EKS' pod identity webhook injects; boto3 trades the token
for temporary credentials with STS AssumeRoleWithWebIdentity. The STS here is a MinIO of this test's own, configured
as an OpenID relying party of the API server's ServiceAccount issuer: it fetches the issuer's discovery document
and JWKS from the API server itself (/.well-known/openid-configuration, /openid/v1/jwks, readable without
credentials through a ClusterRoleBinding of system:service-account-issuer-discovery to system:unauthenticated, as
clusters that federate with AWS IAM publish them), checks the token's signature and audience and maps it to a role
(MinIO's role policy, readwrite). That MinIO has no user but its root: the job can only have read its input and
written its output with credentials STS issued for the pod's token.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devkit.harness import Diagnostics, MediaFactory, VideoJobs
from devkit.operator_release import OperatorRelease
from devkit.specs import encode_spec
from tests.conftest import TestEnv, wait_for

pytestmark = pytest.mark.e2e

AUDIENCE = "videojob-e2e-sts"  # MinIO's OpenID client id: tokens for another audience are refused
DISCOVERY_BINDING = "videojob-e2e-oidc-discovery"
BUCKET = "identity"


@dataclass
class StsMinio:
    endpoint: str
    role_arn: str
    root: tuple[str, str]

    def client(self, **credentials: str) -> Any:
        import boto3
        from botocore.config import Config

        keys = credentials or {"aws_access_key_id": self.root[0], "aws_secret_access_key": self.root[1]}
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
            **keys,
        )


def kubectl(testenv: TestEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(testenv.dir / "bin" / "kubectl"), "--kubeconfig", testenv.kubeconfig, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sts_minio(testenv: TestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StsMinio]:
    """A MinIO trusting the API server's ServiceAccount issuer, with one role (readwrite) for tokens of AUDIENCE."""
    api = yaml.safe_load(Path(testenv.kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    ca = testenv.dir / "pki" / "ca.crt"
    r = kubectl(
        testenv,
        "create",
        "clusterrolebinding",
        DISCOVERY_BINDING,
        "--clusterrole=system:service-account-issuer-discovery",
        "--group=system:unauthenticated",
    )
    assert r.returncode == 0 or "AlreadyExists" in r.stderr, r.stderr
    work = tmp_path_factory.mktemp("sts-minio")
    process = None
    try:
        import ssl

        context = ssl.create_default_context(cafile=str(ca))

        def discovery_public() -> bool:
            with urllib.request.urlopen(f"{api}/.well-known/openid-configuration", context=context, timeout=5) as rsp:
                return bool(json.load(rsp)["jwks_uri"])

        wait_for(discovery_public, timeout=30, ignore=(OSError,), message="the issuer's discovery document, public")
        (work / "certs" / "CAs").mkdir(parents=True)
        shutil.copy(ca, work / "certs" / "CAs" / "cluster-ca.crt")  # MinIO fetches the API server's documents
        host = testenv.host_ip
        port, console = free_port(host), free_port("127.0.0.1")
        root = ("e2e-sts-root", "e2e-sts-root-password")
        env = {
            **os.environ,
            "MINIO_ROOT_USER": root[0],
            "MINIO_ROOT_PASSWORD": root[1],
            "MINIO_UPDATE": "off",
            "MINIO_IDENTITY_OPENID_CONFIG_URL": f"{api}/.well-known/openid-configuration",
            "MINIO_IDENTITY_OPENID_CLIENT_ID": AUDIENCE,
            "MINIO_IDENTITY_OPENID_ROLE_POLICY": "readwrite",
        }
        log = work / "minio.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [
                    str(testenv.dir / "bin" / "minio"),
                    "server",
                    str(work / "data"),
                    "--certs-dir",
                    str(work / "certs"),
                    "--address",
                    f"{host}:{port}",
                    "--console-address",
                    f"127.0.0.1:{console}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

        def role_arn() -> str | None:
            assert process is not None and process.poll() is None, log.read_text()
            for line in log.read_text().splitlines():
                if "IAM Roles:" in line:
                    return line.split("IAM Roles:", 1)[1].strip().split()[0]
            return None

        arn = str(wait_for(role_arn, timeout=60, message=f"MinIO to configure its OpenID role ({log})"))
        endpoint = f"http://{host}:{port}"
        wait_for(
            lambda: urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=3).status == 200,
            timeout=60,
            ignore=(OSError,),
            message="MinIO ready",
        )
        yield StsMinio(endpoint=endpoint, role_arn=arn, root=root)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        kubectl(testenv, "delete", "clusterrolebinding", DISCOVERY_BINDING, "--ignore-not-found")


def assume_role(testenv: TestEnv, sts: StsMinio, namespace: str, audience: str) -> Any:
    """AssumeRoleWithWebIdentity with a fresh token of the namespace's transcoder ServiceAccount."""
    import boto3

    token = kubectl(
        testenv, "-n", namespace, "create", "token", "videojob-transcoder", "--audience", audience, "--duration", "10m"
    )
    assert token.returncode == 0, token.stderr
    client = boto3.client(
        "sts", endpoint_url=sts.endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client.assume_role_with_web_identity(
        RoleArn=sts.role_arn, RoleSessionName="e2e", WebIdentityToken=token.stdout.strip()
    )


def test_a_videojob_runs_with_workload_identity_and_no_keys(
    run_operator: Callable[..., OperatorRelease],
    videojobs: VideoJobs,
    diagnostics: Diagnostics,
    media: MediaFactory,
    sts_minio: StsMinio,
    testenv: TestEnv,
    core_v1: Any,
    namespace: str,
) -> None:
    admin = sts_minio.client()
    admin.create_bucket(Bucket=BUCKET)
    admin.upload_file(str(media.video()), BUCKET, "in/clip.mp4")
    annotations = {"eks.amazonaws.com/role-arn": sts_minio.role_arn}
    run_operator(
        s3_endpoint_url=sts_minio.endpoint,
        s3_auth="workloadIdentity",
        s3_role_arn=sts_minio.role_arn,
        s3_token_audience=AUDIENCE,
        s3_sts_endpoint_url=sts_minio.endpoint,
        transcoder_service_account_annotations=annotations,
    )
    videojobs.create("identity", encode_spec(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/out/", hardware="cpu"))
    done = diagnostics.wait_phase("identity", "Succeeded", timeout=180)

    # What ran: no keys in the pod, the role and the projected token of its ServiceAccount.
    (pod,) = [p for p in core_v1.list_namespaced_pod(namespace, label_selector="videojob.dev/name=identity").items]
    env = {e.name: e for e in pod.spec.containers[0].env}
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env, sorted(env)
    assert env["AWS_ROLE_ARN"].value == sts_minio.role_arn
    assert env["AWS_ENDPOINT_URL_STS"].value == sts_minio.endpoint
    (token,) = [
        s.service_account_token
        for v in pod.spec.volumes
        if v.projected
        for s in v.projected.sources
        if s.service_account_token
    ]
    assert token.audience == AUDIENCE
    assert pod.spec.service_account_name == "videojob-transcoder" and pod.spec.automount_service_account_token is False
    sa = core_v1.read_namespaced_service_account("videojob-transcoder", namespace)
    assert (sa.metadata.annotations or {}).get("eks.amazonaws.com/role-arn") == sts_minio.role_arn

    # What it wrote is in the MinIO that knows no key but its root's.
    artifact = done["status"]["artifacts"][0]
    key = artifact["uri"].removeprefix(f"s3://{BUCKET}/")
    assert admin.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == artifact["size"]

    # The STS is real: it answers a token of the right audience with credentials that work, and refuses another.
    creds = assume_role(testenv, sts_minio, namespace, AUDIENCE)["Credentials"]
    temporary = sts_minio.client(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    assert temporary.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == artifact["size"]
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        assume_role(testenv, sts_minio, namespace, "sts.amazonaws.com")
