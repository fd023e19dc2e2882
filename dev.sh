#!/usr/bin/env bash
# Bootstraps a fresh Debian machine for hydra and runs the demo or the tests.
#
#   ./dev.sh demo [demo options]   install what the demo needs, then run `hydra demo`
#   ./dev.sh test [test files]     install everything, build the test peers, run the suite
#
# Deno comes from npm (pinned in tools/package.json); Debian packages come from apt;
# the test peers (kube-apiserver, etcd, containerd, crictl, cnitool, ...) are built
# from Go modules into a cache outside the repository and reused when present.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$root"

log() { printf '[dev] %s\n' "$*" >&2; }

# Go's own tarball installs into /usr/local/go; a login shell has it on PATH, a bare one may not.
# The test peers are built with it, and some tests resolve Go modules with it.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "hydra creates network namespaces and links: run as root" >&2
    exit 1
  fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

install_deno() {
  # Deno, and buf with protoc-gen-es for `deno task proto` and its staleness test.
  if [ ! -x tools/node_modules/.bin/deno ] || [ ! -x tools/node_modules/.bin/buf ] ||
    [ ! -x tools/node_modules/.bin/protoc-gen-es ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing the tools from npm (Deno, buf, protoc-gen-es)"
    # npm ci installs exactly what the committed lockfile says and never rewrites it.
    (cd tools && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  export PATH="$root/tools/node_modules/.bin:$PATH"
  export DENO_DIR="${DENO_DIR:-$root/.cache/deno}"
  # Trust the system's CA store too: package registries may be reached through a
  # TLS proxy whose CA only the system knows.
  export DENO_TLS_CA_STORE="${DENO_TLS_CA_STORE:-mozilla,system}"
  # Fetch the pinned npm dependencies once, as the lockfile says.
  deno install --frozen --quiet --entrypoint main.ts >/dev/null
  # The single-file build of the CNI path that bin/hydra prefers (faster execs);
  # without it the launcher runs the sources, with the same results.
  deno run --quiet -A tools/bundle.ts >/dev/null || log "CNI bundle not built; running from source"
}

base_packages() {
  apt_install iproute2 iptables nftables libnftables1 containernetworking-plugins kmod ca-certificates
}

cmd_demo() {
  need_root
  base_packages
  install_deno
  exec bin/hydra demo "$@"
}

cmd_test() {
  need_root
  # The suite's verdict treats a skipped test as a failure under CI (tests/summary.ts); this is
  # the command CI runs, so it is CI unless told otherwise (CI=0).
  export CI="${CI:-1}"
  base_packages
  apt_install runc openssl gcc libc6-dev time
  install_deno
  if [ -x tests/infra/build-peers.sh ] || [ -f tests/infra/build-peers.sh ]; then
    bash tests/infra/build-peers.sh
  fi
  mkdir -p .cache
  local junit=.cache/junit.xml
  rm -f "$junit"
  set +e
  deno test -A --no-prompt --frozen --junit-path="$junit" "$@"
  local rc=$?
  set -e
  deno run --quiet --allow-read --allow-env=CI tests/summary.ts "$junit" || rc=1
  return $rc
}

case "${1:-}" in
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  *) echo "usage: ./dev.sh demo [options] | ./dev.sh test [files]" >&2; exit 2 ;;
esac
