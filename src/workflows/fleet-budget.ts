import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  makeContinueAsNewFunc,
  defineUpdate,
  patched,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import {
  acquireSlot,
  admitDrain,
  allowsAutomaticQuarantine,
  DEFAULT_FLEET_BUDGET,
  dequeue,
  enqueue,
  initialFleetState,
  nextInQueue,
  QUEUEING_REFUSALS,
  recentFailureCount,
  recordFailure,
  releaseSlot,
  resetBreaker,
  validateFleetBudgetConfig,
  type Admission,
  type FleetBudgetConfig,
  type FleetState,
  type QuarantineVerdict,
} from '../domain/fleet-budget.js';
import { budgetTaskQueue, remediationWorkflowId } from './ids.js';
import { CLUSTER_ID } from './search-attributes.js';

export interface FleetBudgetInput {
  readonly clusterId: string;
  readonly config?: Partial<FleetBudgetConfig>;
  /** Carried over by continue-as-new. */
  readonly state?: FleetState;
}

export interface AcquireRequest {
  readonly node: string;
  readonly gpuNodeCount: number;
  readonly healthyNodes: readonly string[];
  readonly remediationTimestamps?: readonly number[];
  /**
   * Holders (and nodes first in the queue) whose remediation workflow is closed: their slots and
   * places are recovered first.
   */
  readonly staleHolders?: readonly string[];
}

const DRAIN_SLOT_QUEUE_PATCH = 'drain-slot-queue';

export interface OperatorAction {
  readonly by: string;
  readonly reason?: string;
}

/** Asks for a drain slot; the answer says whether it was granted and why not. */
export const acquireDrainSlot = defineUpdate<Admission, [AcquireRequest]>('acquireDrainSlot');
/** Returns a node's drain slot (idempotent). */
export const releaseDrainSlot = defineUpdate<void, [{ node: string }]>('releaseDrainSlot');
/** Records a node failure for the breaker; answers whether automatic quarantine may go on. */
export const reportNodeFailure = defineUpdate<
  QuarantineVerdict,
  [{ node: string; gpuNodeCount: number; healthyNodes: readonly string[] }]
>('reportNodeFailure');
/**
 * Records the failures of several nodes at once (a worker coalesces the reports that arrive while
 * one is in flight). The answer has one verdict per node, in order, each exactly what
 * `reportNodeFailure` would have answered had the nodes been reported one after another.
 */
export const reportNodeFailures = defineUpdate<
  QuarantineVerdict[],
  [{ nodes: readonly string[]; gpuNodeCount: number; healthyNodes: readonly string[] }]
>('reportNodeFailures');
/**
 * Puts a node at the end of the queue for a drain slot (a worker answered its request from the
 * budget's state: every slot taken, or others ahead). Idempotent.
 */
export const queueForDrainSlot = defineSignal<[{ node: string }]>('queueForDrainSlot');
/**
 * Sent by the budget to a queued node's remediation (`remediation/<cluster>/<node>`) when a slot is
 * free for it: ask again now instead of at the next retry.
 */
export const drainSlotFree = defineSignal('drainSlotFree');
export const pauseAutomation = defineUpdate<void, [OperatorAction]>('pauseAutomation');
export const resumeAutomation = defineUpdate<void, [OperatorAction]>('resumeAutomation');
export const resetFleetBreaker = defineUpdate<void, [OperatorAction]>('resetFleetBreaker');
export const fleetBudgetState = defineQuery<FleetState>('fleetBudgetState');

/** The budget's workflow ID for a cluster. */
export function fleetBudgetWorkflowId(clusterId: string): string {
  return `fleet-budget/${clusterId}`;
}

/**
 * The fleet budget of one cluster: a long-lived workflow that caps disruption. Remediations ask it
 * for a drain slot (at most N draining, never below the minimum healthy fraction), report failures
 * to its circuit breaker, and operators pause and resume automation. Decisions are the pure
 * functions of `domain/fleet-budget`; this file only keeps the state durable and serialises requests.
 */
export async function fleetBudgetWorkflow(input: FleetBudgetInput): Promise<void> {
  const config: FleetBudgetConfig = { ...DEFAULT_FLEET_BUDGET, ...input.config };
  const invalid = validateFleetBudgetConfig(config);
  if (invalid) throw ApplicationFailure.nonRetryable(`invalid fleet budget: ${invalid}`, 'InvalidInput');
  let state: FleetState = input.state ? { ...input.state, config } : initialFleetState(0, [], config);
  upsertSearchAttributes([{ key: CLUSTER_ID, value: input.clusterId }]);
  // The queue for drain slots: runs recorded before it replay without it (no queue, no signals).
  const queueing = patched(DRAIN_SLOT_QUEUE_PATCH);

  /**
   * Queued nodes to tell that a slot is free for them (see `drainSlotFree`), sent one after another
   * by `wakeQueued`; a node is told again at each release while it stays first in line.
   */
  const toWake: string[] = [];
  const wakeNext = () => {
    for (const node of nextInQueue(state)) if (!toWake.includes(node)) toWake.push(node);
  };
  async function wakeQueued(): Promise<never> {
    for (;;) {
      await condition(() => toWake.length > 0);
      const node = toWake.shift()!;
      if (!(state.queue ?? []).includes(node)) continue;
      try {
        await getExternalWorkflowHandle(remediationWorkflowId(input.clusterId, node)).signal(drainSlotFree);
      } catch {
        // Its remediation has ended (or never existed): it waits for nothing; the next in line does.
        state = dequeue(state, node);
        wakeNext();
      }
    }
  }

  setHandler(fleetBudgetState, () => state);
  setHandler(acquireDrainSlot, (request) => {
    const before = state.draining.length;
    for (const stale of request.staleHolders ?? []) state = dequeue(releaseSlot(state, stale), stale);
    state = { ...state, gpuNodeCount: request.gpuNodeCount, healthyNodes: [...request.healthyNodes] };
    const admission = admitDrain(
      state,
      { node: request.node, remediationTimestamps: request.remediationTimestamps },
      Date.now(),
    );
    if (admission.admitted) state = acquireSlot(state, request.node);
    else if (queueing && QUEUEING_REFUSALS.has(admission.reason)) state = enqueue(state, request.node);
    if (state.draining.length < before || !admission.admitted) wakeNext();
    return admission;
  });
  setHandler(releaseDrainSlot, ({ node }) => {
    state = releaseSlot(state, node);
    wakeNext();
  });
  setHandler(queueForDrainSlot, ({ node }) => {
    if (queueing && typeof node === 'string') state = enqueue(state, node);
  });
  /** The breaker's verdict after a recorded failure, with how many nodes failed in the last minute. */
  const verdict = (now: number): QuarantineVerdict => ({
    ...allowsAutomaticQuarantine(state, now),
    recentFailures: recentFailureCount(state, now),
  });
  setHandler(reportNodeFailure, ({ node, gpuNodeCount, healthyNodes }) => {
    state = recordFailure({ ...state, gpuNodeCount, healthyNodes: [...healthyNodes] }, node, Date.now());
    return verdict(Date.now());
  });
  setHandler(
    reportNodeFailures,
    ({ nodes, gpuNodeCount, healthyNodes }) => {
      state = { ...state, gpuNodeCount, healthyNodes: [...healthyNodes] };
      return nodes.map((node) => {
        state = recordFailure(state, node, Date.now());
        return verdict(Date.now());
      });
    },
    {
      // Rejected before it is recorded: a batch with a nameless failure would count a node that is none.
      validator: ({ nodes }) => {
        if (!Array.isArray(nodes) || nodes.some((n) => typeof n !== 'string' || n === '')) {
          throw new Error(
            `reportNodeFailures: nodes must be a list of node names, got ${JSON.stringify(nodes)}`,
          );
        }
      },
    },
  );
  setHandler(pauseAutomation, () => {
    state = { ...state, paused: true };
  });
  setHandler(resumeAutomation, () => {
    state = { ...state, paused: false };
  });
  setHandler(resetFleetBreaker, () => {
    state = resetBreaker(state);
  });

  // A queue carried over by continue-as-new, with a slot free: its first nodes may have missed it.
  wakeNext();
  // Keep the history short: continue as new once it grows, after in-flight handlers finish.
  await Promise.race([wakeQueued(), condition(() => workflowInfo().continueAsNewSuggested)]);
  await condition(allHandlersFinished);
  // A budget started on the control task queue (by a version without a budget queue) moves to its own.
  const next = makeContinueAsNewFunc<typeof fleetBudgetWorkflow>({
    taskQueue: budgetTaskQueue(workflowInfo().taskQueue),
  });
  await next({ clusterId: input.clusterId, config, state });
}
