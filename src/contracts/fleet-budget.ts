/**
 * The fleet budget's messages: its input, updates, signals, query and workflow ID, shared by the
 * budget workflow, the activities that ask it for drain slots, the operator client and the metrics.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  Admission,
  FleetBudgetConfig,
  FleetState,
  QuarantineVerdict,
  SlotAnswer,
  SlotBatch,
} from '../domain/fleet-budget.js';
import type { PauseRecord } from '../k8s/budget-settings.js';

/** The workflow type of a cluster's fleet budget (its workflow ID: {@link fleetBudgetWorkflowId}). */
export const FLEET_BUDGET_WORKFLOW = 'fleetBudgetWorkflow';

export interface FleetBudgetInput {
  readonly clusterId: string;
  readonly config?: Partial<FleetBudgetConfig>;
  /**
   * Carried over by continue-as-new. Without it the budget rebuilds itself from the cluster (its
   * settings object, the quarantined nodes and their remediations) before it answers anything.
   */
  readonly state?: FleetState;
  /** Who paused automation, carried over by continue-as-new while it is paused. */
  readonly pause?: PauseRecord;
}

/** A node failure reported to the breaker, with the fleet as the reporting worker sees it. */
export interface FailureReport {
  readonly node: string;
  readonly gpuNodeCount: number;
  readonly healthyNodes: readonly string[];
}

/** Several nodes' failures at once (see {@link reportNodeFailures}). */
export interface FailureBatch {
  readonly nodes: readonly string[];
  readonly gpuNodeCount: number;
  readonly healthyNodes: readonly string[];
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
  /**
   * False: a refused request does not join the queue for a slot (a drill asks once and gives up;
   * it never waits ahead of a remediation). Absent: it does.
   */
  readonly queue?: boolean;
}

export interface OperatorAction {
  readonly by: string;
  readonly reason?: string;
}

/**
 * Asks for a drain slot with the fleet listed just before; the answer says whether it was granted
 * and why not. Workers send {@link acquireDrainSlots}; this one stays for the histories that hold it.
 */
export const acquireDrainSlot = defineUpdate<Admission, [AcquireRequest]>('acquireDrainSlot');
/**
 * Asks for drain slots for several nodes at once (a worker coalesces the requests that arrive while
 * one batch is in flight); one answer per request, in order. Without a fleet view the budget answers
 * only refusals that need none, the others `needsFleetView` (see `decideDrainSlots`).
 */
export const acquireDrainSlots = defineUpdate<SlotAnswer[], [SlotBatch]>('acquireDrainSlots');
/** Returns a node's drain slot (idempotent). */
export const releaseDrainSlot = defineUpdate<void, [{ node: string }]>('releaseDrainSlot');
/** Records a node failure for the breaker; answers whether automatic quarantine may go on. */
export const reportNodeFailure = defineUpdate<QuarantineVerdict, [FailureReport]>('reportNodeFailure');
/**
 * Records the failures of several nodes at once (a worker coalesces the reports that arrive while
 * one is in flight). The answer has one verdict per node, in order, each exactly what
 * `reportNodeFailure` would have answered had the nodes been reported one after another.
 */
export const reportNodeFailures = defineUpdate<QuarantineVerdict[], [FailureBatch]>('reportNodeFailures');
/**
 * Puts a node at the end of the queue for a drain slot. Idempotent. Workers no longer send it (the
 * budget queues a refused request itself); its handler stays for the histories that hold it.
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
/**
 * What the budget's state query answers: its state, and `rebuilding` while a budget started without
 * state has not yet read its records from the cluster (its state is then not the fleet's: it answers
 * no request until it has).
 */
export interface FleetBudgetView extends FleetState {
  readonly rebuilding?: boolean;
}
export const fleetBudgetState = defineQuery<FleetBudgetView>('fleetBudgetState');

/** The budget's workflow ID for a cluster. */
export function fleetBudgetWorkflowId(clusterId: string): string {
  return `fleet-budget/${clusterId}`;
}
