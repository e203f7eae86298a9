"""Real nodes for the local environment: containerd + kubelet per node, one kube-proxy, all on this machine.

hack/testenv.py starts the control plane; this module prepares and cleans up what the nodes need on the host,
the way Kubernetes' own hack/local-up-cluster.sh does it, with the settings these machines require (KNOWLEDGE.md):

- each environment takes an index N (1..9) and the addresses 10.201.N.1 (the control plane, MinIO and node
  cpu-0) and 10.201.N.2 (node gpu-0) as /32s on `lo`. kubelet refuses a loopback node IP; an address on lo is
  local to this machine, reachable from the pods' bridges, and leaves nothing on any real network;
- each node has its own containerd (socket, state and root of its own: two kubelets sharing one runtime would
  kill each other's containers as orphans) with the CNI bridge plugin on a bridge of its own (vjN-cpu0,
  vjN-gpu0) and a /24 pod network of its own, and network namespaces kept under its state dir;
- containerd's image store lives in the user's cache, per environment index and node, so the images imported
  once stay imported across up/down (nothing here can be pulled from a registry);
- the GPU node carries the label and taint of a real one (nvidia.com/gpu.present=true,
  nvidia.com/gpu=present:NoSchedule) and advertises `nvidia.com/gpu: 1` as an extended resource, as the
  Kubernetes docs describe ("Advertise Extended Resources for a Node"); the scheduler places and limits GPU pods.

`cleanup_host` undoes everything: processes (containerd's shims and the containers under them), mounts under
the environment's directories, network namespaces, bridges, the lo addresses and the iptables chains of
kube-proxy.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "videojob-operator"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
POD_CIDR_BASE = ipaddress.ip_network("10.244.0.0/16")
ADDRESS_PREFIX = "10.201"
SANDBOX_IMAGE = "docker.io/videojob-testenv/pause:3.10"
GPU_LABEL = "nvidia.com/gpu.present"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_RESOURCE = "nvidia.com/gpu"
HOST_PACKAGES = {  # command -> Debian package that provides it
    "containerd": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "mount": "mount",
}


class HostError(Exception):
    """Something on this machine keeps the nodes from starting; the message says what to do."""


@dataclass(frozen=True)
class Node:
    name: str
    index: int  # environment index N
    ordinal: int  # 0 for cpu-0, 1 for gpu-0
    gpu: bool

    @property
    def ip(self) -> str:
        return f"{ADDRESS_PREFIX}.{self.index}.{self.ordinal + 1}"

    @property
    def bridge(self) -> str:
        return f"vj{self.index}-{self.name.replace('-', '')}"  # at most 15 characters: vj9-cpu0

    @property
    def pod_cidr(self) -> str:
        return str(list(POD_CIDR_BASE.subnets(new_prefix=24))[self.index * 8 + self.ordinal])

    def store(self) -> Path:
        """containerd's root (image store), kept across up/down."""
        return CACHE / "containerd" / f"env{self.index}-{self.name}"


def nodes(index: int) -> list[Node]:
    return [Node("cpu-0", index, 0, False), Node("gpu-0", index, 1, True)]


def control_plane_ip(index: int) -> str:
    return f"{ADDRESS_PREFIX}.{index}.1"


def cluster_cidr(index: int) -> str:
    first = ipaddress.ip_network(nodes(index)[0].pod_cidr)
    return str(ipaddress.ip_network(f"{first.network_address}/21", strict=False))


# ---------------------------------------------------------------------------------------------------------------
# Host checks and commands


def run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if check and r.returncode != 0:
        raise HostError(f"{' '.join(argv)} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-500:]}")
    return r


def check_host() -> None:
    """Root, the host tools and the CNI plugins; one clear line naming what is missing."""
    if os.geteuid() != 0:
        raise HostError("real nodes (containerd, kubelet, iptables, mounts) need root: run as root or with sudo")
    missing = sorted({pkg for cmd, pkg in HOST_PACKAGES.items() if shutil.which(cmd) is None})
    if not cni_bin_dir():
        missing.append("containernetworking-plugins")
    if missing:
        raise HostError(f"missing host packages: {' '.join(missing)} (apt-get install {' '.join(missing)})")


def cni_bin_dir() -> str | None:
    for d in CNI_BIN_DIRS:
        if (Path(d) / "bridge").exists() and (Path(d) / "host-local").exists():
            return d
    return None


def lo_addresses() -> set[str]:
    out = run("ip", "-o", "-4", "addr", "show", "dev", "lo").stdout
    return set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))


def free_index() -> int:
    """The first environment index whose addresses nobody holds."""
    held = lo_addresses()
    for index in range(1, 10):
        if control_plane_ip(index) not in held:
            return index
    raise HostError(f"all environment indexes are in use (addresses {ADDRESS_PREFIX}.1-9.1 on lo)")


def add_addresses(index: int) -> None:
    held = lo_addresses()
    for node in nodes(index):
        if node.ip not in held:
            run("ip", "addr", "add", f"{node.ip}/32", "dev", "lo")


def kernel_settings() -> None:
    """What the CNI bridge and kube-proxy need; both are the usual values on a Kubernetes node."""
    for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
        path = Path("/proc/sys") / key
        if not path.exists():
            if "bridge" in key:
                run("modprobe", "br_netfilter", check=False)
            if not path.exists():
                raise HostError(f"/proc/sys/{key} is missing (kernel module br_netfilter?)")
        if path.read_text().strip() != value:
            path.write_text(value)


# ---------------------------------------------------------------------------------------------------------------
# containerd


def containerd_paths(node: Node, env_root: Path) -> dict[str, Path]:
    base = env_root / "nodes" / node.name
    return {
        "base": base,
        "state": base / "containerd-state",
        "socket": base / "containerd.sock",
        "config": base / "containerd.toml",
        "cni_conf": base / "cni",
        "cni_data": base / "cni-ipam",
        "root": node.store(),
    }


def write_containerd_config(node: Node, env_root: Path) -> Path:
    p = containerd_paths(node, env_root)
    for key in ("base", "state", "cni_conf", "cni_data", "root"):
        p[key].mkdir(parents=True, exist_ok=True)
    cni = {
        "cniVersion": "1.0.0",
        "name": f"vj{node.index}-{node.name}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                "ipMasq": False,  # pods only talk to addresses on this machine: no NAT rules to leave behind
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(p["cni_data"]),
                },
            },
            {"type": "loopback"},
        ],
    }
    (p["cni_conf"] / "10-bridge.conflist").write_text(json.dumps(cni, indent=2))
    p["config"].write_text(
        f"""version = 2
root = "{p["root"]}"
state = "{p["state"]}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{p["socket"]}"

[ttrpc]
  address = "{p["socket"]}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  # These machines refuse lowering oom_score_adj; without this runc fails ("can't get final child's PID").
  restrict_oom_score_adj = true
  # Network namespaces under the state dir, so that down finds (and unmounts) exactly this node's.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir()}"
    conf_dir = "{p["cni_conf"]}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"""
    )
    return p["config"]


def ctr(node: Node, env_root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    sock = containerd_paths(node, env_root)["socket"]
    return run("ctr", "--address", str(sock), "--namespace", "k8s.io", *args, timeout=timeout)


def import_images(node: Node, env_root: Path, tarballs: list[Path]) -> list[str]:
    """Import each tarball unless this very file (by its resolved name, which carries the build's content hash,
    and size) was imported into the node's store before and its image names are still there."""
    have = set(ctr(node, env_root, "images", "ls", "-q").stdout.split())
    imported = []
    for tarball in tarballs:
        real = tarball.resolve()
        stamp = f"{real.name} {real.stat().st_size}"
        marker = node.store() / "imported" / tarball.name
        if marker.exists() and marker.read_text() == stamp and _names_in(tarball) <= have:
            continue
        ctr(node, env_root, "images", "import", str(tarball), timeout=900)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(stamp)
        imported.append(tarball.name)
    return imported


def _names_in(tarball: Path) -> set[str]:
    import tarfile

    with contextlib.suppress(OSError, KeyError, tarfile.TarError, json.JSONDecodeError), tarfile.open(tarball) as t:
        member = t.extractfile("manifest.json")
        if member is not None:
            tags = json.loads(member.read())[0].get("RepoTags") or []
            return {normalise_image(tag) for tag in tags}
    return set()


def normalise_image(ref: str) -> str:
    """docker.io/library/NAME:TAG for a short reference, as containerd's CRI names images."""
    name = ref
    first = name.split("/")[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name


# ---------------------------------------------------------------------------------------------------------------
# kubelet and kube-proxy


def write_kubelet_config(node: Node, env_root: Path, ca: Path, port: int, healthz_port: int) -> dict[str, Path]:
    base = env_root / "nodes" / node.name
    paths = {
        "config": base / "kubelet.yaml",
        "root": base / "kubelet",
        "logs": base / "pod-logs",
        "certs": base / "kubelet-certs",
    }
    for key in ("root", "logs", "certs"):
        paths[key].mkdir(parents=True, exist_ok=True)
    socket = containerd_paths(node, env_root)["socket"]
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket}",
        "imageServiceEndpoint": f"unix://{socket}",
        "podLogsDir": str(paths["logs"]),
        # The settings these machines need (KNOWLEDGE.md): cgroup v1 with cgroupfs, no per-QoS cgroups.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        # Nothing can be pulled here: never garbage-collect the imported images, and do not evict on the
        # disk pressure a shared CI disk may show. Absolute floors, not percentages: 1% of a 250 GB shared disk is
        # 2.5 GB, which other jobs' image builds dip below, and the disk-pressure taint then leaves every new pod
        # Pending.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "64Mi", "nodefs.available": "256Mi", "imagefs.available": "256Mi"},
        "serializeImagePulls": False,
        "registerNode": True,
        "registerWithTaints": [GPU_TAINT] if node.gpu else [],
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        "hairpinMode": "hairpin-veth",
        "nodeStatusReportFrequency": "10s",
        "podPidsLimit": 4096,
        "maxPods": 250,
    }
    paths["config"].write_text(json.dumps(config, indent=2))
    return paths


def kubelet_argv(binary: str, node: Node, paths: dict[str, Path], kubeconfig: Path) -> list[str]:
    argv = [
        binary,
        f"--config={paths['config']}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={paths['root']}",
        f"--cert-dir={paths['certs']}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.ip}",
        "--v=1",
    ]
    if node.gpu:
        argv.append(f"--node-labels={GPU_LABEL}=true")
    return argv


def kube_proxy_argv(binary: str, index: int, kubeconfig: Path, metrics_port: int, healthz_port: int) -> list[str]:
    return [
        binary,
        f"--kubeconfig={kubeconfig}",
        "--proxy-mode=iptables",
        f"--cluster-cidr={cluster_cidr(index)}",
        f"--hostname-override={nodes(index)[0].name}",
        f"--bind-address={control_plane_ip(index)}",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        f"--healthz-bind-address=127.0.0.1:{healthz_port}",
        # Leave net.ipv4.conf.all.route_localnet alone: NodePorts on 127.0.0.1 are not needed here.
        "--iptables-localhost-nodeports=false",
        "--conntrack-max-per-core=0",  # leave the host's conntrack table size alone
        "--v=1",
    ]


# ---------------------------------------------------------------------------------------------------------------
# Clean-up


def remove_containers(node: Node, env_root: Path) -> list[str]:
    """Delete every container (task and snapshot too) from the node's containerd while it still runs: its metadata
    lives in the store kept across up/down, where the kubelet's last sandboxes would otherwise outlive `down`
    (the CRI plugin drops its own directories of them when it next starts). Best effort."""
    sock = containerd_paths(node, env_root)["socket"]
    if not sock.exists():
        return []
    base = ("ctr", "--address", str(sock), "--namespace", "k8s.io")
    ids = run(*base, "containers", "ls", "-q", check=False, timeout=30).stdout.split()
    if not ids:
        return []
    run(*base, "tasks", "delete", "--force", *ids, check=False, timeout=60)
    run(*base, "containers", "delete", *ids, check=False, timeout=60)
    left = set(run(*base, "containers", "ls", "-q", check=False, timeout=30).stdout.split())
    return [i for i in ids if i not in left]


def mounts_under(prefixes: list[Path]) -> list[str]:
    """Mount points under any of `prefixes`, deepest first."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if any(mount_point == str(p) or mount_point.startswith(f"{p}/") for p in prefixes):
            out.append(mount_point)
    return sorted(set(out), key=lambda m: (-m.count("/"), m))


def unmount_all(prefixes: list[Path]) -> list[str]:
    done = []
    for _ in range(5):  # stacked mounts: repeat until nothing is left
        found = mounts_under(prefixes)
        if not found:
            break
        for m in found:
            if run("umount", m, check=False).returncode != 0:
                run("umount", "-l", m, check=False)
            done.append(m)
    return done


def remove_bridges(index: int) -> list[str]:
    gone = []
    for node in nodes(index):
        if run("ip", "link", "show", node.bridge, check=False).returncode == 0:
            run("ip", "link", "del", node.bridge, check=False)
            gone.append(node.bridge)
    return gone


def remove_addresses(index: int) -> list[str]:
    held = lo_addresses()
    gone = []
    for node in nodes(index):
        if node.ip in held:
            run("ip", "addr", "del", f"{node.ip}/32", "dev", "lo", check=False)
            gone.append(node.ip)
    return gone


def remove_kube_chains(kube_proxy: str | None) -> None:
    """kube-proxy --cleanup, then any KUBE-* chain left (the kubelet's canaries), in every table."""
    if kube_proxy:
        run(kube_proxy, "--cleanup", "--proxy-mode=iptables", check=False, timeout=120)
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        dump = run(f"{tool}-save", check=False).stdout
        table = None
        for line in dump.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and "KUBE-" in line and table:
                chain = line.split()[1]
                if not chain.startswith("KUBE-"):  # a jump from a built-in chain into ours
                    run(tool, "-t", table, *line.replace("-A ", "-D ", 1).split(), check=False)
        for line in dump.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":KUBE-") and table:
                chain = line[1:].split()[0]
                run(tool, "-t", table, "-F", chain, check=False)
        for line in dump.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":KUBE-") and table:
                chain = line[1:].split()[0]
                run(tool, "-t", table, "-X", chain, check=False)
