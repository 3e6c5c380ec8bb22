#!/usr/bin/env bash
# One command from a fresh clone to fleetmedic's main job on the embedded stack: scripts/setup.sh
# (chromium, a supported Node.js, the Node dependencies, the toolchain built from Go modules and
# cached in ~/.cache/fleetmedic: the first build takes tens of minutes on 2 cores, later runs
# seconds), then starts the stack (`fleetmedic up`, with the process runner), checks it, runs
# `fleetmedic demo` (two GPU faults remediated end to end) and a resilience drill (`fleetmedic drill --llama
# --llama`: real llama.cpp replicas restored from a verified checkpoint behind the gateway, a pod
# deleted and a node drained under a steady probe, a report). The stack keeps running; `fleetmedic down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
fleetmedic() { bash scripts/node.sh bin/fleetmedic.js "$@"; }
printf '\n== starting the embedded stack\n'
fleetmedic up "$@"
printf '\n== checking every component\n'
fleetmedic doctor
printf '\n== demo: two GPU faults remediated end to end\n'
fleetmedic demo
printf '\n== resilience drill: a pod deleted and a node drained while a probe measures continuity\n'
fleetmedic drill --llama
