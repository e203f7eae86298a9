#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests need on this machine, when they are missing.
#
#   FFmpeg, espeak-ng, fonts      media the tests generate and check (ffprobe), speech for speech-to-text
#   openssl                       the local cluster's certificates
#   tmux                          a real terminal for the `kubectl videojob` acceptance test (capture-pane)
#   containerd, runc, CNI plugins the nodes' container runtime (one containerd per node, bridge networking)
#   iptables, conntrack, iproute2 kube-proxy's Service routing, the nodes' addresses
#   docker.io, debootstrap, gcc   building our images (hack/build-images.sh) from Debian packages
#
# As root it runs apt-get; otherwise it names what is missing in one line and fails.
set -euo pipefail

packages=(
  ffmpeg espeak-ng fonts-dejavu-core openssl make tmux
  containerd runc containernetworking-plugins iptables conntrack iproute2
  docker.io debootstrap gcc libc6-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo ">> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
