import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  getExternalWorkflowHandle,
  log,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FleetBudgetRecordActivities, FleetBudgetRecords } from '../activities/fleet-budget-records.js';
import type { BudgetSettings, PauseRecord } from '../k8s/budget-settings.js';
import {
  allowsAutomaticQuarantine,
  decideDrainSlots,
  DEFAULT_FLEET_BUDGET,
  dequeue,
  enqueue,
  initialFleetState,
  nextInQueue,
  recentFailureCount,
  recordFailure,
  releaseSlot,
  resetBreaker,
  validateFleetBudgetConfig,
  type FleetBudgetConfig,
  type FleetState,
  type QuarantineVerdict,
  type SlotBatch,
} from '../domain/fleet-budget.js';
import { budgetTaskQueue, controlTaskQueueOf, remediationWorkflowId } from '../contracts/ids.js';
import { CLUSTER_ID } from '../contracts/search-attributes.js';
import { FailureType } from '../errors.js';
import {
  acquireDrainSlot,
  acquireDrainSlots,
  drainSlotFree,
  fleetBudgetState,
  pauseAutomation,
  queueForDrainSlot,
  releaseDrainSlot,
  reportNodeFailure,
  reportNodeFailures,
  resetFleetBreaker,
  resumeAutomation,
  type AcquireRequest,
  type FailureBatch,
  type FailureReport,
  type FleetBudgetInput,
  type OperatorAction,
} from '../contracts/fleet-budget.js';

export * from '../contracts/fleet-budget.js';

const DRAIN_SLOT_QUEUE_PATCH = 'drain-slot-queue';
/**
 * The budget keeps its pause and an open breaker in the cluster's settings object, and a budget that
 * starts without state rebuilds itself from the cluster. Runs recorded before it do neither.
 */
const DURABLE_BUDGET_PATCH = 'durable-budget';

/**
 * The fleet budget of one cluster: a long-lived workflow that caps disruption. Remediations ask it
 * for a drain slot (at most N draining, never below the minimum healthy fraction), report failures
 * to its circuit breaker, and operators pause and resume automation. Decisions are the pure
 * functions of `domain/fleet-budget`; this file only keeps the state durable and serialises requests.
 */
export async function fleetBudgetWorkflow(input: FleetBudgetInput): Promise<void> {
  const config: FleetBudgetConfig = { ...DEFAULT_FLEET_BUDGET, ...input.config };
  const invalid = validateFleetBudgetConfig(config);
  if (invalid)
    throw ApplicationFailure.nonRetryable(`invalid fleet budget: ${invalid}`, FailureType.InvalidInput);
  let state: FleetState = input.state ? { ...input.state, config } : initialFleetState(0, [], config);
  upsertSearchAttributes([{ key: CLUSTER_ID, value: input.clusterId }]);
  // The queue for drain slots: runs recorded before it replay without it (no queue, no signals).
  const queueing = patched(DRAIN_SLOT_QUEUE_PATCH);
  const durable = patched(DURABLE_BUDGET_PATCH);
  // The budget's records in the cluster, read and written by the control worker.
  const controlQueue = controlTaskQueueOf(workflowInfo().taskQueue);
  const { readFleetBudgetRecords } = proxyActivities<FleetBudgetRecordActivities>({
    taskQueue: controlQueue,
    startToCloseTimeout: '2 minutes',
    // Without its records the budget admits nothing: it keeps trying (every call waits for it).
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
  });
  const { writeFleetBudgetSettings } = proxyActivities<FleetBudgetRecordActivities>({
    taskQueue: controlQueue,
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 6 },
  });

  /** Who paused automation, while it is paused (the settings object keeps it). */
  let pauseRecord: PauseRecord | null = input.pause ?? null;
  /** The budget answers nothing (but its state query) until it has rebuilt itself. */
  let ready = !(durable && input.state === undefined);
  // A handler runs at once when the budget is ready (as before it could rebuild: replays unchanged).
  const whenReady =
    <A extends unknown[], R>(handler: (...args: A) => R) =>
    (...args: A): R | Promise<Awaited<R>> =>
      ready ? handler(...args) : condition(() => ready).then(() => handler(...args) as Awaited<R>);

  /** Settings writes, one after another, each writing the settings as they are when it starts. */
  let writing: Promise<void> = Promise.resolve();
  const settings = (): BudgetSettings => ({
    paused: state.paused ? pauseRecord : null,
    breaker: state.breaker,
  });
  const persist = (): Promise<void> => {
    const write = writing.then(() => writeFleetBudgetSettings(settings()));
    writing = write.catch((err: unknown) => {
      log.warn('the fleet budget could not write its settings object', { error: String(err) });
    });
    return write;
  };
  /** Writes the settings for an operator's action: a failure is the operator's to know. */
  const persistFor = async (what: string): Promise<void> => {
    if (!durable) return;
    try {
      await persist();
    } catch (err) {
      throw ApplicationFailure.nonRetryable(
        `${what} applies to the running fleet budget, but it could not be recorded in the cluster's ` +
          `settings object (${(err as Error).message}); a budget restarted now would not know it: ` +
          `check the control worker's rights on its fleetmedic-fleet-budget ConfigMap and repeat the action`,
        FailureType.SettingsNotRecorded,
      );
    }
  };
  /** Records a breaker that opened (no caller waits: the failure reports go on). */
  const persistIfTripped = (before: FleetState['breaker']) => {
    if (durable && before.state !== 'open' && state.breaker.state === 'open') void persist().catch(() => {});
  };

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

  setHandler(fleetBudgetState, () => (ready ? state : { ...state, rebuilding: true }));
  /** Decides a batch of requests for drain slots (see `decideDrainSlots`), the one place drains are admitted. */
  const decide = (batch: SlotBatch) => {
    const decided = decideDrainSlots(state, batch, Date.now(), queueing);
    state = decided.state;
    if (decided.wake) wakeNext();
    return decided.answers;
  };
  setHandler(
    acquireDrainSlot,
    whenReady((request: AcquireRequest) => {
      const { node, gpuNodeCount, healthyNodes, remediationTimestamps, staleHolders, queue } = request;
      const [answer] = decide({
        requests: [
          { node, remediationTimestamps: remediationTimestamps ?? [], ...(queue === false && { queue }) },
        ],
        ...(staleHolders !== undefined && { staleHolders }),
        fleet: { gpuNodeCount, healthyNodes },
      });
      if (answer === undefined || !('admission' in answer))
        throw new Error('a request with a fleet view was not decided');
      return answer.admission;
    }),
  );
  setHandler(acquireDrainSlots, whenReady(decide), {
    // Rejected before it is recorded: a request without a node name would take a slot for no node.
    validator: (batch: SlotBatch) => {
      const requests: unknown = batch?.requests;
      if (
        !Array.isArray(requests) ||
        requests.length === 0 ||
        requests.some((r: { node?: unknown }) => typeof r?.node !== 'string' || r.node === '')
      ) {
        throw new Error(
          `acquireDrainSlots: requests must be a non-empty list of { node: <node name> }, got ${JSON.stringify(requests)}`,
        );
      }
    },
  });
  setHandler(
    releaseDrainSlot,
    whenReady(({ node }: { node: string }) => {
      state = releaseSlot(state, node);
      wakeNext();
    }),
  );
  setHandler(queueForDrainSlot, ({ node }) => {
    if (queueing && typeof node === 'string') state = enqueue(state, node);
  });
  /** The breaker's verdict after a recorded failure, with how many nodes failed in the last minute. */
  const verdict = (now: number): QuarantineVerdict => ({
    ...allowsAutomaticQuarantine(state, now),
    recentFailures: recentFailureCount(state, now),
  });
  setHandler(
    reportNodeFailure,
    whenReady(({ node, gpuNodeCount, healthyNodes }: FailureReport) => {
      const breaker = state.breaker;
      state = recordFailure({ ...state, gpuNodeCount, healthyNodes: [...healthyNodes] }, node, Date.now());
      persistIfTripped(breaker);
      return verdict(Date.now());
    }),
  );
  setHandler(
    reportNodeFailures,
    whenReady(({ nodes, gpuNodeCount, healthyNodes }: FailureBatch) => {
      const breaker = state.breaker;
      state = { ...state, gpuNodeCount, healthyNodes: [...healthyNodes] };
      const verdicts = nodes.map((node) => {
        state = recordFailure(state, node, Date.now());
        return verdict(Date.now());
      });
      persistIfTripped(breaker);
      return verdicts;
    }),
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
  setHandler(
    pauseAutomation,
    whenReady(async (action: OperatorAction) => {
      state = { ...state, paused: true };
      pauseRecord = {
        by: action.by,
        ...(action.reason !== undefined && { reason: action.reason }),
        at: new Date().toISOString(),
      };
      await persistFor('the pause');
    }),
  );
  setHandler(
    resumeAutomation,
    whenReady(async () => {
      state = { ...state, paused: false };
      pauseRecord = null;
      await persistFor('the resume');
    }),
  );
  setHandler(
    resetFleetBreaker,
    whenReady(async () => {
      state = resetBreaker(state);
      await persistFor('the breaker reset');
    }),
  );

  if (!ready) {
    // Started without state: a first start, or after the budget was terminated or reset. Rebuild
    // what it knew from the cluster, never start empty while nodes drain or a pause stands.
    let records: FleetBudgetRecords | undefined;
    while (records === undefined) {
      try {
        records = await readFleetBudgetRecords();
      } catch (err) {
        // Refused (no rights to the settings ConfigMap, say): the budget admits nothing until it
        // can read them; requests wait, then time out and retry. Said in the worker's log.
        log.error('the fleet budget cannot rebuild itself from the cluster; it admits nothing until it can', {
          error: String(err),
        });
        await sleep('1 minute');
      }
    }
    log.info(`fleet budget rebuilt from the cluster: ${records.summary}`);
    pauseRecord = records.settings.paused;
    state = {
      ...state,
      paused: records.settings.paused !== null,
      breaker: records.settings.breaker,
      draining: [...records.draining],
      failures: [...records.failures],
    };
    ready = true;
  }

  // A queue carried over by continue-as-new, with a slot free: its first nodes may have missed it.
  wakeNext();
  // Keep the history short: continue as new once it grows, after in-flight handlers finish.
  await Promise.race([wakeQueued(), condition(() => workflowInfo().continueAsNewSuggested)]);
  await condition(allHandlersFinished);
  await writing;
  // A budget started on the control task queue (by a version without a budget queue) moves to its own.
  const next = makeContinueAsNewFunc<typeof fleetBudgetWorkflow>({
    taskQueue: budgetTaskQueue(workflowInfo().taskQueue),
  });
  await next({
    clusterId: input.clusterId,
    config,
    state,
    ...(pauseRecord !== null && state.paused && { pause: pauseRecord }),
  });
}
