/**
 * The running drills of a cluster, for `fleetmedic status`: Temporal visibility finds them (each drill
 * writes its cluster ID into a search attribute), their progress query says where each is.
 */
import type { Client } from '@temporalio/client';
import { DRILL_WORKFLOW, drillProgressQuery, type DrillStage } from '../contracts/drill.js';
import { CLUSTER_ID } from '../contracts/search-attributes.js';

/** One running drill as `fleetmedic status` shows it. */
export interface RunningDrill {
  readonly drillId: string;
  readonly workflowId: string;
  /** ISO time of its start. */
  readonly startedAt: string;
  /** From its progress query; null when the query was not answered (no worker, or too slow). */
  readonly stage: DrillStage | null;
  /** Nodes the drill holds cordoned now. */
  readonly cordoned: readonly string[];
  /** Why it is aborting, once it is. */
  readonly aborted?: string;
  /** The launcher that started it, for a scheduled drill. */
  readonly startedBy?: string;
}

/** The drill ID in a drill's workflow ID (`drill/<clusterId>/<drillId>`). */
function drillIdOf(workflowId: string): string {
  return workflowId.slice(workflowId.lastIndexOf('/') + 1);
}

/**
 * The cluster's running drills, oldest first. Each call to Temporal has `timeoutMs`; a drill whose
 * query goes unanswered is still listed, with a null stage.
 *
 * @param clusterId validated by the configuration (a DNS label): it goes into the visibility query.
 */
export async function runningDrills(
  client: Client,
  clusterId: string,
  timeoutMs: number,
  limit = 50,
): Promise<RunningDrill[]> {
  const query = [
    `WorkflowType = '${DRILL_WORKFLOW}'`,
    `${CLUSTER_ID.name} = '${clusterId}'`,
    `ExecutionStatus = 'Running'`,
  ].join(' AND ');
  const infos = await client.withDeadline(Date.now() + timeoutMs, async () => {
    const found = [];
    for await (const info of client.workflow.list({ query, pageSize: limit })) {
      found.push(info);
      if (found.length >= limit) break;
    }
    return found;
  });
  const rows = await Promise.all(
    infos.map(async (info): Promise<RunningDrill> => {
      const handle = client.workflow.getHandle(info.workflowId, info.runId);
      const p = await client
        .withDeadline(Date.now() + timeoutMs, () => handle.query(drillProgressQuery))
        .catch(() => undefined);
      return {
        drillId: p?.drillId ?? drillIdOf(info.workflowId),
        workflowId: info.workflowId,
        startedAt: info.startTime.toISOString(),
        stage: p?.stage ?? null,
        cordoned: p?.cordoned ?? [],
        ...(p?.aborted !== undefined && { aborted: p.aborted }),
        ...(info.parentExecution?.workflowId && { startedBy: info.parentExecution.workflowId }),
      };
    }),
  );
  return rows.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** The lines `fleetmedic status` prints for them: one per drill, or that none runs. */
export function runningDrillLines(drills: readonly RunningDrill[], now: number): string[] {
  if (drills.length === 0) return ['no running drills'];
  return drills.map((d) => {
    const seconds = Math.max(0, Math.round((now - Date.parse(d.startedAt)) / 1000));
    const age = seconds >= 60 ? `${Math.floor(seconds / 60)}m${seconds % 60}s` : `${seconds}s`;
    const parts = [
      `drill ${d.drillId}`,
      d.stage ?? 'stage unknown (no answer to its query)',
      age,
      d.cordoned.length > 0 ? `cordoned ${d.cordoned.join(', ')}` : 'nothing cordoned',
    ];
    if (d.aborted) parts.push(`aborting: ${d.aborted}`);
    if (d.startedBy) parts.push(`started by ${d.startedBy}`);
    return parts.join('  ');
  });
}
