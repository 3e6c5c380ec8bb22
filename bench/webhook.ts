/**
 * `npm run bench:webhook`: alert intake throughput and latency of the webhook against a real Temporal.
 *
 * Starts the embedded stack (Temporal dev server + kwok cluster with 100 simulated nodes) and runs the
 * webhook in this process with the real Temporal starter and the real (cached) Kubernetes node lookup.
 * A load generator in a child process sends Alertmanager v4 payloads open-loop at a fixed rate: each
 * request goes out at its scheduled time whether or not earlier ones were answered, and its latency
 * counts from that scheduled time, so queueing is not hidden. Every answer is given only after
 * Temporal acknowledged the alert's signal-with-start (or, for a repeat of an identical alert within
 * the dedupe window, after it acknowledged that identical alert: the output counts both).
 *
 * The workflows are started on a task queue that no worker polls: they sit with their first workflow
 * task scheduled, which is what intake throughput needs (no remediation runs, no node is cordoned).
 *
 * 1. Warm-up through the dry-run route (starts nothing).
 * 2. BENCH_ALERTS (10,000) alerts, 100 distinct nodes with two alerts each (GPU 0 / XID 48 and GPU 3 /
 *    XID 79), repeated: many duplicates, at BENCH_RATE (500)/s. Checks that every answer is 2xx and that
 *    exactly 100 workflows exist (visibility count). Prints p50/p99, the p99 per second (the cold start
 *    is the 200 first signals, bounded by the dev server's write rate) and the Temporal calls made.
 *    The main-run figures (webhook_p50_ms, webhook_p99_ms) include that cold start; a separate line
 *    gives the same run without its first BENCH_COLD_SECONDS, labelled as such.
 * 3. Steps the rate up (BENCH_STEP_RATES; rounds of BENCH_STEP_SECONDS, a rate passes on two rounds of
 *    three) and reports the highest rate whose p99 stays at most 25 ms with no non-2xx answer. Each
 *    round first sends BENCH_RAMP_SECONDS at its rate without measuring latency (a new rate's ramp;
 *    its answers must still all be 2xx), then measures the steady state. These alerts repeat the main
 *    run's, so they measure intake of a storm's repeats.
 * 4. Node cache A/B (BENCH_AB_ROUNDS, 0 skips it): refresh-ahead off and on, interleaved, medians.
 * Cleans up (terminates the workflows, stops the stack). Last line: key=value pairs.
 */
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { createWebhookMetrics } from '../src/webhook/metrics.js';
import { CachedNodeLookup, KubernetesNodeLookup, type NodeLookup } from '../src/webhook/node-lookup.js';
import { parseRules } from '../src/webhook/rules.js';
import { DEFAULT_DEDUPE_WINDOW_MS, startWebhookServer } from '../src/webhook/server.js';
import { TemporalRemediationStarter, type RemediationStarter } from '../src/webhook/starter.js';
import { loadConfig } from '../src/config/config.js';
import { FleetmedicError } from '../src/errors.js';
import { loadKubeConfig } from '../src/k8s/kubeconfig.js';
import { down, pickStackPorts, up } from '../src/stack/stack.js';

const ALERTS = Number(process.env.BENCH_ALERTS ?? 10_000);
const NODES = Number(process.env.BENCH_NODES ?? 100);
const RATE = Number(process.env.BENCH_RATE ?? 500);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 4);
const STEP_RATES = (process.env.BENCH_STEP_RATES ?? '250,500,750,1000,1250,1500,1750,2000,2500,3000')
  .split(',')
  .map(Number);
const RAMP_SECONDS = Number(process.env.BENCH_RAMP_SECONDS ?? 1);
const COLD_SECONDS = Number(process.env.BENCH_COLD_SECONDS ?? 2);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 10_000);
const AB_ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 3);
const AB_RATE = Number(process.env.BENCH_AB_RATE ?? 500);
const AB_TTL_MS = Number(process.env.BENCH_AB_TTL_MS ?? 2_000);
const DEDUPE_MS = Number(process.env.BENCH_DEDUPE_MS ?? DEFAULT_DEDUPE_WINDOW_MS);
const P99_LIMIT_MS = 25;
const TOKEN = 'bench-token-0123456789abcdef';

/** The load generator: plain JavaScript run by `node -e` in its own process (its own CPU time). */
const GENERATOR = String.raw`
const http = require('node:http');
const readline = require('node:readline');
const { performance } = require('node:perf_hooks');
const cfg = JSON.parse(process.argv[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.maxSockets });
function body(i) {
  const node = 'gpu-node-' + (i % cfg.nodes + 1);
  const variant = Math.floor(i / cfg.nodes) % 2;
  return JSON.stringify({
    receiver: 'gpu-remediator', status: 'firing', version: '4', truncatedAlerts: 0,
    groupKey: '{}:{Hostname="' + node + '"}', externalURL: 'http://alertmanager:9093',
    groupLabels: { Hostname: node }, commonLabels: { alertname: 'GpuXidCritical', Hostname: node },
    commonAnnotations: {},
    alerts: [{
      status: 'firing',
      labels: { alertname: 'GpuXidCritical', severity: 'critical', Hostname: node, gpu: String(variant * 3),
        xid: variant ? '79' : '48', UUID: 'GPU-0000' + i % cfg.nodes, job: 'nvidia-dcgm-exporter',
        pod: 'nvidia-dcgm-exporter-abcde', namespace: 'gpu-operator', instance: '127.0.0.1:9400' },
      annotations: { summary: 'XID on ' + node },
      startsAt: '2026-03-01T12:42:15.123456789Z', endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus:9090/graph', fingerprint: 'bench' + (i % cfg.nodes) + 'v' + variant,
    }],
  });
}
function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : 0; }
function runStep(step) {
  const bodies = [];
  for (let i = 0; i < step.count; i++) bodies.push(Buffer.from(body(step.offset + i)));
  const interval = 1000 / step.rate;
  const lat = new Float64Array(step.count);
  const statuses = {};
  let firstError;
  let done = 0, next = 0;
  const start = performance.now() + 20;
  return new Promise((resolve) => {
    const finish = () => {
      // The first step.skip requests (a ramp) count for the statuses, not for the latency figures.
      const sorted = Array.from(lat.subarray(step.skip || 0)).sort((a, b) => a - b);
      // p99 per second of schedule, to show how long the cold start lasts.
      const timeline = [];
      const perSecond = Math.max(1, Math.round(step.rate));
      for (let from = 0; from < step.count; from += perSecond) {
        const slice = Array.from(lat.subarray(from, from + perSecond)).sort((a, b) => a - b);
        timeline.push(Math.round(pct(slice, 0.99)));
      }
      // Figures of the requests from step.tailFrom on (the main run without its cold start).
      let tail;
      if (step.tailFrom) {
        const t = Array.from(lat.subarray(step.tailFrom)).sort((a, b) => a - b);
        tail = { from: step.tailFrom, n: t.length, p50: pct(t, 0.5), p90: pct(t, 0.9), p99: pct(t, 0.99), max: t[t.length - 1] };
      }
      resolve({ rate: step.rate, count: step.count, measured: sorted.length, statuses, firstError, timeline, tail,
        p50: pct(sorted, 0.5), p90: pct(sorted, 0.9), p99: pct(sorted, 0.99), max: sorted[sorted.length - 1],
        seconds: (performance.now() - start) / 1000 });
    };
    const send = (i) => {
      const scheduled = start + i * interval;
      const record = (status, detail) => {
        lat[i] = performance.now() - scheduled;
        statuses[status] = (statuses[status] || 0) + 1;
        if (!(status >= 200 && status < 300) && firstError === undefined) firstError = status + ' ' + detail;
        if (++done === step.count) finish();
      };
      const req = http.request({ agent, host: cfg.host, port: cfg.port, path: step.path, method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ' + cfg.token, 'content-length': bodies[i].length } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => { if (res.statusCode >= 300) text += d; });
          res.on('end', () => record(res.statusCode, text.slice(0, 300)));
        });
      req.setTimeout(20000, () => req.destroy(new Error('timeout')));
      req.on('error', (e) => record('error', e.message));
      req.end(bodies[i]);
    };
    const tick = () => {
      const now = performance.now();
      while (next < step.count && start + next * interval <= now) send(next++);
      if (next < step.count) setTimeout(tick, Math.max(0, Math.min(1, start + next * interval - performance.now())));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
}
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const step = JSON.parse(line);
  if (step.quit) { agent.destroy(); process.exit(0); }
  process.stdout.write(JSON.stringify(await runStep(step)) + '\n');
});
`;

/** Durations (ms) of calls, for "where the time goes". */
class Timings {
  private readonly ms: number[] = [];
  async time<T>(call: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await call();
    } finally {
      this.ms.push(performance.now() - t);
    }
  }
  get count(): number {
    return this.ms.length;
  }
  /** Figures of the calls since `from` (an earlier count), then forgets nothing. */
  describe(from = 0): string {
    const part = this.ms.slice(from).sort((a, b) => a - b);
    if (part.length === 0) return 'n=0';
    const at = (p: number) => part[Math.min(part.length - 1, Math.ceil(p * part.length) - 1)]!;
    return `n=${part.length} p50=${fmt(at(0.5))}ms p99=${fmt(at(0.99))}ms max=${fmt(part[part.length - 1]!)}ms`;
  }
}

/** Counts and times the calls that reach Temporal. */
class CountingStarter implements RemediationStarter {
  readonly timings = new Timings();
  get calls(): number {
    return this.timings.count;
  }
  constructor(private readonly inner: RemediationStarter) {}
  startOrJoin(options: Parameters<RemediationStarter['startOrJoin']>[0]) {
    return this.timings.time(() => this.inner.startOrJoin(options));
  }
  recordResolved(options: Parameters<RemediationStarter['recordResolved']>[0]) {
    return this.timings.time(() => this.inner.recordResolved(options));
  }
}

/** Times the node reads that reach the Kubernetes API (under the cache). */
class TimedNodeLookup implements NodeLookup {
  readonly timings = new Timings();
  constructor(private readonly inner: NodeLookup) {}
  get(name: string) {
    return this.timings.time(() => this.inner.get(name));
  }
}

interface StepResult {
  rate: number;
  count: number;
  /** Requests in the latency figures (count less the ramp). */
  measured: number;
  statuses: Record<string, number>;
  firstError?: string;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  seconds: number;
  /** p99 latency (ms) of the requests scheduled in each second. */
  timeline: number[];
  tail?: { from: number; n: number; p50: number; p90: number; p99: number; max: number };
}

class Generator {
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly lines: AsyncIterator<string>;
  private offset = 0;

  constructor(url: URL) {
    this.child = spawn(
      process.execPath,
      [
        '-e',
        GENERATOR,
        JSON.stringify({
          host: url.hostname,
          port: Number(url.port),
          token: TOKEN,
          nodes: NODES,
          maxSockets: 128,
        }),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.lines = readline.createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  /**
   * Sends `count` alerts at `rate`; latency figures leave out the first `skip` (a ramp), and `tail`
   * gives them for the requests from `tailFrom` on.
   */
  async step(
    rate: number,
    count: number,
    options: { path?: string; skip?: number; tailFrom?: number } = {},
  ): Promise<StepResult> {
    const { path = '/v1/alerts/alertmanager', skip = 0, tailFrom = 0 } = options;
    this.child.stdin.write(`${JSON.stringify({ rate, count, skip, tailFrom, offset: this.offset, path })}\n`);
    this.offset += count;
    const line = await this.lines.next();
    if (line.done) throw new Error('the load generator exited');
    return JSON.parse(line.value) as StepResult;
  }

  stop(): void {
    this.child.stdin.write(`${JSON.stringify({ quit: true })}\n`);
  }
}

const ok2xx = (r: StepResult) =>
  Object.entries(r.statuses).every(([s]) => Number(s) >= 200 && Number(s) < 300);
const fmt = (ms: number) => ms.toFixed(1);
const describeStep = (r: StepResult) =>
  `rate=${r.rate}/s n=${r.count}${r.measured !== r.count ? ` measured=${r.measured}` : ''} p50=${fmt(r.p50)}ms p90=${fmt(r.p90)}ms p99=${fmt(r.p99)}ms max=${fmt(r.max)}ms ` +
  `statuses=${JSON.stringify(r.statuses)}${r.firstError ? ` first_error=${JSON.stringify(r.firstError)}` : ''}`;

/** A throwaway embedded stack on free ports (retried when another stack takes a port first). */
async function startStack(nodes: number) {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-bench-webhook-'));
  const config = loadConfig({
    ...process.env,
    FLEETMEDIC_STATE_DIR: stateDir,
    FLEETMEDIC_CLUSTER_ID: undefined,
  });
  const stop = async () => {
    await down(config, { purge: true }).catch(() => {});
    await fs.rm(stateDir, { recursive: true, force: true });
  };
  for (let attempt = 1; ; attempt++) {
    try {
      const { state } = await up(config, {
        nodes,
        ports: await pickStackPorts(),
        clusterName: `fmbench-${process.pid}`,
      });
      return { stack: { state, kc: loadKubeConfig(state.kube.kubeconfig) }, stop };
    } catch (err) {
      await down(config, { purge: true }).catch(() => {});
      await fs.rm(path.join(stateDir, 'kwok'), { recursive: true, force: true });
      await fs.rm(path.join(stateDir, 'temporal'), { recursive: true, force: true });
      const transient = err instanceof FleetmedicError && (err.code === 'PORT_IN_USE' || !err.permanent);
      if (!transient || attempt >= 3) {
        await stop();
        throw err;
      }
    }
  }
}

/**
 * The node cache's refresh-ahead against none, interleaved (A B A B ...) on two webhooks that differ
 * only in it, in front of the same Temporal starter, at AB_RATE/s with a short node TTL (AB_TTL_MS) so
 * that every round crosses expiries. The alerts repeat the main run's (answered from each server's
 * dedupe memory after its ramp), so what differs is who waits for node reads. Prints per-round p99
 * and the medians; not part of the last line.
 */
async function nodeCacheAB(clusterId: string, starter: RemediationStarter): Promise<void> {
  const variants = [
    { name: 'refresh-ahead off', refreshAhead: 1 },
    { name: 'refresh-ahead on', refreshAhead: 0.5 },
  ];
  const servers = await Promise.all(
    variants.map(async (v) => {
      const reads = new TimedNodeLookup(new KubernetesNodeLookup(kc));
      const server = await startWebhookServer({
        clusterId,
        taskQueue: `bench-webhook-no-worker-${process.pid}`,
        rules: parseRules({
          rules: [{ name: 'gpu-faults', match: { alertname: 'GpuXidCritical' }, action: 'remediate' }],
        }),
        starter,
        nodes: new CachedNodeLookup(reads, { ttlMs: AB_TTL_MS, refreshAhead: v.refreshAhead }),
        auth: { tokens: [{ caller: 'bench', token: TOKEN }], hmacKeys: [] },
        limits: { rateLimitMax: 1_000_000_000 },
        dedupeWindowMs: DEDUPE_MS,
        logger: pino({ level: 'warn' }, pino.destination(2)),
        metrics: createWebhookMetrics({ defaultMetrics: false }),
      });
      return { ...v, reads, server, generator: new Generator(new URL(server.url)), p99: [] as number[] };
    }),
  );
  try {
    // Each new server first learns the 200 alerts (its own dedupe memory: one Temporal call each,
    // joins of the running workflows) and reads its nodes; not measured.
    for (const v of servers) {
      const count = Math.round(AB_RATE * 2);
      const w = await v.generator.step(AB_RATE, count, { skip: count });
      console.log(
        `node cache A/B warm-up ${v.name} (not measured): n=${w.count} statuses=${JSON.stringify(w.statuses)}`,
      );
    }
    for (let round = 1; round <= AB_ROUNDS; round++) {
      for (const v of servers) {
        const ramp = Math.round(AB_RATE * RAMP_SECONDS);
        const readsBefore = v.reads.timings.count;
        const r = await v.generator.step(AB_RATE, ramp + Math.round(AB_RATE * STEP_SECONDS), { skip: ramp });
        v.p99.push(ok2xx(r) ? r.p99 : Number.POSITIVE_INFINITY);
        console.log(
          `node cache A/B round ${round} ${v.name}: ${describeStep(r)}; node reads ${v.reads.timings.describe(readsBefore)}`,
        );
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(
      `node cache A/B (node TTL ${AB_TTL_MS} ms, ${AB_RATE}/s, ${AB_ROUNDS} interleaved rounds, medians of p99): ` +
        servers.map((v) => `${v.name} ${fmt(median(v.p99))}ms [${v.p99.map(fmt).join(' ')}]`).join('; '),
    );
  } finally {
    for (const v of servers) {
      v.generator.stop();
      await v.server.close();
    }
  }
}

console.log(
  `parameters: alerts=${ALERTS} nodes=${NODES} rate=${RATE}/s (open loop, 1 alert per request, 2 variants per node), ` +
    `step-up rates=${STEP_RATES.join(',')} (rounds of ${RAMP_SECONDS}s ramp, not measured, + ${STEP_SECONDS}s measured; 2 of 3 must pass), ` +
    `p99 limit ${P99_LIMIT_MS} ms, node-cache A/B ${AB_ROUNDS} rounds at ${AB_RATE}/s with a ${AB_TTL_MS} ms node TTL, ` +
    `cpus=${os.cpus().length} loadavg=${os.loadavg()[0]!.toFixed(1)}; load generator in a child process; ` +
    'workflows on a task queue without workers',
);
const t0 = performance.now();
// The stack's own simulated nodes (kwok keeps them Ready), so the node lookups read real Node objects.
const { stack, stop } = await startStack(NODES);
const kc = stack.kc;
console.log(`stack with ${NODES} simulated nodes ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
// Let the control plane finish its start-up work (node controllers, leases) before measuring.
await sleep(SETTLE_MS);
const clusterId = stack.state.clusterId;
const connection = await Connection.connect({ address: stack.state.temporal.address });
const client = new Client({ connection });
const prefix = `remediation/${clusterId}/gpu-node-`;
const query = `WorkflowId STARTS_WITH '${prefix}'`;
let exitCode = 0;
let summary = '';
try {
  const metrics = createWebhookMetrics();
  const starter = new CountingStarter(new TemporalRemediationStarter(client));
  const nodeReads = new TimedNodeLookup(new KubernetesNodeLookup(stack.kc));
  // Event-loop delay in the webhook's process: CPU starvation or blocking shows up here.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  // Garbage-collection pauses in the webhook's process (they stop the event loop too).
  const gcPauses: number[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcPauses.push(e.duration);
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  /** Where the time of one step went, in the webhook's process. */
  const whereTimeGoes = async <T extends StepResult>(what: string, run: () => Promise<T>): Promise<T> => {
    const calls = starter.calls;
    const reads = nodeReads.timings.count;
    loopDelay.reset();
    gcPauses.length = 0;
    const cpu = process.cpuUsage();
    const result = await run();
    const used = process.cpuUsage(cpu);
    console.log(
      `  ${what}, webhook process: cpu=${((used.user + used.system) / 1000 / result.count).toFixed(2)}ms/request ` +
        `event-loop delay p99=${fmt(loopDelay.percentile(99) / 1e6)}ms max=${fmt(loopDelay.max / 1e6)}ms; ` +
        `GC pauses n=${gcPauses.length} total=${fmt(gcPauses.reduce((a, b) => a + b, 0))}ms max=${fmt(Math.max(0, ...gcPauses))}ms; ` +
        `Temporal signal-with-start ${starter.timings.describe(calls)}; ` +
        `Kubernetes node reads ${nodeReads.timings.describe(reads)}`,
    );
    return result;
  };
  const webhook = await startWebhookServer({
    clusterId,
    taskQueue: `bench-webhook-no-worker-${process.pid}`,
    rules: parseRules({
      rules: [{ name: 'gpu-faults', match: { alertname: 'GpuXidCritical' }, action: 'remediate' }],
    }),
    starter,
    nodes: new CachedNodeLookup(nodeReads),
    auth: { tokens: [{ caller: 'bench', token: TOKEN }], hmacKeys: [] },
    limits: { rateLimitMax: 1_000_000_000 },
    dedupeWindowMs: DEDUPE_MS,
    logger: pino({ level: 'warn' }, pino.destination(2)),
    metrics,
  });
  const generator = new Generator(new URL(webhook.url));
  let rssPeak = 0;
  const rssTimer = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 100);
  try {
    // Warm-up through the dry-run route: JIT, sockets, node cache; starts nothing.
    const warm = await whereTimeGoes('warm-up', () =>
      generator.step(250, 500, { path: '/v1/alerts/alertmanager?dryRun=true' }),
    );
    console.log(`warm-up (dry-run, starts nothing): ${describeStep(warm)}`);

    const main = await whereTimeGoes('main run', () =>
      generator.step(RATE, ALERTS, { tailFrom: Math.round(COLD_SECONDS * RATE) }),
    );
    console.log(`main run: ${describeStep(main)} took=${main.seconds.toFixed(1)}s`);
    console.log(`main run p99 per second of schedule (ms): ${main.timeline.join(' ')}`);
    // The same alerts again would all be answered from the dedupe memory; instead, the main run's own
    // figures without its cold start (the first 200 signal-with-starts, JIT, first node reads).
    console.log(
      `main run after its first ${COLD_SECONDS}s (cold start left out, NOT the reported figure): ` +
        (main.tail
          ? `n=${main.tail.n} p50=${fmt(main.tail.p50)}ms p90=${fmt(main.tail.p90)}ms p99=${fmt(main.tail.p99)}ms max=${fmt(main.tail.max)}ms`
          : 'n=0'),
    );
    let workflows = -1;
    for (let i = 0, stable = 0; i < 60 && stable < 3; i++) {
      const n = (await client.workflow.count(query)).count;
      stable = n === workflows ? stable + 1 : 0;
      workflows = n;
      if (n >= NODES && stable >= 1) break;
      await sleep(500);
    }
    const dedup = (await metrics.deduplicated.get()).values[0]?.value ?? 0;
    console.log(
      `Temporal signal-with-start calls: ${starter.calls}; answers that shared an identical call in flight: ` +
        `${main.count - dedup - starter.calls}; answered from Temporal's acknowledgement of an identical alert ` +
        `(dedupe window ${DEDUPE_MS} ms): ${dedup}`,
    );
    const allOk = ok2xx(main) && main.count === ALERTS;
    console.log(
      `workflows (visibility count "${query}"): ${workflows} (expected exactly ${NODES}); every answer 2xx: ${allOk}`,
    );
    if (workflows !== NODES || !allOk) exitCode = 1;

    let best = 0;
    // Each rate gets up to three rounds and passes on two: one noisy round on a shared 2-core machine
    // neither makes nor breaks a rate.
    for (const rate of STEP_RATES) {
      let passes = 0;
      let fails = 0;
      for (let round = 1; passes < 2 && fails < 2; round++) {
        const ramp = Math.round(rate * RAMP_SECONDS);
        const r = await whereTimeGoes(`step ${rate}/s round ${round}`, () =>
          generator.step(rate, ramp + Math.round(rate * STEP_SECONDS), { skip: ramp }),
        );
        const pass = ok2xx(r) && r.p99 <= P99_LIMIT_MS;
        if (pass) passes++;
        else fails++;
        console.log(`step round ${round}: ${describeStep(r)} ${pass ? 'pass' : 'fail'}`);
      }
      console.log(`step rate=${rate}/s: ${passes >= 2 ? 'PASS' : 'FAIL'}`);
      if (passes < 2) break;
      best = rate;
    }
    if (AB_ROUNDS > 0) await nodeCacheAB(clusterId, starter);
    const after = (await client.workflow.count(query)).count;
    console.log(
      `workflows after the step-up${AB_ROUNDS > 0 ? ' and the A/B' : ''}: ${after}; loadavg=${os.loadavg()[0]!.toFixed(1)}`,
    );
    if (after !== NODES) exitCode = 1;
    summary =
      `alerts=${main.count} workflows=${workflows} webhook_p50_ms=${fmt(main.p50)} webhook_p99_ms=${fmt(main.p99)} ` +
      `max_rate_p99_25ms=${best} rss_mb=${Math.round(rssPeak / 1024 / 1024)}`;
  } finally {
    clearInterval(rssTimer);
    loopDelay.disable();
    gcObserver.disconnect();
    generator.stop();
    await webhook.close();
  }
} finally {
  const handles: Promise<unknown>[] = [];
  for await (const w of client.workflow.list({ query: `${query} AND ExecutionStatus = 'Running'` })) {
    handles.push(
      client.workflow
        .getHandle(w.workflowId)
        .terminate('benchmark finished')
        .catch(() => {}),
    );
  }
  await Promise.all(handles);
  await connection.close();
  await stop();
}
console.log(summary || 'alerts=0 workflows=0 webhook_p50_ms=0 webhook_p99_ms=0 max_rate_p99_25ms=0 rss_mb=0');
process.exit(exitCode);
