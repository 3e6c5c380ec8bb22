/**
 * Drills on a Temporal Schedule (issue #16 item 5): the schedule's ID, the launcher workflow it starts
 * and the drill ID the launcher derives. A schedule never starts `DRILL_WORKFLOW` itself: Temporal
 * appends a timestamp to a scheduled workflow's ID, and the reaper and the fleet budget find a drill's
 * workflow by `drillWorkflowId(clusterId, drillId)` alone. Workflow code imports this file.
 */
import type { DrillInput } from './drill.js';

/** The launcher's workflow type: it runs one drill as its child and returns the drill's result. */
export const SCHEDULED_DRILL_WORKFLOW = 'scheduledDrillWorkflow';

/** A schedule's name: lowercase letters, digits and `-`, 1-40 characters (it begins each drill ID). */
export const DRILL_SCHEDULE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;

/** Every drill schedule of a cluster has an ID that starts with this (two clusters may share a namespace). */
export function drillScheduleIdPrefix(clusterId: string): string {
  return `drill-schedule/${clusterId}/`;
}

/** The schedule's ID, also the prefix of its launchers' workflow IDs (Temporal appends the time). */
export function drillScheduleId(clusterId: string, name: string): string {
  return `${drillScheduleIdPrefix(clusterId)}${name}`;
}

/** The name in a drill schedule's ID; undefined for another schedule or cluster. */
export function drillScheduleName(clusterId: string, scheduleId: string): string | undefined {
  const prefix = drillScheduleIdPrefix(clusterId);
  return scheduleId.startsWith(prefix) ? scheduleId.slice(prefix.length) : undefined;
}

/**
 * A run missed by more than this (Temporal unavailable) is skipped rather than started late: a drill
 * disrupts a Deployment, and one at an unplanned hour surprises whoever watches it.
 */
export const DRILL_SCHEDULE_CATCHUP_WINDOW = '5m';

/** The shortest interval between two drills of one schedule. */
export const DRILL_SCHEDULE_MIN_INTERVAL_MS = 5 * 60_000;

export interface ScheduledDrillInput {
  /** The schedule that started the launcher; its name begins the drill ID. */
  readonly scheduleId: string;
  /** The drill, without its ID (the launcher derives one per run: {@link scheduledDrillId}). */
  readonly drill: Omit<DrillInput, 'drillId'>;
}

const STAMP_LENGTH = '-20261203t100000.123z'.length;

/**
 * The drill ID of a scheduled run: the schedule's name and the launcher's start time to the millisecond,
 * e.g. `nightly-20261203t100000.000z`. Deterministic (the launcher passes `workflowInfo().startTime`),
 * always a valid `DRILL_ID_PATTERN` (a label value and a file name), and distinct per start time.
 *
 * @param scheduleId the schedule's ID; its last `/`-separated part is the name.
 * @param startTime the launcher's start, in ms since the epoch.
 */
export function scheduledDrillId(scheduleId: string, startTime: number): string {
  const name =
    (scheduleId.split('/').pop() ?? '')
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .slice(0, 63 - STAMP_LENGTH)
      .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '') || 'scheduled';
  const year = new Date(startTime).getUTCFullYear();
  // Out of four-digit years (never a real run) the epoch milliseconds stand in for the time.
  const stamp =
    year >= 0 && year <= 9999
      ? new Date(startTime).toISOString().toLowerCase().replace(/[-:]/g, '')
      : `t${startTime < 0 ? 'm' : ''}${Math.abs(startTime)}`;
  return `${name}-${stamp}`;
}
