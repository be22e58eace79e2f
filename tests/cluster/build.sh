#!/usr/bin/env bash
# Builds the local Kubernetes control plane used by vk's tests, demo and
# benchmarks, and caches it outside the repository.
#
#   tests/cluster/build.sh            # build if needed, print the bin dir
#   tests/cluster/build.sh --key      # print the cache key only
#
# Output: ${VK_CACHE_DIR:-$HOME/.cache/vk}/testbin/<key>/ holding
#   k8s-testbin          multi-call binary (etcd, kube-apiserver,
#                        kube-controller-manager, kube-scheduler, kubectl)
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#                        symlinks to k8s-testbin
#   metrics-server       built with `go install sigs.k8s.io/metrics-server/...`
#   manifest.txt         versions and build flags
# The LAST line on stdout is that directory; progress goes to stderr.
#
# The key hashes go.mod, go.sum, main.go, this script's build flags and the Go
# version, so any change rebuilds into a new directory. A build happens in a
# temporary directory renamed into place at the end: an interrupted build
# never leaves a half-written cache entry. A lock serialises concurrent
# callers.
#
# Go caches: GOMODCACHE and GOCACHE default to ${VK_CACHE_DIR}/go/mod and
# ${VK_CACHE_DIR}/go/build (so one directory holds everything a CI machine
# needs to keep); set GOMODCACHE / GOCACHE in the environment to override.
set -euo pipefail

# ---- pinned versions and flags (part of the cache key) ----------------------
K8S_VERSION="v1.36.4"
K8S_MAJOR="1"
K8S_MINOR="36"
METRICS_SERVER_VERSION="v0.9.0"
BUILD_DATE="2026-08-20T11:51:43Z" # k8s.io/kubernetes v1.36.4 module time

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"

go_bin="${GO:-}"
if [[ -z "$go_bin" ]]; then
    if command -v go >/dev/null 2>&1; then
        go_bin="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then
        go_bin=/usr/local/go/bin/go
    else
        echo "build.sh: no Go toolchain found (set GO=/path/to/go)" >&2
        exit 1
    fi
fi

cache_root="${VK_CACHE_DIR:-$HOME/.cache/vk}"
export GOMODCACHE="${GOMODCACHE:-$cache_root/go/mod}"
export GOCACHE="${GOCACHE:-$cache_root/go/build}"

x_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x_flags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
    x_flags+=" -X ${pkg}.gitMajor=${K8S_MAJOR}"
    x_flags+=" -X ${pkg}.gitMinor=${K8S_MINOR}"
    x_flags+=" -X ${pkg}.gitTreeState=clean"
    x_flags+=" -X ${pkg}.buildDate=${BUILD_DATE}"
done
ldflags="-s -w${x_flags}"
ms_ldflags="-s -w -X k8s.io/client-go/pkg/version.gitVersion=${METRICS_SERVER_VERSION}"

go_version="$("$go_bin" env GOVERSION)"
key="$(
    {
        cat "$here/go.mod" "$here/go.sum" "$here/main.go"
        echo "go=$go_version"
        echo "goos=$("$go_bin" env GOOS) goarch=$("$go_bin" env GOARCH)"
        echo "ldflags=$ldflags"
        echo "ms=$METRICS_SERVER_VERSION ms_ldflags=$ms_ldflags"
        echo "flags=-trimpath CGO_ENABLED=0 layout=2"
    } | sha256sum | cut -c1-16
)"

if [[ "${1:-}" == "--key" ]]; then
    echo "$key"
    exit 0
fi

testbin_root="$cache_root/testbin"
out="$testbin_root/$key"

log() { echo "[build.sh $(date +%H:%M:%S)] $*" >&2; }

complete() { [[ -x "$1/k8s-testbin" && -x "$1/metrics-server" && -f "$1/manifest.txt" ]]; }

if complete "$out"; then
    log "cached: $out"
    echo "$out"
    exit 0
fi

mkdir -p "$testbin_root"
exec 9>"$testbin_root/.lock-$key"
if ! flock -n 9; then
    log "another build of $key is running; waiting for it"
    flock 9
fi
if complete "$out"; then
    log "cached (built by another process): $out"
    echo "$out"
    exit 0
fi

tmp="$(mktemp -d "$testbin_root/.tmp-$key-XXXXXX")"
heartbeat_pid=""
cleanup() {
    if [[ -n "$heartbeat_pid" ]]; then kill "$heartbeat_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$SECONDS
# Prints a line every 30 s so a CI log never looks hung. $1: what, $2: file
# counting finished packages (one line each), $3: total packages (or "?").
heartbeat() {
    while sleep 30; do
        local n
        n=$(wc -l <"$2" 2>/dev/null || echo 0)
        log "still building $1: $n/$3 packages, $((SECONDS - start))s elapsed"
    done
}

log "Go: $go_bin ($go_version), GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE"
log "building Kubernetes $K8S_VERSION test binaries into $out (key $key)"

cd "$here"
progress="$tmp/.progress"

# run_logged WHAT TOTAL FILTER CMD...: runs CMD with stdout+stderr appended to
# the progress file (one line per finished package or download), passes the
# output through the awk FILTER to stderr, and prints a heartbeat line every
# 30 s.
run_logged() {
    local what="$1" total="$2" filter="$3"
    shift 3
    : >"$progress"
    heartbeat "$what" "$progress" "$total" &
    heartbeat_pid=$!
    local rc=0
    "$@" 2>&1 | tee -a "$progress" | awk -v total="$total" "$filter" >&2 || rc=$?
    kill "$heartbeat_pid" 2>/dev/null || true
    wait "$heartbeat_pid" 2>/dev/null || true
    heartbeat_pid=""
    return "$rc"
}

log "go mod download"
run_logged "go mod download" "?" '
    /^# get .*: 200 OK/ { n++; if (n % 200 == 0) { printf "[build.sh] %d module files fetched\n", n; fflush() }; next }
    /^# get / { next }
    { print; fflush() }' \
    "$go_bin" mod download -x

total="$("$go_bin" list -deps . | wc -l)"
log "compiling k8s-testbin ($total packages; a cold build takes 20-40 min on 2 cores)"
run_logged k8s-testbin "$total" '
    /^[^ #][^ ]*$/ { n++; if (n % 100 == 0) { printf "[build.sh] %d/%d packages: %s\n", n, total, $0; fflush() }; next }
    { print; fflush() }' \
    "$go_bin" build -v -trimpath -ldflags "$ldflags" -o "$tmp/k8s-testbin" .
log "k8s-testbin linked after $((SECONDS - start))s"

log "go install sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
# `go install pkg@version` ignores the main module, so run it outside of it
# and without -mod=readonly (which it rejects).
run_logged metrics-server "?" '
    /^[^ #][^ ]*$/ { n++; if (n % 100 == 0) { printf "[build.sh] metrics-server: %d packages: %s\n", n, $0; fflush() }; next }
    { print; fflush() }' \
    env -C "$tmp" GOFLAGS=-buildvcs=false GOBIN="$tmp" \
    "$go_bin" install -v -trimpath -ldflags "$ms_ldflags" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
rm -f "$progress"

for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    ln -s k8s-testbin "$tmp/$name"
done
{
    echo "key=$key"
    echo "kubernetes=$K8S_VERSION"
    echo "etcd=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' go.mod)"
    echo "metrics-server=$METRICS_SERVER_VERSION"
    echo "go=$go_version"
    echo "ldflags=$ldflags"
    echo "build_seconds=$((SECONDS - start))"
    echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$tmp/manifest.txt"
chmod 755 "$tmp"

# Atomic publish. A stale incomplete directory (from an older layout) is
# moved aside first; if another process won the race, keep its copy.
if [[ -e "$out" ]] && ! complete "$out"; then
    mv "$out" "$testbin_root/.stale-$key-$$" && rm -rf "$testbin_root/.stale-$key-$$"
fi
if ! mv -T "$tmp" "$out" 2>/dev/null; then
    complete "$out" || { echo "build.sh: could not publish $out" >&2; exit 1; }
fi
log "done in $((SECONDS - start))s: $out"
echo "$out"
