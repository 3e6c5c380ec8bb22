#!/usr/bin/env bash
# One command from a fresh clone to fleetmedic's main job on the embedded stack: installs the Node
# dependencies, builds the toolchain from Go modules (cached in ~/.cache/fleetmedic; the first build
# takes tens of minutes on 2 cores, later runs seconds), starts the stack (`fleetmedic up`), checks it,
# and runs `fleetmedic demo`: two GPU faults remediated end to end (reset, and quarantine -> drain ->
# approval -> validation -> return to service). The stack keeps running; `fleetmedic down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; fi
[ -d node_modules ] || npm ci --no-audit --no-fund
node bin/fleetmedic.js toolchain
node bin/fleetmedic.js up "$@"
node bin/fleetmedic.js doctor
node bin/fleetmedic.js demo
