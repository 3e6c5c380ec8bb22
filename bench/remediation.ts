/**
 * `npm run bench:remediation` (issue 3): two figures on the embedded stack (Temporal dev server, real
 * kube-apiserver, kwok-simulated GPU nodes), all on 127.0.0.1. Each part starts its own stack in a
 * temporary state directory on free ports and stops it at the end, also on error or Ctrl-C.
 *
 * 1. Alert-to-cordon latency under an alert storm: F of N simulated nodes fail at once (XID 79, the
 *    reboot-node class, which quarantines and then waits for approval). The clock starts just before
 *    each signal-with-start (`startOrJoinRemediation`, the call the webhook makes) and stops when one
 *    watch on /api/v1/nodes first delivers the node with `spec.unschedulable: true`. One control worker
 *    runs in this process, the node agents of all N nodes (one Worker per node task queue) in one child
 *    process (bench/remediation-agents.ts); the RSS of both is reported. Between rounds the round's
 *    workflows are terminated and its nodes restored.
 * 2. Drain vs `kubectl drain --ignore-daemonsets --delete-emptydir-data` (the toolchain's cached kubectl,
 *    with the stack's kubeconfig) on identical nodes in the same run, interleaved: 100 pods without a
 *    PDB, and 10 Deployments x 10 pods each with a PDB of maxUnavailable 1. Eviction and 429 counts of
 *    both tools are printed.
 *
 * Last line: key=value pairs. Knobs (environment, see `KNOBS`): FLEETMEDIC_BENCH_NODES,
 * FLEETMEDIC_BENCH_FAILING, FLEETMEDIC_BENCH_ROUNDS, FLEETMEDIC_BENCH_WARMUP,
 * FLEETMEDIC_BENCH_CORDON_TIMEOUT_S, FLEETMEDIC_BENCH_TEMPORAL_POLLER_LIMIT,
 * FLEETMEDIC_BENCH_AGENT_POLLS, FLEETMEDIC_BENCH_AGENT_SPREAD_S, FLEETMEDIC_BENCH_DRAIN_NODES, FLEETMEDIC_BENCH_DRAIN_ROUNDS,
 * FLEETMEDIC_BENCH_PDB_ROUNDS, FLEETMEDIC_BENCH_DRAIN_CONCURRENCY, FLEETMEDIC_BENCH_CONTROL_TUNING,
 * FLEETMEDIC_BENCH_SKIP=latency|drain, FLEETMEDIC_BENCH_SCALE=1 (a scale round, 500 of 5,000 nodes:
 * FLEETMEDIC_BENCH_SCALE_NODES, FLEETMEDIC_BENCH_SCALE_FAILING);
 * diagnostics: FLEETMEDIC_BENCH_KUBECTL_LOG=<path prefix> keeps kubectl's -v=6 output,
 * FLEETMEDIC_BENCH_DEBUG_WARNINGS=1 prints the first SDK warning of each kind.
 */
import {
  AppsV1Api,
  CoreV1Api,
  PolicyV1Api,
  type KubeConfig,
  type V1Deployment,
  type V1Node,
} from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import {
  bundleWorkflowCode,
  DefaultLogger,
  makeTelemetryFilterString,
  NativeConnection,
  Runtime,
} from '@temporalio/worker';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  createKubernetesActivities,
  createQuarantineSteps,
  type DrainNodeResult,
  type QuarantineNodeInput,
} from '../src/activities/kubernetes/index.js';
import { startOrJoinRemediation } from '../src/client/remediation-client.js';
import { DEFAULT_REMEDIATION_POLICY } from '../src/domain/remediation-plan.js';
import { loadConfig, type Config } from '../src/config/config.js';
import { FleetmedicError } from '../src/errors.js';
import { onStopSignal } from '../src/cli/stop-signal.js';
import { loadKubeConfig } from '../src/k8s/kubeconfig.js';
import { mergePatch } from '../src/k8s/patch.js';
import { liftQuarantinePatch } from '../src/sim/demo-nodes.js';
import { FileGpuStateStore, healthyGpuState, withFault } from '../src/sim/gpu-state.js';
import { pickFreePorts, startDetached, stopProcess } from '../src/stack/processes.js';
import { readySimNodes } from '../src/stack/sim-cluster.js';
import { down, pickStackPorts, up } from '../src/stack/stack.js';
import { MAX_SIM_NODES } from '../src/stack/sim-nodes.js';
import type { StackState } from '../src/stack/state.js';
import { temporalHealthy, temporalServerArgs } from '../src/stack/temporal-server.js';
import { resolveTool } from '../src/toolchain/toolchain.js';
import {
  CONTROL_WORKER_TUNING,
  createControlWorkers,
  workflowBundleOptions,
  type ControlWorkerTuning,
} from '../src/workers/control-worker.js';
import { fleetBudgetWorkflowId } from '../src/workflows/fleet-budget.js';
import { budgetTaskQueue, remediationWorkflowId } from '../src/contracts/ids.js';
import { createRemediationSupportActivities } from '../src/activities/remediation-support/index.js';
import { createQuarantineActivities, type QuarantineFailedNodeInput } from '../src/activities/quarantine.js';

const env = process.env;

/** The benchmark's settings, from FLEETMEDIC_BENCH_* variables; a bad value stops it with the variable named. */
const KNOBS = z.object({
  /** Simulated GPU nodes in part 1 (all get a node agent). */
  FLEETMEDIC_BENCH_NODES: z.coerce.number().int().min(2).max(MAX_SIM_NODES).default(1500),
  /** Nodes failing at once in each round. */
  FLEETMEDIC_BENCH_FAILING: z.coerce.number().int().min(1).default(150),
  FLEETMEDIC_BENCH_ROUNDS: z.coerce.number().int().min(1).max(100).default(3),
  /**
   * Nodes failing in an unmeasured warm-up round (0: none); default FLEETMEDIC_BENCH_FAILING. A
   * control worker in production has long run its code paths and opened its connections when a
   * storm comes; a warm-up smaller than a round left round 1 paying for that (JIT, connection pool,
   * heap growth: about 1.5 s more CPU of the control worker than rounds 2 and 3).
   */
  FLEETMEDIC_BENCH_WARMUP: z.coerce.number().int().min(0).optional(),
  FLEETMEDIC_BENCH_CORDON_TIMEOUT_S: z.coerce.number().int().min(1).max(3600).default(120),
  /**
   * Concurrent long polls the Temporal frontend admits per namespace and API (`frontend.namespaceCount`,
   * 1200 by default): part 1 runs its own dev server with this limit; 0 uses the stack's server.
   */
  FLEETMEDIC_BENCH_TEMPORAL_POLLER_LIMIT: z.coerce.number().int().min(0).default(10_000),
  /**
   * Activity polls per node agent Worker. `sdk` (the default) runs `createNodeAgentWorkers` as it is
   * (`activityTaskPollerBehavior: { type: 'simple-maximum', maximum: 1 }`); a number overrides that
   * maximum.
   */
  /**
   * Seconds over which the node agents start, one after another (0: all at once). Agents on real
   * nodes start independently; 1,500 started in the same second renew their idle long polls in the
   * same second, about every minute, and a round that met such a burst paid for it.
   */
  FLEETMEDIC_BENCH_AGENT_SPREAD_S: z.coerce.number().int().min(0).max(600).default(60),
  FLEETMEDIC_BENCH_AGENT_POLLS: z
    .union([z.literal('sdk'), z.coerce.number().int().min(1).max(10)])
    .default('sdk'),
  /** Nodes of part 2's stack: two drained nodes, the rest take the replacements. */
  FLEETMEDIC_BENCH_DRAIN_NODES: z.coerce.number().int().min(4).max(100).default(8),
  FLEETMEDIC_BENCH_DRAIN_ROUNDS: z.coerce.number().int().min(1).max(20).default(2),
  FLEETMEDIC_BENCH_PDB_ROUNDS: z.coerce.number().int().min(1).max(20).default(2),
  /** drainNode's `concurrency`; unset: the remediation workflow's default (the activity's, 5). */
  FLEETMEDIC_BENCH_DRAIN_CONCURRENCY: z.coerce.number().int().min(1).max(100).optional(),
  /** Overrides of the control worker's CONTROL_WORKER_TUNING, as JSON (e.g. `{"nonStickyToStickyPollRatio":0.8}`). */
  FLEETMEDIC_BENCH_CONTROL_TUNING: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as Partial<ControlWorkerTuning>;
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `not JSON: ${(err as Error).message}` });
        return z.NEVER;
      }
    })
    .optional(),
  /**
   * More `--dynamic-config-value KEY=VALUE` settings for part 1's dev server, comma-separated (e.g.
   * `history.maxInFlightUpdates=200`, to see how much the per-workflow update limit costs).
   */
  FLEETMEDIC_BENCH_TEMPORAL_DYNAMIC_CONFIG: z
    .string()
    .regex(/^[A-Za-z0-9.]+=[^,\s]+(,[A-Za-z0-9.]+=[^,\s]+)*$/, 'KEY=VALUE pairs separated by commas')
    .optional(),
  FLEETMEDIC_BENCH_SKIP: z.enum(['latency', 'drain']).optional(),
  /**
   * `1`: after the other parts, a scale round of 500 of 5,000 nodes failing at once (one round after a
   * warm-up, its own stack); its P99 goes on the last line as `scale_nodes=… scale_p99_ms=…`. No goal yet.
   */
  FLEETMEDIC_BENCH_SCALE: z.enum(['0', '1']).default('0'),
  FLEETMEDIC_BENCH_SCALE_NODES: z.coerce.number().int().min(2).max(MAX_SIM_NODES).default(5000),
  FLEETMEDIC_BENCH_SCALE_FAILING: z.coerce.number().int().min(1).default(500),
  FLEETMEDIC_BENCH_KUBECTL_LOG: z.string().min(1).optional(),
  FLEETMEDIC_BENCH_DEBUG_WARNINGS: z.enum(['0', '1']).optional(),
});

function readKnobs(): z.infer<typeof KNOBS> {
  const parsed = KNOBS.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!parsed.success) {
    const got = parsed.error.issues
      .map((i) => String(i.path[0]))
      .map((name) => `${name}=${JSON.stringify(env[name])}`)
      .join(', ');
    console.error(`bench:remediation: invalid setting (${got})\n${z.prettifyError(parsed.error)}`);
    process.exit(2);
  }
  const k = parsed.data;
  if (
    k.FLEETMEDIC_BENCH_FAILING > k.FLEETMEDIC_BENCH_NODES ||
    (k.FLEETMEDIC_BENCH_WARMUP ?? 0) > k.FLEETMEDIC_BENCH_NODES
  ) {
    console.error(
      `bench:remediation: FLEETMEDIC_BENCH_FAILING=${k.FLEETMEDIC_BENCH_FAILING} and FLEETMEDIC_BENCH_WARMUP=` +
        `${k.FLEETMEDIC_BENCH_WARMUP} must not exceed FLEETMEDIC_BENCH_NODES=${k.FLEETMEDIC_BENCH_NODES}`,
    );
    process.exit(2);
  }
  return k;
}
const knobs = readKnobs();
const NODES = knobs.FLEETMEDIC_BENCH_NODES;
const FAILING = knobs.FLEETMEDIC_BENCH_FAILING;
const ROUNDS = knobs.FLEETMEDIC_BENCH_ROUNDS;
const WARMUP = knobs.FLEETMEDIC_BENCH_WARMUP ?? FAILING;
const SCALE = knobs.FLEETMEDIC_BENCH_SCALE === '1';
const SCALE_NODES = knobs.FLEETMEDIC_BENCH_SCALE_NODES;
const SCALE_FAILING = knobs.FLEETMEDIC_BENCH_SCALE_FAILING;
const DRAIN_NODES = knobs.FLEETMEDIC_BENCH_DRAIN_NODES;
const DRAIN_ROUNDS = knobs.FLEETMEDIC_BENCH_DRAIN_ROUNDS;
const PDB_ROUNDS = knobs.FLEETMEDIC_BENCH_PDB_ROUNDS;
const DRAIN_CONCURRENCY = knobs.FLEETMEDIC_BENCH_DRAIN_CONCURRENCY;
const SKIP_LATENCY = knobs.FLEETMEDIC_BENCH_SKIP === 'latency';
const SKIP_DRAIN = knobs.FLEETMEDIC_BENCH_SKIP === 'drain';
const POLLER_LIMIT = knobs.FLEETMEDIC_BENCH_TEMPORAL_POLLER_LIMIT;
const AGENT_POLLS = knobs.FLEETMEDIC_BENCH_AGENT_POLLS;
const AGENT_SPREAD_S = knobs.FLEETMEDIC_BENCH_AGENT_SPREAD_S;
const CONTROL_TUNING = knobs.FLEETMEDIC_BENCH_CONTROL_TUNING;
const EXTRA_DYNAMIC_CONFIG = knobs.FLEETMEDIC_BENCH_TEMPORAL_DYNAMIC_CONFIG?.split(',') ?? [];
/**
 * Breaker and healthy-fraction guard opened wide so that every failing node is quarantined: the
 * breaker is consulted before quarantine (budgetReportFailure). Drains keep the default of one at a time.
 */
const BUDGET = { breakerThreshold: 1, minHealthyFraction: 0 };
const CORDON_TIMEOUT_MS = knobs.FLEETMEDIC_BENCH_CORDON_TIMEOUT_S * 1000;
const DEPLOYMENTS = 10;
const REPLICAS = 10;
const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

const log = (line: string) => console.log(line);
const ms = (x: number) => x.toFixed(0);
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** Nearest-rank percentile of an unsorted sample. */
function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const median = (xs: readonly number[]) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const stats = (xs: readonly number[]) =>
  xs.length === 0
    ? 'count=0'
    : `count=${xs.length} p50=${ms(pct(xs, 50))} ms p99=${ms(pct(xs, 99))} ms max=${ms(Math.max(...xs))} ms`;

/** Polls `probe` every `intervalMs` until it returns a value, or throws after `timeoutMs`. */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** Cleanups still to run; an interrupted run (Ctrl-C) runs them before it exits. */
const cleanups = new Set<() => Promise<void>>();
let exiting = false;
function cleanUpAndExit(code: number): void {
  if (exiting) return;
  exiting = true;
  void Promise.allSettled([...cleanups].map((c) => c())).then(() => process.exit(code));
}
// Listeners that stay (see onStopSignal): with `process.once`, a Ctrl-C while kwokctl ran killed the
// process before its cleanup.
onStopSignal((sig) => {
  log(`\n${sig}: cleaning up`);
  cleanUpAndExit(130);
});
// The stack's processes are detached: a crash must not leave them running.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    console.error(
      `bench:remediation: ${event}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    cleanUpAndExit(1);
  });
}

// ---------------------------------------------------------------------------------------------------
// The embedded stack. Not test/helpers/stack.ts: importing it registers a node:test hook, and the test
// runner then prints a TAP summary after the benchmark's last line.

interface BenchStack {
  readonly state: StackState;
  readonly config: Config;
  readonly kc: KubeConfig;
  readonly stop: () => Promise<void>;
}

async function startStack(nodes: number, name: string): Promise<BenchStack> {
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-bench-'));
  const config = loadConfig({
    ...process.env,
    FLEETMEDIC_STATE_DIR: stateDir,
    FLEETMEDIC_CLUSTER_ID: undefined,
  });
  // Ctrl-C while the stack starts: `up` stops what it has started (no record names it yet).
  const interrupt = new AbortController();
  let starting: Promise<unknown> | undefined;
  const stop = async () => {
    cleanups.delete(stop);
    interrupt.abort();
    await starting?.catch(() => {});
    await down(config, { purge: true }).catch(() => {});
    await fs.rm(stateDir, { recursive: true, force: true });
  };
  cleanups.add(stop);
  for (let attempt = 1; ; attempt++) {
    try {
      const ports = await pickStackPorts();
      const startingUp = up(config, { nodes, ports, clusterName: name, signal: interrupt.signal });
      starting = startingUp;
      const result = await startingUp;
      return { state: result.state, config, kc: loadKubeConfig(result.state.kube.kubeconfig), stop };
    } catch (err) {
      const transient =
        !interrupt.signal.aborted &&
        err instanceof FleetmedicError &&
        (err.code === 'PORT_IN_USE' || !err.permanent);
      await down(config, { purge: true }).catch(() => {});
      await fs.rm(path.join(stateDir, 'kwok'), { recursive: true, force: true });
      await fs.rm(path.join(stateDir, 'temporal'), { recursive: true, force: true });
      if (!transient || attempt >= 3) {
        await fs.rm(stateDir, { recursive: true, force: true });
        throw err;
      }
      log(`stack: attempt ${attempt} failed (${(err as Error).message.split('\n')[0]}); retrying`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Part 1: alert-to-cordon latency under a storm.

interface LatencyResult {
  /** Alert-to-cordon latencies of the measured nodes seen cordoned, in ms. */
  samples: number[];
  /** Measured nodes not cordoned within the timeout (the part stopped after that round). */
  censored: number;
  /** Why the part stopped early, when it did. */
  incomplete?: string;
}

/**
 * The cordon observer: bench/remediation-watch.ts in a child process holds one watch on all nodes
 * and times its events there (Date.now()), away from this process's event loop, which the control
 * worker keeps busy during a storm. For the nodes of the current round ({@link arm}) it records the
 * first arrival of an event showing `spec.unschedulable: true` (as performance.now() of this process);
 * for every node, whether the last event showed it cordoned (to check a restore reached the watch).
 */
class CordonWatch {
  readonly seen = new Map<string, number>();
  readonly cordoned = new Map<string, boolean>();
  private readonly armed = new Set<string>();
  private child: ReturnType<typeof spawn> | undefined;
  restarts = 0;

  constructor(private readonly kubeconfigPath: string) {}

  async start(): Promise<void> {
    const script = fileURLToPath(new URL('./remediation-watch.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, this.kubeconfigPath], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.child = child;
    const lines = readline.createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the node watch did not start within 60 s')), 60_000);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the node watch exited (${signal ?? `exit ${code}`})`));
      });
      lines.on('line', (line) => {
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
          return;
        }
        const e = JSON.parse(line) as { node?: string; cordoned?: boolean; at?: number; restart?: boolean };
        if (e.restart) this.restarts++;
        if (e.node === undefined || e.at === undefined) return;
        this.cordoned.set(e.node, e.cordoned === true);
        if (e.cordoned && this.armed.has(e.node) && !this.seen.has(e.node))
          this.seen.set(e.node, e.at - performance.timeOrigin);
      });
    });
  }

  /** Starts a round: `nodes` are measured from now on (they must be uncordoned already). */
  arm(nodes: readonly string[]): void {
    this.armed.clear();
    for (const n of nodes) {
      this.armed.add(n);
      this.seen.delete(n);
    }
  }

  stop(): void {
    this.child?.stdin?.end();
    this.child?.kill('SIGTERM');
  }
}

/**
 * Where a remediation's alert-to-cordon time goes, in ms: a partition of t0 -> the watch seeing the
 * cordon. Server event times for the start and the first workflow task; the local activities'
 * spans as this process timed them (wrappers around the activities the control worker runs; the
 * local-activity markers' own completion times are not usable: they run up to seconds early).
 */
interface Steps {
  /** t0 -> WorkflowExecutionStarted (the signal-with-start RPC). */
  accept: number;
  /** -> first WorkflowTaskStarted (queue wait for a poller and a slot of the control worker). */
  wftQueue: number;
  /** -> quarantineFailedNode started (the workflow code up to it, the local activity dispatched). */
  dispatch: number;
  /** its read of the node (for the episode check and the plan of the quarantine). */
  read: number;
  /** its breaker report (the shared fleet view, then a batched update on the fleet budget). */
  breaker: number;
  /** its quarantine (the cordon patch, planned from that read; a 409 reads again). */
  quarantine: number;
  /** the patch acknowledged -> the watch process saw the node cordoned. */
  observed: number;
}
const STEP_KEYS: (keyof Steps)[] = [
  'accept',
  'wftQueue',
  'dispatch',
  'read',
  'breaker',
  'quarantine',
  'observed',
];

/** Wall-clock spans (Date.now()) of a node's first run of each local activity, by activity. */
type Spans = Map<string, { start: number; end: number }>;

type History = Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>;

/** `accept=340/641 wftQueue=...`: the median and p99 of each step over `rows`, in ms. */
function stepColumns(rows: readonly Steps[]): string {
  return STEP_KEYS.map((k) => {
    const xs = rows.map((b) => b[k]).filter((x) => Number.isFinite(x));
    return `${k}=${ms(median(xs))}/${ms(pct(xs, 99))}`;
  }).join(' ');
}

function eventMs(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : NaN;
}

function stepsOf(
  history: History,
  spans: Spans | undefined,
  t0Wall: number,
  seenWall: number,
): Steps | undefined {
  const events = history.events ?? [];
  const at = (i: number) => (i < 0 ? NaN : eventMs(events[i]?.eventTime));
  const started = events.findIndex((e) => e.workflowExecutionStartedEventAttributes);
  const wftStarted = events.findIndex((e) => e.workflowTaskStartedEventAttributes);
  const all = spans?.get('quarantineFailedNode');
  const rd = spans?.get('read');
  const br = spans?.get('budgetReportFailure');
  const q = spans?.get('quarantine');
  if (started < 0 || wftStarted < 0 || !all || !rd || !br || !q) return undefined;
  return {
    accept: at(started) - t0Wall,
    wftQueue: at(wftStarted) - at(started),
    dispatch: all.start - at(wftStarted),
    read: br.start - all.start,
    breaker: q.start - br.start,
    quarantine: q.end - q.start,
    observed: seenWall - q.end,
  };
}

/**
 * What the remediations of `nodes` wait for, tallied: each one's pending activity (type, state,
 * attempt, last failure) or, with none, "workflow task".
 */
const ACTIVITY_STATES: Record<number, string> = {
  1: 'scheduled',
  2: 'started',
  3: 'cancel requested',
  4: 'paused',
};
async function whereStuck(client: Client, clusterId: string, nodes: readonly string[]): Promise<string> {
  const tally = new Map<string, number>();
  await pool(nodes, 16, async (n) => {
    let key: string;
    try {
      const d = await client.workflow.getHandle(remediationWorkflowId(clusterId, n)).describe();
      const a = d.raw.pendingActivities?.[0];
      key = a
        ? `${a.activityType?.name ?? '?'} (${ACTIVITY_STATES[Number(a.state)] ?? String(a.state)}, ` +
          `attempt ${a.attempt ?? 1}${a.lastFailure?.cause?.message ? `, last failure: ${a.lastFailure.cause.message.slice(0, 80)}` : a.lastFailure?.message ? `, last failure: ${a.lastFailure.message.slice(0, 80)}` : ''})`
        : `no activity pending (a workflow task), status ${d.status.name}`;
    } catch (err) {
      key = `describe failed: ${(err as Error).message.slice(0, 80)}`;
    }
    tally.set(key, (tally.get(key) ?? 0) + 1);
  });
  return [...tally.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v}x ${k}`)
    .join('; ');
}

/** Resident memory of a process, from /proc (0 when it is gone). */
async function rssOf(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

/** The embedded stack's processes (by command name), each with its resident memory now. */
const STACK_COMMANDS = [
  'temporal',
  'kube-apiserver',
  'etcd',
  'kwok-controller',
  'kube-controller',
  'kube-scheduler',
];
async function stackRss(): Promise<string> {
  const found: string[] = [];
  for (const [pid, { comm }] of await cpuByProcess()) {
    if (STACK_COMMANDS.some((c) => comm.startsWith(c))) found.push(`${comm} ${mib(await rssOf(pid))}`);
  }
  return found.sort().join(', ') || '(none found)';
}

/** CPU seconds used so far by every process on the machine, by pid, with its command name. */
async function cpuByProcess(): Promise<Map<number, { comm: string; cpuS: number }>> {
  const out = new Map<number, { comm: string; cpuS: number }>();
  const ticks = 100; // USER_HZ on Linux
  for (const entry of await fs.readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close < 0) continue;
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    // fields[11], fields[12]: utime, stime (fields 14 and 15 of proc(5), counted from the state).
    out.set(pid, { comm, cpuS: (Number(fields[11]) + Number(fields[12])) / ticks });
  }
  return out;
}

/** The processes that used the most CPU between two `cpuByProcess` samples, as "name pid: N s". */
function topCpu(
  before: Map<number, { comm: string; cpuS: number }>,
  after: Map<number, { comm: string; cpuS: number }>,
  names: ReadonlyMap<number, string>,
  count: number,
): string {
  return [...after.entries()]
    .map(([pid, a]) => ({ pid, name: names.get(pid) ?? a.comm, used: a.cpuS - (before.get(pid)?.cpuS ?? 0) }))
    .filter((x) => x.used > 0.05)
    .sort((x, y) => y.used - x.used)
    .slice(0, count)
    .map((x) => `${x.name} ${x.used.toFixed(1)} s`)
    .join(', ');
}

/**
 * Waits until the machine is quiet: every process together used less than a third of a core over
 * two consecutive seconds (the terminated round's leftovers, the restored nodes' updates, the
 * controllers reacting to them have settled), at most 30 s. Rounds are repetitions: each starts on a
 * stack that is no longer busy with the one before. Returns the seconds waited.
 */
async function untilQuiet(names: ReadonlyMap<number, string>): Promise<{ seconds: number; busy?: string }> {
  const started = performance.now();
  const first = await cpuByProcess();
  let quiet = 0;
  let before = first;
  while (performance.now() - started < 30_000 && quiet < 2) {
    await sleep(1_000);
    const after = await cpuByProcess();
    let used = 0;
    for (const [pid, a] of after) used += a.cpuS - (before.get(pid)?.cpuS ?? a.cpuS);
    before = after;
    quiet = used < 0.33 ? quiet + 1 : 0;
  }
  const seconds = (performance.now() - started) / 1000;
  // Never quiet: who kept the machine busy.
  return quiet < 2 ? { seconds, busy: topCpu(first, before, names, 4) } : { seconds };
}

interface AgentHost {
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Starts bench/remediation-agents.ts in a child process and waits until its Workers run. Its stdin
 * stays with us: the child ends if this process dies; `stop` asks it to shut down, then kills it.
 */
async function startAgentHost(args: {
  address: string;
  namespace: string;
  clusterId: string;
  nodes: number;
  gpuDir: string;
  agentPolls: 'sdk' | number;
  spreadMs: number;
}): Promise<AgentHost> {
  const script = fileURLToPath(new URL('./remediation-agents.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(args)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    cleanups.delete(stop);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    if (await Promise.race([exited.then(() => true), sleep(40_000, false)])) return;
    child.kill('SIGKILL');
    await exited;
  };
  cleanups.add(stop);
  const lines = readline.createInterface({ input: child.stdout });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the node agents did not start within 180 s')),
        180_000,
      );
      lines.on('line', (line) => {
        if (line.startsWith('ready ')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(
          new Error(`the node agents' process exited before it was ready (${signal ?? `exit ${code}`})`),
        );
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, stop };
}

/** A Temporal dev server like the stack's, with a higher concurrent-poller limit per namespace. */
async function startTemporalWithPollerLimit(
  stack: BenchStack,
  limit: number,
): Promise<{ address: string; metricsPort: number; stop: () => Promise<void> }> {
  const binary = (await resolveTool('temporal', { cacheDir: stack.config.cacheDir })).path;
  const dataDir = path.join(stack.config.stateDir, 'bench-temporal');
  await fs.mkdir(dataDir, { recursive: true });
  const [port, uiPort, httpPort, metricsPort] = await pickFreePorts(4);
  const args = temporalServerArgs({
    binary,
    dataDir,
    port: port!,
    uiPort: uiPort!,
    httpPort: httpPort!,
    metricsPort: metricsPort!,
    namespace: stack.state.temporal.namespace,
  });
  args.push('--dynamic-config-value', `frontend.namespaceCount=${limit}`);
  // One partition per task queue: a node's queue carries a few tasks per remediation, and 4 partitions
  // (the default) x 1,500 queues costs the dev server twice the CPU and memory while idle.
  args.push('--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1');
  args.push('--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1');
  for (const kv of EXTRA_DYNAMIC_CONFIG) args.push('--dynamic-config-value', kv);
  const proc = startDetached(binary, args, { logFile: path.join(dataDir, 'temporal.log') });
  const stop = async () => {
    cleanups.delete(stop);
    await stopProcess(proc, 15_000).catch(() => {});
  };
  cleanups.add(stop);
  const address = `127.0.0.1:${port}`;
  await until(
    'the benchmark Temporal dev server',
    () => temporalHealthy(address).then((ok) => ok || undefined),
    60_000,
  );
  return { address, metricsPort: metricsPort!, stop };
}

/** The frontend's gauge of in-flight PollActivityTaskQueue calls in the default namespace. */
async function pendingPolls(metricsPort: number): Promise<number | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, {
      signal: AbortSignal.timeout(5_000),
    });
    const text = await res.text();
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('service_pending_requests{') &&
          l.includes('namespace="default"') &&
          l.includes('operation="PollActivityTaskQueue"'),
      );
    return line ? Number(line.split(' ').at(-1)) : undefined;
  } catch {
    return undefined;
  }
}

/** The size of a latency part: the main one (the knobs) or the opt-in scale round. */
interface LatencyShape {
  readonly nodes: number;
  readonly failing: number;
  readonly rounds: number;
  readonly warmup: number;
  readonly label: string;
}

async function latencyPart(
  shape: LatencyShape = { nodes: NODES, failing: FAILING, rounds: ROUNDS, warmup: WARMUP, label: 'part 1' },
): Promise<LatencyResult> {
  // The part's own size, under the names the main part's knobs have.
  const { nodes: NODES, failing: FAILING, rounds: ROUNDS, warmup: WARMUP } = shape;
  log(`\n== ${shape.label}: alert-to-cordon latency (${FAILING} of ${NODES} nodes failing at once) ==`);
  const upStarted = performance.now();
  const stack = await startStack(NODES, `fmbench-${process.pid}`);
  let agentHost: AgentHost | undefined;
  let control: { workers: Worker[]; running: Promise<unknown> } | undefined;
  const samples: number[] = [];
  /** Alert-to-cordon by the patch's acknowledgement (the watch's samples are the headline). */
  const ackSamples: number[] = [];
  let censored = 0;
  let incomplete: string | undefined;
  let connection: NativeConnection | undefined;
  let ownTemporal: { address: string; metricsPort: number; stop: () => Promise<void> } | undefined;
  let watch: CordonWatch | undefined;
  try {
    const upSeconds = (performance.now() - upStarted) / 1000;
    const ready = await readySimNodes(stack.kc);
    log(`stack: ${ready.length}/${NODES} simulated nodes Ready; up took ${upSeconds.toFixed(1)} s`);
    if (ready.length < NODES) throw new Error(`only ${ready.length} of ${NODES} nodes Ready`);
    {
      // budgetReportFailure's fleet view is a list of every node (shared, at most one a second): its cost.
      const core = stack.kc.makeApiClient(CoreV1Api);
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await core.listNode();
        times.push(performance.now() - t);
      }
      log(`one listNode of all ${NODES} nodes from this process (idle): median ${ms(median(times))} ms of 3`);
    }
    const clusterId = stack.state.clusterId;
    const nodes = Array.from({ length: NODES }, (_, i) => `gpu-node-${i + 1}`);

    let address = stack.state.temporal.address;
    if (POLLER_LIMIT > 0) {
      ownTemporal = await startTemporalWithPollerLimit(stack, POLLER_LIMIT);
      address = ownTemporal.address;
      log(
        `temporal: a dev server like the stack's (same CLI and arguments) plus --dynamic-config-value ` +
          `frontend.namespaceCount=${POLLER_LIMIT} (with the default, 1200 concurrent long polls per namespace ` +
          `and API, ${NODES} agents' polls fail with ResourceExhausted "namespace concurrent poller limit ` +
          `exceeded" and retry without end) and matching.numTaskqueue{Read,Write}Partitions=1` +
          (EXTRA_DYNAMIC_CONFIG.length ? `, plus ${EXTRA_DYNAMIC_CONFIG.join(' ')}` : ''),
      );
    } else {
      log(
        `temporal: the stack's dev server, default frontend.namespaceCount (1200 concurrent polls per namespace)`,
      );
    }
    connection = await NativeConnection.connect({ address });
    const clientConnection = await Connection.connect({ address });
    const client = new Client({ connection: clientConnection });
    const taskQueue = `fleetmedic-bench-remediation-${process.pid}`;
    const workflowBundle = await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent });
    const gpuDir = path.join(stack.config.stateDir, 'bench-gpus');
    const gpus = new FileGpuStateStore(gpuDir);
    const agentsStarted = performance.now();
    agentHost = await startAgentHost({
      address,
      namespace: stack.state.temporal.namespace,
      clusterId,
      nodes: NODES,
      gpuDir,
      agentPolls: AGENT_POLLS,
      spreadMs: AGENT_SPREAD_S * 1000,
    });
    const agentsSeconds = (performance.now() - agentsStarted) / 1000;
    await sleep(5_000);
    const rssAgents = await rssOf(agentHost.pid);
    log(
      `node agents: ${NODES} Workers (createNodeAgentWorkers: one per node task queue) in a child process ` +
        `(pid ${agentHost.pid}, bench/remediation-agents.ts), running after ${agentsSeconds.toFixed(1)} s ` +
        `(started one after another over ${AGENT_SPREAD_S} s, as agents on real nodes start independently: ` +
        `FLEETMEDIC_BENCH_AGENT_SPREAD_S); ` +
        `its RSS ${mib(rssAgents)} (${(rssAgents / NODES / 1024).toFixed(0)} KiB per agent)`,
    );
    if (ownTemporal) {
      const polls = await pendingPolls(ownTemporal.metricsPort);
      log(
        `activity long polls held by the Temporal frontend with the ${NODES} node agents running: ` +
          `${polls ?? '?'} (~${polls ? (polls / NODES).toFixed(1) : '?'} per agent). ` +
          (AGENT_POLLS === 'sdk'
            ? `createNodeAgentWorkers as it is (activityTaskPollerBehavior simple-maximum 1)`
            : `agents given activityTaskPollerBehavior simple-maximum ${AGENT_POLLS} ` +
              `(FLEETMEDIC_BENCH_AGENT_POLLS=${AGENT_POLLS})`),
      );
    }

    // One control worker for all rounds. Between rounds the round's remediations are terminated and
    // the worker is let drain its in-flight activities: rounds are repetitions, not a backlog. The
    // fleet budget runs on, as it does in production (the drain slot of a terminated remediation is
    // recovered by the next request for one; the breaker is disabled, see BUDGET).
    const c = client;
    const core = stack.kc.makeApiClient(CoreV1Api);
    watch = new CordonWatch(stack.state.kube.kubeconfig);
    await watch.start();
    // The alert-to-cordon activities as they are, timed: when each ran for each node, and when the
    // API server acknowledged each node's cordon patch (the moment the node is cordoned; the watch
    // then shows it to observers). One support instance replaces the worker's for these two.
    const acked = new Map<string, number>();
    const spans = new Map<string, Spans>();
    const k8sActivities = createKubernetesActivities({ kc: stack.kc, clusterId });
    const supportActivities = createRemediationSupportActivities({
      kc: stack.kc,
      client: c,
      clusterId,
      taskQueue: budgetTaskQueue(taskQueue),
      budgetConfig: BUDGET,
    });
    const quarantineSteps = createQuarantineSteps({ kc: stack.kc, clusterId });
    /** `run`, recording the span of its first call for each node (`nodeOf` names the node). */
    function timed<A extends unknown[], R>(
      name: string,
      nodeOf: (...args: A) => string,
      run: (...args: A) => Promise<R>,
    ) {
      return async (...args: A): Promise<R> => {
        const start = Date.now();
        const result = await run(...args);
        const key = nodeOf(...args);
        const node = spans.get(key) ?? (new Map() as Spans);
        if (!node.has(name)) node.set(name, { start, end: Date.now() });
        spans.set(key, node);
        if (name === 'quarantine' && !acked.has(key)) acked.set(key, performance.now());
        return result;
      };
    }
    const timedQuarantine = createQuarantineActivities({
      support: {
        budgetReportFailure: timed(
          'budgetReportFailure',
          (i: { node: string }) => i.node,
          (i) => supportActivities.budgetReportFailure(i),
        ),
        budgetAcquire: (i) => supportActivities.budgetAcquire(i),
      },
      kubernetes: { getNode: (i) => k8sActivities.getNode(i) },
      steps: {
        read: timed(
          'read',
          (name: string) => name,
          (name) => quarantineSteps.read(name),
        ),
        quarantine: timed(
          'quarantine',
          (i: QuarantineNodeInput) => i.node,
          (i: QuarantineNodeInput, current?: V1Node) => quarantineSteps.quarantine(i, current),
        ),
      },
    });
    const timedActivities = {
      requestDrainSlot: (i: { node: string }) => timedQuarantine.requestDrainSlot(i),
      quarantineFailedNode: timed(
        'quarantineFailedNode',
        (i: QuarantineFailedNodeInput) => i.node,
        (i) => timedQuarantine.quarantineFailedNode(i),
      ),
    };
    const controlWorkers = await createControlWorkers({
      connection,
      client: c,
      kc: stack.kc,
      clusterId,
      taskQueue,
      workflowBundle,
      budgetConfig: BUDGET,
      ...(CONTROL_TUNING && { tuning: CONTROL_TUNING }),
      extraActivities: timedActivities,
    });
    control = { workers: controlWorkers, running: Promise.all(controlWorkers.map((w) => w.run())) };
    async function endRound(round: readonly string[]): Promise<number> {
      await pool(round, 32, async (n) => {
        await c.workflow
          .getHandle(remediationWorkflowId(clusterId, n))
          .terminate('benchmark round finished')
          .catch(() => {});
      });
      const t = performance.now();
      await until(
        'the control worker idle',
        () => {
          const idle = controlWorkers.every((w) => {
            const st = w.getStatus();
            return st.numInFlightActivities === 0 && st.numInFlightWorkflowActivations === 0;
          });
          return Promise.resolve(idle ? true : undefined);
        },
        120_000,
        250,
      ).catch((err: Error) => log(`  ${err.message}`));
      const idleS = (performance.now() - t) / 1000;
      await restoreNodes(round);
      return idleS;
    }

    /**
     * What an operator does after deciding a node is fine: uncordon it and remove what fleetmedic
     * wrote (quarantine taint and label, cordon record, remediation and episode history), then wait
     * until the watch has seen every node schedulable again, so the next round starts clean.
     */
    async function restoreNodes(round: readonly string[]): Promise<void> {
      await pool(round, 16, async (name) => {
        const node = await core.readNode({ name });
        await core.patchNode({ name, body: liftQuarantinePatch(node, { forgetHistory: true }) }, mergePatch);
        await gpus.set(name, healthyGpuState(name));
      });
      const w = watch!;
      await until(
        `the node watch seeing ${round.length} restored nodes uncordoned`,
        () => Promise.resolve(round.every((n) => w.cordoned.get(n) === false) ? true : undefined),
        60_000,
        100,
      ).catch(() => {
        const still = round.filter((n) => w.cordoned.get(n) !== false);
        throw new Error(
          `node ${still[0]}${still.length > 1 ? ` and ${still.length - 1} more` : ''} still cordoned 60 s after the restore`,
        );
      });
    }

    async function describeBudget(): Promise<void> {
      const budget = await c.workflow
        .getHandle(fleetBudgetWorkflowId(clusterId))
        .describe()
        .catch(() => undefined);
      if (budget)
        log(
          `  fleet budget workflow after the round: ${budget.historyLength} events, ` +
            `${((budget.historySize ?? 0) / 1024 / 1024).toFixed(1)} MiB of history, ` +
            `${String(budget.raw.workflowExecutionInfo?.stateTransitionCount ?? '?')} state transitions`,
        );
    }

    await sleep(1_000);
    log(
      `control worker (one, in this process): task queue ${taskQueue}, budgetConfig ` +
        `${JSON.stringify(BUDGET)} (breaker and healthy-fraction guard disabled so the budget does not stop ` +
        `the storm); workflow policy: defaults (storm damping: with ${DEFAULT_REMEDIATION_POLICY.stormFailures} ` +
        `or more nodes failed within a minute, triage waits ${DEFAULT_REMEDIATION_POLICY.stormSettleMs} ms ` +
        `after the cordon, so each round's workflows are terminated before their triage); control worker ` +
        `slots and pollers: ` +
        `${JSON.stringify({ ...CONTROL_WORKER_TUNING, ...CONTROL_TUNING })}` +
        (CONTROL_TUNING ? ' (FLEETMEDIC_BENCH_CONTROL_TUNING)' : ' (CONTROL_WORKER_TUNING as it is)'),
    );
    log(`RSS of this process (control worker, node watch, client): ${mib(process.memoryUsage().rss)}`);

    let peakAgents = rssAgents;
    let peakSelf = process.memoryUsage().rss;
    const host = agentHost;
    const sampler = setInterval(() => {
      peakSelf = Math.max(peakSelf, process.memoryUsage().rss);
      void rssOf(host.pid).then((r) => (peakAgents = Math.max(peakAgents, r)));
    }, 500);
    sampler.unref();

    const acks: number[] = [];
    const breakdown: Steps[] = [];
    const taskTrouble = { timedOut: 0, failed: 0 };
    // Nodes spread over the fleet: a fixed shuffle of the node list, taken in turn (round after round
    // wraps around; the nodes are restored between rounds).
    const order = [...nodes];
    let seed = 42;
    for (let i = order.length - 1; i > 0; i--) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const j = seed % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let cursor = 0;
    const take = (count: number): string[] =>
      Array.from({ length: count }, () => order[cursor++ % order.length]!);
    /**
     * Adds where the alert-to-cordon time of `cordoned` went, from their histories, to `breakdown`;
     * answers how many of them waited for the storm to settle (a timer before the first activity,
     * triage).
     */
    async function collectBreakdown(
      cordoned: readonly string[],
      t0Wall: Map<string, number>,
    ): Promise<number> {
      let settling = 0;
      await pool(cordoned, 16, async (n) => {
        const h = await c.workflow
          .getHandle(remediationWorkflowId(clusterId, n))
          .fetchHistory()
          .catch(() => undefined);
        const seen = watch!.seen.get(n);
        const steps =
          h && seen !== undefined && stepsOf(h, spans.get(n), t0Wall.get(n)!, performance.timeOrigin + seen);
        if (steps) breakdown.push(steps);
        // Workflow tasks that timed out or failed before the cordon (each costs a retry of the task).
        let timer = false;
        for (const e of h?.events ?? []) {
          if (e.activityTaskScheduledEventAttributes) break; // the first one comes after the cordon
          if (e.workflowTaskTimedOutEventAttributes) taskTrouble.timedOut++;
          if (e.workflowTaskFailedEventAttributes) taskTrouble.failed++;
          if (e.timerStartedEventAttributes) timer = true;
        }
        if (timer) settling++;
      });
      return settling;
    }
    const totalRounds = ROUNDS + (WARMUP > 0 ? 1 : 0);
    for (let r = 0; r < totalRounds; r++) {
      const warm = WARMUP > 0 && r === 0;
      const round = warm ? take(WARMUP) : take(FAILING);
      const label = warm ? 'warm-up' : `round ${r - (WARMUP > 0 ? 1 : 0) + 1}`;
      for (const n of round) await gpus.set(n, withFault(await gpus.get(n), { gpu: 3, xid: 79 }));
      const notReady = round.filter((n) => watch!.cordoned.get(n) !== false);
      if (notReady.length > 0)
        throw new Error(`node ${notReady[0]} is cordoned (or unknown to the watch) before its round started`);
      watch.arm(round);
      for (const n of round) {
        acked.delete(n);
        spans.delete(n);
      }
      const t0 = new Map<string, number>();
      const t0Wall = new Map<string, number>();
      const ack = new Map<string, number>();
      const failures: string[] = [];
      let retries = 0;
      const roundStart = performance.now();
      const cpuBefore = await cpuByProcess();
      await Promise.all(
        round.map(async (node) => {
          t0Wall.set(node, Date.now());
          t0.set(node, performance.now());
          const alert = {
            alertName: 'GpuXidError',
            status: 'firing' as const,
            episodeKey: `bench-${process.pid}-${node}@${new Date().toISOString()}`,
            xid: 79,
            gpu: 3,
            source: 'bench',
          };
          // A webhook whose call fails retries it; the clock keeps running from the first attempt.
          for (let attempt = 1; ; attempt++) {
            try {
              await startOrJoinRemediation(c, { clusterId, node, taskQueue, alert });
              ack.set(node, performance.now() - t0.get(node)!);
              break;
            } catch (err) {
              if (attempt >= 3) {
                failures.push(`${node}: ${(err as Error).message}`);
                break;
              }
              retries++;
              await sleep(500);
            }
          }
        }),
      );
      if (retries) log(`  ${retries} signal-with-start call(s) failed and were retried`);
      if (failures.length) log(`  ${failures.length} signal-with-start call(s) failed: ${failures[0]}`);
      const fired = performance.now();
      const w = watch;
      try {
        await until(
          `cordon of ${round.length} nodes`,
          () => Promise.resolve(round.every((n) => w.seen.has(n)) ? true : undefined),
          CORDON_TIMEOUT_MS,
          50,
        );
      } catch {
        // A round that misses the timeout ends the part: its cordoned nodes count, the others are
        // reported as not cordoned (the last line then gives lower bounds), with where they wait.
        const missing = round.filter((n) => !w.seen.has(n));
        const done = round.filter((n) => w.seen.has(n)).map((n) => w.seen.get(n)! - t0.get(n)!);
        incomplete =
          `${label}: node ${missing[0]}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''} not ` +
          `cordoned after ${CORDON_TIMEOUT_MS / 1000} s` +
          (failures.length ? `; signal-with-start failed for ${failures.length}: ${failures[0]}` : '');
        log(`${label}: ${round.length} alerts fired in ${ms(fired - roundStart)} ms; ${incomplete}`);
        log(`  cordoned within the timeout: ${stats(done)}`);
        log(`  what the ${missing.length} others wait for: ${await whereStuck(c, clusterId, missing)}`);
        await describeBudget();
        if (!warm) {
          samples.push(...done);
          censored += missing.length;
          acks.push(...ack.values());
          await collectBreakdown(
            round.filter((n) => w.seen.has(n)),
            t0Wall,
          );
        }
        break;
      }
      const lat = round.map((n) => w.seen.get(n)! - t0.get(n)!);
      // When the watch saw the cordons, per second from the first alert: a stall shows as a run of zeros.
      const perSecond: number[] = [];
      for (const n of round) {
        const sec = Math.floor((w.seen.get(n)! - roundStart) / 1000);
        while (perSecond.length <= sec) perSecond.push(0);
        perSecond[sec]!++;
      }
      const cpuAfter = await cpuByProcess();
      const cpuNames = new Map<number, string>([
        [process.pid, 'bench+control worker'],
        [host.pid, 'node agents'],
      ]);
      log(
        `${label}: ${round.length} alerts fired in ${ms(fired - roundStart)} ms (signal-with-start ack ` +
          `p50 ${ms(pct([...ack.values()], 50))} ms, max ${ms(Math.max(...ack.values()))} ms); alert->cordon ` +
          `${stats(lat)}`,
      );
      const ackLat = round.filter((n) => acked.has(n)).map((n) => acked.get(n)! - t0.get(n)!);
      log(
        `  alert->cordon patch acknowledged by the API server (quarantineNode's patch returned): ${stats(ackLat)}`,
      );
      log(`  cordons per second since the first alert: ${perSecond.join(' ')}`);
      log(
        `  CPU used from the first alert to the last cordon (${((performance.now() - roundStart) / 1000).toFixed(1)} s ` +
          `on ${os.cpus().length} cores), top processes: ${topCpu(cpuBefore, cpuAfter, cpuNames, 6)}`,
      );
      if (!warm) {
        samples.push(...lat);
        ackSamples.push(...ackLat);
        acks.push(...ack.values());
        const from = breakdown.length;
        const settling = await collectBreakdown(round, t0Wall);
        log(
          `  where this round's time went (median/p99 ms): ${stepColumns(breakdown.slice(from))}; ` +
            `${settling} of ${round.length} waited for the storm to settle before triage`,
        );
      }
      const roundS = (performance.now() - roundStart) / 1000;
      await describeBudget();
      const drainS = await endRound(round);
      const quiet = await untilQuiet(cpuNames);
      const quietS = quiet.seconds;
      log(
        `  round took ${roundS.toFixed(0)} s, then its workflows were terminated (the fleet budget runs ` +
          `on) and the control worker idle after ${drainS.toFixed(0)} s; the machine ` +
          `quiet ${quietS.toFixed(0)} s later${quiet.busy ? ` (not quiet yet; CPU over those 30 s: ${quiet.busy})` : ''}; ` +
          `RSS now ${mib(process.memoryUsage().rss)}`,
      );
    }
    clearInterval(sampler);
    log(
      `overall (${ROUNDS} rounds${incomplete ? `, stopped early: ${incomplete}` : ''}): alert->cordon ` +
        `${stats(samples)}${censored ? ` cordoned, ${censored} not cordoned within the timeout` : ''}`,
    );
    log(
      `overall, by the API server's acknowledgement of the cordon patch instead of the watch: alert->cordon ` +
        `${stats(ackSamples)}`,
    );
    log(`signal-with-start ack: p50 ${ms(pct(acks, 50))} ms, p99 ${ms(pct(acks, 99))} ms`);
    log(
      `where the time goes (median/p99 ms over ${breakdown.length} cordoned nodes, consecutive steps from t0 to ` +
        `the watch seeing the cordon): ${stepColumns(breakdown)}` +
        ` (workflow tasks before the cordon that timed out: ${taskTrouble.timedOut}, failed: ${taskTrouble.failed})`,
    );
    log(
      `  accept: signal-with-start -> WorkflowExecutionStarted; wftQueue: -> first workflow task started ` +
        `(a poller and a slot of the control worker; server times); then its one local activity, ` +
        `quarantineFailedNode (this process's clock): dispatch (the workflow code and the dispatch before ` +
        `it), read (the node, for the episode check and the plan), breaker (budgetReportFailure: the shared ` +
        `fleet view, then a batched update on the fleet budget workflow), quarantine (the cordon patch ` +
        `planned from the read; a 409 reads again); ` +
        `observed: the patch acknowledged -> the watch process saw it`,
    );
    log(
      `peak RSS during the storms: node agents' process ${mib(peakAgents)}, this process ${mib(peakSelf)}; ` +
        `node watch reconnects: ${watch.restarts}`,
    );
    log(`RSS of the stack's processes after the storms: ${await stackRss()}`);
    const warnings = [...sdkWarnings.entries()].sort((a, b) => b[1] - a[1]);
    log(
      `Temporal SDK warnings so far (counted, not printed; activities failing with WorkflowNotFoundError or ` +
        `"workflow execution already completed" come from terminating each round): ` +
        (warnings.length ? warnings.map(([k, n]) => `${n}x "${k}"`).join('; ') : 'none'),
    );
    return { samples, censored, incomplete };
  } catch (err) {
    if (!exiting) log(`part 1 failed: ${err instanceof Error ? err.message : String(err)}`);
    throw err;
  } finally {
    watch?.stop();
    if (control) {
      for (const w of control.workers) w.shutdown();
      await Promise.race([control.running.catch(() => {}), sleep(60_000)]);
    }
    await agentHost?.stop();
    await connection?.close().catch(() => {});
    // The client connection stays open: closing it while an activity's client call waits to retry (an
    // interrupted round) throws "Channel has been shut down" from a timer. The process exits soon.
    await ownTemporal?.stop();
    await stack.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// Part 2: fleetmedic's drainNode vs kubectl drain on identical nodes.

interface DrainRun {
  tool: 'fleetmedic' | 'kubectl';
  seconds: number;
  evicted: number;
  refused429: number;
  other: string;
}

const POOL_LABEL = 'bench.fleetmedic.io/pool-';

interface DrainFigures {
  /** fleetmedic / kubectl drain time, median over rounds; without and with PDBs. */
  ratio: number;
  pdbRatio: number;
  /** 429-refused evictions over all rounds of both cases, per tool. */
  refused429: Record<DrainRun['tool'], number>;
}

function workload(name: string, pool: string): V1Deployment {
  const labels = { app: name };
  return {
    metadata: { name, labels },
    spec: {
      replicas: REPLICAS,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          // Only the target node carries the pool label when the pods are placed; the spare nodes get it
          // afterwards, so replacements of evicted pods have somewhere to go.
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                  { matchExpressions: [{ key: `${POOL_LABEL}${pool}`, operator: 'Exists' }] },
                ],
              },
            },
          },
          terminationGracePeriodSeconds: 30,
          containers: [{ name: 'server', image: 'sim/llm', resources: { requests: { cpu: '10m' } } }],
        },
      },
    },
  };
}

async function drainPart(): Promise<DrainFigures> {
  log(`\n== part 2: drainNode vs kubectl drain (${DRAIN_NODES}-node stack) ==`);
  const stack = await startStack(DRAIN_NODES, `fmdrain-${process.pid}`);
  try {
    // Only the toolchain's cached build: an empty environment, so no FLEETMEDIC_KUBECTL_BIN is consulted.
    const kubectl = (await resolveTool('kubectl', { cacheDir: stack.config.cacheDir, env: {} })).path;
    const kubeconfig = stack.state.kube.kubeconfig;
    const core = stack.kc.makeApiClient(CoreV1Api);
    const apps = stack.kc.makeApiClient(AppsV1Api);
    const pdbs = stack.kc.makeApiClient(PolicyV1Api);
    const acts = createKubernetesActivities({ kc: stack.kc, clusterId: stack.state.clusterId });
    const nodes = Array.from({ length: DRAIN_NODES }, (_, i) => `gpu-node-${i + 1}`);
    const [A, B] = [nodes[0]!, nodes[1]!];
    const spares = nodes.slice(2);
    log(
      `parameters: nodes A=${A} (fleetmedic) B=${B} (kubectl), ${spares.length} spare nodes; ` +
        `workload per node ${DEPLOYMENTS} Deployments x ${REPLICAS} pods (cpu 10m, grace 30 s, required node affinity ` +
        `to the target until placed); fleetmedic: cordon + drainNode (MockActivityEnvironment) with ` +
        (DRAIN_CONCURRENCY === undefined
          ? `the workflow's settings (concurrency: the activity's default, 5; deleteEmptyDirData)`
          : `concurrency ${DRAIN_CONCURRENCY} (FLEETMEDIC_BENCH_DRAIN_CONCURRENCY), deleteEmptyDirData`) +
        `; kubectl: ${kubectl} drain --ignore-daemonsets --delete-emptydir-data -v=6 --kubeconfig <the stack's>`,
    );

    const setPool = async (node: string, pools: Record<string, string | null>) =>
      core.patchNode({ name: node, body: { metadata: { labels: pools } } }, mergePatch);
    const setCordon = async (node: string, on: boolean) =>
      core.patchNode({ name: node, body: { spec: { unschedulable: on } } }, mergePatch);
    const podsOn = async (node: string, ns: string) =>
      (await core.listNamespacedPod({ namespace: ns, fieldSelector: `spec.nodeName=${node}` })).items;

    async function drainFleetmedic(node: string): Promise<DrainRun> {
      const t = performance.now();
      await setCordon(node, true);
      const envr = new MockActivityEnvironment({ attempt: 1 }, { logger: silent });
      const r: DrainNodeResult = await envr.run(acts.drainNode, {
        node,
        workflowId: 'bench-drain',
        deleteEmptyDirData: true,
        concurrency: DRAIN_CONCURRENCY,
      });
      return {
        tool: 'fleetmedic',
        seconds: (performance.now() - t) / 1000,
        evicted: r.evicted,
        refused429: r.refused429,
        other: `alreadyGone=${r.alreadyGone}`,
      };
    }

    async function drainKubectl(node: string): Promise<DrainRun> {
      const t = performance.now();
      // -v=6 logs every request with its status: the 429 count is checked against the text output.
      const out = await execa(
        kubectl,
        ['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '-v=6', '--kubeconfig', kubeconfig],
        {
          all: true,
          reject: false,
          timeout: 600_000,
          env: { HOME: stack.config.stateDir },
          extendEnv: false,
        },
      );
      const seconds = (performance.now() - t) / 1000;
      if (knobs.FLEETMEDIC_BENCH_KUBECTL_LOG)
        await fs.writeFile(`${knobs.FLEETMEDIC_BENCH_KUBECTL_LOG}.${node}.${Date.now()}.log`, out.all ?? '');
      if (out.timedOut) throw new Error(`kubectl drain ${node} did not finish within 600 s`);
      if (out.exitCode !== 0)
        throw new Error(`kubectl drain ${node} failed (exit ${out.exitCode}): ${out.all?.slice(-2000)}`);
      // kubectl prints "evicting pod NS/NAME" before every attempt, "error when evicting pods/... (will
      // retry after 5s): Cannot evict pod as it would violate the pod's disruption budget." for each 429
      // and "pod/NAME evicted" once the pod is gone.
      const lines = (out.all ?? '').split('\n');
      const count = (re: RegExp) => lines.filter((l) => re.test(l)).length;
      const attempts = count(/^evicting pod /);
      const refused = count(/^error when evicting pods\/.*will retry after .*disruption budget/);
      const evicted = count(/^pod\/\S+ evicted$/);
      let http429 = 0;
      let http201 = 0;
      for (const line of lines) {
        if (!/POST/.test(line) || !/\/eviction/.test(line)) continue;
        const code = /status="(\d{3})|\b(\d{3}) [A-Z][A-Za-z ]* in \d+ milliseconds/.exec(line);
        const status = Number(code?.[1] ?? code?.[2]);
        if (status === 201) http201++;
        else if (status === 429) http429++;
      }
      if (http429 !== refused || http201 !== attempts - refused)
        log(
          `  warning: kubectl's text output (${attempts} attempts, ${refused} refused) and its request log ` +
            `(${http201} x 201, ${http429} x 429) disagree`,
        );
      const throttled = count(/client-side throttling/);
      return {
        tool: 'kubectl',
        seconds,
        evicted,
        refused429: refused,
        other: `attempts ${attempts}, requests delayed by client-side throttling ${throttled}`,
      };
    }

    async function runCase(
      label: string,
      withPdb: boolean,
      rounds: number,
    ): Promise<{ ratios: number[]; runs: DrainRun[] }> {
      const ratios: number[] = [];
      const runs: DrainRun[] = [];
      for (let r = 0; r < rounds; r++) {
        // Fresh state: both targets uncordoned and the only nodes of their pool.
        for (const n of [A, B]) await setCordon(n, false);
        for (const n of spares) await setPool(n, { [`${POOL_LABEL}a`]: null, [`${POOL_LABEL}b`]: null });
        await setPool(A, { [`${POOL_LABEL}a`]: 'true', [`${POOL_LABEL}b`]: null });
        await setPool(B, { [`${POOL_LABEL}b`]: 'true', [`${POOL_LABEL}a`]: null });
        const suffix = Math.random().toString(36).slice(2, 7);
        const ns = { a: `bench-${label}-a-${suffix}`, b: `bench-${label}-b-${suffix}` };
        try {
          for (const [pool, name] of Object.entries(ns)) {
            await core.createNamespace({ body: { metadata: { name } } });
            for (let d = 0; d < DEPLOYMENTS; d++) {
              await apps.createNamespacedDeployment({ namespace: name, body: workload(`llm-${d}`, pool) });
              if (withPdb)
                await pdbs.createNamespacedPodDisruptionBudget({
                  namespace: name,
                  body: {
                    metadata: { name: `llm-${d}` },
                    spec: { maxUnavailable: 1, selector: { matchLabels: { app: `llm-${d}` } } },
                  },
                });
            }
          }
          const total = DEPLOYMENTS * REPLICAS;
          const placed = performance.now();
          for (const [node, name] of [
            [A, ns.a],
            [B, ns.b],
          ] as const) {
            await until(
              `${total} Ready pods on ${node}`,
              async () => {
                const pods = await podsOn(node, name);
                const ready = pods.filter((p) =>
                  p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
                );
                return ready.length === total ? true : undefined;
              },
              180_000,
              500,
            );
            if (withPdb)
              await until(
                `PDBs of ${name} allowing 1 disruption`,
                async () => {
                  const list = await pdbs.listNamespacedPodDisruptionBudget({ namespace: name });
                  return list.items.length === DEPLOYMENTS &&
                    list.items.every(
                      (p) => p.status?.disruptionsAllowed === 1 && p.status.currentHealthy === REPLICAS,
                    )
                    ? true
                    : undefined;
                },
                60_000,
                500,
              );
          }
          // Now the replacements may go to the spare nodes.
          for (const n of spares)
            await setPool(n, { [`${POOL_LABEL}a`]: 'true', [`${POOL_LABEL}b`]: 'true' });
          const setupS = (performance.now() - placed) / 1000;
          const order =
            r % 2 === 0 ? (['fleetmedic', 'kubectl'] as const) : (['kubectl', 'fleetmedic'] as const);
          const got: Partial<Record<DrainRun['tool'], DrainRun>> = {};
          for (const tool of order) {
            const node = tool === 'fleetmedic' ? A : B;
            const run = tool === 'fleetmedic' ? await drainFleetmedic(node) : await drainKubectl(node);
            const left = await podsOn(node, tool === 'fleetmedic' ? ns.a : ns.b);
            if (left.length > 0)
              log(`  warning: ${left.length} workload pods still on ${node} after ${tool}`);
            got[tool] = run;
            runs.push(run);
          }
          const f = got.fleetmedic!;
          const k = got.kubectl!;
          ratios.push(f.seconds / k.seconds);
          log(
            `${label} round ${r + 1} (order ${order.join(' then ')}, ${total} pods placed in ${setupS.toFixed(1)} s): ` +
              `fleetmedic ${f.seconds.toFixed(2)} s (evictions ${f.evicted}, 429 ${f.refused429}, ${f.other}) | ` +
              `kubectl ${k.seconds.toFixed(2)} s (evictions ${k.evicted}, 429 ${k.refused429}, ${k.other}) | ` +
              `ratio ${(f.seconds / k.seconds).toFixed(2)}`,
          );
          const plausible =
            f.evicted === total && k.evicted === total
              ? 'both evicted every pod once'
              : 'COUNTS DO NOT ADD UP';
          log(
            `  check: ${plausible}; fleetmedic 429s ${f.refused429 <= k.refused429 ? '<=' : '>'} kubectl 429s`,
          );
        } finally {
          for (const name of Object.values(ns)) await core.deleteNamespace({ name }).catch(() => {});
          await until(
            'bench namespaces gone',
            async () => {
              const list = await core.listNamespace();
              return list.items.some((n) => Object.values(ns).includes(n.metadata?.name ?? ''))
                ? undefined
                : true;
            },
            120_000,
            500,
          ).catch((err: Error) => log(`  ${err.message}`));
        }
      }
      return { ratios, runs };
    }

    const plain = await runCase('no-pdb', false, DRAIN_ROUNDS);
    const withPdb = await runCase('pdb', true, PDB_ROUNDS);
    const sum = (runs: DrainRun[], tool: DrainRun['tool']) => {
      const mine = runs.filter((r) => r.tool === tool);
      return `${tool}: median ${median(mine.map((r) => r.seconds)).toFixed(2)} s, evictions ${mine.map((r) => r.evicted).join('/')}, 429 ${mine.map((r) => r.refused429).join('/')}`;
    };
    log(`no PDB (100 pods): ${sum(plain.runs, 'fleetmedic')}; ${sum(plain.runs, 'kubectl')}`);
    log(
      `PDB maxUnavailable 1 (10x10 pods): ${sum(withPdb.runs, 'fleetmedic')}; ${sum(withPdb.runs, 'kubectl')}`,
    );
    log(`ratios are fleetmedic/kubectl per round, median over rounds (goals: no PDB <= 1.0, PDB <= 0.5)`);
    const refused = (tool: DrainRun['tool']) =>
      [...plain.runs, ...withPdb.runs].filter((r) => r.tool === tool).reduce((a, r) => a + r.refused429, 0);
    return {
      ratio: median(plain.ratios),
      pdbRatio: median(withPdb.ratios),
      refused429: { fleetmedic: refused('fleetmedic'), kubectl: refused('kubectl') },
    };
  } finally {
    await stack.stop();
  }
}

// ---------------------------------------------------------------------------------------------------

// SDK warnings (the native core's too, forwarded) are counted, not printed: 1,500 node agent Workers
// each warn once that they poll no workflow tasks, and a storm makes core warn hundreds of times. A
// summary is printed after part 1; errors still go to stderr.
const sdkWarnings = new Map<string, number>();
Runtime.install({
  logger: new DefaultLogger('WARN', (entry) => {
    if (entry.level === 'ERROR') {
      process.stderr.write(`${entry.message} ${JSON.stringify(entry.meta ?? {})}\n`);
      return;
    }
    const m = entry.meta ?? {};
    let key = entry.message.replace(/^\[TMPRL\d+\] \S+ /, '').slice(0, 100);
    if (key === 'Activity failed') {
      // An API server's refusal ("HTTP-Code: 500" on the first line) keeps its Status message too.
      const status =
        m.error instanceof Error ? /"message":"([^"]{1,120})/.exec(m.error.message)?.[1] : undefined;
      const err =
        m.error instanceof Error
          ? `${m.error.name}: ${m.error.message.split('\n')[0]!.slice(0, 80)}${status ? ` (${status})` : ''}`
          : '?';
      // One key per kind of failure, not per node.
      key = `Activity failed: ${JSON.stringify(m.activityType ?? '?')} ${err}`.replace(
        /gpu-node-\d+/g,
        'gpu-node-N',
      );
    }
    const count = (sdkWarnings.get(key) ?? 0) + 1;
    if (knobs.FLEETMEDIC_BENCH_DEBUG_WARNINGS === '1' && count === 1)
      process.stderr.write(
        `${key} ${JSON.stringify(m).slice(0, 400)}` +
          (m.error instanceof Error && m.error.cause instanceof Error
            ? ` cause: ${m.error.cause.message}`
            : '') +
          '\n',
      );
    sdkWarnings.set(key, count);
  }),
  telemetryOptions: {
    logging: { filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }), forward: {} },
  },
  shutdownSignals: [],
});
log(
  `parameters: nodes=${NODES} failing=${FAILING} rounds=${ROUNDS} (+ warm-up of ${WARMUP}) xid=79 (reboot-node: quarantine, ` +
    `then wait for approval) drain_nodes=${DRAIN_NODES} drain_rounds=${DRAIN_ROUNDS} pdb_rounds=${PDB_ROUNDS} ` +
    `cpus=${os.cpus().length} loadavg=${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(',')} node=${process.version}`,
);
const benchStart = performance.now();
let latency: LatencyResult = { samples: [], censored: 0 };
let drain: DrainFigures = { ratio: NaN, pdbRatio: NaN, refused429: { fleetmedic: 0, kubectl: 0 } };
let scale: LatencyResult | undefined;
try {
  if (!SKIP_LATENCY) latency = await latencyPart();
  if (!SKIP_DRAIN) drain = await drainPart();
  if (SCALE)
    scale = await latencyPart({
      nodes: SCALE_NODES,
      failing: SCALE_FAILING,
      rounds: 1,
      warmup: SCALE_FAILING,
      label: 'scale round',
    });
} catch (err) {
  // Interrupted: the cleanup (onStopSignal above) ends the process; the error is only its echo.
  if (exiting) await new Promise(() => {});
  // Each part has stopped its stack (finally) before the error arrives here.
  console.error(
    `bench:remediation failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  );
  process.exit(1);
}
log(`\nbenchmark took ${((performance.now() - benchStart) / 1000).toFixed(0)} s`);
// Nodes not cordoned within the timeout count at the timeout: p99 and max are then lower bounds.
const s = [...latency.samples, ...Array<number>(latency.censored).fill(CORDON_TIMEOUT_MS)];
if (latency.incomplete)
  log(
    `part 1 stopped early (${latency.incomplete}): the ${latency.censored} node(s) not cordoned count ` +
      `at ${CORDON_TIMEOUT_MS} ms, so p50/p99/max below are lower bounds`,
  );
if (!SKIP_LATENCY)
  log(
    `goal alert->cordon P99 <= 5000 ms: ${pct(s, 99) <= 5000 ? 'met' : 'MISSED'} (P99 ${ms(pct(s, 99))} ms; ` +
      `reference NVSentinel 150 of 1,500: P50 16.75 s, P99 31 s, detection included)`,
  );
if (!SKIP_DRAIN)
  log(
    `goal drain ratio <= 1.0 (no PDB): ${drain.ratio <= 1 ? 'met' : 'MISSED'}; ` +
      `goal ratio <= 0.5 (PDB): ${drain.pdbRatio <= 0.5 ? 'met' : 'MISSED'}; fleetmedic no more 429-refused ` +
      `evictions than kubectl: ${drain.refused429.fleetmedic <= drain.refused429.kubectl ? 'met' : 'MISSED'} ` +
      `(${drain.refused429.fleetmedic} vs ${drain.refused429.kubectl} over all rounds)`,
  );
log(
  `nodes=${NODES} failing=${FAILING} alert_to_cordon_p50_ms=${ms(pct(s, 50))} ` +
    `alert_to_cordon_p99_ms=${ms(pct(s, 99))} alert_to_cordon_max_ms=${s.length ? ms(Math.max(...s)) : 'NaN'} ` +
    `drain_ratio_vs_kubectl=${drain.ratio.toFixed(2)} pdb_drain_ratio_vs_kubectl=${drain.pdbRatio.toFixed(2)}` +
    (scale
      ? ` scale_nodes=${SCALE_NODES} scale_failing=${SCALE_FAILING} scale_p99_ms=${ms(
          pct([...scale.samples, ...Array<number>(scale.censored).fill(CORDON_TIMEOUT_MS)], 99),
        )}${scale.incomplete ? ' (lower bound)' : ''}`
      : ''),
);
process.exit(latency.incomplete || scale?.incomplete ? 1 : 0);
