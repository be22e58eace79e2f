#!/usr/bin/env bash
# Builds fake-nomad (the fake Nomad HTTP API used by provider-nomad's tests)
# and caches the binary outside the repository.
#
#   provider-nomad/fake/build.sh          # build if needed, print the binary path
#   provider-nomad/fake/build.sh --key    # print the cache key only
#   provider-nomad/fake/build.sh --test   # run `go test ./...` first, then build
#
# Output: ${VK_CACHE_DIR:-$HOME/.cache/vk}/fake-nomad/<key>/fake-nomad
# The LAST line on stdout is that path; progress goes to stderr.
#
# The key hashes go.mod, go.sum, every *.go file, the build flags and the Go
# version, so any change builds into a new directory. The build happens in a
# temporary directory renamed into place: an interrupted build never leaves a
# half-written cache entry. A lock serialises concurrent callers. On a fresh
# machine the modules are downloaded through the Go module proxy.
#
# Go caches: GOMODCACHE and GOCACHE default to ${VK_CACHE_DIR}/go/mod and
# ${VK_CACHE_DIR}/go/build; set them in the environment to override.
set -euo pipefail

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

ldflags="-s -w"
go_version="$("$go_bin" env GOVERSION)"
key="$(
    {
        cd "$here"
        cat go.mod go.sum
        for f in $(LC_ALL=C ls ./*.go); do
            echo "== $f"
            cat "$f"
        done
        echo "go=$go_version"
        echo "goos=$("$go_bin" env GOOS) goarch=$("$go_bin" env GOARCH)"
        echo "ldflags=$ldflags flags=-trimpath CGO_ENABLED=0"
    } | sha256sum | cut -c1-16
)"

log() { echo "[fake-nomad build.sh $(date +%H:%M:%S)] $*" >&2; }

run_tests=0
case "${1:-}" in
--key)
    echo "$key"
    exit 0
    ;;
--test) run_tests=1 ;;
"") ;;
*)
    echo "usage: $0 [--key|--test]" >&2
    exit 2
    ;;
esac

root="$cache_root/fake-nomad"
out="$root/$key"
bin="$out/fake-nomad"

if [[ "$run_tests" == 1 ]]; then
    log "go test ./... (Go $go_version)"
    (cd "$here" && "$go_bin" mod download && "$go_bin" test -count=1 ./...) >&2
fi

if [[ -x "$bin" ]]; then
    log "cached: $bin"
    echo "$bin"
    exit 0
fi

mkdir -p "$root"
exec 9>"$root/.lock-$key"
if ! flock -n 9; then
    log "another build of $key is running; waiting for it"
    flock 9
fi
if [[ -x "$bin" ]]; then
    log "cached (built by another process): $bin"
    echo "$bin"
    exit 0
fi

tmp="$(mktemp -d "$root/.tmp-$key-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

start=$SECONDS
log "Go: $go_bin ($go_version), GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE"
log "building fake-nomad into $out (key $key)"
cd "$here"
"$go_bin" mod download >&2
"$go_bin" build -trimpath -ldflags "$ldflags" -o "$tmp/fake-nomad" . >&2
{
    echo "key=$key"
    echo "go=$go_version"
    echo "nomad_api=$(awk '$1 == "github.com/hashicorp/nomad/api" { print $2 }' go.mod)"
    echo "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$tmp/manifest.txt"
chmod 755 "$tmp"

if [[ -e "$out" && ! -x "$bin" ]]; then
    mv "$out" "$root/.stale-$key-$$" && rm -rf "$root/.stale-$key-$$"
fi
if ! mv -T "$tmp" "$out" 2>/dev/null; then
    [[ -x "$bin" ]] || { echo "build.sh: could not publish $out" >&2; exit 1; }
fi
log "done in $((SECONDS - start))s: $bin"
echo "$bin"
