import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  getExternalWorkflowHandle,
  makeContinueAsNewFunc,
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
  type FleetBudgetConfig,
  type FleetState,
  type QuarantineVerdict,
} from '../domain/fleet-budget.js';
import { budgetTaskQueue, remediationWorkflowId } from '../contracts/ids.js';
import { CLUSTER_ID } from '../contracts/search-attributes.js';
import {
  acquireDrainSlot,
  drainSlotFree,
  fleetBudgetState,
  pauseAutomation,
  queueForDrainSlot,
  releaseDrainSlot,
  reportNodeFailure,
  reportNodeFailures,
  resetFleetBreaker,
  resumeAutomation,
  type FleetBudgetInput,
} from '../contracts/fleet-budget.js';

export * from '../contracts/fleet-budget.js';

const DRAIN_SLOT_QUEUE_PATCH = 'drain-slot-queue';

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
