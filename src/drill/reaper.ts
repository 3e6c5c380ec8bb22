/**
 * The drill reaper: a drill that is terminated or times out runs no rollback, so its cordon would
 * stay forever. The reaper finds ownership records naming a drill (`drill/<drill ID>`), asks Temporal
 * for that drill's workflow, and releases the cordon of a drill whose run is closed or unknown to
 * Temporal, exactly as the drill's own restore does. The control worker runs it periodically;
 * `fleetmedic release <node>` runs it for one node.
 */
import type { V1Node } from '@kubernetes/client-node';
import { WorkflowNotFoundError, type Client, type WorkflowExecutionStatusName } from '@temporalio/client';
import type { Logger } from '@temporalio/common';
import { releaseDrillCordon } from '../activities/drill/access.js';
import { nodeAccess, type KubernetesActivityDeps } from '../activities/kubernetes/node-access.js';
import { DRILL_ID_PATTERN, drillWorkflowId } from '../contracts/drill.js';
import { isApiError } from '../k8s/api-errors.js';
import { CLUSTER_LABEL } from '../k8s/labels.js';
import { parseCordonRecord } from '../k8s/node-ownership.js';
import { CORDON_ANNOTATION, DRILL_OWNER_PREFIX } from '../k8s/remediation-labels.js';

/** Attempts of a revert's read-plan-patch before a 409 is left to the next pass. */
const REVERT_CONFLICT_ATTEMPTS = 3;

/** Default time between two passes of the control worker's reaper. */
export const DEFAULT_DRILL_REAPER_INTERVAL_MS = 60_000;

/** A drill's workflow as Temporal describes it; `status` is Temporal's name for a closed or open run. */
export type DrillRun =
  | { readonly state: 'running'; readonly status: WorkflowExecutionStatusName }
  | { readonly state: 'closed'; readonly status: WorkflowExecutionStatusName }
  | { readonly state: 'not-found' }
  | { readonly state: 'unknown'; readonly error: string };

/** A cordon whose ownership record names a drill, on a node of this cluster. */
export interface DrillCordon {
  readonly node: string;
  /** The record's owner, `drill/<drill ID>`. */
  readonly owner: string;
  readonly drillId: string;
  /** The drill's workflow ID, `drill/<cluster ID>/<drill ID>`. */
  readonly workflowId: string;
}

/** What the reaper decided for one drill cordon. */
export interface ReapDecision {
  readonly cordon: DrillCordon;
  readonly run: DrillRun;
  readonly action: 'revert' | 'leave';
}

/** A decision carried out: `uncordoned`, `released` (record removed, a pre-existing cordon kept), or not. */
export interface ReapOutcome extends ReapDecision {
  readonly result: 'uncordoned' | 'released' | 'left' | 'failed';
  /** Why a revert failed (the next pass tries again). */
  readonly error?: string;
}

/** Running, closed or neither (a status this code does not know is neither: fail safe). */
export function runState(status: WorkflowExecutionStatusName): 'running' | 'closed' | 'unknown' {
  if (status === 'RUNNING' || status === 'PAUSED') return 'running';
  if (['COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT'].includes(status)) return 'closed';
  return 'unknown';
}

/**
 * The drill cordons among `nodes`: records that parse and whose owner is `drill/<a valid drill ID>`, on
 * nodes without another cluster's label. Everything else (remediations, unreadable records, another
 * cluster's nodes) is not the reaper's.
 */
export function drillCordons(nodes: readonly V1Node[], clusterId: string): DrillCordon[] {
  const found: DrillCordon[] = [];
  for (const node of nodes) {
    const cluster = node.metadata?.labels?.[CLUSTER_LABEL];
    if (cluster !== undefined && cluster !== clusterId) continue;
    const parsed = parseCordonRecord(node.metadata?.annotations?.[CORDON_ANNOTATION]);
    if (parsed.kind !== 'ok' || !parsed.record.workflowId.startsWith(DRILL_OWNER_PREFIX)) continue;
    const owner = parsed.record.workflowId;
    const drillId = owner.slice(DRILL_OWNER_PREFIX.length);
    if (!DRILL_ID_PATTERN.test(drillId)) continue;
    found.push({
      node: node.metadata?.name ?? '',
      owner,
      drillId,
      workflowId: drillWorkflowId(clusterId, drillId),
    });
  }
  return found;
}

/**
 * Decides which drill cordons to revert: those whose drill's run is closed or that Temporal does not
 * know (a run deleted by retention). Fails safe: a running drill, or one Temporal could not be asked
 * about (no entry in `runs` included), keeps its cordon.
 *
 * @param runs the drill's run per workflow ID.
 */
export function planDrillReap(
  cordons: readonly DrillCordon[],
  runs: ReadonlyMap<string, DrillRun>,
): ReapDecision[] {
  return cordons.map((cordon) => {
    const run: DrillRun = runs.get(cordon.workflowId) ?? { state: 'unknown', error: 'not asked' };
    const action = run.state === 'closed' || run.state === 'not-found' ? 'revert' : 'leave';
    return { cordon, run, action };
  });
}

/** Asks Temporal for a drill's run; never throws (an error is an `unknown` run). */
export type DescribeDrillRun = (workflowId: string) => Promise<DrillRun>;

/** {@link DescribeDrillRun} on a Temporal client, each call within `timeoutMs`. */
export function describeDrillRuns(client: Client, timeoutMs = 10_000): DescribeDrillRun {
  return async (workflowId) => {
    try {
      const d = await client.withDeadline(Date.now() + timeoutMs, () =>
        client.workflow.getHandle(workflowId).describe(),
      );
      const state = runState(d.status.name);
      return state === 'unknown'
        ? { state, error: `status ${d.status.name}` }
        : { state, status: d.status.name };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { state: 'not-found' };
      return { state: 'unknown', error: (err as Error).message };
    }
  };
}

export interface DrillReaperDeps extends Pick<KubernetesActivityDeps, 'kc' | 'clusterId' | 'apiClient'> {
  readonly describe: DescribeDrillRun;
}

/** The reaper of one cluster: a pass over every node, or over one node. */
export function createDrillReaper(deps: DrillReaperDeps) {
  const access = nodeAccess(deps);

  /**
   * Planned first from the node as listed, before Temporal was asked. A 409 (the node changed: the
   * node controller taints a node just cordoned) reads it again and goes on only while its record is
   * the one decided on; a new record is left to the next pass.
   */
  async function revert(listed: V1Node, owner: string) {
    const decided = listed.metadata?.annotations?.[CORDON_ANNOTATION];
    let node = listed;
    for (let attempt = 1; ; attempt++) {
      try {
        return await releaseDrillCordon(access, node, owner);
      } catch (err) {
        if (!isApiError(err, 409) || attempt >= REVERT_CONFLICT_ATTEMPTS) throw err;
      }
      const fresh = await access.readNode(listed.metadata?.name ?? '');
      if (fresh === undefined || fresh.metadata?.annotations?.[CORDON_ANNOTATION] !== decided)
        return undefined;
      node = fresh;
    }
  }

  async function reapNodes(nodes: readonly V1Node[]): Promise<ReapOutcome[]> {
    const cordons = drillCordons(nodes, deps.clusterId);
    const runs = new Map<string, DrillRun>();
    for (const id of new Set(cordons.map((c) => c.workflowId))) {
      runs.set(id, await deps.describe(id).catch((err: unknown) => unknownRun(err)));
    }
    const byName = new Map(nodes.map((n) => [n.metadata?.name ?? '', n]));
    const outcomes: ReapOutcome[] = [];
    for (const decision of planDrillReap(cordons, runs)) {
      const node = byName.get(decision.cordon.node);
      if (decision.action === 'leave' || node === undefined) {
        outcomes.push({ ...decision, result: 'left' });
        continue;
      }
      try {
        const released = await revert(node, decision.cordon.owner);
        const result = released === undefined ? 'left' : released.uncordoned ? 'uncordoned' : 'released';
        outcomes.push({ ...decision, result });
      } catch (err) {
        outcomes.push({ ...decision, result: 'failed', error: (err as Error).message });
      }
    }
    return outcomes;
  }

  return {
    /** One pass over the cluster's nodes. */
    async reap(): Promise<ReapOutcome[]> {
      return reapNodes((await access.core.listNode()).items);
    },
    /** The pass for one node: undefined when it does not exist or no drill owns its record. */
    async reapNode(name: string): Promise<ReapOutcome | undefined> {
      const node = await access.readNode(name);
      return node === undefined ? undefined : (await reapNodes([node]))[0];
    },
  };
}

export type DrillReaper = ReturnType<typeof createDrillReaper>;

function unknownRun(err: unknown): DrillRun {
  return { state: 'unknown', error: err instanceof Error ? err.message : String(err) };
}

/** A line on one outcome, for the log and the release command. */
export function describeOutcome(o: ReapOutcome): string {
  const { node, drillId, workflowId } = o.cordon;
  const run =
    o.run.state === 'not-found'
      ? `Temporal has no workflow ${workflowId}`
      : o.run.state === 'unknown'
        ? `its workflow ${workflowId} could not be read (${o.run.error})`
        : `its workflow ${workflowId} is ${o.run.status.toLowerCase()}`;
  const done = {
    uncordoned: 'cordon reverted: node uncordoned and ownership record removed',
    released: 'ownership record removed; the node stays cordoned (it was cordoned before the drill)',
    left: 'left as it is',
    failed: `revert failed (${o.error ?? '?'}); the next pass tries again`,
  }[o.result];
  return `node ${node} is cordoned by drill ${drillId}; ${run}: ${done}`;
}

/** The periodic reaper of a control worker; {@link DrillReaperLoop.stop} ends it. */
export interface DrillReaperLoop {
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `reap` now and then every `intervalMs` (counted from the end of a pass, so passes never
 * overlap). A pass that fails is logged, never thrown: the next one tries again.
 *
 * @example
 * const loop = startDrillReaper({ reap: reaper.reap, intervalMs: 60_000, logger });
 * await loop.stop();
 */
export function startDrillReaper(options: {
  readonly reap: () => Promise<ReapOutcome[]>;
  readonly intervalMs: number;
  readonly logger: Logger;
}): DrillReaperLoop {
  const { reap, intervalMs, logger } = options;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const pass = async () => {
    try {
      for (const o of await reap()) {
        const line = `drill reaper: ${describeOutcome(o)}`;
        if (o.result === 'failed') logger.warn(line);
        else if (o.result === 'left') logger.debug(line);
        else logger.info(line);
      }
    } catch (err) {
      logger.warn(`drill reaper: pass failed (the next one tries again): ${(err as Error).message}`);
    }
  };
  let current: Promise<void> = Promise.resolve();
  const run = () => {
    current = pass().then(() => {
      if (!stopped) timer = setTimeout(run, intervalMs);
    });
  };
  run();
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await current;
    },
  };
}
