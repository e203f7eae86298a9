#!/usr/bin/env bash
# Builds the local environment's binaries from their published Go modules, once per machine.
#
# Results are cached outside the repository, keyed by version:
#   ${XDG_CACHE_HOME:-~/.cache}/videojob-operator/tools/<name>-<version>-r<recipe>
# and linked into .testenv/bin. A warm run only checks that the files exist.
#
# Usage: hack/build-tools.sh [component...]   (components: etcd kubernetes minio helm; default all)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${XDG_CACHE_HOME:-$HOME/.cache}/videojob-operator/tools
bin_link=${TOOLS_BIN:-$here/../.testenv/bin}
mkdir -p "$cache" "$bin_link"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

# wrapper_module DIR MODULE VERSION STAGING_VERSION
# Writes a throw-away module that requires MODULE@VERSION and replaces each module that MODULE's own go.mod
# replaces with a relative path (k8s.io staging repos, etcd's sibling modules) by its published version.
wrapper_module() {
  local dir=$1 module=$2 version=$3 sibling_version=$4 gomod
  mkdir -p "$dir"
  gomod=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module videojob-operator.local/toolbuild"
    echo "go 1.24"
    echo "require $module $version"
    awk -v v="$sibling_version" '
      $0 ~ /^replace \(/ {inblock=1; next}
      inblock && $0 ~ /^\)/ {inblock=0; next}
      { line=$0; sub(/^replace[ \t]+/, "", line) }
      (inblock || $0 ~ /^replace /) && line ~ /=>[ \t]*\.\.?\// && line !~ /FORBIDDEN/ { split(line, f, /[ \t]+/); n=f[1]; if (n=="") n=f[2]; print "replace " n " => " n " " v }
    ' "$gomod"
  } >"$dir/go.mod"
  echo "package toolbuild" >"$dir/doc.go"
}

# Bump when the way a tool is built changes (flags, not versions), so cached binaries are rebuilt.
RECIPE=2

# build NAME VERSION MODULE SIBLING_VERSION LDFLAGS BINARY=PACKAGE...
build() {
  local name=$1 version=$2 module=$3 sibling=$4 ldflags=$5; shift 5
  local out=$cache/$name-$version-r$RECIPE missing=0 spec pkgs=()
  for spec in "$@"; do [ -x "$out/${spec%%=*}" ] || missing=1; pkgs+=("${spec#*=}"); done
  if [ $missing = 1 ]; then
    local work log
    work=$(mktemp -d) log=$out.log
    echo ">> building $name $version (first time on this machine; log: $log)"
    if ! {
      wrapper_module "$work" "$module" "$version" "$sibling" && rm -rf "$out.tmp" && mkdir -p "$out.tmp" &&
        (cd "$work" && go get "$module@$version" &&
          for spec in "$@"; do
            go build -trimpath -ldflags="-s -w $ldflags" -o "$out.tmp/${spec%%=*}" "${spec#*=}" || exit 1
          done)
    } >"$log" 2>&1; then
      echo "!! building $name $version failed; last lines of $log:" >&2
      tail -n 30 "$log" >&2
      rm -rf "$work" "$out.tmp"
      return 1
    fi
    rm -rf "$out" "$work" && mv "$out.tmp" "$out"
  fi
  for spec in "$@"; do ln -sf "$out/${spec%%=*}" "$bin_link/${spec%%=*}"; done
}

# Version stamps the projects' own release builds set: without them kube-apiserver reports v0.0.0-master, and
# `helm install` refuses charts with a kubeVersion constraint against it.
k8s_major=${K8S_VERSION#v}; k8s_major=${k8s_major%%.*}
k8s_minor=${K8S_VERSION#v*.}; k8s_minor=${k8s_minor%%.*}
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean"
done
helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=$k8s_major -X $pkg.k8sVersionMinor=$k8s_minor"
done

want=${*:-etcd kubernetes minio helm}
for c in $want; do
  case $c in
    etcd) build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "" etcd=go.etcd.io/etcd/server/v3 ;;
    kubernetes) build kubernetes "$K8S_VERSION" k8s.io/kubernetes "v0.${K8S_VERSION#v1.}" "$k8s_ldflags" \
      kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
      kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
      kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubectl=k8s.io/kubernetes/cmd/kubectl \
      kubelet=k8s.io/kubernetes/cmd/kubelet kube-proxy=k8s.io/kubernetes/cmd/kube-proxy ;;
    minio) build minio "$MINIO_VERSION" github.com/minio/minio "$MINIO_VERSION" "" minio=github.com/minio/minio ;;
    helm) build helm "$HELM_VERSION" helm.sh/helm/v3 "$HELM_VERSION" "$helm_ldflags" helm=helm.sh/helm/v3/cmd/helm ;;
    *) echo "unknown component: $c" >&2; exit 2 ;;
  esac
done
