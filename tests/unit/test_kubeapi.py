"""videojob.kubeapi: the credentials it reads from kubeconfigs and the service account (tables over files written
here), and its HTTP behaviour against a real loopback server (a rotated token is read again after a 401; API
errors carry the server's message). The client against the real API server: the integration tests' `kube_api`."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from videojob.kubeapi import (
    ApiError,
    Client,
    Connection,
    Credentials,
    KubeconfigError,
    in_cluster_connection,
    kubeconfig_connection,
    load_connection,
)

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def kubeconfig(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None, **extra: Any) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "contexts": [
            {"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "media"}},
            {"name": "other", "context": {"cluster": "c", "user": "nobody"}},
        ],
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user}],
        **extra,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("user", "cluster", "expected"),
    [
        ({"token": "abc"}, None, {"token": "abc", "server": "https://10.0.0.1:6443", "namespace": "media"}),
        ({"tokenFile": "tok"}, None, {"token": None, "token_file": "<dir>/tok"}),
        ({"client-certificate": "certs/u.crt", "client-key": "/abs/u.key"}, None, {"key_file": "/abs/u.key"}),
        (
            {"auth-provider": {"name": "oidc", "config": {"id-token": "jwt"}}},
            {"server": "https://h", "insecure-skip-tls-verify": True, "tls-server-name": "api.internal"},
            {"token": "jwt", "insecure": True, "tls_server_name": "api.internal"},
        ),
        ({}, {"server": "https://h", "certificate-authority": "ca.crt"}, {"ca_file": "<dir>/ca.crt", "token": None}),
    ],
    ids=["token", "token-file-relative", "client-cert-files", "auth-provider-insecure", "ca-file-no-user"],
)
def test_kubeconfig_credentials(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    connection = kubeconfig_connection([kubeconfig(tmp_path / "config", user, cluster)])
    for key, value in expected.items():
        if isinstance(value, str):
            value = value.replace("<dir>", str(tmp_path))
        assert getattr(connection, key) == value, key
    if "client-certificate" in user:
        assert connection.cert_file == str(tmp_path / "certs/u.crt")


def test_inline_certificate_data_goes_to_files_only_the_user_can_read(tmp_path: Path) -> None:
    data = base64.b64encode(PEM).decode()
    path = kubeconfig(tmp_path / "config", {"client-certificate-data": data, "client-key-data": data})
    connection = kubeconfig_connection([path])
    assert connection.cert_file and Path(connection.cert_file).read_bytes() == PEM
    assert stat.S_IMODE(os.stat(connection.cert_file).st_mode) == 0o600
    assert connection.key_file == connection.cert_file  # one file per distinct content


@pytest.mark.parametrize(
    ("user", "context", "message"),
    [
        ({"username": "admin", "password": "x"}, None, "basic auth"),
        ({"auth-provider": {"name": "gcp", "config": {}}}, None, "holds no token"),
        ({"client-certificate-data": "not base64!"}, None, "not base64"),
        ({"token": "t"}, "missing", "context 'missing' is not in"),
        ({"exec": {"apiVersion": "client.authentication.k8s.io/v1"}}, None, "without a command"),
    ],
)
def test_kubeconfigs_we_cannot_use_are_refused_with_the_reason(
    tmp_path: Path, user: dict[str, Any], context: str | None, message: str
) -> None:
    with pytest.raises(KubeconfigError, match=message):
        kubeconfig_connection([kubeconfig(tmp_path / "config", user)], context)


def test_the_first_kubeconfig_to_define_a_name_wins_and_missing_files_are_skipped(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "a", {"token": "first"})
    second = kubeconfig(tmp_path / "b", {"token": "second"}, None, **{"current-context": "other"})
    connection = kubeconfig_connection([tmp_path / "absent", first, second])
    assert connection.token == "first"
    with pytest.raises(KubeconfigError, match="does not exist"):
        kubeconfig_connection([tmp_path / "absent"])


def test_in_cluster_reads_the_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "namespace").write_text("videojob-system")
    (tmp_path / "ca.crt").write_bytes(PEM)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    connection = in_cluster_connection(tmp_path)
    assert connection.server == "https://[fd00::1]:443"
    assert connection.namespace == "videojob-system"
    assert Credentials(connection).token() == "sa-token"
    (tmp_path / "token").unlink()
    with pytest.raises(KubeconfigError, match="service account token"):
        in_cluster_connection(tmp_path)


def test_an_explicit_kubeconfig_wins_over_the_pod_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    path = kubeconfig(tmp_path / "config", {"token": "from-file"})
    assert load_connection(str(path)).token == "from-file"
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert load_connection().token == "from-file"


def test_an_exec_plugin_token_is_used_until_it_expires(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import json, os, sys\n"
        f"open({str(calls)!r}, 'a').write(os.environ['KUBERNETES_EXEC_INFO'] + '\\n')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        "    'status': {'token': sys.argv[1] + os.environ['SUFFIX'], 'expirationTimestamp': sys.argv[2]}}))\n"
    )
    exec_spec = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(plugin), "tok-", "2999-01-01T00:00:00Z"],
        "env": [{"name": "SUFFIX", "value": "1"}],
    }
    connection = kubeconfig_connection([kubeconfig(tmp_path / "config", {"exec": exec_spec})])
    credentials = Credentials(connection)
    assert credentials.token() == "tok-1"
    assert credentials.token() == "tok-1"
    assert len(calls.read_text().splitlines()) == 1  # not run again before it expires
    assert json.loads(calls.read_text())["kind"] == "ExecCredential"
    assert credentials.token(renew=True) == "tok-1"
    assert len(calls.read_text().splitlines()) == 2


def test_a_failing_exec_plugin_says_why(tmp_path: Path) -> None:
    exec_spec = {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no SSO session')"]}
    connection = kubeconfig_connection([kubeconfig(tmp_path / "config", {"exec": exec_spec})])
    with pytest.raises(KubeconfigError, match="no SSO session"):
        Credentials(connection).token()


class _Server(ThreadingHTTPServer):
    accepted = "new"
    seen: list[tuple[str, str, str | None, bytes]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.headers.get("Authorization") != f"Bearer {self.server.accepted}":
            status, payload = 401, {"kind": "Status", "message": "Unauthorized"}
        elif self.path.startswith("/missing"):
            status, payload = 404, {"kind": "Status", "message": 'jobs.batch "x" not found'}
        else:
            status, payload = 200, {"path": self.path, "body": body.decode()}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_rotated_token_file_is_read_again_after_a_401(server: _Server, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old")
    client = Client(Connection(server=f"http://127.0.0.1:{server.server_port}", token_file=str(token)))
    server.accepted = "old"
    assert client.request_json("GET", "/api/v1/pods", query={"limit": 5, "continue": None})["path"] == (
        "/api/v1/pods?limit=5"
    )
    token.write_text("new")  # the kubelet rotated it; our copy is still fresh, so the first try fails
    server.accepted = "new"
    got = client.request_json("PATCH", "/apis/x", {"status": {"phase": "Queued"}}, content_type="a/b")
    assert json.loads(got["body"]) == {"status": {"phase": "Queued"}}
    assert [auth for _, _, auth, _ in server.seen[-2:]] == ["Bearer old", "Bearer new"]


def test_api_errors_carry_the_status_and_the_servers_message(server: _Server) -> None:
    client = Client(Connection(server=f"http://127.0.0.1:{server.server_port}", token="fixed"))
    server.accepted = "fixed"
    with pytest.raises(ApiError) as caught:
        client.request_json("GET", "/missing")
    assert caught.value.status == 404
    assert caught.value.message == 'jobs.batch "x" not found'
    server.accepted = "other"
    with pytest.raises(ApiError) as caught:
        client.request_text("GET", "/x")
    assert caught.value.status == 401
    assert len(server.seen) == 2  # a fixed token is not retried
