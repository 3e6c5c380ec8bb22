import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
} from '@temporalio/client';
import { CLUSTER_ID } from '../contracts/search-attributes.js';
import { FailureType } from '../errors.js';
import { CheckpointError } from './errors.js';
import { checkpointBackupInputProblems, type CheckpointBackupInput } from './types.js';

/** Workflow type the schedule starts (the name of `checkpointBackupWorkflow`). */
export const CHECKPOINT_WORKFLOW_TYPE = 'checkpointBackupWorkflow';
/** Default schedule ID; one schedule per model (or cluster) gets its own ID. */
export const DEFAULT_CHECKPOINT_SCHEDULE_ID = 'fleetmedic-checkpoint-backup';
/** Default interval, as the seed's CronJob ran. */
export const DEFAULT_CHECKPOINT_INTERVAL = '5m';

/** Options of {@link createCheckpointSchedule}. */
export interface CheckpointScheduleOptions {
  readonly scheduleId?: string;
  /** Interval as `30s`, `5m`, `1h` (or milliseconds); default {@link DEFAULT_CHECKPOINT_INTERVAL}. */
  readonly every?: string | number;
  /** Task queue of the control worker; default `fleetmedic`. */
  readonly taskQueue?: string;
  readonly input: CheckpointBackupInput;
  /** Create it paused (resume later). */
  readonly paused?: boolean;
  readonly note?: string;
  /** Cluster the backups belong to; set as the FleetmedicCluster search attribute of each run. */
  readonly clusterId?: string;
}

/** A checkpoint schedule, as listed by {@link listCheckpointSchedules}. */
export interface CheckpointScheduleSummary {
  readonly scheduleId: string;
  readonly paused: boolean;
  readonly note?: string;
  readonly every?: string;
  readonly nextRuns: readonly string[];
  readonly recentRuns: ReadonlyArray<{ readonly scheduledAt: string; readonly workflowId: string }>;
  readonly running: readonly string[];
  readonly skippedOverlap: number;
}

/**
 * Parses `30s`, `5m`, `2h`, `1d` (or a number of milliseconds) into milliseconds.
 *
 * @throws CheckpointError `InvalidInput` naming the value.
 */
export function parseInterval(value: string | number): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 1000) return value;
  } else {
    const match = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
    if (match) {
      const ms = Number(match[1]) * unit[match[2] as keyof typeof unit];
      if (ms >= 1000) return ms;
    }
  }
  throw new CheckpointError(
    FailureType.InvalidInput,
    `schedule interval must be at least 1s, written like 30s, 5m or 1h; got ${JSON.stringify(value)}`,
  );
}

/**
 * Creates the Temporal Schedule that runs `checkpointBackupWorkflow` every `every`, with overlap
 * policy SKIP (a backup still copying when the next one is due makes the next one skip, as the seed's
 * CronJob could not) and a short catch-up window (after an outage, one run, not a burst).
 *
 * @throws CheckpointError `InvalidInput` for a bad input or interval; the client's error when the ID is taken.
 * @example
 * await createCheckpointSchedule(client, {
 *   input: { source: { kind: 'newest-file', directory: '/ckpt' }, keep: 5 },
 * });
 */
export async function createCheckpointSchedule(
  client: Client,
  options: CheckpointScheduleOptions,
): Promise<ScheduleHandle> {
  const problems = checkpointBackupInputProblems(options.input);
  if (problems.length > 0) {
    throw new CheckpointError(
      FailureType.InvalidInput,
      `invalid checkpoint backup input: ${problems.join('; ')}`,
    );
  }
  const scheduleId = options.scheduleId ?? DEFAULT_CHECKPOINT_SCHEDULE_ID;
  const every = parseInterval(options.every ?? DEFAULT_CHECKPOINT_INTERVAL);
  const source =
    options.input.source.kind === 'admin-endpoint'
      ? options.input.source.url
      : options.input.source.directory;
  return client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every }] },
    action: {
      type: 'startWorkflow',
      workflowType: CHECKPOINT_WORKFLOW_TYPE,
      args: [options.input],
      taskQueue: options.taskQueue ?? 'fleetmedic',
      workflowId: `${scheduleId}-run`,
      staticSummary: `checkpoint backup of ${source}`,
      ...(options.clusterId !== undefined && {
        typedSearchAttributes: [{ key: CLUSTER_ID, value: options.clusterId }],
      }),
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1m', pauseOnFailure: false },
    state: { paused: options.paused ?? false, note: options.note },
    memo: { fleetmedic: 'checkpoint-backup' },
  });
}

/** Pauses a checkpoint schedule (runs in progress finish). */
export async function pauseCheckpointSchedule(
  client: Client,
  scheduleId: string,
  note?: string,
): Promise<void> {
  await client.schedule.getHandle(scheduleId).pause(note ?? 'paused by fleetmedic checkpoint schedule pause');
}

/** Resumes a paused checkpoint schedule. */
export async function resumeCheckpointSchedule(
  client: Client,
  scheduleId: string,
  note?: string,
): Promise<void> {
  await client.schedule
    .getHandle(scheduleId)
    .unpause(note ?? 'resumed by fleetmedic checkpoint schedule resume');
}

/**
 * Runs a backup now, through the schedule and with its SKIP policy: if a run is in progress, nothing
 * starts. (The SDK's trigger defaults to ALLOW_ALL, which would start a second, overlapping copy.)
 */
export async function triggerCheckpointSchedule(client: Client, scheduleId: string): Promise<void> {
  await client.schedule.getHandle(scheduleId).trigger(ScheduleOverlapPolicy.SKIP);
}

/** Deletes a checkpoint schedule; backups and running workflows are untouched. */
export async function deleteCheckpointSchedule(client: Client, scheduleId: string): Promise<void> {
  await client.schedule.getHandle(scheduleId).delete();
}

/** Describes one checkpoint schedule. @throws ScheduleNotFoundError when it does not exist. */
export async function describeCheckpointSchedule(
  client: Client,
  scheduleId: string,
): Promise<CheckpointScheduleSummary> {
  return summarize(scheduleId, await client.schedule.getHandle(scheduleId).describe());
}

/** Lists every schedule that starts `checkpointBackupWorkflow`, described. */
export async function listCheckpointSchedules(client: Client): Promise<CheckpointScheduleSummary[]> {
  const out: CheckpointScheduleSummary[] = [];
  for await (const summary of client.schedule.list()) {
    if (summary.action?.workflowType !== CHECKPOINT_WORKFLOW_TYPE) continue;
    try {
      out.push(await describeCheckpointSchedule(client, summary.scheduleId));
    } catch (err) {
      // Deleted between the list and the describe.
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    }
  }
  return out.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

function summarize(scheduleId: string, d: ScheduleDescription): CheckpointScheduleSummary {
  const interval = d.spec.intervals?.[0]?.every;
  return {
    scheduleId,
    paused: d.state.paused,
    note: d.state.note,
    every: interval === undefined ? undefined : formatMs(Number(interval)),
    nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
    recentRuns: d.info.recentActions.map((a) => ({
      scheduledAt: a.scheduledAt.toISOString(),
      workflowId: a.action.workflow.workflowId,
    })),
    running: d.info.runningActions.map((a) => a.workflow.workflowId),
    skippedOverlap: d.info.numActionsSkippedOverlap,
  };
}

function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
