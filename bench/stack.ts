/**
 * `npm run bench:stack`: time from `up` to ready (API server healthy, every node Ready, Temporal
 * answering) on a warm toolchain cache, over several rounds on fresh state directories, and the
 * resident memory of the idle stack summed over its processes. Last line: key=value pairs.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config/config.js';
import { kwokClusterProcesses } from '../src/stack/kwok-cluster.js';
import { down, pickStackPorts, up } from '../src/stack/stack.js';

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const nodes = Number(process.env.BENCH_NODES ?? 4);

async function rssKiB(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const upTimes: number[] = [];
const downTimes: number[] = [];
let rssMiB = 0;
let breakdown = '';
console.log(
  `parameters: rounds=${rounds} nodes=${nodes} cpus=${os.cpus().length} (warm toolchain cache, fresh state dir each round)`,
);
for (let round = 1; round <= rounds; round++) {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-bench-'));
  const config = loadConfig({
    ...process.env,
    FLEETMEDIC_STATE_DIR: stateDir,
    FLEETMEDIC_CLUSTER_ID: undefined,
  });
  try {
    const started = performance.now();
    const result = await up(config, { nodes, ports: await pickStackPorts(), clusterName: `bench${round}` });
    const upSeconds = (performance.now() - started) / 1000;
    upTimes.push(upSeconds);
    if (round === rounds) {
      await sleep(10_000); // let start-up work settle before measuring idle memory
      const ref = {
        name: result.state.clusterName,
        workdir: result.state.kube.workdir,
        kwokctl: result.state.kube.kwokctl,
      };
      const pids = [
        { component: 'temporal', pid: result.state.temporal.process.pid },
        ...(await kwokClusterProcesses(ref)).map((p) => ({ component: p.component, pid: p.pid })),
      ];
      const parts: string[] = [];
      let total = 0;
      for (const p of pids) {
        const kib = await rssKiB(p.pid);
        total += kib;
        parts.push(`${p.component}=${(kib / 1024).toFixed(0)}MiB`);
      }
      rssMiB = total / 1024;
      breakdown = parts.join(' ');
    }
    const stopping = performance.now();
    await down(config, { purge: true });
    downTimes.push((performance.now() - stopping) / 1000);
    console.log(`round ${round}: up ${upSeconds.toFixed(2)} s, down ${downTimes.at(-1)!.toFixed(2)} s`);
  } finally {
    await down(config, { purge: true }).catch(() => {});
    await fs.rm(stateDir, { recursive: true, force: true });
  }
}
console.log(`idle memory: ${breakdown}`);
console.log(
  `nodes=${nodes} rounds=${rounds} up_p50_s=${median(upTimes).toFixed(2)} up_max_s=${Math.max(...upTimes).toFixed(2)} ` +
    `down_p50_s=${median(downTimes).toFixed(2)} idle_rss_mb=${rssMiB.toFixed(0)}`,
);
