import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
} from '@temporalio/client';
import { InvalidArgumentError, type Command } from 'commander';
import { z } from 'zod';
import type { DrillInput, DrillResult } from '../../contracts/drill.js';
import {
  DRILL_SCHEDULE_CATCHUP_WINDOW,
  DRILL_SCHEDULE_MIN_INTERVAL_MS,
  DRILL_SCHEDULE_NAME_PATTERN,
  drillScheduleId,
  drillScheduleName,
  scheduledDrillId,
  SCHEDULED_DRILL_WORKFLOW,
  type ScheduledDrillInput,
} from '../../contracts/drill-schedule.js';
import { CLUSTER_ID } from '../../contracts/search-attributes.js';
import { ConfigError } from '../../errors.js';
import { configFrom, resolveTargets } from '../context.js';
import { guardDrillTarget } from '../drill-target.js';
import { registerDrillCancelCommand, withClient } from './drill-cancel.js';
import { drillTuning, positive, ratio, type DrillIo } from './drill.js';

const processIo: DrillIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
};

const UNITS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 } as const;
const MAX_INTERVAL_MS = 366 * UNITS.d;

/**
 * `--every`: a duration of days, hours, minutes and seconds in that order (`30m`, `6h`, `1d`,
 * `1h30m`), at least {@link DRILL_SCHEDULE_MIN_INTERVAL_MS}, in ms.
 */
export function parseEvery(value: string): number {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value.trim());
  const ms = m
    ? Number(m[1] ?? 0) * UNITS.d +
      Number(m[2] ?? 0) * UNITS.h +
      Number(m[3] ?? 0) * UNITS.m +
      Number(m[4] ?? 0) * UNITS.s
    : NaN;
  if (!(ms > 0)) {
    throw new InvalidArgumentError(
      `--every must be a duration such as 30m, 6h, 1d or 1h30m, got ${JSON.stringify(value)}`,
    );
  }
  if (ms < DRILL_SCHEDULE_MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) {
    throw new InvalidArgumentError(
      `--every ${value} is outside ${formatEvery(DRILL_SCHEDULE_MIN_INTERVAL_MS)}..366d: each drill disrupts the Deployment`,
    );
  }
  return ms;
}

/** An interval the way `--every` takes it (`1h30m`). */
export function formatEvery(ms: number): string {
  let rest = Math.round(ms / 1000) * 1000;
  let out = '';
  for (const [unit, size] of Object.entries(UNITS)) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out || '0s';
}

const httpUrl = z.url({ protocol: /^https?$/ });

function targetUrl(value: string): string {
  if (!httpUrl.safeParse(value).success) {
    throw new InvalidArgumentError(`--target-url must be an http(s) URL, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `drill-schedule create`'s flags, as commander parsed them. */
export interface CreateFlags {
  every: number;
  targetUrl?: string;
  namespace: string;
  deployment: string;
  gatewayDeployment?: string;
  standin?: boolean;
  replicas?: number;
  rate?: number;
  deadline?: number;
  evictionSlack?: number;
  abortBelow?: number;
  deleteEmptydirData?: boolean;
  context?: string;
  confirmCluster?: string;
  drainNode?: boolean;
}

/** Refuses a schedule name that cannot begin a drill ID, naming it. */
export function checkScheduleName(name: string): void {
  if (!DRILL_SCHEDULE_NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `drill schedule name ${JSON.stringify(name)}: lowercase letters, digits and - (1-40, starting and ending with a letter or digit)`,
    );
  }
}

/**
 * The gateway a scheduled drill's probe loads. A schedule has no terminal attached, so the gateway
 * `fleetmedic drill` starts for its own lifetime is not there: `--target-url` is required.
 */
export function requireTargetUrl(flags: Pick<CreateFlags, 'targetUrl'>): string {
  if (flags.targetUrl === undefined) {
    throw new ConfigError(
      'a scheduled drill needs --target-url <url>, a gateway in front of the Deployment that stays up ' +
        '(e.g. `fleetmedic gateway serve`): the stand-ins and gateway that `fleetmedic drill` starts on the ' +
        'embedded stack live only as long as that command, and a schedule runs with no command attached',
    );
  }
  return flags.targetUrl;
}

/** The drill a schedule starts, without its ID (the launcher names each run). */
export function scheduledDrill(
  flags: CreateFlags,
  clusterId: string,
  drainNode: boolean,
): ScheduledDrillInput['drill'] {
  return {
    clusterId,
    namespace: flags.namespace,
    deployment: flags.deployment,
    targetUrl: requireTargetUrl(flags),
    ...(flags.gatewayDeployment !== undefined && { gateway: { deployment: flags.gatewayDeployment } }),
    ...(flags.standin && { standin: { replicas: flags.replicas ?? 3 } }),
    drainNode,
    ...drillTuning(flags),
  } satisfies Omit<DrillInput, 'drillId'>;
}

/**
 * The Temporal Schedule of a drill: every `everyMs` it starts the launcher on `taskQueue`; never two
 * runs at once (`SKIP`: a run due while the last still runs is dropped), runs missed by more than
 * {@link DRILL_SCHEDULE_CATCHUP_WINDOW} are not made up, and a failed run pauses the schedule.
 */
export function drillScheduleOptions(args: {
  clusterId: string;
  name: string;
  everyMs: number;
  taskQueue: string;
  drill: ScheduledDrillInput['drill'];
}): ScheduleOptions {
  const scheduleId = drillScheduleId(args.clusterId, args.name);
  const input: ScheduledDrillInput = { scheduleId, drill: args.drill };
  return {
    scheduleId,
    spec: { intervals: [{ every: args.everyMs }] },
    action: {
      type: 'startWorkflow',
      workflowType: SCHEDULED_DRILL_WORKFLOW,
      workflowId: scheduleId,
      taskQueue: args.taskQueue,
      args: [input],
      typedSearchAttributes: [{ key: CLUSTER_ID, value: args.clusterId }],
    },
    policies: {
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: DRILL_SCHEDULE_CATCHUP_WINDOW,
      pauseOnFailure: true,
    },
    state: {
      note: `drill ${args.drill.namespace}/${args.drill.deployment} every ${formatEvery(args.everyMs)}`,
    },
  };
}

/** One schedule as `drill-schedule list` prints it. */
export interface ScheduleRow {
  readonly name: string;
  readonly everyMs: number | undefined;
  readonly paused: boolean;
  readonly note: string | undefined;
  readonly nextRun: Date | undefined;
  /** The last run: its drill ID and what became of it, when there was one. */
  readonly lastRun: string | undefined;
}

/** The lines of `drill-schedule list`: one per schedule, then its note when paused. */
export function scheduleLines(rows: readonly ScheduleRow[]): string[] {
  if (rows.length === 0) return ['no drill schedules'];
  const lines: string[] = [];
  for (const r of rows) {
    const every = r.everyMs === undefined ? 'every ?' : `every ${formatEvery(r.everyMs)}`;
    const next = r.paused ? 'paused' : `next ${r.nextRun?.toISOString() ?? '-'}`;
    lines.push(`${r.name}  ${every}  ${next}  last: ${r.lastRun ?? 'none yet'}`);
    if (r.paused && r.note) lines.push(`  (${r.note})`);
  }
  return lines;
}

/** A run's drill ID and outcome: running, PASS/FAIL from its result, or how its launcher closed. */
async function lastRun(client: Client, description: ScheduleDescription): Promise<string | undefined> {
  const run = description.info.recentActions.at(-1)?.action.workflow;
  if (!run) return undefined;
  try {
    const launcher = client.workflow.getHandle(run.workflowId, run.firstExecutionRunId);
    const d = await launcher.describe();
    const drillId = scheduledDrillId(description.scheduleId, d.startTime.getTime());
    if (d.status.name !== 'COMPLETED') return `${drillId} ${d.status.name.toLowerCase()}`;
    const r = (await launcher.result()) as DrillResult;
    return `${r.drillId} ${r.pass ? 'PASS' : 'FAIL'}${r.refused ? ' (refused by preflight)' : ''}`;
  } catch (err) {
    return `${run.workflowId} (unreadable: ${err instanceof Error ? err.message : String(err)})`;
  }
}

function notFound(name: string, clusterId: string) {
  return (err: unknown): never => {
    if (err instanceof ScheduleNotFoundError) {
      throw new ConfigError(
        `no drill schedule ${name} on cluster ${clusterId} (\`fleetmedic drill-schedule list\`)`,
      );
    }
    throw err;
  };
}

/**
 * `fleetmedic drill-schedule create|list|delete|trigger|pause|unpause`: drills on a Temporal Schedule,
 * run by the control worker of the cluster's task queue; `fleetmedic drill-cancel`: cancels a drill.
 */
export function registerDrillScheduleCommands(program: Command, io: DrillIo = processIo): void {
  const targets = () => resolveTargets(configFrom(program));
  const schedule = program
    .command('drill-schedule')
    .description('run resilience drills periodically on a Temporal Schedule');

  schedule
    .command('create <name>')
    .description('create a schedule that runs a drill every --every (needs --target-url)')
    .requiredOption(
      '--every <duration>',
      'interval between drills: 30m, 6h, 1d, 1h30m (at least 5m)',
      parseEvery,
    )
    .option(
      '--target-url <url>',
      'the gateway in front of the Deployment, which the probe loads (required)',
      targetUrl,
    )
    .option('--namespace <name>', 'namespace of the Deployment', 'default')
    .option('--deployment <name>', 'the inference Deployment', 'drill-standin')
    .option(
      '--gateway-deployment <name>',
      "the gateway's own Deployment (in --namespace) behind --target-url; each drill evicts one of its pods too",
    )
    .option(
      '--standin',
      'each run creates a stand-in Deployment, PDB and Service of that name (removed afterwards)',
    )
    .option('--replicas <n>', 'stand-in replicas (default 3)', positive('--replicas'))
    .option(
      '--delete-emptydir-data',
      "the eviction may evict the Deployment's pods with emptyDir volumes, whose data is lost",
    )
    .option('--rate <req/s>', 'probe requests per second (default 20)', positive('--rate'))
    .option(
      '--deadline <s>',
      "each drill's own deadline; past it, it rolls back (default 900)",
      positive('--deadline'),
    )
    .option(
      '--eviction-slack <s>',
      'eviction recovery allowed above the checkpoint restore time (default 5)',
      positive('--eviction-slack'),
    )
    .option(
      '--abort-below <ratio>',
      'abort and roll back when continuity over the last 10 s falls below this (default 0.5; 0: never)',
      ratio('--abort-below'),
    )
    .option('--context <name>', 'real cluster: the context of --kubeconfig that reaches it (required)')
    .option(
      '--confirm-cluster <id>',
      'real cluster: confirms the schedule, naming the bound cluster ID (required)',
    )
    .option(
      '--drain-node',
      'real cluster: cordon and drain the node of a replica (default: evict only its pods)',
    )
    .action(async (name: string, flags: CreateFlags) => {
      checkScheduleName(name);
      requireTargetUrl(flags);
      const t = await targets();
      const { drainNode } = await guardDrillTarget(t, {
        kubeconfigFlag: program.getOptionValueSource('kubeconfig') === 'cli',
        context: flags.context,
        confirmCluster: flags.confirmCluster,
        targetUrl: true,
        drainNode: flags.drainNode === true,
      });
      const options = drillScheduleOptions({
        clusterId: t.clusterId,
        name,
        everyMs: flags.every,
        taskQueue: t.taskQueue,
        drill: scheduledDrill(flags, t.clusterId, drainNode),
      });
      await withClient(t, async (client) => {
        const handle = await client.schedule.create(options).catch((err: unknown) => {
          if (err instanceof ScheduleAlreadyRunning) {
            throw new ConfigError(
              `drill schedule ${name} exists on cluster ${t.clusterId}: delete it first (\`fleetmedic drill-schedule delete ${name}\`)`,
            );
          }
          throw err;
        });
        const next = (await handle.describe()).info.nextActionTimes[0];
        io.stdout(
          `drill schedule ${name}: every ${formatEvery(flags.every)}, next run ${next?.toISOString() ?? '-'} ` +
            `(schedule ${handle.scheduleId}); the control worker of task queue ${t.taskQueue} runs the drills\n`,
        );
      });
    });

  schedule
    .command('list')
    .description("the cluster's drill schedules: interval, next run, the last run's drill and verdict")
    .action(async () => {
      const t = await targets();
      await withClient(t, async (client) => {
        const rows: ScheduleRow[] = [];
        for await (const s of client.schedule.list()) {
          const name = drillScheduleName(t.clusterId, s.scheduleId);
          if (name === undefined) continue;
          const d = await client.schedule
            .getHandle(s.scheduleId)
            .describe()
            .catch(() => undefined);
          if (!d) continue; // deleted since the listing
          rows.push({
            name,
            everyMs: d.spec.intervals?.[0]?.every,
            paused: d.state.paused,
            note: d.state.note,
            nextRun: d.info.nextActionTimes[0],
            lastRun: await lastRun(client, d),
          });
        }
        rows.sort((a, b) => a.name.localeCompare(b.name));
        io.stdout(`${scheduleLines(rows).join('\n')}\n`);
      });
    });

  schedule
    .command('delete <name>')
    .description('delete a drill schedule (a drill it started keeps running: `fleetmedic drill-cancel`)')
    .action(async (name: string) => {
      checkScheduleName(name);
      const t = await targets();
      await withClient(t, async (client) => {
        await client.schedule
          .getHandle(drillScheduleId(t.clusterId, name))
          .delete()
          .catch(notFound(name, t.clusterId));
        io.stdout(`drill schedule ${name}: deleted\n`);
      });
    });

  schedule
    .command('trigger <name>')
    .description('run the drill now (skipped while a drill of this schedule still runs)')
    .action(async (name: string) => {
      checkScheduleName(name);
      const t = await targets();
      await withClient(t, async (client) => {
        const handle = client.schedule.getHandle(drillScheduleId(t.clusterId, name));
        const running = (await handle.describe().catch(notFound(name, t.clusterId))).info.runningActions;
        if (running.length > 0) {
          throw new ConfigError(
            `drill schedule ${name}: a drill it started still runs (${running.map((r) => r.workflow.workflowId).join(', ')}); ` +
              'one at a time (overlap policy SKIP)',
          );
        }
        // The SDK's default for a trigger is ALLOW_ALL: its run would overlap, and the schedule would
        // not track it (no pause on its failure).
        await handle.trigger(ScheduleOverlapPolicy.SKIP);
        io.stdout(`drill schedule ${name}: triggered (\`fleetmedic drill-schedule list\` shows the run)\n`);
      });
    });

  for (const [verb, pause] of [
    ['pause', true],
    ['unpause', false],
  ] as const) {
    schedule
      .command(`${verb} <name>`)
      .description(pause ? 'stop starting drills until unpaused' : 'start drills again')
      .option('--note <text>', 'why, shown by `drill-schedule list`')
      .action(async (name: string, flags: { note?: string }) => {
        checkScheduleName(name);
        const t = await targets();
        await withClient(t, async (client) => {
          const handle = client.schedule.getHandle(drillScheduleId(t.clusterId, name));
          await (pause ? handle.pause(flags.note) : handle.unpause(flags.note)).catch(
            notFound(name, t.clusterId),
          );
          io.stdout(`drill schedule ${name}: ${pause ? 'paused' : 'unpaused'}\n`);
        });
      });
  }

  registerDrillCancelCommand(program, io);
}
