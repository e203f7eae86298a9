"""A small synchronous client for the Kubernetes API: where the API server is and who we are (in-cluster service
account or a kubeconfig), and one `request` call that speaks JSON.

Why not the official `kubernetes` package: the operator calls a dozen endpoints with plain dicts, and importing
its generated client costs about 34 MB of RSS (some 540 modules) in a process whose budget with 10,000 queued
VideoJobs is 150 MB (Kopf, too, imports the package whenever it is installed). urllib3, already here for
botocore, does the HTTP.

Credentials supported, as kubectl reads them: the service account's token file (re-read, since the kubelet
rotates it), a kubeconfig's token or tokenFile, client certificate and key (files or inline data), an auth
provider's stored token, and exec credential plugins that print a token. A kubeconfig asking for anything else
is refused with a message that names it.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_REREAD_SECONDS = 60.0  # the kubelet replaces a projected token well before it expires
EXEC_TIMEOUT_SECONDS = 60.0


class KubeconfigError(ValueError):
    """No usable way to reach the API server: the message says what is missing or not supported."""


class ApiError(Exception):
    """The API server answered with a status outside 2xx."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def message(self) -> str:
        """The API server's own message (a Status object's `message`), else the start of the body."""
        try:
            message = json.loads(self.body or "{}").get("message", "")
        except (ValueError, AttributeError):
            message = (self.body or "")[:300]
        return str(message)


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate; file paths only (inline data is written to private
    files first, because Python's ssl loads certificates from files)."""

    server: str
    ca_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    token_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    exec_plugin: Mapping[str, Any] | None = field(default=None, hash=False)
    namespace: str | None = None


def load_connection(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """In a pod (KUBERNETES_SERVICE_HOST set, no KUBECONFIG, no explicit file): the service account. Otherwise
    the kubeconfig: `kubeconfig`, else $KUBECONFIG (a list of files, the first to set a value wins), else
    ~/.kube/config; `context`, else its current-context."""
    explicit = kubeconfig is not None or context is not None or os.environ.get("KUBECONFIG")
    if not explicit and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_connection()
    return kubeconfig_connection(kubeconfig_files(kubeconfig), context)


def in_cluster_connection(directory: Path = SERVICE_ACCOUNT_DIR) -> Connection:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = directory / "token"
    if not host or not token_file.exists():
        raise KubeconfigError(f"not in a pod with a service account token ({token_file} is missing)")
    host = f"[{host}]" if ":" in host else host
    namespace_file = directory / "namespace"
    ca_file = directory / "ca.crt"
    return Connection(
        server=f"https://{host}:{port}",
        ca_file=str(ca_file) if ca_file.exists() else None,
        token_file=str(token_file),
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
    )


def kubeconfig_files(explicit: str | None = None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    listed = [Path(p).expanduser() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    return listed or [Path("~/.kube/config").expanduser()]


def kubeconfig_connection(files: list[Path], context: str | None = None) -> Connection:
    contexts, clusters, users, current = _merged(files)
    name = context or current
    if not name:
        raise KubeconfigError(f"{_names(files)}: no current-context set and no context given")
    if name not in contexts:
        raise KubeconfigError(f"context {name!r} is not in {_names(files)}")
    ctx = contexts[name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in clusters:
        raise KubeconfigError(f"context {name!r} names cluster {cluster_name!r}, which {_names(files)} lacks")
    cluster, base = clusters[cluster_name]
    user, user_base = users.get(user_name, ({}, base)) if user_name else ({}, base)
    if not cluster.get("server"):
        raise KubeconfigError(f"cluster {cluster_name!r} has no server")
    unsupported = sorted({"username", "password"} & user.keys())
    if unsupported:
        raise KubeconfigError(f"user {user_name!r}: {', '.join(unsupported)} (basic auth) is not supported")
    provider = user.get("auth-provider") or {}
    provider_token = (provider.get("config") or {}).get("id-token") or (provider.get("config") or {}).get(
        "access-token"
    )
    if provider and not provider_token:
        raise KubeconfigError(f"user {user_name!r}: auth provider {provider.get('name')!r} holds no token yet")
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_file(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        token=user.get("token") or provider_token,
        token_file=_path(user.get("tokenFile"), user_base),
        cert_file=_file(user, "client-certificate", user_base),
        key_file=_file(user, "client-key", user_base),
        exec_plugin=_exec_plugin(user.get("exec"), user_base),
        namespace=ctx.get("namespace"),
    )


_Section = dict[str, tuple[dict[str, Any], Path]]  # name -> (entry, the directory of the file that defines it)


def _merged(files: list[Path]) -> tuple[dict[str, dict[str, Any]], _Section, _Section, str | None]:
    contexts: dict[str, dict[str, Any]] = {}
    clusters: _Section = {}
    users: _Section = {}
    current: str | None = None
    found = False
    for path in files:
        if not path.exists():
            continue
        found = True
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise KubeconfigError(f"cannot read kubeconfig {path}: {e}") from None
        if not isinstance(doc, dict):
            raise KubeconfigError(f"kubeconfig {path} is not a mapping")
        current = current or doc.get("current-context") or None
        for item in doc.get("contexts") or []:
            contexts.setdefault(item["name"], item.get("context") or {})
        for item in doc.get("clusters") or []:
            clusters.setdefault(item["name"], (item.get("cluster") or {}, path.parent))
        for item in doc.get("users") or []:
            users.setdefault(item["name"], (item.get("user") or {}, path.parent))
    if not found:
        raise KubeconfigError(f"no kubeconfig: {_names(files)} does not exist")
    return contexts, clusters, users, current


def _names(files: list[Path]) -> str:
    return os.pathsep.join(str(p) for p in files)


def _path(value: Any, base: Path) -> str | None:
    """A kubeconfig path: relative ones are relative to the file that names them."""
    return str((base / str(value)).expanduser()) if value else None


def _file(section: Mapping[str, Any], key: str, base: Path) -> str | None:
    """`key` (a path) or `key-data` (base64 PEM, written to a private file)."""
    if section.get(f"{key}-data"):
        try:
            return _private_file(base64.b64decode(section[f"{key}-data"], validate=True))
        except ValueError:
            raise KubeconfigError(f"{key}-data is not base64") from None
    return _path(section.get(key), base)


_private_dir: str | None = None
_private_lock = threading.Lock()


def _private_file(data: bytes) -> str:
    """A file only this user can read, removed when the process exits; one per distinct content."""
    global _private_dir
    with _private_lock:
        if _private_dir is None:
            _private_dir = tempfile.mkdtemp(prefix="videojob-kube-")  # mode 0700
            atexit.register(shutil.rmtree, _private_dir, True)
        path = Path(_private_dir) / hashlib.sha256(data).hexdigest()[:32]
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return str(path)


def _exec_plugin(spec: Mapping[str, Any] | None, base: Path) -> Mapping[str, Any] | None:
    if not spec:
        return None
    if not spec.get("command"):
        raise KubeconfigError("exec credential plugin without a command")
    command = str(spec["command"])
    if os.sep in command and not os.path.isabs(command):  # relative to the kubeconfig, as kubectl resolves it
        command = str(base / command)
    return {**spec, "command": command}


class Credentials:
    """The bearer token to send now: a fixed one, a token file re-read every minute, or an exec plugin's token
    until it expires. Thread-safe."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._token = connection.token
        self._fresh_until = 0.0
        self._lock = threading.Lock()

    def token(self, renew: bool = False) -> str | None:
        c = self.connection
        if c.token_file is None and c.exec_plugin is None:
            return self._token
        with self._lock:
            if renew or time.monotonic() >= self._fresh_until:
                self._token, self._fresh_until = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str | None, float]:
        c = self.connection
        if c.token_file is not None:
            try:
                return Path(c.token_file).read_text().strip(), time.monotonic() + TOKEN_FILE_REREAD_SECONDS
            except OSError as e:
                raise KubeconfigError(f"cannot read token file {c.token_file}: {e}") from None
        assert c.exec_plugin is not None
        return run_exec_plugin(c.exec_plugin)


def run_exec_plugin(spec: Mapping[str, Any]) -> tuple[str, float]:
    """Run a client-go exec credential plugin (no shell) and return its token and until when to use it."""
    env = {**os.environ, **{str(e["name"]): str(e["value"]) for e in spec.get("env") or []}}
    api_version = spec.get("apiVersion") or "client.authentication.k8s.io/v1"
    info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    argv = [str(spec["command"]), *(str(a) for a in spec.get("args") or [])]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=EXEC_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise KubeconfigError(f"exec credential plugin {argv[0]}: {e}") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip()[-300:]
        raise KubeconfigError(f"exec credential plugin {argv[0]} exited with {done.returncode}: {stderr}")
    try:
        status = json.loads(done.stdout)["status"]
        token = str(status["token"])
    except (ValueError, KeyError, TypeError):
        raise KubeconfigError(f"exec credential plugin {argv[0]} printed no status.token") from None
    fresh_until = float("inf")
    if status.get("expirationTimestamp"):
        expires = datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00"))
        fresh_until = time.monotonic() + (expires - datetime.now(UTC)).total_seconds() - 10
    return token, fresh_until


class Client:
    """HTTP to one API server with a pool of `pool_size` connections (urllib3: thread-safe)."""

    def __init__(self, connection: Connection, pool_size: int = 8, user_agent: str = "videojob-operator") -> None:
        self.connection = connection
        self.user_agent = user_agent
        self.credentials = Credentials(connection)
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=max(pool_size, 1),
            block=False,
            # connection errors are retried (as the official client does); a request that may have been
            # received is not: urllib3 retries reads only for idempotent methods
            retries=urllib3.Retry(total=3, redirect=0, backoff_factor=0.1, raise_on_status=False),
            ssl_context=_ssl_context(connection) if connection.server.startswith("https:") else None,
            server_hostname=connection.tls_server_name,
            assert_hostname=False if connection.insecure else None,
            cert_reqs=ssl.CERT_NONE if connection.insecure else ssl.CERT_REQUIRED,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        content_type: str = JSON,
        timeout: float = 30,
        accept: str = JSON,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """The response, once its status is 2xx (ApiError otherwise; its body is read). With `stream`, the body
        is left unread: iterate it, then `release_conn()`."""
        url = self.connection.server + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        payload = None if body is None else json.dumps(body).encode()
        read_timeout = None if stream and timeout <= 0 else timeout  # a followed log may be quiet for long
        connect_timeout = 10.0 if timeout <= 0 else min(timeout, 10.0)
        for attempt in (1, 2):
            headers = {"Accept": accept, "User-Agent": self.user_agent}
            if payload is not None:
                headers["Content-Type"] = content_type
            token = self.credentials.token(renew=attempt == 2)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            response = self._pool.request(
                method,
                url,
                body=payload,
                headers=headers,
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
                preload_content=not stream,
            )
            renewable = self.connection.token_file is not None or self.connection.exec_plugin is not None
            if response.status == 401 and attempt == 1 and renewable:
                response.drain_conn()
                continue  # a rotated token: read it again once
            break
        if not 200 <= response.status <= 299:
            text = response.data.decode("utf-8", "replace") if response.data else ""
            response.release_conn()
            raise ApiError(response.status, response.reason or "", text)
        return response

    def request_text(self, method: str, path: str, body: Any = None, **kwargs: Any) -> str:
        response = self.request(method, path, body, **kwargs)
        return response.data.decode("utf-8", "replace") if response.data else ""

    def request_json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        text = self.request_text(method, path, body, **kwargs)
        return json.loads(text) if text else {}

    def stream_lines(self, path: str, query: Mapping[str, Any] | None = None, timeout: float = 0) -> Iterator[bytes]:
        """GET a streamed body (a watch, a followed log) line by line; without a timeout it reads until the
        server closes."""
        response = self.request("GET", path, query=query, stream=True, timeout=timeout, accept="*/*")
        try:
            pending = b""
            for chunk in response.stream(4096, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from lines
            if pending:
                yield pending
        finally:
            response.release_conn()

    def close(self) -> None:
        self._pool.clear()


def _ssl_context(connection: Connection) -> ssl.SSLContext:
    if connection.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=connection.ca_file)
    if connection.cert_file:
        if not connection.key_file:
            raise KubeconfigError("a client certificate without a client key")
        context.load_cert_chain(connection.cert_file, connection.key_file)
    return context
