# Shared helpers for the project's scripts: the cache folder and the tools the scripts install
# for themselves (buf from npm, cargo-nextest from crates.io). Sourced, not run.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Everything built or downloaded for the project lives here, outside the clone, so a fresh
# clone on the same machine (CI) reuses it.
export VK_CACHE_DIR="${VK_CACHE_DIR:-$HOME/.cache/vk}"
mkdir -p "$VK_CACHE_DIR"

BUF_VERSION=1.75.0
NEXTEST_VERSION=0.9.151

step() { printf '\n==> %s\n' "$*"; }

# Prints the path of a buf binary, installing @bufbuild/buf from npm on first use.
ensure_buf() {
    local dir="$VK_CACHE_DIR/tools/buf-$BUF_VERSION"
    if [ ! -x "$dir/node_modules/.bin/buf" ]; then
        mkdir -p "$dir"
        (cd "$dir" && npm install --no-audit --no-fund --silent "@bufbuild/buf@$BUF_VERSION" >&2)
    fi
    echo "$dir/node_modules/.bin/buf"
}

# Puts cargo-nextest on PATH, building it from crates.io on first use.
ensure_nextest() {
    if command -v cargo-nextest >/dev/null 2>&1; then return; fi
    local root="$VK_CACHE_DIR/tools/nextest-$NEXTEST_VERSION"
    if [ ! -x "$root/bin/cargo-nextest" ]; then
        echo "building cargo-nextest $NEXTEST_VERSION (once; cached in $root)" >&2
        cargo install --quiet --locked --root "$root" "cargo-nextest@$NEXTEST_VERSION" >&2
    fi
    export PATH="$root/bin:$PATH"
}

# Makes sure `ip` (iproute2) is there: the node-proxy tests and the demo give the virtual node a
# routable address with it. Installs the Debian package where it is missing and we are root.
ensure_iproute2() {
    if command -v ip >/dev/null 2>&1; then return; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing iproute2 (for the virtual node's routable address)" >&2
        apt-get install -y -q iproute2 >&2 || { apt-get update -q >&2 && apt-get install -y -q iproute2 >&2; }
    fi
}
