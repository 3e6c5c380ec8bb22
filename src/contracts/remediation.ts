/**
 * The remediation workflow's messages: its input, the alert signal, the operator updates and the
 * status query, shared by the workflow, the webhook, the operator client and the CLI. Nothing outside
 * src/workflows imports workflow code: callers name the workflow by {@link REMEDIATION_WORKFLOW}.
 */
import { defineQuery, defineSignal, defineUpdate, type Sinks } from '@temporalio/workflow';
import type { PhaseChange } from '../observability/phase-events.js';
import type { RemediationClass } from '../domain/remediation-class.js';
import type {
  ActivityKind,
  OperatorAction,
  RemediationOutcome,
  RemediationPhase,
  RemediationState,
} from '../domain/remediation-machine/types.js';
import type { AlertSignal, RemediationPolicy } from '../domain/remediation-plan.js';

export type { AlertSignal } from '../domain/remediation-plan.js';
export type {
  OperatorAction,
  RemediationOutcome,
  RemediationPhase,
} from '../domain/remediation-machine/types.js';

/** The workflow type of a node's remediation (its workflow ID: `remediationWorkflowId`). */
export const REMEDIATION_WORKFLOW = 'gpuRemediationWorkflow';

export interface RemediationInput {
  readonly clusterId: string;
  readonly node: string;
  readonly policy?: Partial<RemediationPolicy>;
  /** The state of the run this one continues (continue-as-new); absent for a new run. */
  readonly resume?: RemediationState;
  /**
   * Continue as new once the history has this many events, even before Temporal suggests it
   * (default 10,000; tests lower it to exercise a node held for weeks).
   */
  readonly continueAsNewAfterEvents?: number;
}

/** Where phase Events go: the control worker's Event recorder (a sink registered by the control worker). */
export interface PhaseEventSinks extends Sinks {
  readonly phaseEvents: { record(change: PhaseChange): void };
}

/** An operator's decision as an update carries it: who, and why. */
export interface OperatorDecision {
  readonly by: string;
  readonly reason?: string;
}

/** A decision the run accepted. */
export interface DecisionRecord extends OperatorDecision {
  readonly action: OperatorAction;
  /** ISO-8601. */
  readonly at: string;
}

/** What the status query answers; the search attributes and the UI details say the same. */
export interface RemediationStatus {
  readonly clusterId: string;
  readonly node: string;
  readonly phase: RemediationPhase;
  readonly class: RemediationClass | null;
  readonly reasons: readonly string[];
  readonly alerts: number;
  readonly resolvedAlerts: number;
  /** What the workflow waits for, in words (an operator, a drain slot, ...). */
  readonly waitingFor: string | null;
  /** Why the node stays quarantined, when it does. */
  readonly quarantineReason: string | null;
  readonly outcome: RemediationOutcome | null;
  readonly reminders: number;
  readonly decisions: readonly DecisionRecord[];
  /** The step running now (`drain`, `validate`, ...), or null between steps. */
  readonly running: ActivityKind | null;
  /** The operator decisions the run accepts now. */
  readonly actions: readonly OperatorAction[];
  /**
   * Whether the run may hold a fleet budget drain slot (asked for one and has not given it back). A
   * budget rebuilt after it was terminated counts these runs' nodes as draining.
   */
  readonly holdsDrainSlot: boolean;
}

/** Alerts for the node: firing ones start or join the remediation, resolved ones are counted. */
export const alertSignal = defineSignal<[AlertSignal]>('alert');
/** Authorizes the proposed repair (or a drain although pods do not fit elsewhere). */
export const approveUpdate = defineUpdate<string, [OperatorDecision]>('approve');
/** Stops the remediation: the node stays quarantined, held until an operator releases it. */
export const rejectUpdate = defineUpdate<string, [OperatorDecision]>('reject');
/** After an out-of-band fix (reboot, part swap): validate, and return to service if it passes. */
export const markRepairedUpdate = defineUpdate<string, [OperatorDecision]>('markRepaired');
/** Returns a held node to service without a repair (the operator takes responsibility). */
export const releaseUpdate = defineUpdate<string, [OperatorDecision]>('release');
/** Runs the failed step of a held node again (quarantine, drain or release). */
export const retryUpdate = defineUpdate<string, [OperatorDecision]>('retry');
export const statusQuery = defineQuery<RemediationStatus>('status');

/** Each operator action's update. */
export const DECISION_UPDATES = {
  approve: approveUpdate,
  reject: rejectUpdate,
  markRepaired: markRepairedUpdate,
  release: releaseUpdate,
  retry: retryUpdate,
} as const satisfies Record<OperatorAction, unknown>;
