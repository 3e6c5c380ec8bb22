/**
 * `npm run bench:gateway`: what the inference gateway adds, against the same replicas called directly.
 *
 * Three stand-in replicas (src/gateway/standin.ts: BENCH_SERVICE_MS (20) ms per request, at most 4 at
 * once, so replica capacity and not the shared CPU sets saturation) run in one child process; the
 * load generator in another; the gateway, in its default configuration, in this process, so its CPU
 * time per request can be read from process.cpuUsage(). Everything listens on 127.0.0.1.
 *
 * 1. Saturation of the direct path: closed loop, BENCH_SAT_CONCURRENCY (48) requests outstanding,
 *    round-robin over the replicas, BENCH_SAT_SECONDS (4) s.
 * 2. Latency: open-loop load (each request leaves at its scheduled time; latency counts from then) at
 *    BENCH_RATE (1,000)/s, or 60 % of the direct saturation when that is lower (printed), for
 *    BENCH_SECONDS (8) s per arm after a 1 s warm-up of each: gateway and direct interleaved
 *    (G D G D ...) over BENCH_ROUNDS (3) rounds; medians of the rounds' p50 and p99.
 * 3. Saturation, gateway vs direct, interleaved, BENCH_SAT_ROUNDS (2) rounds.
 * Last line: rate, added_p50_ms, added_p99_ms, p50_ratio, p99_ratio, sat_rps_ratio.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { parseGatewayConfig } from '../src/gateway/config.js';
import { startGateway } from '../src/gateway/server.js';

const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SAT_SECONDS = Number(process.env.BENCH_SAT_SECONDS ?? 4);
const SAT_ROUNDS = Number(process.env.BENCH_SAT_ROUNDS ?? 2);
const SAT_CONCURRENCY = Number(process.env.BENCH_SAT_CONCURRENCY ?? 48);
const SERVICE_MS = Number(process.env.BENCH_SERVICE_MS ?? 20);

/** The load generator: plain JavaScript in its own process (its own CPU time). */
const GENERATOR = String.raw`
const http = require('node:http');
const readline = require('node:readline');
const { performance } = require('node:perf_hooks');
const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
const body = Buffer.from(JSON.stringify({ model: 'standin', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 }));
function pct(s, p) { return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] : 0; }
function send(target, done) {
  const req = http.request({ agent, host: target.host, port: target.port, path: '/v1/chat/completions', method: 'POST',
    headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
    res.resume();
    res.on('end', () => done(res.statusCode));
  });
  req.setTimeout(20000, () => req.destroy(new Error('timeout')));
  req.on('error', () => done('error'));
  req.end(body);
}
function openLoop(step) {
  const count = Math.round(step.rate * step.seconds);
  const interval = 1000 / step.rate;
  const lat = new Float64Array(count);
  const statuses = {};
  let done = 0, next = 0;
  const start = performance.now() + 20;
  return new Promise((resolve) => {
    const one = (i) => {
      const scheduled = start + i * interval;
      send(step.targets[i % step.targets.length], (status) => {
        lat[i] = performance.now() - scheduled;
        statuses[status] = (statuses[status] || 0) + 1;
        if (++done === count) {
          const s = Array.from(lat).sort((a, b) => a - b);
          resolve({ count, statuses, p50: pct(s, 0.5), p90: pct(s, 0.9), p99: pct(s, 0.99), max: s[s.length - 1] });
        }
      });
    };
    const tick = () => {
      const now = performance.now();
      while (next < count && start + next * interval <= now) one(next++);
      if (next < count) setTimeout(tick, Math.max(0, Math.min(1, start + next * interval - performance.now())));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
}
function closedLoop(step) {
  const statuses = {};
  let completed = 0, n = 0;
  const t0 = performance.now();
  const end = t0 + step.seconds * 1000;
  return new Promise((resolve) => {
    let workers = step.concurrency;
    const loop = () => {
      if (performance.now() >= end) {
        if (--workers === 0) resolve({ completed, statuses, rps: completed / ((performance.now() - t0) / 1000) });
        return;
      }
      send(step.targets[n++ % step.targets.length], (status) => {
        statuses[status] = (statuses[status] || 0) + 1;
        if (status === 200) completed++;
        loop();
      });
    };
    for (let i = 0; i < step.concurrency; i++) loop();
  });
}
readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const step = JSON.parse(line);
  if (step.quit) { agent.destroy(); process.exit(0); }
  const result = step.kind === 'open' ? await openLoop(step) : await closedLoop(step);
  process.stdout.write(JSON.stringify(result) + '\n');
});
`;

interface Target {
  host: string;
  port: number;
}
interface OpenResult {
  count: number;
  statuses: Record<string, number>;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}
interface ClosedResult {
  completed: number;
  statuses: Record<string, number>;
  rps: number;
}

/** A child process answering one JSON line per JSON line sent. */
class Child {
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly lines: AsyncIterator<string>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = readline.createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async next<T>(): Promise<T> {
    const line = await this.lines.next();
    if (line.done) throw new Error('child process ended');
    return JSON.parse(line.value) as T;
  }

  async ask<T>(message: unknown): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
    return this.next<T>();
  }

  stop(): void {
    this.child.stdin.write(`${JSON.stringify({ quit: true })}\n`);
    this.child.kill();
  }
}

const fmt = (n: number) => n.toFixed(2);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const show = (r: OpenResult) =>
  `p50=${fmt(r.p50)}ms p90=${fmt(r.p90)}ms p99=${fmt(r.p99)}ms max=${fmt(r.max)}ms statuses=${JSON.stringify(r.statuses)}`;

const standinModule = pathToFileURL(path.resolve(import.meta.dirname, '../src/gateway/standin.ts')).href;
const standins = new Child([
  '--import',
  'tsx',
  '--input-type=module',
  '-e',
  `const { startStandin } = await import(${JSON.stringify(standinModule)});
   const list = await Promise.all([0, 1, 2].map(() => startStandin({ serviceMs: ${SERVICE_MS} })));
   process.stdout.write(JSON.stringify(list.map((s) => s.url)) + '\\n');
   process.stdin.resume();
   process.stdin.on('data', () => process.exit(0));`,
]);
const urls = await standins.next<string[]>();
const direct: Target[] = urls.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) }));
const gw = await startGateway(parseGatewayConfig({ port: 0, replicas: urls }));
const viaGateway: Target[] = [{ host: '127.0.0.1', port: Number(new URL(gw.url).port) }];
const generator = new Child(['-e', GENERATOR]);
console.log(
  `3 stand-in replicas (${SERVICE_MS} ms, 4 at once each) at ${urls.join(' ')}; gateway ${gw.url} (default configuration); ` +
    `node ${process.version}, ${(await import('node:os')).cpus().length} CPUs`,
);

try {
  const sat = (targets: Target[]) =>
    generator.ask<ClosedResult>({
      kind: 'closed',
      targets,
      seconds: SAT_SECONDS,
      concurrency: SAT_CONCURRENCY,
    });
  await sat(direct); // warm-up
  const directSat = await sat(direct);
  console.log(
    `direct saturation: ${directSat.completed} in ${SAT_SECONDS}s = ${directSat.rps.toFixed(0)} req/s (${SAT_CONCURRENCY} outstanding)`,
  );
  const sixty = Math.floor(0.6 * directSat.rps);
  const rate = Math.min(RATE, sixty);
  console.log(
    rate < RATE
      ? `rate: ${rate}/s = 60 % of the direct saturation (${RATE}/s would exceed the replicas' capacity)`
      : `rate: ${rate}/s (below 60 % of the direct saturation, ${sixty}/s)`,
  );

  const open = (targets: Target[], seconds: number) =>
    generator.ask<OpenResult>({ kind: 'open', targets, rate, seconds });
  await open(viaGateway, 1);
  await open(direct, 1);
  const rounds: { g: OpenResult; d: OpenResult }[] = [];
  let cpuMicros = 0;
  let gatewayRequests = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const cpu = process.cpuUsage();
    const g = await open(viaGateway, SECONDS);
    const used = process.cpuUsage(cpu);
    cpuMicros += used.user + used.system;
    gatewayRequests += g.count;
    const d = await open(direct, SECONDS);
    rounds.push({ g, d });
    console.log(`round ${round} gateway: ${show(g)}`);
    console.log(`round ${round} direct:  ${show(d)}`);
  }
  const gp50 = median(rounds.map((r) => r.g.p50));
  const gp99 = median(rounds.map((r) => r.g.p99));
  const dp50 = median(rounds.map((r) => r.d.p50));
  const dp99 = median(rounds.map((r) => r.d.p99));
  console.log(
    `medians of ${ROUNDS} rounds: gateway p50=${fmt(gp50)}ms p99=${fmt(gp99)}ms; direct p50=${fmt(dp50)}ms p99=${fmt(dp99)}ms`,
  );
  const cpuPerRequest = cpuMicros / gatewayRequests;
  console.log(
    `gateway CPU per request: ${cpuPerRequest.toFixed(0)} us (user+system of the gateway process over ${gatewayRequests} requests; ` +
      `${((cpuMicros / (ROUNDS * SECONDS * 1e6)) * 100).toFixed(0)} % of one core at ${rate}/s)`,
  );

  const gSat: number[] = [];
  const dSat: number[] = [];
  for (let round = 1; round <= SAT_ROUNDS; round++) {
    const g = await sat(viaGateway);
    const d = await sat(direct);
    gSat.push(g.rps);
    dSat.push(d.rps);
    console.log(
      `saturation round ${round}: gateway ${g.rps.toFixed(0)} req/s ${JSON.stringify(g.statuses)}, ` +
        `direct ${d.rps.toFixed(0)} req/s ${JSON.stringify(d.statuses)}`,
    );
  }
  const satRatio = median(gSat) / median(dSat);
  console.log(
    `goals: added p50 <= 1 ms: ${gp50 - dp50 <= 1 ? 'met' : 'MISSED'}; added p99 <= 5 ms: ${gp99 - dp99 <= 5 ? 'met' : 'MISSED'}; ` +
      `saturation >= 0.8 of direct: ${satRatio >= 0.8 ? 'met' : 'MISSED'}`,
  );
  console.log(
    `rate=${rate} added_p50_ms=${fmt(gp50 - dp50)} added_p99_ms=${fmt(gp99 - dp99)} p50_ratio=${fmt(gp50 / dp50)} ` +
      `p99_ratio=${fmt(gp99 / dp99)} sat_rps_ratio=${fmt(satRatio)}`,
  );
} finally {
  generator.stop();
  standins.stop();
  await gw.close();
}
