#!/usr/bin/env bash
# Builds the peers the benchmarks compare vk-host with (issue #7), from the Go module proxy at
# pinned versions: upstream virtual-kubelet v1.13.0 with its built-in mock provider (through the
# wrapper module bench/peers/virtual-kubelet) and kwok v0.8.0. Cached under
# $VK_CACHE_DIR/peers/<key>; prints the folder holding `virtual-kubelet` and `kwok` last.
source "$(dirname "$0")/lib.sh"
KWOK_VERSION=v0.8.0
export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="${GOMODCACHE:-$VK_CACHE_DIR/go/mod}" GOCACHE="${GOCACHE:-$VK_CACHE_DIR/go/build}"
wrapper="$REPO/bench/peers/virtual-kubelet"
key="$(cat "$wrapper/go.mod" "$wrapper/go.sum" <(echo "$KWOK_VERSION" "$(go version)") | sha256sum | cut -c1-16)"
out="$VK_CACHE_DIR/peers/$key"
if [ ! -x "$out/virtual-kubelet" ] || [ ! -x "$out/kwok" ]; then
    tmp="$out.tmp.$$"
    rm -rf "$tmp" && mkdir -p "$tmp"
    echo "building upstream virtual-kubelet and kwok $KWOK_VERSION (once; cached in $out)" >&2
    (cd "$wrapper" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp/virtual-kubelet" \
        github.com/virtual-kubelet/virtual-kubelet/cmd/virtual-kubelet) >&2
    GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
    rm -rf "$out" && mv "$tmp" "$out"
fi
# kwok reads its behaviour from Stage objects; these are the ones kwokctl installs by default
# (node initialise + lease heartbeat, pod ready/complete/delete), taken from the same module.
if [ ! -s "$out/kwok-stages.yaml" ]; then
    kwok_src="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
    [ -d "$kwok_src" ] || (cd "$wrapper" && go mod download "sigs.k8s.io/kwok@$KWOK_VERSION") >&2
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
        pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        cat "$kwok_src/$f" && echo "---"
    done > "$out/kwok-stages.yaml.tmp"
    mv "$out/kwok-stages.yaml.tmp" "$out/kwok-stages.yaml"
fi
echo "$out"
