/**
 * `npm run bench:drill`: the acceptance drill, several times on one embedded stack (`up` with
 * the process runner, 4 nodes), each run the README's `fleetmedic drill` as a process: real llama.cpp
 * replicas (`--llama`, the default here; `BENCH_DRILL_KIND=standin` for stand-ins) behind the gateway,
 * 20 requests/s half streamed, a pod deleted, a replica's node drained and a gateway pod evicted
 * (the gateway runs in pods behind the embedded stack's Service). The figures are read from
 * each drill's JSON report; medians over the runs. Last line: key=value pairs.
 *
 * Goals (issue #16): continuity 1.0 for non-streamed requests during the pod deletion and during the
 * eviction, at least 0.99 for streams, and eviction recovery no more than 5 s above the restore time.
 */
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FLEETMEDIC_BIN } from '../src/cli/bin-path.js';
import { loadConfig } from '../src/config/config.js';
import { recoveryMs, type DrillPhase, type DrillReport } from '../src/drill/report.js';
import { down, pickStackPorts, up } from '../src/stack/stack.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const kind = process.env.BENCH_DRILL_KIND === 'standin' ? 'standin' : 'llama';

function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const fixed = (x: number | null, digits: number) => (x === null ? 'n/a' : x.toFixed(digits));

interface RunFigures {
  readonly pass: boolean;
  readonly podDelete: number | null;
  readonly eviction: number | null;
  readonly streams: number | null;
  readonly longestOutageMs: number;
  readonly podRecoveryS: number | null;
  readonly evictionRecoveryS: number | null;
  readonly restoreS: number | null;
  /** The gateway pod's eviction (after the goals' phases): non-streamed and stream continuity. */
  readonly gateway: number | null;
  readonly gatewayStreams: number | null;
}

function figures(report: DrillReport): RunFigures {
  const phase = (name: string): DrillPhase | undefined => report.phases.find((p) => p.name === name);
  const pod = phase('pod-delete');
  const ev = phase('eviction');
  const gw = phase('gateway-eviction');
  const streams = [pod, ev]
    .map((p) => p?.continuity.streams.continuity)
    .filter((c): c is number => c != null);
  const recovery = (p: DrillPhase | undefined) => {
    const ms = p ? recoveryMs(p) : null;
    return ms === null ? null : ms / 1000;
  };
  return {
    pass: report.verdict.pass,
    podDelete: pod?.continuity.nonStreamed.continuity ?? null,
    gateway: gw?.continuity.nonStreamed.continuity ?? null,
    gatewayStreams: gw?.continuity.streams.continuity ?? null,
    eviction: ev?.continuity.nonStreamed.continuity ?? null,
    streams: streams.length > 0 ? Math.min(...streams) : null,
    longestOutageMs: Math.max(0, ...[pod, ev].map((p) => p?.continuity.longestOutage?.ms ?? 0)),
    podRecoveryS: recovery(pod),
    evictionRecoveryS: recovery(ev),
    restoreS: ev?.restoreMs === undefined ? null : ev.restoreMs / 1000,
  };
}

const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-bench-drill-'));
const config = loadConfig({
  ...process.env,
  FLEETMEDIC_STATE_DIR: stateDir,
  FLEETMEDIC_CLUSTER_ID: undefined,
});
console.log(
  `parameters: rounds=${rounds} replicas=${kind} (3) nodes=4 rate=20/s streams=0.5 cpus=${os.cpus().length} ` +
    '(one embedded stack, `fleetmedic drill` as a process each round)',
);
const runs: RunFigures[] = [];
try {
  await up(config, { nodes: 4, ports: await pickStackPorts(), clusterName: 'benchdrill', runner: true });
  for (let round = 1; round <= rounds; round++) {
    const args = [
      FLEETMEDIC_BIN,
      'drill',
      '--drill-id',
      `bench-${round}`,
      ...(kind === 'llama' ? ['--llama'] : []),
    ];
    const started = performance.now();
    const run = await execa(process.execPath, args, {
      reject: false,
      env: { FLEETMEDIC_STATE_DIR: stateDir },
      extendEnv: true,
      timeout: 900_000,
    });
    const json = /^\s+(\S+\.json)$/m.exec(run.stdout)?.[1];
    if (!json) {
      console.log(
        `round ${round}: no report (exit ${run.exitCode})\n${run.stderr.split('\n').slice(-8).join('\n')}`,
      );
      continue;
    }
    const f = figures(JSON.parse(await fs.readFile(json, 'utf8')) as DrillReport);
    runs.push(f);
    console.log(
      `round ${round}: ${f.pass ? 'PASS' : 'FAIL'} in ${((performance.now() - started) / 1000).toFixed(0)} s; ` +
        `continuity non-streamed pod-delete=${fixed(f.podDelete, 4)} eviction=${fixed(f.eviction, 4)}, ` +
        `streams=${fixed(f.streams, 4)}, longest outage ${f.longestOutageMs} ms, recovery pod=${fixed(f.podRecoveryS, 1)} s ` +
        `eviction=${fixed(f.evictionRecoveryS, 1)} s, restore=${fixed(f.restoreS, 2)} s; ` +
        `gateway pod eviction: continuity ${fixed(f.gateway, 4)}, streams ${fixed(f.gatewayStreams, 4)}` +
        (f.pass
          ? ''
          : `; ${run.stdout
              .split('\n')
              .filter((l) => l.startsWith('  - '))
              .join(' ')}`),
    );
  }
} finally {
  await down(config, { purge: true }).catch(() => undefined);
  await fs.rm(stateDir, { recursive: true, force: true });
}

const m = (pick: (f: RunFigures) => number | null) =>
  median(runs.map(pick).filter((x): x is number => x !== null));
const evictionRecovery = m((f) => f.evictionRecoveryS);
const restore = m((f) => f.restoreS);
const over = m((f) =>
  f.evictionRecoveryS === null || f.restoreS === null ? null : f.evictionRecoveryS - f.restoreS,
);
console.log(
  `goals: non-streamed continuity 1.0 in both phases, streams >= 0.99, eviction recovery - restore <= 5 s ` +
    `(median ${fixed(over, 1)} s); passed ${runs.filter((f) => f.pass).length} of ${rounds} drills`,
);
console.log(
  `runs=${runs.length} continuity_pod_delete=${fixed(
    m((f) => f.podDelete),
    4,
  )} ` +
    `continuity_eviction=${fixed(
      m((f) => f.eviction),
      4,
    )} stream_continuity=${fixed(
      m((f) => f.streams),
      4,
    )} ` +
    `longest_outage_ms=${fixed(
      m((f) => f.longestOutageMs),
      0,
    )} pod_recovery_s=${fixed(
      m((f) => f.podRecoveryS),
      1,
    )} ` +
    `eviction_recovery_s=${fixed(evictionRecovery, 1)} restore_s=${fixed(restore, 2)} ` +
    `gateway_continuity=${fixed(
      m((f) => f.gateway),
      4,
    )} gateway_stream_continuity=${fixed(
      m((f) => f.gatewayStreams),
      4,
    )}`,
);
