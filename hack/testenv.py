#!/usr/bin/env python3
"""The local test environment: a real Kubernetes cluster and MinIO on this machine, nothing on any network.

    hack/testenv.py up       start everything (idempotent), write .testenv/kubeconfig and .testenv/env
    hack/testenv.py down     stop everything (no orphan processes) and remove the data, keeping .testenv/bin
    hack/testenv.py status   show each component; exit 0 when the environment is up and healthy
    hack/testenv.py env      print the sourceable environment (`eval "$(hack/testenv.py env)"`)

Components, each a detached process (own session) logging to .testenv/logs/<name>.log: etcd (127.0.0.1),
kube-apiserver, kube-controller-manager, kube-scheduler, MinIO, and two real nodes, cpu-0 and gpu-0, each a
kubelet with a containerd of its own, plus one kube-proxy (binaries from hack/build-tools.sh in .testenv/bin;
the host side of the nodes is hack/localnodes.py). The control plane, MinIO and cpu-0 listen on 10.201.N.1,
gpu-0 on 10.201.N.2: /32 addresses on `lo` that this script adds and removes (N is the environment's index).
Pods reach the API server through the `kubernetes` Service (kube-proxy), and MinIO at its address.

Images: the tarballs in .testenv/images (`make images`) are imported into both nodes' containerd, once per
machine and build; the sandbox ("pause") image is one of them. Nothing is pulled from a registry.

Certificates and keys are generated at every start with the openssl CLI under .testenv/pki: a CA, the
apiserver's serving certificate, a service-account signing key pair and client certificates for the admin
(O=system:masters), the controller-manager, the scheduler, kube-proxy and each kubelet (system:node:NAME, so
the Node authorizer and NodeRestriction confine it as in a real cluster).

`--dir DIR` (or $TESTENV_DIR) runs a second, independent environment under DIR (tests of this script use it;
`--no-kube-proxy` for it, as one host has room for one kube-proxy). Every process started here carries
TESTENV_TOKEN=<random> in its environment; `down` drains the nodes, stops the recorded processes, their
descendants and any process still carrying the token (containerd's shims and the containers under them), then
removes the mounts, network namespaces, bridges, addresses and iptables chains the environment made.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import localnodes

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / ".testenv"
BIN_DIR = Path(os.environ.get("TESTENV_BIN", DEFAULT_DIR / "bin"))
IMAGES_DIR = Path(os.environ.get("TESTENV_IMAGES", DEFAULT_DIR / "images"))

SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
REGION = "us-east-1"
NODES = ("cpu-0", "gpu-0")
# Stop order: the controllers first (nothing re-creates the pods being drained), then the nodes, the control
# plane last but for the stores.
STOP_ORDER = (
    "kube-scheduler", "kube-controller-manager", "kubelet-cpu-0", "kubelet-gpu-0", "kube-proxy",
    "containerd-cpu-0", "containerd-gpu-0", "kube-apiserver", "etcd", "minio",
)  # fmt: skip
DEFAULT_STOP_TIMEOUT = 15.0
DRAIN_TIMEOUT = 60.0


class StartError(Exception):
    def __init__(self, component: str, message: str) -> None:
        super().__init__(f"{component}: {message}")
        self.component = component
        self.message = message


def log(msg: str) -> None:
    print(f"testenv: {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Paths and state


class Env:
    """Paths of one environment directory and its recorded state (state.json)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.etcd_data = self.root / "etcd"
        self.minio_data = self.root / "minio"
        self.run = self.root / "run"  # cert dirs of the control-plane components
        self.state_file = self.root / "state.json"
        self.kubeconfig = self.root / "kubeconfig"
        self.env_file = self.root / "env"

    def load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def locked(self) -> Any:
        """Serialise up/down of this directory across processes (flock on the directory itself)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def clean(self) -> None:
        """Remove everything under the directory except bin/ and images/ (build outputs, not state)."""
        if not self.root.exists():
            return
        for p in self.root.iterdir():
            if p.name in ("bin", "images"):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def binary(name: str) -> str:
    p = BIN_DIR / name
    if p.exists():
        return str(p)
    found = shutil.which(name)
    if found:
        return found
    raise StartError(name, f"binary not found in {BIN_DIR} or PATH; build it with `make tools`")


# ---------------------------------------------------------------------------------------------------------------
# Processes (Linux /proc)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    f = _stat(pid)
    return int(f[19]) if f else None  # field 22: starttime


def alive(pid: int, started: int | None = None) -> bool:
    """True when PID runs (zombies count as gone) and, if given, started at `started` (no reused pid)."""
    f = _stat(pid)
    if f is None or f[0] in ("Z", "X"):
        return False
    return started is None or int(f[19]) == started


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, starttime) of every descendant of PID."""
    children: dict[int, list[int]] = {}
    for p in _all_pids():
        f = _stat(p)
        if f:
            children.setdefault(int(f[1]), []).append(p)
    out: list[tuple[int, int]] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        st = start_time(p)
        if st is not None:
            out.append((p, st))
        todo.extend(children.get(p, []))
    return out


def tagged(token: str) -> list[tuple[int, int]]:
    """(pid, starttime) of every process whose environment carries TESTENV_TOKEN=token."""
    needle = f"TESTENV_TOKEN={token}".encode()
    out = []
    for p in _all_pids():
        if p == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{p}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            st = start_time(p)
            if st is not None:
                out.append((p, st))
    return out


def _signal(pid: int, started: int | None, sig: int) -> None:
    if alive(pid, started):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(procs: list[tuple[int, int | None]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p, st) for p, st in procs):
            return True
        time.sleep(0.1)
    return not any(alive(p, st) for p, st in procs)


def terminate(candidates: Sequence[tuple[int, int | None]], timeout: float) -> list[int]:
    """SIGTERM, wait up to `timeout`, SIGKILL what is left. Returns the pids that needed SIGKILL."""
    procs = [(p, st) for p, st in candidates if alive(p, st)]
    for p, st in procs:
        _signal(p, st, signal.SIGTERM)
    if _wait_gone(procs, timeout):
        return []
    killed = [p for p, st in procs if alive(p, st)]
    for p, st in procs:
        _signal(p, st, signal.SIGKILL)
    _wait_gone(procs, 5.0)
    return killed


# ---------------------------------------------------------------------------------------------------------------
# Certificates (openssl CLI, argument lists only)


def _openssl(*args: str) -> None:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise StartError("pki", f"openssl {args[0]} failed: {r.stderr.strip()}")


def _ec_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def _ca(pki: Path, name: str, common_name: str) -> None:
    """A self-signed CA: pki/NAME.key, pki/NAME.crt."""
    _ec_key(pki / f"{name}.key")
    (pki / f"{name}.cnf").write_text(
        f"[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\nCN = {common_name}\n"
        "[ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,digitalSignature,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier = hash\n"
    )
    _openssl(
        "req", "-x509", "-new", "-key", str(pki / f"{name}.key"), "-config", str(pki / f"{name}.cnf"),
        "-days", "30", "-sha256", "-out", str(pki / f"{name}.crt"),
    )  # fmt: skip


def _leaf(pki: Path, name: str, subject: dict[str, str], extensions: list[str], ca: str = "ca") -> None:
    """Key pki/NAME.key and certificate pki/NAME.crt signed by pki/CA."""
    key, csr, crt, cnf = (pki / f"{name}.{ext}" for ext in ("key", "csr", "crt", "cnf"))
    _ec_key(key)
    dn = "\n".join(f"{k} = {v}" for k, v in subject.items())
    cnf.write_text(
        "[req]\nprompt = no\ndistinguished_name = dn\n[dn]\n" + dn + "\n[ext]\n" + "\n".join(extensions) + "\n"
    )
    _openssl("req", "-new", "-key", str(key), "-config", str(cnf), "-out", str(csr))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki / f"{ca}.crt"), "-CAkey", str(pki / f"{ca}.key"),
        "-set_serial", str(secrets.randbits(63)), "-days", "30", "-sha256",
        "-extfile", str(cnf), "-extensions", "ext", "-out", str(crt),
    )  # fmt: skip
    csr.unlink()


def make_pki(pki: Path, host_ip: str) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    _ca(pki, "ca", "videojob-testenv-ca")
    server_sans = ",".join(
        [
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
            "IP:127.0.0.1",
            f"IP:{host_ip}",
            f"IP:{SERVICE_IP}",
        ]
    )
    common = ["basicConstraints = critical,CA:FALSE", "keyUsage = critical,digitalSignature,keyEncipherment"]
    _leaf(
        pki,
        "apiserver",
        {"CN": "kube-apiserver"},
        [*common, "extendedKeyUsage = serverAuth", f"subjectAltName = {server_sans}"],
    )
    client = [*common, "extendedKeyUsage = clientAuth"]
    _leaf(pki, "admin", {"O": "system:masters", "CN": "testenv-admin"}, client)
    _leaf(pki, "controller-manager", {"CN": "system:kube-controller-manager"}, client)
    _leaf(pki, "scheduler", {"CN": "system:kube-scheduler"}, client)
    _leaf(pki, "kube-proxy", {"CN": "system:kube-proxy"}, client)
    # The apiserver's identity towards the kubelets (logs, exec, port-forward).
    _leaf(pki, "apiserver-kubelet-client", {"O": "system:masters", "CN": "kube-apiserver-kubelet-client"}, client)
    for node in NODES:
        _leaf(pki, f"node-{node}", {"O": "system:nodes", "CN": f"system:node:{node}"}, client)
    # The front proxy (aggregation layer) identity: the apiserver publishes its CA in
    # kube-system/extension-apiserver-authentication, which the controller-manager and scheduler read.
    _ca(pki, "front-proxy-ca", "videojob-testenv-front-proxy-ca")
    _leaf(pki, "front-proxy-client", {"CN": "front-proxy-client"}, client, ca="front-proxy-ca")
    # Service-account token signing pair: the apiserver signs with sa.key and verifies with sa.pub; the
    # controller-manager signs legacy token Secrets with sa.key.
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
    (pki / "sa.key").chmod(0o600)
    _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: {server}
    certificate-authority-data: {b64(pki / "ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(pki / f"{user}.crt")}
    client-key-data: {b64(pki / f"{user}.key")}
contexts:
- name: testenv
  context:
    cluster: testenv
    user: {user}
    namespace: default
current-context: testenv
"""
    )
    path.chmod(0o600)


# ---------------------------------------------------------------------------------------------------------------
# HTTP probes


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def admin_ssl(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def insecure_ssl() -> ssl.SSLContext:
    """For the /healthz of the controller-manager and scheduler, which serve self-signed certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---------------------------------------------------------------------------------------------------------------
# up


def component_env(token: str) -> dict[str, str]:
    """The environment of every component: tagged with the environment's token (down finds them by it)."""
    path = os.environ.get("PATH", "")
    env = {**os.environ, "TESTENV_TOKEN": token, "PATH": f"{BIN_DIR}{os.pathsep}{path}"}
    # Nothing of a caller's environment (e.g. a sourced .testenv/env) leaks into the components and so into
    # the pods: a pod sees S3 credentials only when its spec gives them (secretKeyRef).
    for var in list(env):
        if var in ("KUBECONFIG", "TESTENV_DIR", "S3_ENDPOINT_URL") or var.startswith(("AWS_", "MINIO_")):
            del env[var]
    return env


def launch(env: Env, name: str, argv: list[str], child_env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start one component in a session of its own, its output appended to logs/NAME.log."""
    logfile = env.logs / f"{name}.log"
    with open(logfile, "ab") as out:
        out.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {shlex.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=env.root,
            env=child_env,
            start_new_session=True,
        )


class Starter:
    def __init__(self, env: Env, kube_proxy: bool = True, image_names: list[str] | None = None) -> None:
        self.env = env
        self.kube_proxy = kube_proxy
        self.image_names = image_names
        self.token = secrets.token_hex(12)
        self.state: dict[str, Any] = {
            "token": self.token, "dir": str(env.root), "components": {}, "ready": False, "kube_proxy": kube_proxy,
        }  # fmt: skip
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {}  # seconds since the start at which each readiness check passed
        self.child_env = component_env(self.token)

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        p = launch(self.env, name, argv, {**self.child_env, **(extra_env or {})})
        self.procs[name] = p
        self.state["components"][name] = {
            "pid": p.pid, "start": start_time(p.pid), "log": str(self.env.logs / f"{name}.log"), "argv": argv,
            "extra_env": extra_env or {},
        }  # fmt: skip
        self.env.save(self.state)

    def check_running(self) -> None:
        for name, p in self.procs.items():
            rc = p.poll()
            if rc is not None:
                raise StartError(name, f"exited with code {rc} during start-up")

    def wait(self, component: str, what: str, probe: Callable[[], Any], timeout: float) -> None:
        """Poll `probe` until it returns a truthy value other than a string (a string says what it saw instead);
        fail with its last result or error."""
        start = time.monotonic()
        deadline = start + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                if (value := probe()) and not isinstance(value, str):
                    self.timings[f"{component}: {what}"] = round(time.monotonic() - self.t0, 1)
                    return
                last = value
            except (OSError, ValueError) as e:
                last = e
            time.sleep(0.2)
        raise StartError(component, f"not ready after {timeout:.0f}s waiting for {what}; last: {last!r}")

    def up(self) -> None:
        env = self.env
        t0 = self.t0 = time.monotonic()
        names = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
        bins = {n: binary(n) for n in names}
        bins["minio"] = binary("minio")
        images = self.images()
        try:
            localnodes.check_host()
            index = localnodes.free_index()
            localnodes.add_addresses(index)
            localnodes.kernel_settings()
        except localnodes.HostError as e:
            raise StartError("host", str(e)) from None
        host_ip = localnodes.control_plane_ip(index)
        self.state["index"] = index
        self.state["host_ip"] = host_ip
        for d in (env.logs, env.etcd_data, env.minio_data, env.run):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        env.save(self.state)
        make_pki(env.pki, host_ip)
        self.timings["pki"] = round(time.monotonic() - t0, 1)
        (etcd_port, peer_port, api_port, kcm_port, sched_port, s3_port, console_port,
         proxy_metrics, proxy_healthz) = free_ports(9)  # fmt: skip
        api = f"https://{host_ip}:{api_port}"
        s3 = f"http://{host_ip}:{s3_port}"
        s3_user, s3_password = "testenv-" + secrets.token_hex(4), secrets.token_urlsafe(24)
        self.state.update(
            apiserver=api,
            s3={"endpoint": s3, "access_key": s3_user, "secret_key": s3_password, "region": REGION},
            ports={"etcd": etcd_port, "etcd-peer": peer_port, "kube-apiserver": api_port,
                   "kube-controller-manager": kcm_port, "kube-scheduler": sched_port,
                   "minio": s3_port, "minio-console": console_port},
        )  # fmt: skip
        pki = env.pki
        node_list = localnodes.nodes(index)

        # The nodes' runtimes first: importing images is the slow part of a first start, and it overlaps with
        # the control plane's.
        for node in node_list:
            config = localnodes.write_containerd_config(node, env.root)
            self.spawn(f"containerd-{node.name}", ["containerd", "--config", str(config)])

        self.spawn(
            "etcd",
            [
                bins["etcd"],
                "--name=testenv",
                f"--data-dir={env.etcd_data}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=testenv=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",  # throw-away data: no fsync keeps the apiserver fast on slow disks
                "--log-level=warn",
            ],
        )
        self.spawn(
            "minio",
            [
                bins["minio"],
                "server",
                str(env.minio_data),
                "--address",
                f"{host_ip}:{s3_port}",
                "--console-address",
                f"127.0.0.1:{console_port}",
                "--quiet",
            ],
            {"MINIO_ROOT_USER": s3_user, "MINIO_ROOT_PASSWORD": s3_password, "MINIO_UPDATE": "off"},
        )

        def etcd_healthy() -> bool:
            status, body = http_get(f"http://127.0.0.1:{etcd_port}/health")
            return status == 200 and json.loads(body).get("health") == "true"

        self.wait("etcd", "/health", etcd_healthy, 60)

        self.spawn(
            "kube-apiserver",
            [
                bins["kube-apiserver"],
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--bind-address={host_ip}",
                f"--advertise-address={host_ip}",
                f"--secure-port={api_port}",
                f"--cert-dir={env.run / 'kube-apiserver'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                # The node names do not resolve; their InternalIPs are the addresses on lo.
                "--kubelet-preferred-address-types=InternalIP",
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--authorization-mode=Node,RBAC",
                # On top of the default admission plugins (NamespaceLifecycle, LimitRanger, ServiceAccount,
                # Priority, DefaultTolerationSeconds, TaintNodesByCondition, ResourceQuota, ...).
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        actx = admin_ssl(pki)

        def api_get(path: str) -> tuple[int, Any]:
            status, body = http_get(api + path, actx)
            return status, (json.loads(body) if status == 200 and path.startswith("/api") else body)

        self.wait("kube-apiserver", "/readyz", lambda: api_get("/readyz")[0] == 200, 180)

        write_kubeconfig(env.kubeconfig, api, pki, "admin")
        kubeconfigs = {}
        for user in ("controller-manager", "scheduler", "kube-proxy", *(f"node-{n}" for n in NODES)):
            kubeconfigs[user] = env.run / f"{user}.kubeconfig"
            write_kubeconfig(kubeconfigs[user], api, pki, user)
        kcm_kubeconfig, sched_kubeconfig = kubeconfigs["controller-manager"], kubeconfigs["scheduler"]

        self.spawn(
            "kube-controller-manager",
            [
                bins["kube-controller-manager"],
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={env.run / 'kube-controller-manager'}",
                "--leader-elect=false",
                "--controllers=*",  # every default controller: job, garbagecollector, nodelifecycle, podgc, ...
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--cluster-name=testenv",
            ],
        )
        self.spawn(
            "kube-scheduler",
            [
                bins["kube-scheduler"],
                f"--kubeconfig={sched_kubeconfig}",
                f"--authentication-kubeconfig={sched_kubeconfig}",
                f"--authorization-kubeconfig={sched_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={env.run / 'kube-scheduler'}",
                "--leader-elect=false",
            ],
        )

        for node in node_list:
            sock = localnodes.containerd_paths(node, env.root)["socket"]
            self.wait(f"containerd-{node.name}", f"socket {sock}", lambda s=sock: s.exists(), 60)  # type: ignore[misc]
            try:
                imported = localnodes.import_images(node, env.root, images)
            except localnodes.HostError as e:
                raise StartError(f"containerd-{node.name}", str(e)) from None
            self.timings[f"containerd-{node.name}: images ({', '.join(imported) or 'all present'})"] = round(
                time.monotonic() - t0, 1
            )
        for node in node_list:
            kubelet_port, kubelet_healthz = free_ports(2)
            paths = localnodes.write_kubelet_config(node, env.root, pki / "ca.crt", kubelet_port, kubelet_healthz)
            self.spawn(
                f"kubelet-{node.name}",
                localnodes.kubelet_argv(bins["kubelet"], node, paths, kubeconfigs[f"node-{node.name}"]),
            )
        if self.kube_proxy:
            self.spawn(
                "kube-proxy",
                localnodes.kube_proxy_argv(
                    bins["kube-proxy"], index, kubeconfigs["kube-proxy"], proxy_metrics, proxy_healthz
                ),
            )

        ictx = insecure_ssl()
        self.wait("minio", "/minio/health/live", lambda: http_get(f"{s3}/minio/health/live")[0] == 200, 60)
        self.wait(
            "kube-controller-manager",
            "/healthz",
            lambda: http_get(f"https://127.0.0.1:{kcm_port}/healthz", ictx)[0] == 200,
            60,
        )
        self.wait(
            "kube-scheduler",
            "/healthz",
            lambda: http_get(f"https://127.0.0.1:{sched_port}/healthz", ictx)[0] == 200,
            60,
        )

        def registered() -> Any:
            status, body = api_get("/api/v1/nodes")
            names = {n["metadata"]["name"] for n in body["items"]} if status == 200 else set()
            return set(NODES) <= names or f"nodes registered: {sorted(names)}"

        self.wait("kubelet-gpu-0", "Nodes registered", registered, 120)
        self.advertise_gpu(api, actx)

        def nodes_ready() -> Any:
            status, body = api_get("/api/v1/nodes")
            if status != 200:
                return f"HTTP {status}"
            seen = {}
            for n in body["items"]:
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                # TaintNodesByCondition: the node lifecycle controller lifts not-ready once it saw Ready.
                not_ready_taint = any(
                    t["key"] == "node.kubernetes.io/not-ready" for t in n["spec"].get("taints", []) or []
                )
                gpus = n["status"].get("allocatable", {}).get(localnodes.GPU_RESOURCE)
                seen[n["metadata"]["name"]] = (
                    ready and not not_ready_taint and (n["metadata"]["name"] != "gpu-0" or gpus == "1")
                )
            return all(seen.get(name) for name in NODES) or f"nodes schedulable: {seen}"

        self.wait("kubelet-cpu-0", f"Nodes {', '.join(NODES)} Ready", nodes_ready, 120)
        self.wait(
            "kube-controller-manager",
            "ServiceAccount default/default",
            lambda: api_get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            60,
        )

        def kubernetes_endpoint() -> Any:
            status, body = api_get("/api/v1/namespaces/default/endpoints/kubernetes")
            subsets = (body.get("subsets") or []) if status == 200 else []
            ips = [a["ip"] for s in subsets for a in s.get("addresses", [])]
            return ips == [host_ip] or f"endpoints {ips}"

        self.wait("kube-apiserver", "Service kubernetes endpoint", kubernetes_endpoint, 60)

        write_env_file(env, self.state)
        self.state["ready"] = True
        self.state["started_in_s"] = round(time.monotonic() - t0, 1)
        self.state["timings"] = self.timings
        env.save(self.state)
        log(f"up in {time.monotonic() - t0:.1f}s: apiserver {api}, S3 {s3}, nodes {', '.join(NODES)}")
        log(f"source {env.env_file}   # KUBECONFIG, S3_ENDPOINT_URL, AWS_*, PATH")

    def images(self) -> list[Path]:
        tarballs = image_tarballs(self.image_names)
        self.state["images"] = self.image_names
        return tarballs

    def advertise_gpu(self, api: str, ctx: ssl.SSLContext) -> None:
        """nvidia.com/gpu: 1 in gpu-0's capacity, as the Kubernetes docs advertise an extended resource."""
        patch = json.dumps([{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "1"}]).encode()
        req = urllib.request.Request(
            f"{api}/api/v1/nodes/gpu-0/status", data=patch, method="PATCH",
            headers={"Content-Type": "application/json-patch+json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                r.read()
        except urllib.error.HTTPError as e:
            detail = f"advertising {localnodes.GPU_RESOURCE}: HTTP {e.code} {e.read()!r}"
            raise StartError("kubelet-gpu-0", detail) from None


def image_tarballs(names: list[str] | None) -> list[Path]:
    """The image tarballs to import: the sandbox image first; all of IMAGES_DIR unless `names` says which."""
    found = {p.stem: p for p in sorted(IMAGES_DIR.glob("*.tar")) if p.exists()}  # a dangling link: rebuilt since
    if "pause" not in found:
        raise StartError("images", f"no pause.tar in {IMAGES_DIR}: build the images with `make images`")
    wanted = names if names is not None else list(found)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise StartError("images", f"{', '.join(missing)} not in {IMAGES_DIR}: build them with `make images`")
    return [found["pause"], *(found[n] for n in wanted if n != "pause")]


def sync_images(env: Env, state: dict[str, Any]) -> list[str]:
    """Import into a running environment's nodes the images rebuilt since it started (`make images` after a code
    change); a no-op, in milliseconds, when nothing changed."""
    tarballs = image_tarballs(state.get("images"))
    done: set[str] = set()
    for node in localnodes.nodes(state["index"]):
        done.update(localnodes.import_images(node, env.root, tarballs))
    return sorted(done)


def write_env_file(env: Env, state: dict[str, Any]) -> None:
    s3 = state["s3"]
    values = {
        "KUBECONFIG": str(env.kubeconfig),
        "S3_ENDPOINT_URL": s3["endpoint"],
        "AWS_ACCESS_KEY_ID": s3["access_key"],
        "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
        "AWS_DEFAULT_REGION": s3["region"],
        "TESTENV_DIR": str(env.root),
        # The address of this machine that pods reach (the nodes' InternalIP): servers a test starts for pods
        # listen here.
        "TESTENV_HOST_IP": state["host_ip"],
    }
    lines = [f"# Written by hack/testenv.py up. Source it: . {env.env_file}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
    lines.append(f'export PATH={shlex.quote(str(BIN_DIR))}:"$PATH"')
    env.env_file.write_text("\n".join(lines) + "\n")
    env.env_file.chmod(0o600)


def tail(path: str | Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------------------------
# health, down


def health(env: Env, state: dict[str, Any] | None) -> dict[str, str]:
    """Per component: "ok" or what is wrong. Empty dict when no environment is recorded."""
    if not state:
        return {}
    out: dict[str, str] = {}
    comps = state.get("components", {})
    for name in reversed(STOP_ORDER):
        c = comps.get(name)
        if c is None:
            if name == "kube-proxy" and not state.get("kube_proxy", True):
                continue
            out[name] = "not started"
        elif not alive(c["pid"], c.get("start")):
            out[name] = f"pid {c['pid']} not running (log: {c['log']})"
        else:
            out[name] = "ok"
    if out.get("kube-apiserver") == "ok":
        try:
            status, _ = http_get(state["apiserver"] + "/readyz", admin_ssl(env.pki))
            if status != 200:
                out["kube-apiserver"] = f"/readyz HTTP {status}"
        except (OSError, ssl.SSLError) as e:
            out["kube-apiserver"] = f"/readyz: {e}"
    if out.get("minio") == "ok":
        try:
            status, _ = http_get(state["s3"]["endpoint"] + "/minio/health/live")
            if status != 200:
                out["minio"] = f"/minio/health/live HTTP {status}"
        except OSError as e:
            out["minio"] = f"/minio/health/live: {e}"
    if not state.get("ready"):
        out["environment"] = "start-up did not finish"
    return out


def drain(env: Env, state: dict[str, Any], quiet: bool) -> None:
    """Delete every pod and wait until the kubelets stopped them: the kubelet tears down each sandbox (its
    network namespace and CNI address) as it would on a real node. Best effort: `down` kills what is left."""
    comps = state.get("components", {})
    kube_up = all(alive(c["pid"], c.get("start")) for n, c in comps.items() if n.startswith(("kube-api", "kubelet")))
    if not kube_up or not state.get("apiserver"):
        return
    ctx = admin_ssl(env.pki)
    api = state["apiserver"]

    def pods() -> list[dict[str, Any]]:
        status, body = http_get(f"{api}/api/v1/pods", ctx, timeout=10)
        return json.loads(body)["items"] if status == 200 else []

    t0 = time.monotonic()
    try:
        for pod in pods():
            meta = pod["metadata"]
            req = urllib.request.Request(
                f"{api}/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                data=json.dumps({"gracePeriodSeconds": 1}).encode(), method="DELETE",
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(req, context=ctx, timeout=10).close()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline and pods():
            time.sleep(0.5)
    except (OSError, ssl.SSLError, ValueError) as e:
        if not quiet:
            log(f"drain: {e}")
    if not quiet:
        left = len(pods()) if time.monotonic() - t0 < DRAIN_TIMEOUT + 5 else "?"
        log(f"drained the nodes in {time.monotonic() - t0:.1f}s ({left} pod(s) left)")


def down(env: Env, quiet: bool = False) -> None:
    state = env.load()
    if state:
        comps = state.get("components", {})
        stopped_controllers = False
        for name in STOP_ORDER:
            if name.startswith("kubelet") and not stopped_controllers:
                stopped_controllers = True
                drain(env, state, quiet)
            c = comps.get(name)
            if not c:
                continue
            pid, started = c["pid"], c.get("start")
            if name.startswith("containerd-") and state.get("index") is not None and alive(pid, started):
                node = next(n for n in localnodes.nodes(state["index"]) if f"containerd-{n.name}" == name)
                with contextlib.suppress(localnodes.HostError, OSError, subprocess.SubprocessError):
                    removed = localnodes.remove_containers(node, env.root)
                    if removed and not quiet:
                        log(f"removed {len(removed)} container(s) from {name}'s store")
            # Remember the whole tree first: once the parent is gone its children are re-parented.
            tree = descendants(pid) if alive(pid, started) else []
            killed = terminate([(pid, started)], DEFAULT_STOP_TIMEOUT)
            leftovers = [(p, st) for p, st in tree if alive(p, st)]
            if leftovers:
                terminate(leftovers, 5.0)
            if not quiet:
                note = " (SIGKILL)" if killed else ""
                extra = f", {len(leftovers)} leftover child process(es) stopped" if leftovers else ""
                log(f"stopped {name} (pid {pid}){note}{extra}")
        if state.get("token"):
            # containerd's shims carry the token; the containers under them do not, so take their trees too.
            stray = tagged(state["token"])
            stray += [d for p, _ in stray for d in descendants(p)]
            if stray:
                terminate(stray, 5.0)
                if not quiet:
                    log(f"stopped {len(stray)} stray process(es) (shims and containers): {[p for p, _ in stray]}")
        index = state.get("index")
        if index is not None:
            cleanup_host(env, index, bool(state.get("kube_proxy", True)), quiet)
    env.clean()
    if not quiet:
        log(f"down; removed everything under {env.root} but bin/ and images/")


def cleanup_host(env: Env, index: int, kube_proxy_ran: bool, quiet: bool) -> None:
    """What the nodes left on the host: mounts (rootfs, tokens, netns), bridges, addresses, iptables chains."""
    stores = [n.store() for n in localnodes.nodes(index)]
    try:
        unmounted = localnodes.unmount_all([env.root, *stores])
        kube_proxy = BIN_DIR / "kube-proxy"
        if kube_proxy_ran:  # the one owner of the host's KUBE-* chains
            localnodes.remove_kube_chains(str(kube_proxy) if kube_proxy.exists() else None)
        bridges = localnodes.remove_bridges(index)
        addresses = localnodes.remove_addresses(index)
    except (localnodes.HostError, OSError, subprocess.SubprocessError) as e:
        log(f"clean-up of the host incomplete: {e}")
        return
    if not quiet:
        log(f"removed {len(unmounted)} mount(s), bridges {bridges}, addresses {addresses}")


# ---------------------------------------------------------------------------------------------------------------
# commands


def cmd_up(env: Env, kube_proxy: bool = True, image_names: list[str] | None = None) -> int:
    with env.locked():
        state = env.load()
        if state:
            problems = {k: v for k, v in health(env, state).items() if v != "ok"}
            if not problems:
                try:
                    refreshed = sync_images(env, state)
                except (StartError, localnodes.HostError) as e:
                    print(f"testenv: could not refresh the nodes' images: {e}", file=sys.stderr)
                    return 1
                note = f"; imported the rebuilt {', '.join(refreshed)}" if refreshed else ""
                log(f"already up (apiserver {state['apiserver']}){note}; source {env.env_file}")
                return 0
            log(f"found a half-dead environment ({problems}); tearing it down and starting fresh")
            down(env, quiet=True)
        else:
            env.clean()  # leftovers of an environment whose state was lost
        starter = Starter(env, kube_proxy=kube_proxy, image_names=image_names)
        try:
            starter.up()
            return 0
        except (StartError, KeyboardInterrupt, Exception) as e:  # whatever stopped it, nothing is left running
            component = e.component if isinstance(e, StartError) else "start-up"
            reason = (
                e.message
                if isinstance(e, StartError)
                else ("interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}")
            )
            print(f"testenv: FAILED to start {component}: {reason}", file=sys.stderr)
            comp = starter.state["components"].get(component)
            if comp:
                print(f"--- last lines of {comp['log']} ---\n{tail(comp['log'])}\n---", file=sys.stderr)
            print("testenv: tearing down what was started", file=sys.stderr)
            down(env, quiet=True)
            return 1


def cmd_down(env: Env) -> int:
    with env.locked():
        down(env)
    return 0


def cmd_status(env: Env, quiet: bool) -> int:
    state = env.load()
    report = health(env, state)
    if not report:
        if not quiet:
            print(f"no environment recorded in {env.root}")
        return 3
    if not quiet:
        comps = state.get("components", {}) if state else {}
        for name, h in report.items():
            pid = comps.get(name, {}).get("pid", "-")
            port = (state or {}).get("ports", {}).get(name, "-")
            print(f"{name:25} pid {pid!s:8} port {port!s:6} {h}")
        print(f"logs: {env.logs}")
    return 0 if all(v == "ok" for v in report.values()) else 1


# ---------------------------------------------------------------------------------------------------------------
# faults for the chaos suite (tests/chaos): one component stopped and started again, or frozen


def cmd_restart(env: Env, names: list[str], down_seconds: float) -> int:
    """Stop each named component (SIGTERM, SIGKILL after 30 s; only its own process: a containerd's shims and
    containers run on), wait `down_seconds`, start it again with the same command line, and wait until the
    environment is healthy again."""
    with env.locked():
        state = env.load()
        if not state:
            print(f"no environment recorded in {env.root}", file=sys.stderr)
            return 3
        comps = state["components"]
        unknown = [n for n in names if n not in comps or "argv" not in comps[n] or n not in STOP_ORDER]
        if unknown:
            print(
                f"testenv: cannot restart {unknown}: not components of this environment started with a recorded "
                f"command line (known: {sorted(comps)})",
                file=sys.stderr,
            )
            return 2
        order = [n for n in STOP_ORDER if n in names]  # stopped in STOP_ORDER, started the other way round
        for name in order:
            terminate([(comps[name]["pid"], comps[name].get("start"))], 30.0)
        time.sleep(down_seconds)
        child_env = component_env(state["token"])
        for name in reversed(order):
            c = comps[name]
            # A kubelet exits at once when its containerd's CRI is not serving yet (the socket answers before
            # the CRI plugin is initialized): started again until it stays up.
            for _attempt in range(30 if name.startswith("kubelet-") else 1):
                p = launch(env, name, c["argv"], {**child_env, **c.get("extra_env", {})})
                c.update(pid=p.pid, start=start_time(p.pid))
                env.save(state)
                if not name.startswith("kubelet-"):
                    break
                time.sleep(3)
                if alive(c["pid"], c["start"]):
                    break
        deadline = time.monotonic() + 120
        while (problems := {k: v for k, v in health(env, state).items() if v != "ok"}) and time.monotonic() < deadline:
            time.sleep(0.5)
        if problems:
            print(f"testenv: not healthy 120 s after restarting {names}: {problems}", file=sys.stderr)
            return 1
    log(f"restarted {', '.join(names)}")
    return 0


def cmd_pause(env: Env, name: str, seconds: float) -> int:
    """Freeze one component (SIGSTOP) for `seconds`, then let it go on (SIGCONT), e.g. etcd stalling."""
    state = env.load()
    c = (state or {}).get("components", {}).get(name)
    if c is None:
        print(f"testenv: no component {name!r} in {env.root}", file=sys.stderr)
        return 2
    _signal(c["pid"], c.get("start"), signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        _signal(c["pid"], c.get("start"), signal.SIGCONT)
    log(f"paused {name} for {seconds:g} s")
    return 0


def cmd_env(env: Env) -> int:
    if not env.env_file.exists():
        print(f"no environment in {env.root}; run hack/testenv.py up", file=sys.stderr)
        return 1
    sys.stdout.write(env.env_file.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("TESTENV_DIR") or DEFAULT_DIR))
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start the environment (idempotent)")
    up.add_argument("--no-kube-proxy", action="store_true", help="no Service routing (a second environment)")
    up.add_argument("--images", help="comma-separated image tarballs of .testenv/images to import (default: all)")
    sub.add_parser("down", help="stop everything and remove its data")
    st = sub.add_parser("status", help="show the components; exit 0 when healthy, 1 unhealthy, 3 absent")
    st.add_argument("-q", "--quiet", action="store_true")
    sub.add_parser("env", help="print the sourceable environment")
    rs = sub.add_parser("restart", help="stop components and start them again with the same command line")
    rs.add_argument("components", nargs="+", help="e.g. minio, kube-apiserver, kubelet-cpu-0 containerd-cpu-0")
    rs.add_argument("--down", type=float, default=0.0, help="seconds to stay stopped")
    pa = sub.add_parser("pause", help="freeze a component (SIGSTOP) for some seconds, then resume it")
    pa.add_argument("component")
    pa.add_argument("seconds", type=float)
    args = ap.parse_args(argv)
    env = Env(args.dir)
    if args.cmd == "up":
        names = [n for n in args.images.split(",") if n] if args.images else None
        return cmd_up(env, kube_proxy=not args.no_kube_proxy, image_names=names)
    if args.cmd == "down":
        return cmd_down(env)
    if args.cmd == "status":
        return cmd_status(env, args.quiet)
    if args.cmd == "restart":
        return cmd_restart(env, args.components, args.down)
    if args.cmd == "pause":
        return cmd_pause(env, args.component, args.seconds)
    return cmd_env(env)


if __name__ == "__main__":
    sys.exit(main())
