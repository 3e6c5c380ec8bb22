import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { InvalidArgumentError, type Command } from 'commander';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectionOptions } from '../../client/temporal-connection.js';
import {
  DRILL_ID_PATTERN,
  DRILL_WORKFLOW,
  drillProgressQuery,
  drillWorkflowId,
  type DrillInput,
  type DrillProgress,
  type DrillResult,
} from '../../contracts/drill.js';
import { formatRatio } from '../../drill/report.js';
import { ConfigError } from '../../errors.js';
import { startEmbeddedDrill, type EmbeddedDrill } from '../../drill/embedded.js';
import { readStackState } from '../../stack/state.js';
import { installRuntime } from '../../workers/runtime.js';
import { commandLog } from '../command-log.js';
import { configFrom, resolveTargets } from '../context.js';
import { guardDrillTarget } from '../drill-target.js';

/** Where the command writes; tests capture it. */
export interface DrillIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: DrillIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

/** One progress line: stage, phases measured so far, elapsed seconds, nodes the drill holds. */
export function progressLine(p: DrillProgress, now: number): string {
  const elapsed = Math.round((now - p.startedAt) / 1000);
  const done = p.phases.map((ph) => ph.name).join(', ') || 'none';
  const held = p.cordoned.length > 0 ? `; cordoned ${p.cordoned.join(', ')}` : '';
  const aborting = p.aborted ? `; aborting: ${p.aborted}` : '';
  return `drill ${p.drillId}: ${p.stage} (${elapsed} s; phases measured: ${done}${held}${aborting})`;
}

/** The lines printed at the end: verdict, reasons, one line per phase, the report's files. */
export function resultLines(r: DrillResult): string[] {
  const lines = [
    `drill ${r.drillId}: ${r.pass ? 'PASS' : 'FAIL'}${r.refused ? ' (refused by preflight)' : ''}`,
  ];
  for (const reason of r.reasons) lines.push(`  - ${reason}`);
  for (const p of r.phases) {
    lines.push(
      `  ${p.name}: ${p.requests} requests, ${p.failed} failed, ${p.degraded} degraded, ` +
        `continuity ${formatRatio(p.continuity)}` +
        (p.recoveryMs === null ? '' : `, recovery ${(p.recoveryMs / 1000).toFixed(1)} s`),
    );
  }
  lines.push(`report: ${r.report.markdown}`, `        ${r.report.html}`, `        ${r.report.json}`);
  return lines;
}

/**
 * Why a drill failed, from its workflow failure down to the root cause ("Activity task failed" says
 * nothing by itself): each distinct message of the cause chain, joined with `: `.
 */
export function failureChain(err: Error): string {
  const messages: string[] = [];
  for (let e: unknown = err.cause ?? err; e instanceof Error; e = e.cause) {
    if (e.message && !messages.includes(e.message)) messages.push(e.message);
  }
  return messages.join(': ') || err.message;
}

/** Exit code for CI: 0 pass, 1 fail (refusals included). */
export function drillExitCode(r: DrillResult): number {
  return r.pass ? 0 : 1;
}

/** A flag's positive number, or an error naming the flag and the value. */
export function positive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`${name} must be a positive number, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/** A continuity ratio: 0 (off) to 1. */
export function ratio(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
      throw new InvalidArgumentError(`${name} must be a number from 0 to 1, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/** The flags of a drill's probe, deadline, watchdog, verdict and eviction, shared with `drill-schedule`. */
export interface DrillTuningFlags {
  rate?: number;
  deadline?: number;
  evictionSlack?: number;
  abortBelow?: number;
  deleteEmptydirData?: boolean;
}

/** The DrillInput fields those flags set (none when absent: the workflow's defaults apply). */
export function drillTuning(flags: DrillTuningFlags): Partial<DrillInput> {
  return {
    ...(flags.deleteEmptydirData && { deleteEmptyDirData: true }),
    ...(flags.rate !== undefined && { probe: { rate: flags.rate } }),
    ...(flags.deadline !== undefined && { deadlineSeconds: Math.ceil(flags.deadline) }),
    ...(flags.abortBelow !== undefined && { watchdog: { abortBelow: flags.abortBelow } }),
    ...(flags.evictionSlack !== undefined && {
      thresholds: { evictionRecoveryOverRestoreMs: flags.evictionSlack * 1000 },
    }),
  };
}

interface Flags {
  targetUrl?: string;
  namespace: string;
  deployment?: string;
  gatewayDeployment?: string;
  standin?: boolean;
  replicas?: number;
  drillId?: string;
  keep?: boolean;
  rate?: number;
  deadline?: number;
  evictionSlack?: number;
  abortBelow?: number;
  llama?: boolean;
  deleteEmptydirData?: boolean;
  context?: string;
  confirmCluster?: string;
  drainNode?: boolean;
}

/**
 * `fleetmedic drill`: starts a drill on the control worker's task queue, prints its progress, the
 * verdict and the report's path; exit code 0 pass, 1 fail. A real cluster needs `--kubeconfig`,
 * `--context` and `--confirm-cluster` (`guardDrillTarget`).
 */
export function registerDrillCommand(program: Command, io: DrillIo = processIo): void {
  program
    .command('drill')
    .description('run a resilience drill of an inference Deployment and print its report')
    .option(
      '--target-url <url>',
      'the gateway in front of the Deployment, which the probe loads (default: on the embedded stack, ' +
        'stand-in replicas, a gateway and a control worker started by this command)',
    )
    .option('--namespace <name>', 'namespace of the Deployment', 'default')
    .option(
      '--deployment <name>',
      'the inference Deployment (default drill-standin; drill-llama with --llama)',
    )
    .option(
      '--gateway-deployment <name>',
      "with --target-url: the gateway's own Deployment (in --namespace) behind that URL; one of its pods is evicted too (default: on the embedded stack, the gateway pods this command starts)",
    )
    .option('--standin', 'create a stand-in Deployment, PDB and Service of that name (removed afterwards)')
    .option('--replicas <n>', 'stand-in replicas (default 3)', positive('--replicas'))
    .option(
      '--delete-emptydir-data',
      "the eviction may evict the Deployment's pods with emptyDir volumes, whose data is lost (default: only for the Deployment the drill creates)",
    )
    .option(
      '--llama',
      "embedded stack: drill real llama.cpp replicas (the chart's inference Deployment, restoring from a verified checkpoint) instead of stand-ins",
    )
    .option('--drill-id <id>', 'the drill ID (default: a new one)')
    .option('--keep', 'leave what the drill created in place')
    .option('--rate <req/s>', 'probe requests per second (default 20)', positive('--rate'))
    .option(
      '--deadline <s>',
      "the drill's own deadline; past it, it rolls back (default 900)",
      positive('--deadline'),
    )
    .option(
      '--eviction-slack <s>',
      'eviction recovery allowed above the checkpoint restore time before the drill fails (default 5)',
      positive('--eviction-slack'),
    )
    .option(
      '--abort-below <ratio>',
      'abort and roll back as soon as continuity over the last 10 s falls below this (default 0.5; 0: never)',
      ratio('--abort-below'),
    )
    // A real cluster (issue #16): --kubeconfig is the global flag; commander gives it to the root
    // command even after `drill`, so the guard asks the root whether it came from the command line.
    .option('--context <name>', 'real cluster: the context of --kubeconfig that reaches it (required)')
    .option(
      '--confirm-cluster <id>',
      'real cluster: confirms the drill, naming the cluster ID its control worker is bound to (required)',
    )
    .option(
      '--drain-node',
      'real cluster: cordon and drain the node of a replica (default: evict only its pods)',
    )
    .action(async (flags: Flags) => {
      if (flags.gatewayDeployment !== undefined && flags.targetUrl === undefined) {
        throw new ConfigError(
          '--gateway-deployment names the gateway behind --target-url; on the embedded stack the command starts its own gateway pods',
        );
      }
      const drillId = flags.drillId ?? `drill-${randomUUID().slice(0, 8)}`;
      if (!DRILL_ID_PATTERN.test(drillId)) {
        throw new ConfigError(`--drill-id ${JSON.stringify(drillId)}: letters, digits, -, _ and . (1-63)`);
      }
      const config = configFrom(program);
      const targets = await resolveTargets(config);
      const { kc, drainNode } = await guardDrillTarget(targets, {
        kubeconfigFlag: program.getOptionValueSource('kubeconfig') === 'cli',
        context: flags.context,
        confirmCluster: flags.confirmCluster,
        targetUrl: flags.targetUrl !== undefined,
        drainNode: flags.drainNode === true,
      });
      let embedded: EmbeddedDrill | undefined;
      if (flags.targetUrl === undefined) {
        const stack = await readStackState(config.stateDir);
        if (!stack) {
          throw new ConfigError(
            `no embedded stack in ${config.stateDir}: run \`fleetmedic up\`, or give --target-url (a gateway of yours)`,
          );
        }
        const log = commandLog(config.stateDir, 'drill', false);
        // The worker's and the SDK's logs go to the file: the command prints progress and the report.
        installRuntime(config.logLevel === 'info' ? 'warn' : config.logLevel, (entry) => log.sdk(entry));
        embedded = await startEmbeddedDrill({
          stack,
          stateDir: config.stateDir,
          kc,
          clusterId: targets.clusterId,
          temporal: targets.temporal,
          taskQueue: targets.taskQueue,
          namespace: flags.namespace,
          deployment: flags.deployment ?? (flags.llama ? 'drill-llama' : 'drill-standin'),
          drillId,
          replicas: flags.replicas ?? 3,
          ...(flags.llama && { replicaKind: 'llama' as const, cacheDir: config.cacheDir }),
          log: (line) => io.stderr(`${line}\n`),
          workerLog: (entry) => log.write(entry),
        });
        if (log.file) io.stderr(`worker logs: ${log.file}\n`);
      }
      const connection = await Connection.connect(connectionOptions(targets.temporal)).catch(
        async (err: unknown) => {
          await embedded?.stop();
          throw err;
        },
      );
      try {
        const client = new Client({ connection, namespace: targets.namespace });
        const input: DrillInput = {
          clusterId: targets.clusterId,
          drillId,
          namespace: flags.namespace,
          deployment: flags.deployment ?? (flags.llama ? 'drill-llama' : 'drill-standin'),
          targetUrl: embedded?.targetUrl ?? flags.targetUrl!,
          ...((embedded || flags.gatewayDeployment) && {
            gateway: embedded?.gateway ?? { deployment: flags.gatewayDeployment! },
          }),
          ...((flags.standin || embedded) && { standin: { replicas: flags.replicas ?? 3 } }),
          ...(flags.keep && { keep: true }),
          drainNode,
          ...drillTuning(flags),
        };
        const handle = await client.workflow.start(DRILL_WORKFLOW, {
          workflowId: drillWorkflowId(targets.clusterId, drillId),
          taskQueue: embedded?.taskQueue ?? targets.taskQueue,
          args: [input],
        });
        io.stderr(`drill ${drillId}: started (workflow ${handle.workflowId})\n`);
        const result = handle.result() as Promise<DrillResult>;
        let finished = false;
        void result.finally(() => (finished = true)).catch(() => undefined);
        let last = '';
        while (!finished) {
          const p = await handle.query(drillProgressQuery).catch(() => undefined);
          const line = p ? progressLine(p, Date.now()) : '';
          if (line !== '' && line.replace(/\(\d+ s;/, '') !== last) io.stderr(`${line}\n`);
          if (line !== '') last = line.replace(/\(\d+ s;/, '');
          await Promise.race([sleep(2_000), result.catch(() => undefined)]);
        }
        const r = await result.catch((err: unknown) => {
          if (err instanceof WorkflowFailedError) {
            io.stderr(`drill ${drillId}: failed: ${failureChain(err)} (rolled back)\n`);
            return undefined;
          }
          throw err;
        });
        if (!r) {
          process.exitCode = 1;
          return;
        }
        io.stdout(`${resultLines(r).join('\n')}\n`);
        process.exitCode = drillExitCode(r);
      } finally {
        await connection.close();
        await embedded?.stop();
      }
    });
}
