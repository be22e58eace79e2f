# Helpers for the Go and Python provider SDKs (sdk/go, sdk/python) and the example providers
# (examples/): the pinned code generators and runtimes, installed into the cache folder on first
# use, and `sdk_check`, the CI entry point. Sourced after scripts/lib.sh, not run.
#
# Pinned together (change them together, then run scripts/gen-sdk and commit the result):
# - Python: grpcio, grpcio-tools (its bundled protoc also drives the Go plugins), protobuf and
#   grpcio-health-checking. The generated _pb2 files check the protobuf and grpcio versions.
# - Go: protoc-gen-go (module google.golang.org/protobuf) and protoc-gen-go-grpc; the runtime
#   versions are pinned in sdk/go/go.mod.

SDK_PY_GRPCIO_VERSION=1.85.1
SDK_PY_PROTOBUF_VERSION=7.36.2
SDK_PY_PYTEST_VERSION=9.2.0
SDK_GO_PROTOBUF_VERSION=v1.36.12
SDK_GO_GRPC_PLUGIN_VERSION=v1.6.2

# Go builds use the local toolchain only and share the cache folder's module and build caches
# (the same locations tests/cluster/build.sh uses).
export GOTOOLCHAIN=local
export GOMODCACHE="${GOMODCACHE:-$VK_CACHE_DIR/go/mod}"
export GOCACHE="${GOCACHE:-$VK_CACHE_DIR/go/build}"

# Prints the path of a Python interpreter in a venv holding the pinned gRPC packages and pytest,
# creating the venv on first use. The venv's folder name carries the pins, so a change of pins
# builds a new one.
ensure_sdk_python() {
    local pins=(
        "grpcio==$SDK_PY_GRPCIO_VERSION"
        "grpcio-tools==$SDK_PY_GRPCIO_VERSION"
        "grpcio-health-checking==$SDK_PY_GRPCIO_VERSION"
        "protobuf==$SDK_PY_PROTOBUF_VERSION"
        "pytest==$SDK_PY_PYTEST_VERSION"
    )
    local key
    key="$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c1-12)"
    local dir="$VK_CACHE_DIR/tools/py-sdk-$key"
    if [ ! -x "$dir/bin/python" ] || [ ! -f "$dir/.complete" ]; then
        echo "creating Python venv with ${pins[*]} (once; cached in $dir)" >&2
        rm -rf "$dir"
        python3 -m venv "$dir" >&2
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
        touch "$dir/.complete"
    fi
    echo "$dir/bin/python"
}

# Prints a folder holding protoc-gen-go and protoc-gen-go-grpc at the pinned versions, building
# them with `go install` on first use.
ensure_sdk_go_plugins() {
    local dir="$VK_CACHE_DIR/tools/go-protoc-plugins-$SDK_GO_PROTOBUF_VERSION-$SDK_GO_GRPC_PLUGIN_VERSION"
    if [ ! -x "$dir/protoc-gen-go" ] || [ ! -x "$dir/protoc-gen-go-grpc" ]; then
        echo "building protoc-gen-go $SDK_GO_PROTOBUF_VERSION and protoc-gen-go-grpc" \
            "$SDK_GO_GRPC_PLUGIN_VERSION (once; cached in $dir)" >&2
        mkdir -p "$dir"
        GOBIN="$dir" GOFLAGS=-buildvcs=false go install \
            "google.golang.org/protobuf/cmd/protoc-gen-go@$SDK_GO_PROTOBUF_VERSION" >&2
        GOBIN="$dir" GOFLAGS=-buildvcs=false go install \
            "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$SDK_GO_GRPC_PLUGIN_VERSION" >&2
    fi
    echo "$dir"
}

# Runs pytest in one folder; "no tests collected" (exit 5) is an error here too.
sdk_pytest() {
    local python="$1"; shift
    "$python" -m pytest -q -p no:cacheprovider "$@"
}

# Builds the Go example provider into the cache folder and prints the binary's path.
sdk_build_batch_provider() {
    local out="$VK_CACHE_DIR/bin/provider-batch-go"
    mkdir -p "$(dirname "$out")"
    (cd "$REPO/examples/provider-batch-go" && GOFLAGS="-mod=readonly -buildvcs=false" \
        go build -o "$out" .) >&2
    echo "$out"
}

# The SDK part of CI: generated code fresh, Go vet and tests, Python tests, both example
# providers built and run through the conformance suite (needs `cargo` for vk-conformance).
sdk_check() {
    local python
    step "SDK tools (pinned; cached in $VK_CACHE_DIR/tools)"
    python="$(ensure_sdk_python)"
    ensure_sdk_go_plugins >/dev/null

    step "SDK generated code is fresh (scripts/gen-sdk --check)"
    "$REPO/scripts/gen-sdk" --check

    step "Go SDK and batch provider: gofmt, go vet, go test"
    local mod unformatted
    for mod in sdk/go examples/provider-batch-go; do
        unformatted="$(cd "$REPO/$mod" && gofmt -l $(find . -name '*.go' -not -path './gen/*'))"
        if [ -n "$unformatted" ]; then
            echo "gofmt needed in $mod: $unformatted" >&2
            return 1
        fi
        (cd "$REPO/$mod" && GOFLAGS="-mod=readonly -buildvcs=false" go vet ./... \
            && GOFLAGS="-mod=readonly -buildvcs=false" go test -count=1 ./...)
    done

    step "Python SDK and process provider: pytest"
    PYTHONPATH="$REPO/sdk/python/src" sdk_pytest "$python" \
        "$REPO/sdk/python/tests" "$REPO/examples/provider-process-py/tests"

    step "conformance suite against the example providers"
    local batch
    batch="$(sdk_build_batch_provider)"
    cargo build --quiet --locked -p vk-conformance
    echo "-- provider-batch-go" >&2
    "$REPO/scripts/conformance" "$batch"
    echo "-- provider-process-py" >&2
    VK_PYTHON="$python" "$REPO/scripts/conformance" "$REPO/examples/provider-process-py/run"
}
