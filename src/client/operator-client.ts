import {
  isGrpcDeadlineError,
  isGrpcServiceError,
  ServiceError,
  WithStartWorkflowOperation,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { z } from 'zod';
import type { BreakerState } from '../domain/fleet-budget.js';
import { FailureType, FleetmedicError } from '../errors.js';
import {
  FLEET_BUDGET_WORKFLOW,
  fleetBudgetState,
  type FleetBudgetView,
  fleetBudgetWorkflowId,
  pauseAutomation,
  resetFleetBreaker,
  resumeAutomation,
  type FleetBudgetInput,
  type OperatorAction,
} from '../contracts/fleet-budget.js';
import { budgetTaskQueue, remediationWorkflowId } from '../contracts/ids.js';
import {
  DECISION_UPDATES,
  REMEDIATION_WORKFLOW,
  statusQuery,
  type OperatorAction as RemediationAction,
  type OperatorDecision,
  type RemediationPhase,
  type RemediationStatus,
} from '../contracts/remediation.js';
import { CLUSTER_ID, NODE, OUTCOME, PHASE } from '../contracts/search-attributes.js';
import type { RemediationWorkflow } from './remediation-client.js';

/** The fleet budget workflow as clients start it, by its type name {@link FLEET_BUDGET_WORKFLOW}. */
type FleetBudgetWorkflow = (input: FleetBudgetInput) => Promise<void>;

/**
 * What operators do to a cluster's remediations, shared by the CLI and the webhook's HTTP routes:
 * approve / reject / mark-repaired / release / retry a node's remediation, pause and resume
 * automation through the fleet budget, list remediations from Temporal visibility and read one
 * node's full status. Every
 * action is a Temporal update, so the caller learns at once whether it was accepted; every call
 * carries a deadline, so an unreachable Temporal (or no control worker) is an answer, not a hang.
 */

/** A Kubernetes node name (DNS-1123 subdomain). Also keeps visibility queries free of injected quotes. */
export const nodeNameSchema = z
  .string()
  .max(253, 'a node name has at most 253 characters')
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    'a node name is a DNS-1123 subdomain: lower-case letters, digits, "-" and "."',
  );

/** Every phase of the remediation workflow, in the order a remediation goes through them. */
export const REMEDIATION_PHASES = [
  'received',
  'restarting-pods',
  'quarantining',
  'triage',
  'waiting-for-budget',
  'waiting-for-capacity',
  'draining',
  'awaiting-approval',
  'repairing',
  'validating',
  'releasing',
  'quarantined',
  'done',
] as const satisfies readonly RemediationPhase[];
// Compile-time check that the list above names every phase the workflow has.
const _everyPhase: Record<Exclude<RemediationPhase, (typeof REMEDIATION_PHASES)[number]>, never> = {};
void _everyPhase;

/** A phase filter, as given on the command line or in a query string. */
export const phaseSchema = z.enum(REMEDIATION_PHASES, {
  error: `unknown phase; expected one of ${REMEDIATION_PHASES.join(', ')}`,
});

/**
 * The operator decisions a remediation accepts, by the name used on the CLI and in HTTP paths, each
 * with the action (update) it sends to the workflow.
 */
export const DECISIONS = {
  approve: 'approve',
  reject: 'reject',
  'mark-repaired': 'markRepaired',
  release: 'release',
  retry: 'retry',
} as const satisfies Record<string, RemediationAction>;
export type DecisionName = keyof typeof DECISIONS;
// Compile-time check that every action the workflow accepts has a name above.
const _everyAction: Record<Exclude<RemediationAction, (typeof DECISIONS)[DecisionName]>, never> = {};
void _everyAction;

/** Other names for a decision, on the CLI and in HTTP paths: issue #13 calls `retry` `retry-drain`. */
export const DECISION_ALIASES = { 'retry-drain': 'retry' } as const satisfies Record<string, DecisionName>;
export type DecisionAlias = keyof typeof DECISION_ALIASES;

/**
 * The CLI / HTTP name of a workflow action (`markRepaired` -> `mark-repaired`); undefined for an
 * action this client does not know (a newer workflow's).
 */
export function decisionName(action: RemediationAction): DecisionName | undefined {
  return (Object.keys(DECISIONS) as DecisionName[]).find((name) => DECISIONS[name] === action);
}

/** The decision a name or alias stands for (`retry-drain` -> `retry`). */
export function resolveDecision(name: DecisionName | DecisionAlias): DecisionName {
  return name in DECISION_ALIASES ? DECISION_ALIASES[name as DecisionAlias] : (name as DecisionName);
}

/** Why an operator action did not happen; the HTTP routes map each kind to a status code. */
export type OperatorErrorKind = 'refused' | 'not-found' | 'unavailable' | 'invalid';

// Invalid input has one code everywhere (the taxonomy's); the other kinds are the operator client's own.
const CODES: Record<OperatorErrorKind, string> = {
  refused: 'REFUSED',
  'not-found': 'NOT_FOUND',
  unavailable: 'TEMPORAL_UNAVAILABLE',
  invalid: FailureType.InvalidInput,
};

/** An operator action refused, aimed at nothing, or not answered. The message says which and why. */
export class OperatorError extends FleetmedicError {
  constructor(
    readonly kind: OperatorErrorKind,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(CODES[kind], message, { permanent: kind !== 'unavailable', ...options });
  }
}

/** One remediation as `list` shows it. */
export interface RemediationRow {
  readonly node: string;
  readonly workflowId: string;
  readonly runId: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, TERMINATED, ... */
  readonly status: string;
  readonly phase: string | null;
  readonly outcome: string | null;
  readonly startedAt: string;
  readonly closedAt: string | null;
  /** Seconds since the remediation started (until it closed, for a closed one). */
  readonly ageSeconds: number;
  /** What an open remediation waits for (from its status query); null when it waits for nothing. */
  readonly waitingFor: string | null;
  /** The decisions it accepts now, by CLI / HTTP name; empty for a closed one or an unanswered query. */
  readonly actions: readonly DecisionName[];
  /** Set when an open remediation's status query was not answered: the row comes from search attributes. */
  readonly queryError?: string;
}

/** One node's remediation in full: the workflow's status query plus its execution. */
export interface NodeRemediation {
  readonly workflowId: string;
  readonly runId: string;
  readonly status: string;
  readonly startedAt: string;
  readonly closedAt: string | null;
  readonly ageSeconds: number;
  /** The workflow's own account (query for an open run, result for a completed one); null if unavailable. */
  readonly remediation: RemediationStatus | null;
  /**
   * The decisions the run accepts now, by CLI / HTTP name (`remediation.actions` names them as the
   * workflow does); empty for a closed run or when the workflow did not answer.
   */
  readonly actions: readonly DecisionName[];
  /** Search attributes, the fallback when the workflow cannot answer. */
  readonly phase: string | null;
  readonly outcome: string | null;
  readonly queryError?: string;
}

/** The fleet budget as operators read it. */
export interface BudgetView {
  readonly workflowId: string;
  readonly paused: boolean;
  /** Drain slots in use and the limit. */
  readonly inUse: number;
  readonly limit: number;
  readonly draining: readonly string[];
  /** Nodes waiting for a drain slot, first in line first. */
  readonly queued: readonly string[];
  readonly breaker: BreakerState;
  readonly healthyNodes: number;
  readonly gpuNodeCount: number;
  readonly minHealthyFraction: number;
  /** Started without state, it is still reading its records from the cluster (figures not yet true). */
  readonly rebuilding: boolean;
}

/** The answer to pause / resume. */
export interface AutomationAnswer {
  readonly paused: boolean;
  readonly by: string;
  readonly reason?: string;
  /** What the pause blocks and what goes on, in words. */
  readonly effect: string;
  readonly budget: BudgetView;
}

/** What pausing blocks (see `allowsAutomaticQuarantine` and `admitDrain` in domain/fleet-budget). */
export const PAUSE_EFFECT =
  'automatic quarantine and new drains are paused: a new GPU alert no longer quarantines its node ' +
  '(its remediation ends as automation-blocked; application XIDs still restart their pods), and a ' +
  'remediation that has not started draining waits for a drain slot; running remediations continue ' +
  '(a drain in progress, a repair, validation, return to service), and approve / reject / ' +
  'mark-repaired / release / retry still work (a retried drain waits for a drain slot)';
export const RESUME_EFFECT =
  'automatic remediation runs again: new alerts quarantine their nodes and remediations waiting for a ' +
  'drain slot get one as the budget allows';

/** The operator actions the HTTP routes need; {@link OperatorClient} implements it against Temporal. */
export interface OperatorService {
  /** Sends a decision (a name or an alias) to the node's remediation; answers the workflow's reply. */
  decide(node: string, decision: DecisionName | DecisionAlias, by: OperatorDecision): Promise<string>;
  setPaused(paused: boolean, action: OperatorAction): Promise<AutomationAnswer>;
  resetBreaker(action: OperatorAction): Promise<BudgetView>;
  list(filter?: ListFilter): Promise<RemediationRow[]>;
  node(node: string): Promise<NodeRemediation>;
  budget(): Promise<BudgetView | null>;
}

export interface ListFilter {
  /** Include closed remediations (default: open ones only). */
  readonly all?: boolean;
  readonly phase?: string;
  readonly node?: string;
  /** At most this many rows (default 200). */
  readonly limit?: number;
}

export interface OperatorClientOptions {
  readonly clusterId: string;
  /** Task queue of the control worker: where a fleet budget started by pause / resume runs. */
  readonly taskQueue: string;
  /** Deadline of each Temporal call (an update waits for the control worker to run its validator). */
  readonly timeoutMs?: number;
  /** Where Temporal is, for messages. */
  readonly address?: string;
  /** Wall clock in ms, for ages. */
  readonly clock?: () => number;
}

const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

/** {@link OperatorService} on a Temporal client. */
export class OperatorClient implements OperatorService {
  private readonly timeoutMs: number;
  private readonly clock: () => number;

  constructor(
    private readonly client: Client,
    private readonly options: OperatorClientOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.clock = options.clock ?? Date.now;
  }

  /**
   * Sends an operator decision to the node's remediation and returns the workflow's answer.
   *
   * @param decision a name of {@link DECISIONS} or an alias (`retry-drain` is `retry`).
   * @throws OperatorError `refused` with the validator's message, which says what the run accepts
   *   now (`retry refused: node gpu-7 is not waiting for retry (phase quarantined; it accepts
   *   mark-repaired, release)`), or that its remediation has ended; `not-found` when the node has no
   *   remediation; `unavailable`. Either of the first two says what to do instead.
   * @example await operator.decide('gpu-7', 'release', { by: 'alice', reason: 'RMA cancelled' })
   */
  async decide(node: string, decision: DecisionName | DecisionAlias, by: OperatorDecision): Promise<string> {
    checkNode(node);
    checkIdentity(by.by);
    const name = resolveDecision(decision);
    const workflowId = remediationWorkflowId(this.options.clusterId, node);
    try {
      return await this.call(() =>
        this.client.workflow
          .getHandle(workflowId)
          .executeUpdate(DECISION_UPDATES[DECISIONS[name]], { args: [by] }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw new OperatorError('refused', refusal(name, err.cause?.message ?? err.message), { cause: err });
      }
      if (err instanceof WorkflowNotFoundError) throw await this.noRunning(node, name, err);
      throw this.translate(err, `${name} ${node}`);
    }
  }

  /**
   * Pauses or resumes automatic remediation of the cluster through its fleet budget workflow,
   * starting the budget (default limits, as the control worker would) when the cluster has none yet.
   */
  async setPaused(paused: boolean, action: OperatorAction): Promise<AutomationAnswer> {
    checkIdentity(action.by);
    const workflowId = fleetBudgetWorkflowId(this.options.clusterId);
    const startWorkflowOperation = new WithStartWorkflowOperation<FleetBudgetWorkflow>(
      FLEET_BUDGET_WORKFLOW,
      {
        workflowId,
        taskQueue: budgetTaskQueue(this.options.taskQueue),
        args: [{ clusterId: this.options.clusterId }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `fleet budget of cluster ${this.options.clusterId}`,
      },
    );
    const args: [OperatorAction] = [
      { by: action.by, ...(action.reason !== undefined && { reason: action.reason }) },
    ];
    try {
      await this.call(() =>
        this.client.workflow.executeUpdateWithStart(paused ? pauseAutomation : resumeAutomation, {
          args,
          startWorkflowOperation,
        }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw new OperatorError('refused', err.cause?.message ?? err.message, { cause: err });
      }
      throw this.translate(err, paused ? 'pause' : 'resume');
    }
    const budget = await this.budget();
    if (!budget) throw new OperatorError('unavailable', `the fleet budget ${workflowId} vanished`);
    return {
      paused: budget.paused,
      by: action.by,
      ...(action.reason !== undefined && { reason: action.reason }),
      effect: paused ? PAUSE_EFFECT : RESUME_EFFECT,
      budget,
    };
  }

  /**
   * Closes the fleet's circuit breaker and forgets the failures that tripped it: an operator has
   * looked at the fleet. Refused (`not-found`) when the cluster has no fleet budget yet.
   */
  async resetBreaker(action: OperatorAction): Promise<BudgetView> {
    checkIdentity(action.by);
    const workflowId = fleetBudgetWorkflowId(this.options.clusterId);
    const args: [OperatorAction] = [
      { by: action.by, ...(action.reason !== undefined && { reason: action.reason }) },
    ];
    try {
      await this.call(() =>
        this.client.workflow.getHandle(workflowId).executeUpdate(resetFleetBreaker, { args }),
      );
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        throw new OperatorError('refused', err.cause?.message ?? err.message, { cause: err });
      }
      if (err instanceof WorkflowNotFoundError) {
        throw new OperatorError(
          'not-found',
          `cluster ${this.options.clusterId} has no fleet budget yet: there is no breaker to reset`,
          { cause: err },
        );
      }
      throw this.translate(err, 'reset the breaker');
    }
    const budget = await this.budget();
    if (!budget) throw new OperatorError('unavailable', `the fleet budget ${workflowId} vanished`);
    return budget;
  }

  /**
   * The cluster's fleet budget, or null when it has none running (nothing asked for a slot yet, or
   * the one there was ended: the next request for a slot starts it again). A closed budget is never
   * queried: the query would wait for a worker of its old task queue, which may be gone.
   */
  async budget(): Promise<BudgetView | null> {
    const workflowId = fleetBudgetWorkflowId(this.options.clusterId);
    let state: FleetBudgetView;
    try {
      const handle = this.client.workflow.getHandle(workflowId);
      const { status } = await this.call(() => handle.describe());
      if (status.name !== 'RUNNING') return null;
      state = await this.call(() => handle.query(fleetBudgetState));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw this.translate(err, 'read the fleet budget');
    }
    return {
      workflowId,
      paused: state.paused,
      inUse: state.draining.length,
      limit: state.config.maxConcurrentDrains,
      draining: state.draining,
      queued: state.queue ?? [],
      breaker: state.breaker,
      healthyNodes: state.healthyNodes.length,
      gpuNodeCount: state.gpuNodeCount,
      minHealthyFraction: state.config.minHealthyFraction,
      rebuilding: state.rebuilding === true,
    };
  }

  /**
   * The cluster's remediations from Temporal visibility: open ones by default (each with what it
   * waits for, from its status query), closed ones too with `all` (from their search attributes).
   * Open first, oldest first.
   */
  async list(filter: ListFilter = {}): Promise<RemediationRow[]> {
    const clauses = [
      `WorkflowType = '${REMEDIATION_WORKFLOW}'`,
      `${CLUSTER_ID.name} = '${this.options.clusterId}'`,
    ];
    if (!filter.all) clauses.push(`ExecutionStatus = 'Running'`);
    if (filter.phase !== undefined) clauses.push(`${PHASE.name} = '${checkPhase(filter.phase)}'`);
    if (filter.node !== undefined) clauses.push(`${NODE.name} = '${checkNode(filter.node)}'`);
    const limit = filter.limit ?? 200;
    const infos: WorkflowExecutionInfo[] = [];
    try {
      await this.call(async () => {
        for await (const info of this.client.workflow.list({
          query: clauses.join(' AND '),
          pageSize: Math.min(limit, 100),
        })) {
          infos.push(info);
          if (infos.length >= limit) break;
        }
      });
    } catch (err) {
      throw this.translate(err, 'list remediations');
    }
    const rows = await mapLimited(infos, 8, (info) => this.row(info));
    return rows.sort(
      (a, b) =>
        Number(b.status === 'RUNNING') - Number(a.status === 'RUNNING') ||
        a.startedAt.localeCompare(b.startedAt),
    );
  }

  /**
   * The full status of the node's remediation (its latest run, open or closed).
   *
   * @throws OperatorError `not-found` when the node never had one (or Temporal forgot it).
   */
  async node(node: string): Promise<NodeRemediation> {
    checkNode(node);
    const handle = this.client.workflow.getHandle<RemediationWorkflow>(
      remediationWorkflowId(this.options.clusterId, node),
    );
    let desc;
    try {
      desc = await this.call(() => handle.describe());
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw new OperatorError(
          'not-found',
          `node ${node} has no remediation in cluster ${this.options.clusterId}`,
          { cause: err },
        );
      }
      throw this.translate(err, `read the remediation of ${node}`);
    }
    const base = {
      workflowId: desc.workflowId,
      runId: desc.runId,
      status: desc.status.name,
      ...this.times(desc.startTime, desc.closeTime),
      phase: desc.typedSearchAttributes.get(PHASE) ?? null,
      outcome: desc.typedSearchAttributes.get(OUTCOME) ?? null,
    };
    const pinned = this.client.workflow.getHandle<RemediationWorkflow>(desc.workflowId, desc.runId);
    try {
      const remediation = await this.call(() =>
        // A completed run's result is its final status and needs no worker; an open one answers its query.
        desc.status.name === 'COMPLETED' ? pinned.result() : pinned.query(statusQuery),
      );
      return { ...base, remediation, actions: desc.status.name === 'RUNNING' ? namesOf(remediation) : [] };
    } catch (err) {
      const why = this.translate(err, `query the remediation of ${node}`);
      if (!(why instanceof OperatorError)) throw why;
      return { ...base, remediation: null, actions: [], queryError: why.message };
    }
  }

  private async row(info: WorkflowExecutionInfo): Promise<RemediationRow> {
    const attrs = info.typedSearchAttributes;
    const base = {
      node: attrs.get(NODE) ?? info.workflowId.split('/').pop() ?? info.workflowId,
      workflowId: info.workflowId,
      runId: info.runId,
      status: info.status.name,
      ...this.times(info.startTime, info.closeTime),
      phase: attrs.get(PHASE) ?? null,
      outcome: attrs.get(OUTCOME) ?? null,
      waitingFor: null,
      actions: [],
    };
    if (info.status.name !== 'RUNNING') return base;
    try {
      const s = await this.call(() =>
        this.client.workflow.getHandle(info.workflowId, info.runId).query(statusQuery),
      );
      return { ...base, phase: s.phase, outcome: s.outcome, waitingFor: s.waitingFor, actions: namesOf(s) };
    } catch (err) {
      const why = this.translate(err, `query ${info.workflowId}`);
      return { ...base, queryError: why instanceof Error ? why.message : String(why) };
    }
  }

  private times(start: Date, close: Date | undefined) {
    const end = close ? close.getTime() : this.clock();
    return {
      startedAt: start.toISOString(),
      closedAt: close ? close.toISOString() : null,
      ageSeconds: Math.max(0, Math.round((end - start.getTime()) / 1000)),
    };
  }

  /**
   * An update found no open remediation: a closed one refuses, a missing one is not found; both say
   * what to do instead.
   */
  private async noRunning(node: string, decision: DecisionName, cause: unknown): Promise<OperatorError> {
    const what = `${decision} refused: node ${node} has no open remediation to ${VERB[decision]}`;
    let last: NodeRemediation;
    try {
      last = await this.node(node);
    } catch (err) {
      if (!(err instanceof OperatorError)) throw err;
      if (err.kind !== 'not-found') return err;
      return new OperatorError(
        'not-found',
        `${what} (Temporal keeps none for it in cluster ${this.options.clusterId}); ${nextStep(node, decision)}`,
        { cause },
      );
    }
    if (last.status === 'RUNNING') {
      // The update raced the run's continue-as-new: the next run accepts it.
      const again = `${decision} ${node}: the remediation moved to a new run; send it again`;
      return new OperatorError('refused', again, { cause });
    }
    const outcome = last.remediation?.outcome ?? last.outcome;
    const ended = `${last.status.toLowerCase()}${outcome ? `, outcome ${outcome}` : ''}`;
    return new OperatorError(
      'refused',
      `${what}: its last one has ended (${ended}; \`fleetmedic status ${node}\` shows it); ` +
        nextStep(node, decision),
      { cause },
    );
  }

  private call<T>(fn: () => Promise<T>): Promise<T> {
    return this.client.withDeadline(this.clock() + this.timeoutMs, fn);
  }

  /** Temporal away or silent -> `unavailable` with what to check; anything else unchanged. */
  private translate(err: unknown, what: string): unknown {
    if (err instanceof OperatorError) return err;
    const where = this.options.address ? `Temporal at ${this.options.address}` : 'Temporal';
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isGrpcDeadlineError(err)) {
      return new OperatorError(
        'unavailable',
        `${what}: no answer within ${this.timeoutMs / 1000} s (is ${where} up, and the control worker ` +
          `running on task queue ${this.options.taskQueue}?)`,
        { cause: err },
      );
    }
    const grpc = isGrpcServiceError(err) ? err : isGrpcServiceError(causeOf(err)) ? causeOf(err) : undefined;
    if (
      (grpc && isGrpcServiceError(grpc) && [GRPC_UNAVAILABLE, GRPC_DEADLINE_EXCEEDED].includes(grpc.code)) ||
      (err instanceof ServiceError && /connect/i.test(err.message))
    ) {
      return new OperatorError('unavailable', `${what}: cannot reach ${where} (${(err as Error).message})`, {
        cause: err,
      });
    }
    return err;
  }
}

/** How each decision reads after "no open remediation to". */
const VERB: Record<DecisionName, string> = {
  approve: 'approve',
  reject: 'reject',
  'mark-repaired': 'mark repaired',
  release: 'release',
  retry: 'retry',
};

/** What to do when the node has no open remediation to take `decision`. */
function nextStep(node: string, decision: DecisionName): string {
  if (decision === 'release' || decision === 'mark-repaired') {
    // Runs never end with the node quarantined; a cordon left behind is another's, or a terminated run's.
    return (
      `fleetmedic holds a node only while its remediation is open. If the node is still quarantined, ` +
      `\`fleetmedic remediate ${node}\` starts a remediation that takes it over and waits for an ` +
      'operator: mark-repaired then validates the node and returns it to service (release applies ' +
      'where an earlier reject holds the node)'
    );
  }
  return `a new firing alert, or \`fleetmedic remediate ${node}\`, starts a new remediation`;
}

/**
 * The validator's refusal, led by the decision and in the CLI / HTTP names of the actions it lists
 * (`it accepts markRepaired` -> `it accepts mark-repaired`), so the operator can type what it says.
 */
function refusal(decision: DecisionName, message: string): string {
  let text = message;
  for (const [name, action] of Object.entries(DECISIONS)) {
    if (name !== action) text = text.replace(new RegExp(`\\b${action}\\b`, 'g'), name);
  }
  return text.startsWith(`${decision} refused`) ? text : `${decision} refused: ${text}`;
}

/** The decisions a status accepts, by CLI / HTTP name (a status from before `actions` existed: none). */
function namesOf(status: RemediationStatus): DecisionName[] {
  // A run recorded before the status carried `actions` answers without it.
  const actions = (status.actions as readonly RemediationAction[] | undefined) ?? [];
  return actions.flatMap((action) => decisionName(action) ?? []);
}

function causeOf(err: unknown): unknown {
  return err instanceof Error ? err.cause : undefined;
}

function checkPhase(phase: string): string {
  const r = phaseSchema.safeParse(phase);
  if (!r.success) {
    throw new OperatorError(
      'invalid',
      `unknown phase ${JSON.stringify(phase)}; expected one of ${REMEDIATION_PHASES.join(', ')}`,
    );
  }
  return r.data;
}

function checkNode(node: string): string {
  const r = nodeNameSchema.safeParse(node);
  if (!r.success) {
    throw new OperatorError(
      'invalid',
      `invalid node name ${JSON.stringify(node)}: ${r.error.issues.map((i) => i.message).join('; ')}`,
    );
  }
  return r.data;
}

function checkIdentity(by: unknown): void {
  if (typeof by !== 'string' || by.trim() === '') {
    throw new OperatorError('invalid', 'an operator identity (by) is required');
  }
}

async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(lanes);
  return out;
}
