/**
 * The drill's fault phases, each measured by an activity and recorded with its window (injection to
 * all replicas Ready, the disrupted pod gone, plus the tail). Workflow code: deterministic.
 */
import { proxyActivities, sleep, type ActivityOptions } from '@temporalio/workflow';
import { ActivityCancellationType } from '@temporalio/common';
import type { DrillActivities } from '../../activities/drill/index.js';
import type { KubernetesActivities } from '../../activities/kubernetes/index.js';
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
    window: { from: r.injectedAt, to: recoveryEnd(r.steps, r.victimGoneAt) + tailMs },
  });
}

/**
 * Cordons one replica's node for the drill (owner `drill/<id>`) and drains the Deployment's pods from
 * it through the remediation's `drainNode` (PDB-aware Eviction API), measuring recovery beside it.
 * `onCordon` learns the node before anything is evicted, so a rollback knows it.
 */
export async function nodeEviction(
  input: DrillInput,
  tailMs: number,
  timeoutSeconds: number,
  onCordon: (node: string) => void,
): Promise<DrillPhaseRecord> {
  const owner = drillOwner(input.drillId);
  const c = await short.cordonReplicaNode({
    namespace: input.namespace,
    deployment: input.deployment,
    owner,
    reason: `drill ${input.drillId}: node eviction`,
  });
  onCordon(c.node);
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
    }),
  ]);
  return waitForWindow({
    name: 'eviction',
    injectedAt,
    recovery: r.steps,
    target: `${c.node} (${c.victim.name})`,
    // The stand-ins keep no checkpoint: nothing to restore (a Deployment of the user's has its own).
    ...(input.standin && { restoreMs: 0 }),
    window: { from: injectedAt, to: recoveryEnd(r.steps, r.victimGoneAt) + tailMs },
  });
}
