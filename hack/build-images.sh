#!/usr/bin/env bash
# Builds the project's container images on this machine with Docker, without any container registry, and exports
# them as tarballs for `ctr -n k8s.io images import` (hack/testenv.py):
#
#   videojob-base:bookworm        Debian bookworm minbase made with debootstrap from this machine's apt mirror;
#                                 the BASE_IMAGE of the two images below (a stand-in for debian:bookworm-slim)
#   videojob-operator:dev         Dockerfile
#   videojob-transcoder:dev       transcoder-image/Dockerfile, WITH_BUNDLED_MODEL=true (the demo and the tests
#                                 generate subtitles with the bundled model)
#   videojob-testenv/pause:3.10   the pod sandbox image of the local kubelet: only /pause (hack/pause/pause.c)
#
# Everything is cached outside the repository, in ${XDG_CACHE_HOME:-~/.cache}/videojob-operator/images:
# the base's root filesystem (keyed by BASE_RECIPE) and each image's `docker save` tarball (keyed by a hash of
# its build inputs; the 3 most recently used per image are kept, so worktrees of different commits can share the
# cache). The tarballs are symlinked as .testenv/images/<name>.tar. When every tarball is cached, no
# Docker engine is needed or started. Otherwise a running dockerd is used, or, as root, one is started for the
# build (log in the cache) and stopped again at the end.
#
# Python packages come from PyPI through pip inside the builds; this machine's CA bundle is handed to pip as the
# optional BuildKit secret `ca-bundle` (BUILD_CA_BUNDLE, default /etc/ssl/certs/ca-certificates.crt).
#
# Usage: hack/build-images.sh [--force]   (--force: rebuild every image, ignoring the cached tarballs)
# Environment: DEBIAN_MIRROR (default: the bookworm mirror of this machine's apt sources), DOCKER (client),
#              BUILD_CA_BUNDLE, IMAGES_DIR (default .testenv/images).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/videojob-operator/images
out_dir=${IMAGES_DIR:-$repo/.testenv/images}
ca_bundle=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
force=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images: unknown argument $arg (usage: $0 [--force])" >&2; exit 2 ;;
  esac
done

SUITE=bookworm
BASE_IMAGE=videojob-base:$SUITE
# Bump when the way the base is made changes (packages, cleanup, apt configuration): the cached root filesystem
# and every image built on it are then rebuilt.
BASE_RECIPE=1
# Bump when the way the images are built changes (flags, build arguments) without their inputs changing.
IMAGES_RECIPE=1

OPERATOR=videojob-operator:dev
TRANSCODER=videojob-transcoder:dev
PAUSE=videojob-testenv/pause:3.10

die() { echo "build-images: $*" >&2; exit 1; }
now() { date +%s; }

mkdir -p "$cache" "$cache/logs" "$out_dir"
exec 9>"$cache/.lock"
if ! flock -n 9; then
  echo "build-images: another build holds $cache/.lock; waiting for it" >&2
  flock 9
fi

# ------------------------------------------------------------------------------------------------------ inputs
# key EXTRA FILE... : a hash of the recipe numbers, EXTRA (build arguments) and the named files' paths and
# contents (relative to the repository; directories without __pycache__ and egg-info).
key() {
  local extra=$1; shift
  (
    cd "$repo"
    echo "base=$SUITE-r$BASE_RECIPE images=r$IMAGES_RECIPE $extra"
    for f in "$@"; do
      if [ -d "$f" ]; then
        find "$f" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 |
          LC_ALL=C sort -z | xargs -0 -r sha256sum
      elif [ -f "$f" ]; then
        sha256sum "$f"
      else
        echo "absent $f"
      fi
    done
  ) | sha256sum | cut -c1-16
}

# README.md is copied into the images only as the package's long description: an edit of the README alone does
# not make new images (it would cost every documentation change a rebuild).
package_inputs=(pyproject.toml operator)
operator_key=$(key "" Dockerfile .dockerignore "${package_inputs[@]}")
transcoder_key=$(key WITH_BUNDLED_MODEL=true \
  transcoder-image/Dockerfile transcoder-image/Dockerfile.dockerignore "${package_inputs[@]}")
pause_key=$(key "gcc -static -Os -s" hack/pause/pause.c)

declare -A tarball=(
  [operator]=$cache/videojob-operator-$operator_key.tar
  [transcoder]=$cache/videojob-transcoder-$transcoder_key.tar
  [pause]=$cache/pause-$pause_key.tar
)
declare -A image=([operator]=$OPERATOR [transcoder]=$TRANSCODER [pause]=$PAUSE)
declare -A outcome=() seconds=()
names=(operator transcoder pause)

todo=()
for name in "${names[@]}"; do
  if [ $force = 1 ] || [ ! -s "${tarball[$name]}" ]; then todo+=("$name"); fi
done

# ------------------------------------------------------------------------------------------------------ host tools
apt_updated=0
# need COMMAND PACKAGE... : install the Debian packages (as root) when COMMAND is missing, else fail naming them.
need() {
  local cmd=$1; shift
  if [ -e "$cmd" ] || command -v "$cmd" >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "$cmd is missing: install the Debian packages: $* (apt-get install $*)"
  fi
  echo ">> installing $* (for $cmd)"
  if [ $apt_updated = 0 ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed"
}

docker_client() {
  if [ -n "${DOCKER:-}" ]; then echo "$DOCKER"; return; fi
  # Debian's docker.io client (20.10) builds with BuildKit by itself; newer clients need the buildx plugin.
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; return; fi
  command -v docker || true
}

started_dockerd=""
stop_dockerd() {
  [ -n "$started_dockerd" ] || return 0
  local pid=$started_dockerd
  started_dockerd=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "build-images: dockerd (pid $pid) did not stop within 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
trap stop_dockerd EXIT
trap 'exit 130' INT TERM

docker=""
ensure_docker() {
  [ -z "$docker" ] || return 0
  docker=$(docker_client)
  if [ -z "$docker" ]; then
    need /usr/bin/docker docker.io
    docker=/usr/bin/docker
  fi
  if [ "$("$docker" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)" -ge 23 ] 2>/dev/null &&
    ! "$docker" buildx version >/dev/null 2>&1; then
    die "$docker is a Docker client without the buildx plugin, which BuildKit builds need: install Debian's docker.io (its client builds with BuildKit itself) or docker-buildx, or set DOCKER"
  fi
  if timeout 20 "$docker" info >/dev/null 2>&1; then return 0; fi
  if [ -n "${DOCKER_HOST:-}" ]; then die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST"; fi
  if [ "$(id -u)" != 0 ]; then
    die "no Docker engine answers (not running, or no access to its socket), and starting one needs root: start dockerd (sudo dockerd), or run this as root"
  fi
  need dockerd docker.io
  local log=$cache/logs/dockerd.log
  echo ">> starting dockerd for this build (log: $log)"
  # No bridge and no iptables rules: the builds use the host's network, and the local environment's kube-proxy
  # owns this machine's iptables.
  dockerd --bridge=none --iptables=false --ip6tables=false >"$log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 120); do
    if timeout 5 "$docker" info >/dev/null 2>&1; then return 0; fi
    kill -0 "$started_dockerd" 2>/dev/null || { started_dockerd=""; break; }
    sleep 0.5
  done
  echo "build-images: dockerd did not start; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
}

# ------------------------------------------------------------------------------------------------------ base image
# The bookworm mirror (and updates/security mirrors) of this machine's apt sources, one-line or deb822 format:
# prints "URI SUITE" pairs.
apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(   i, j) { if (types ~ /(^| )deb( |$)/ && enabled != "no") for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]; types = ""; enabled = ""; nu = 0; ns = 0 }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:" { types = $0; sub(/^[^:]*:[ \t]*/, "", types) }
      tolower($1) == "enabled:" { enabled = tolower($2) }
      tolower($1) == "uris:" { nu = 0; for (i = 2; i <= NF; i++) u[++nu] = $i }
      tolower($1) == "suites:" { ns = 0; for (i = 2; i <= NF; i++) s[++ns] = $i }
      END { flush() }
    ' "$f"
  done
}

mirror_for() { apt_sources | awk -v s="$1" '$2 == s { print $1; exit }'; }

base_rootfs=$cache/base-$SUITE-r$BASE_RECIPE.tar

make_base_rootfs() {
  [ -s "$base_rootfs" ] && return 0
  [ "$(id -u)" = 0 ] || die "making the base image's root filesystem (debootstrap) needs root"
  need debootstrap debootstrap
  local mirror=${DEBIAN_MIRROR:-} updates security dir log=$cache/logs/debootstrap.log started
  [ -n "$mirror" ] || mirror=$(mirror_for "$SUITE")
  [ -n "$mirror" ] || die "no Debian $SUITE mirror in /etc/apt/sources.list{,.d/}: set DEBIAN_MIRROR=<URL of a Debian mirror>"
  updates=$(mirror_for "$SUITE-updates")
  security=$(mirror_for "$SUITE-security")
  started=$(now)
  echo ">> debootstrap $SUITE (minbase) from this machine's apt mirror (once per machine; log: $log)"
  dir=$(mktemp -d "$cache/rootfs.XXXXXX")
  if ! debootstrap --variant=minbase "$SUITE" "$dir" "$mirror" >"$log" 2>&1; then
    rm -rf "$dir"
    echo "build-images: debootstrap failed; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  # Like debian:*-slim: apt sources of this machine, no documentation or translations installed later, no
  # package cache or lists kept in layers.
  {
    echo "deb $mirror $SUITE main"
    if [ -n "$updates" ]; then echo "deb $updates $SUITE-updates main"; fi
    if [ -n "$security" ]; then echo "deb $security $SUITE-security main"; fi
  } >"$dir/etc/apt/sources.list"
  cat >"$dir/etc/dpkg/dpkg.cfg.d/excludes" <<'EOF'
# videojob-base: keep images small (as debian:*-slim does)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  cat >"$dir/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
  echo 'APT::Install-Recommends "false";' >"$dir/etc/apt/apt.conf.d/docker-no-recommends"
  find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
    "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/* "$dir"/tmp/* "$dir"/var/tmp/*
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  : >"$dir/etc/machine-id"
  rm -f "$dir/etc/hostname" "$dir/etc/resolv.conf"
  tar --numeric-owner --xattrs -C "$dir" -cf "$base_rootfs.tmp" .
  rm -rf "$dir"
  mv "$base_rootfs.tmp" "$base_rootfs"
  echo ">> base root filesystem: $base_rootfs ($(du -h "$base_rootfs" | cut -f1), $(($(now) - started)) s)"
}

ensure_base_image() {
  local label
  label=$("$docker" image inspect --format '{{index .Config.Labels "dev.videojob.base-recipe"}}' "$BASE_IMAGE" \
    2>/dev/null || true)
  [ "$label" = "$SUITE-r$BASE_RECIPE" ] && return 0
  make_base_rootfs
  "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL dev.videojob.base-recipe=$SUITE-r$BASE_RECIPE" \
    "$base_rootfs" "$BASE_IMAGE" >/dev/null
}

# ------------------------------------------------------------------------------------------------------ images
# docker_build NAME LOG ARGS... : a BuildKit build of the repository with the base image and the CA secret.
docker_build() {
  local name=$1 log=$2; shift 2
  local secret=()
  if [ -s "$ca_bundle" ]; then secret=(--secret "id=ca-bundle,src=$ca_bundle"); fi
  if ! DOCKER_BUILDKIT=1 "$docker" build --progress=plain --network host "${secret[@]}" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" "$@" "$repo" >"$log" 2>&1; then
    echo "build-images: building $name failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}

build_pause() {
  need gcc gcc libc6-dev
  # gcc prints a bare "libc.a" when it has no static C library.
  if [[ $(gcc -print-file-name=libc.a) != /* ]]; then
    [ "$(id -u)" = 0 ] || die "no static C library for the pause program: install the Debian package libc6-dev"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libc6-dev >/dev/null ||
      die "apt-get install libc6-dev failed"
  fi
  local dir
  dir=$(mktemp -d)
  if ! gcc -static -Os -s -Wall -Wextra -o "$dir/pause" "$repo/hack/pause/pause.c" 2>"$cache/logs/pause.log"; then
    rm -rf "$dir"
    echo "build-images: compiling hack/pause/pause.c failed (static libc: apt-get install libc6-dev):" >&2
    cat "$cache/logs/pause.log" >&2
    exit 1
  fi
  tar --numeric-owner --owner=0 --group=0 -C "$dir" -c pause |
    "$docker" import --change 'ENTRYPOINT ["/pause"]' - "$PAUSE" >/dev/null
  rm -rf "$dir"
}

build() {
  local name=$1 log=$cache/logs/$1.log
  case $name in
    operator) ensure_base_image; docker_build "$name" "$log" -t "$OPERATOR" -f "$repo/Dockerfile" ;;
    transcoder)
      ensure_base_image
      docker_build "$name" "$log" --build-arg WITH_BUNDLED_MODEL=true -t "$TRANSCODER" \
        -f "$repo/transcoder-image/Dockerfile"
      ;;
    pause) build_pause ;;
  esac
}

KEEP_BUILDS=3
for name in "${todo[@]}"; do
  started=$(now)
  ensure_docker
  echo ">> building ${image[$name]} (log: $cache/logs/$name.log)"
  build "$name"
  "$docker" save -o "${tarball[$name]}.tmp" "${image[$name]}"
  chmod 0644 "${tarball[$name]}.tmp"
  mv "${tarball[$name]}.tmp" "${tarball[$name]}"
  # Keep the KEEP_BUILDS newest tarballs of this image: another checkout (a git worktree, another branch) may use
  # an older one, and its .testenv/images link must not dangle while it runs.
  ls -1t "$cache/$(basename "${tarball[$name]%-*}")"-*.tar 2>/dev/null | tail -n +$((KEEP_BUILDS + 1)) |
    while read -r old; do rm -f "$old"; done
  outcome[$name]=built
  seconds[$name]=$(($(now) - started))
done
stop_dockerd

for name in "${names[@]}"; do
  started=$(now)
  touch "${tarball[$name]}" # used now: the newest KEEP_BUILDS survive a later build
  link=$out_dir/$(basename "${tarball[$name]%-*}").tar
  # A link: its target's name carries the inputs' hash (hack/localnodes.py imports a tarball once per target).
  ln -sfn "${tarball[$name]}" "$link"
  : "${outcome[$name]:=cached}" "${seconds[$name]:=$(($(now) - started))}"
  printf '%-30s %6s  %-6s %5s s  %s\n' "${image[$name]}" "$(du -h "${tarball[$name]}" | cut -f1)" \
    "${outcome[$name]}" "${seconds[$name]}" "${link#"$repo"/}"
done
