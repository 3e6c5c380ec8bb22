import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { InvalidArgumentError, type Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectionOptions } from '../../client/temporal-connection.js';
import {
  DRILL_ID_PATTERN,
  drillProgressQuery,
  drillWorkflowId,
  type DrillResult,
} from '../../contracts/drill.js';
import { ConfigError } from '../../errors.js';
import { configFrom, resolveTargets, type Targets } from '../context.js';
import { failureChain, progressLine, resultLines, type DrillIo } from './drill.js';

/** Runs `fn` with a client of the targets' Temporal, connected for the call. */
export async function withClient<T>(targets: Targets, fn: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect(connectionOptions(targets.temporal));
  try {
    return await fn(new Client({ connection, namespace: targets.namespace }));
  } finally {
    await connection.close();
  }
}

const QUERY_TIMEOUT_MS = 5_000;

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`--wait must be a positive number, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** `fleetmedic drill-cancel <drill-id>`: cancels a drill and waits for its rollback ({@link cancelDrill}). */
export function registerDrillCancelCommand(program: Command, io: DrillIo): void {
  program
    .command('drill-cancel <drill-id>')
    .description('cancel a running drill: it rolls back (uncordons its nodes, removes what it created)')
    .option('--wait <s>', 'how long to wait for the rollback to finish (default 300)', seconds)
    .action(async (drillId: string, flags: { wait?: number }) => {
      if (!DRILL_ID_PATTERN.test(drillId)) {
        throw new ConfigError(`drill ID ${JSON.stringify(drillId)}: letters, digits, -, _ and . (1-63)`);
      }
      const targets = await resolveTargets(configFrom(program));
      await withClient(targets, async (client) => {
        process.exitCode = await cancelDrill(client, targets.clusterId, drillId, io, {
          waitMs: (flags.wait ?? 300) * 1000,
        });
      });
    });
}

/**
 * Cancels the drill `drillId` of `clusterId` and waits, printing its stage, until it has closed or
 * `waitMs` passed. The drill's rollback runs in a non-cancellable scope, so the cancel ends in it.
 * A drill a schedule started fails its launcher, which pauses the schedule (`pauseOnFailure`).
 *
 * @returns the exit code: 0 once the drill has closed cancelled (or had closed before), 1 otherwise.
 */
export async function cancelDrill(
  client: Client,
  clusterId: string,
  drillId: string,
  io: DrillIo,
  options: { waitMs: number; pollMs?: number },
): Promise<number> {
  const handle = client.workflow.getHandle(drillWorkflowId(clusterId, drillId));
  // A query waits for a worker: without one, each is given up after a few seconds.
  const progress = () =>
    client
      .withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => handle.query(drillProgressQuery))
      .catch(() => undefined);
  const before = await handle.describe().catch((err: unknown) => {
    if (err instanceof WorkflowNotFoundError) {
      throw new ConfigError(`no drill ${drillId} on cluster ${clusterId} (workflow ${handle.workflowId})`);
    }
    throw err;
  });
  if (before.status.name !== 'RUNNING') {
    io.stdout(`drill ${drillId}: not running (${before.status.name.toLowerCase()})\n`);
    return 0;
  }
  await handle.cancel();
  io.stderr(`drill ${drillId}: cancel requested, waiting for its rollback\n`);
  if (before.parentExecution) {
    io.stderr(
      `drill ${drillId}: started by ${before.parentExecution.workflowId}; its schedule pauses when the drill ends cancelled (\`fleetmedic drill-schedule unpause\`)\n`,
    );
  }
  const deadline = Date.now() + options.waitMs;
  let last = '';
  for (;;) {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') break;
    if (Date.now() >= deadline) {
      io.stderr(
        `drill ${drillId}: still running ${Math.round(options.waitMs / 1000)} s after the cancel ` +
          '(its rollback may be waiting for an activity or a worker); see the workflow in the Temporal UI\n',
      );
      return 1;
    }
    const p = await progress();
    const line = p ? progressLine(p, Date.now()).replace(/\(\d+ s; /, '(') : '';
    if (line !== '' && line !== last) io.stderr(`${line}\n`);
    last = line || last;
    await sleep(options.pollMs ?? 1_000);
  }
  try {
    const r = (await handle.result()) as DrillResult;
    // The drill finished before the cancel reached it.
    io.stdout(`${resultLines(r).join('\n')}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const d = await handle.describe();
    if (d.status.name !== 'CANCELLED') {
      io.stdout(`drill ${drillId}: ${d.status.name.toLowerCase()}: ${failureChain(err)}\n`);
      return 1;
    }
    const p = await progress();
    const held =
      p === undefined
        ? ' (its progress was not readable)'
        : p.cordoned.length > 0
          ? `; still cordoned: ${p.cordoned.join(', ')}`
          : '; nothing left cordoned';
    io.stdout(`drill ${drillId}: cancelled and rolled back${held}\n`);
    return p === undefined || p.cordoned.length === 0 ? 0 : 1;
  }
}
