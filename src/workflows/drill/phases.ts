/**
 * The drill's fault phases, each measured by an activity and recorded with its window (injection to
 * all replicas Ready, the disrupted pod gone, plus the tail). Workflow code: deterministic.
 */
import { proxyActivities, sleep, type ActivityOptions } from '@temporalio/workflow';
import { ActivityCancellationType } from '@temporalio/common';
import type { DrillActivities } from '../../activities/drill/index.js';
import type { KubernetesActivities } from '../../activities/kubernetes/index.js';
import type { RemediationSupportActivities } from '../../activities/remediation-support/index.js';
import { drillOwner, type DrillInput, type DrillPhaseRecord } from '../../contracts/drill.js';

const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3 };
// Cancelled with the drill, and waited for, so rollback starts only once nothing is being evicted.
const waitCancel = { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };
const shortOptions: ActivityOptions = { startToCloseTimeout: '2m', retry, ...waitCancel };
const longOptions: ActivityOptions = {
  startToCloseTimeout: '30m',
  heartbeatTimeout: '30s',
  retry,
  ...waitCancel,
};

/** The drill activities with short and long (heartbeating) options. */
export const short = proxyActivities<DrillActivities>(shortOptions);
export const long = proxyActivities<DrillActivities>(longOptions);
const { drainNode } = proxyActivities<KubernetesActivities>(longOptions);
const { budgetAcquire } = proxyActivities<RemediationSupportActivities>(shortOptions);

/**
 * The continuity watchdog's activity: it runs as long as the drill may (its deadline, plus a minute),
 * heartbeating, and is cancelled when the drill's faults are over. Retried without a limit of
 * attempts (its time is bounded): each death of its worker costs one, and a watchdog that gives up
 * aborts the drill; a retry reads the probe's file again from its start.
 */
export function watchdogActivity(deadlineMs: number) {
  const { maximumAttempts: _limited, ...unlimited } = retry;
  return proxyActivities<DrillActivities>({
    ...longOptions,
    retry: unlimited,
    startToCloseTimeout: deadlineMs + 60_000,
  }).watchContinuity;
}

/**
 * The eviction's restore time: as the replacement's replica wrapper measured it; 0 for stand-ins,
 * which keep no checkpoint; unknown otherwise (the verdict then fails safe).
 */
function restoreOf(input: DrillInput, r: { restoreMs?: number }): { restoreMs?: number } {
  if (r.restoreMs !== undefined) return { restoreMs: r.restoreMs };
  return input.standin ? { restoreMs: 0 } : {};
}

/** Waits until the window's end has passed, so that the probe has measured all of it. */
async function waitForWindow(phase: DrillPhaseRecord): Promise<DrillPhaseRecord> {
  const left = phase.window.to - Date.now();
  if (left > 0) await sleep(left);
  return phase;
}

/** Steady state: a window of `steadyMs` without any injection. */
export async function steadyState(steadyMs: number): Promise<DrillPhaseRecord> {
  const from = Date.now();
  return waitForWindow({
    name: 'steady-state',
    injectedAt: from,
    recovery: [],
    window: { from, to: from + steadyMs },
  });
}

function recoveryEnd(steps: readonly { step: string; at: number }[], victimGoneAt: number): number {
  const allReady = steps.find((s) => s.step === 'all-ready')?.at ?? victimGoneAt;
  return Math.max(allReady, victimGoneAt);
}

/** Deletes one replica and measures until its replacement is Ready and the pod is gone. */
export async function podDelete(
  input: DrillInput,
  tailMs: number,
  timeoutSeconds: number,
): Promise<DrillPhaseRecord> {
  const r = await long.deletePodAndMeasure({
    namespace: input.namespace,
    deployment: input.deployment,
    timeoutSeconds,
  });
  return waitForWindow({
    name: 'pod-delete',
    injectedAt: r.injectedAt,
    recovery: r.steps,
    target: r.victim,
    ...(r.restoreMs !== undefined && { restoreMs: r.restoreMs }),
    window: { from: r.injectedAt, to: recoveryEnd(r.steps, r.victimGoneAt) + tailMs },
  });
}

/**
 * The eviction phase without a node drain (`drainNode: false`, a real cluster without
 * `--drain-node`): one replica evicted through the Eviction API, its node neither cordoned nor
 * drained, and recovery measured as for a drain.
 */
async function podEviction(
  input: DrillInput,
  tailMs: number,
  timeoutSeconds: number,
): Promise<DrillPhaseRecord> {
  const r = await long.deletePodAndMeasure({
    namespace: input.namespace,
    deployment: input.deployment,
    timeoutSeconds,
    evict: true,
  });
  return waitForWindow({
    name: 'eviction',
    injectedAt: r.injectedAt,
    recovery: r.steps,
    target: `${r.victim} (evicted; its node not drained)`,
    ...restoreOf(input, r),
    window: { from: r.injectedAt, to: recoveryEnd(r.steps, r.victimGoneAt) + tailMs },
  });
}

/** What the eviction phase needs besides the drill's input. */
export interface EvictionHooks {
  /** Learns the node once cordoned, before anything is evicted, so a rollback knows it. */
  readonly onCordon: (node: string) => void;
  /**
   * Set: the drain asks the fleet budget for a drain slot first (`queue: false`), and a refusal
   * (paused, breaker open, no slot, too few healthy nodes) ends the phase without evicting anything;
   * `onSlot` learns the node whose slot the drill holds, so a rollback returns it.
   */
  readonly budget?: { readonly onSlot: (node: string) => void };
}

/**
 * Cordons one replica's node for the drill (owner `drill/<id>`), asks the fleet budget for a drain
 * slot as a remediation would (see {@link EvictionHooks}), and drains the Deployment's pods from it
 * through the remediation's `drainNode` (PDB-aware Eviction API), measuring recovery beside it.
 *
 * @returns the phase, or `{ refused }` with the budget's reason when it admitted no drain.
 */
export async function nodeEviction(
  input: DrillInput,
  tailMs: number,
  timeoutSeconds: number,
  hooks: EvictionHooks,
): Promise<DrillPhaseRecord | { refused: string }> {
  if (input.drainNode === false) return podEviction(input, tailMs, timeoutSeconds);
  const owner = drillOwner(input.drillId);
  const c = await short.cordonReplicaNode({
    namespace: input.namespace,
    deployment: input.deployment,
    owner,
    reason: `drill ${input.drillId}: node eviction`,
  });
  hooks.onCordon(c.node);
  if (hooks.budget) {
    // After the cordon: the ownership record names the drill, which is how the budget tells that
    // the slot's holder is still running (a remediation's own slot is found by its workflow ID).
    const admission = await budgetAcquire({ node: c.node, remediationTimestamps: [], queue: false });
    if (!admission.admitted) {
      return {
        refused: `the fleet budget refused to drain ${c.node} (${admission.reason}): ${admission.detail}`,
      };
    }
    hooks.budget.onSlot(c.node);
  }
  const injectedAt = Date.now();
  const [r] = await Promise.all([
    long.measureRecovery({
      namespace: input.namespace,
      deployment: input.deployment,
      victim: c.victim,
      before: c.before,
      injectedAt,
      timeoutSeconds,
    }),
    drainNode({
      node: c.node,
      workflowId: owner,
      podFilter: { namespaces: [input.namespace], labelSelector: c.selector },
      deadlineSeconds: timeoutSeconds,
      // The drill's own replicas restore from their checkpoint store: their emptyDir holds nothing
      // else. A Deployment of the user's needs the opt-in, as a remediation's drain would.
      ...((input.deleteEmptyDirData ?? input.standin !== undefined) && { deleteEmptyDirData: true }),
    }),
  ]);
  return waitForWindow({
    name: 'eviction',
    injectedAt,
    recovery: r.steps,
    target: `${c.node} (${c.victim.name})`,
    ...restoreOf(input, r),
    window: { from: injectedAt, to: recoveryEnd(r.steps, r.victimGoneAt) + tailMs },
  });
}

/**
 * Evicts one pod of the gateway's own Deployment (`input.gateway`) through the Eviction API and
 * measures until its replacement is Ready: continuity through the Service in front of the gateway.
 */
export async function gatewayEviction(
  input: DrillInput,
  tailMs: number,
  timeoutSeconds: number,
): Promise<DrillPhaseRecord> {
  const gateway = input.gateway!;
  const r = await long.deletePodAndMeasure({
    namespace: gateway.namespace ?? input.namespace,
    deployment: gateway.deployment,
    timeoutSeconds,
    evict: true,
  });
  return waitForWindow({
    name: 'gateway-eviction',
    injectedAt: r.injectedAt,
    recovery: r.steps,
    target: `${r.victim} (a pod of gateway ${gateway.deployment}, evicted)`,
    window: { from: r.injectedAt, to: recoveryEnd(r.steps, r.victimGoneAt) + tailMs },
  });
}
