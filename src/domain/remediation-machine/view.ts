/**
 * What an operator, the search attributes and the Temporal UI see of a remediation, computed from
 * its state alone, and which operator decisions apply to it.
 */
import type { RemediationClass } from '../remediation-class.js';
import type {
  ActivityKind,
  OperatorAction,
  OperatorDecision,
  RecordedDecision,
  RemediationOutcome,
  RemediationPhase,
  RemediationState,
  StageName,
} from './types.js';

/** Everything shown of one remediation: status query, search attributes, UI details. */
export interface RemediationView {
  readonly node: string;
  readonly phase: RemediationPhase;
  readonly class: RemediationClass | null;
  readonly alertName: string | null;
  /** Why the node is quarantined, while it is; null when it is not (or no longer) ours. */
  readonly quarantineReason: string | null;
  /** What the run waits for, in words (an operator, a drain slot, ...); null while a step runs. */
  readonly waitingFor: string | null;
  /** The step running now (an activity), or null between steps. */
  readonly running: ActivityKind | null;
  /** The operator decisions that apply now (an update's validator accepts exactly these). */
  readonly actions: readonly OperatorAction[];
  readonly outcome: RemediationOutcome | null;
  readonly reasons: readonly string[];
  readonly alerts: number;
  readonly resolvedAlerts: number;
  readonly reminders: number;
  readonly decisions: readonly RecordedDecision[];
  /** Markdown for `setCurrentDetails`. */
  readonly details: string;
}

const PHASE_OF: Readonly<Record<StageName, RemediationPhase>> = {
  received: 'received',
  'checking-episode': 'received',
  'restarting-pods': 'restarting-pods',
  quarantining: 'quarantining',
  settling: 'quarantining',
  triage: 'triage',
  'waiting-for-budget': 'waiting-for-budget',
  'waiting-for-capacity': 'waiting-for-capacity',
  draining: 'draining',
  'awaiting-approval': 'awaiting-approval',
  repairing: 'repairing',
  validating: 'validating',
  releasing: 'releasing',
  held: 'quarantined',
  done: 'done',
};

/**
 * The public phase of a state. Asking for a drain slot and checking capacity belong to `draining`
 * until they have to wait: a remediation that gets its slot and fits at once goes from `triage` to
 * `draining`, without two more phases (each a search-attribute upsert and a node Event, which in an
 * alert storm of 150 nodes the Temporal server and the API server pay for).
 */
export function phaseOf(state: RemediationState): RemediationPhase {
  const stage = state.stage;
  if (stage.name === 'waiting-for-budget' && stage.asking && stage.detail === null) return 'draining';
  if (stage.name === 'waiting-for-capacity' && stage.unplaced === null) return 'draining';
  return PHASE_OF[stage.name];
}

/**
 * The operator decisions that apply to `state`. A reject applies wherever the node is ours and not
 * being released; nothing applies while an accepted decision waits for a step to return, so a
 * recorded decision is never overtaken.
 */
export function actionsAllowed(state: RemediationState): readonly OperatorAction[] {
  if (state.pending !== null) return [];
  const stage = state.stage;
  switch (stage.name) {
    case 'settling':
    case 'triage':
    case 'waiting-for-budget':
    case 'draining':
    case 'repairing':
    case 'validating':
      return ['reject'];
    case 'waiting-for-capacity':
      return stage.unplaced === null ? ['reject'] : ['approve', 'reject'];
    case 'awaiting-approval':
      return stage.plan.kind === 'reset' || stage.plan.kind === 'reboot'
        ? ['approve', 'reject', 'markRepaired']
        : ['reject', 'markRepaired'];
    case 'held':
      // A reject holds the node for an operator; only release or mark-repaired lift it.
      if (stage.hold.kind === 'rejected' || stage.hold.kind === 'rejected-earlier')
        return ['markRepaired', 'release'];
      return stage.hold.retry === null
        ? ['markRepaired', 'reject', 'release']
        : ['retry', 'markRepaired', 'reject', 'release'];
    default:
      return [];
  }
}

const ACTIONS: readonly OperatorAction[] = ['approve', 'reject', 'markRepaired', 'release', 'retry'];

/**
 * Why `decision` cannot be accepted for `state`, or `undefined` when it can: the update validator.
 *
 * @example validateDecision(state, { action: 'approve', by: 'alice' })
 *   // 'approve refused: node gpu-7 is not waiting for approve (phase draining; it accepts reject)'
 */
export function validateDecision(state: RemediationState, decision: OperatorDecision): string | undefined {
  // Update payloads arrive from outside: check the shape before trusting the type.
  const d = (decision ?? {}) as { action?: unknown; by?: unknown; reason?: unknown };
  const action = ACTIONS.find((a) => a === d.action);
  if (action === undefined)
    return `unknown operator action ${JSON.stringify(d.action)}, expected one of ${ACTIONS.join(', ')}`;
  if (typeof d.by !== 'string' || d.by.trim() === '' || d.by.length > 256)
    return `${action} refused: an operator identity (by, 1 to 256 characters) is required`;
  if (d.reason !== undefined && (typeof d.reason !== 'string' || d.reason.length > 1024))
    return `${action} refused: reason must be text of at most 1024 characters`;
  if (state.pending !== null)
    return `${action} refused: ${state.pending.action} by ${state.pending.by} is pending until the ${state.inFlight ?? 'current'} step returns`;
  const allowed = actionsAllowed(state);
  if (!allowed.includes(action)) {
    const accepts = allowed.length > 0 ? `it accepts ${allowed.join(', ')}` : 'it accepts no decision now';
    return `${action} refused: node ${state.node} is not waiting for ${action} (phase ${phaseOf(state)}; ${accepts})`;
  }
  return undefined;
}

/** `95_000` -> `95 s`, `5_400_000` -> `90 min`, `36_000_000` -> `10 h`. */
export function formatWait(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3 * 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

/** Why the node is quarantined, from the state. */
function quarantineReason(state: RemediationState): string | null {
  const stage = state.stage;
  if (stage.name === 'held') return stage.hold.reason;
  if (stage.name === 'done') return null;
  if (!state.quarantined) return null;
  if (stage.name === 'awaiting-approval') return `waiting for an operator (${state.class ?? 'unknown'})`;
  return `remediation in progress (${state.class ?? 'unknown'})`;
}

/** What the run waits for, from the state. */
function waitingFor(state: RemediationState): string | null {
  const stage = state.stage;
  if (state.pending !== null)
    return `the ${state.inFlight ?? 'current'} step to return; then ${state.pending.action} by ${state.pending.by} applies`;
  switch (stage.name) {
    case 'received':
      return 'the first firing alert';
    case 'settling':
      return (
        `the alert storm to settle (${stage.failures} nodes failed within a minute): ` +
        `triage in ${formatWait(state.policy.stormSettleMs)}`
      );
    case 'waiting-for-budget':
      return stage.detail === null ? null : `a drain slot: ${stage.detail}`;
    case 'waiting-for-capacity':
      return stage.unplaced === null
        ? null
        : `capacity for the pods to evict (${stage.unplaced}); approve to drain anyway, reject to stop`;
    case 'repairing':
      return stage.bootDeadline === undefined || state.inFlight !== 'awaitBoot'
        ? null
        : `${state.node} to come back with another boot ID than ${stage.bootIdBefore ?? '?'}, ` +
            `until ${new Date(stage.bootDeadline).toISOString()}`;
    case 'awaiting-approval':
      return `operator: ${stage.plan.description}`;
    case 'held':
      // As an operator types them (`fleetmedic mark-repaired`).
      return `operator: ${actionsAllowed(state)
        .map((a) => (a === 'markRepaired' ? 'mark-repaired' : a))
        .join(', ')}`;
    default:
      return null;
  }
}

/**
 * The view of a state: phase, reason, what it waits for and the decisions that apply. The status
 * query, the search attributes and the UI details are all this, so they never disagree.
 */
export function view(state: RemediationState): RemediationView {
  const phase = phaseOf(state);
  const reason = quarantineReason(state);
  const waiting = waitingFor(state);
  const stage = state.stage;
  const line = waiting ?? (stage.name === 'done' ? stage.detail : reason);
  return {
    node: state.node,
    phase,
    class: state.class,
    alertName: state.alertName,
    quarantineReason: reason,
    waitingFor: waiting,
    running: state.inFlight,
    actions: actionsAllowed(state),
    outcome: stage.name === 'done' ? stage.outcome : null,
    reasons: state.reasons,
    alerts: state.alerts,
    resolvedAlerts: state.resolvedAlerts,
    reminders: state.reminders,
    decisions: state.decisions,
    details: `**${phase}**${state.class ? ` · class ${state.class}` : ''}${line ? `\n\n${line}` : ''}`,
  };
}
