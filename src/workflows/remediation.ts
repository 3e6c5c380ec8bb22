import {
  ActivityFailure,
  ApplicationFailure,
  TimeoutFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  proxySinks,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  type Sinks,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { KubernetesActivities, QuarantineNodeResult } from '../activities/kubernetes.js';
import type { NodeAgentActivities } from '../activities/node-agent.js';
import type { NotificationInput, ObservabilityActivities, PhaseChange } from '../activities/observability.js';
import type { QuarantineActivities } from '../activities/quarantine.js';
import type { RemediationSupportActivities } from '../activities/remediation-support.js';
import {
  classifyAlert,
  DEFAULT_REMEDIATION_POLICY,
  faultyGpus,
  planRepair,
  type AlertSignal,
  type RemediationPolicy,
} from '../domain/remediation-plan.js';
import type { Admission, QuarantineVerdict } from '../domain/fleet-budget.js';
import { drainSlotFree } from './fleet-budget.js';
import { maxClass, type RemediationClass } from '../domain/remediation-class.js';
import { refineWithEvidence, type TriageEvidence } from '../domain/xid-classification.js';
import { nodeTaskQueue } from './ids.js';
import type { RemediationPhase } from '../domain/remediation-machine/types.js';
import { ALERT, CLUSTER_ID, NODE, OUTCOME, PHASE } from './search-attributes.js';

export type { AlertSignal } from '../domain/remediation-plan.js';

// One list of phases: the remediation machine's (src/domain), which the workflow will run.
export type { RemediationPhase };

export type RemediationOutcome =
  | 'returned-to-service'
  | 'ignored'
  | 'duplicate-episode'
  | 'pods-restarted'
  | 'rejected'
  | 'node-gone'
  | 'automation-blocked';

export interface RemediationInput {
  readonly clusterId: string;
  readonly node: string;
  readonly policy?: Partial<RemediationPolicy>;
}

/** An operator's action, recorded in the history with who and why. */
export interface OperatorDecision {
  readonly by: string;
  readonly reason?: string;
}

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
  readonly decisions: readonly (OperatorDecision & { action: string; at: string })[];
}

/** Alerts for the node: firing ones start or join the remediation, resolved ones are recorded. */
export const alertSignal = defineSignal<[AlertSignal]>('alert');
/** Authorizes the proposed repair. Accepted only while the workflow waits for approval. */
export const approveUpdate = defineUpdate<string, [OperatorDecision]>('approve');
/** Rejects the repair: the node stays cordoned with the reason. */
export const rejectUpdate = defineUpdate<string, [OperatorDecision]>('reject');
/** After an out-of-band fix (reboot, part swap): run validation, return to service if it passes. */
export const markRepairedUpdate = defineUpdate<string, [OperatorDecision]>('markRepaired');
export const statusQuery = defineQuery<RemediationStatus>('status');

const k8s = proxyActivities<KubernetesActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', maximumInterval: '30s', backoffCoefficient: 2 },
});
const support = proxyActivities<RemediationSupportActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});

/**
 * The way from the alert to the cordon (episode check, breaker report, quarantine) as one local
 * activity: it runs in the control worker inside the remediation's first workflow task, without a
 * round trip through the Temporal server, so a node that fails in a storm of 150 is cordoned within
 * seconds (see docs/remediation.md, "Benchmark"). Requests for a drain slot run the same way. A
 * retry that would wait longer than `localRetryThreshold` becomes a durable timer. The ignore and
 * restart-app classes check the episode with a local activity of its own.
 */
const localQuarantine = proxyLocalActivities<QuarantineActivities>({
  startToCloseTimeout: '2 minutes',
  localRetryThreshold: '10 seconds',
  retry: { initialInterval: '1s', maximumInterval: '30s', backoffCoefficient: 2 },
});
const localSupport = proxyLocalActivities<RemediationSupportActivities>({
  startToCloseTimeout: '1 minute',
  localRetryThreshold: '10 seconds',
  retry: { initialInterval: '1s', maximumInterval: '30s' },
});

// Node Events as local activities, for runs with the local steps recorded before `LEAN_STEPS_PATCH`
// (newer runs hand Events to the control worker's recorder): 30 s at most in all, see `setPhase`.
const localObserve = proxyLocalActivities<ObservabilityActivities>({
  startToCloseTimeout: '10 seconds',
  scheduleToCloseTimeout: '30 seconds',
  localRetryThreshold: '10 seconds',
  retry: { initialInterval: '1s', maximumInterval: '5s', backoffCoefficient: 2, maximumAttempts: 3 },
});

// Events and notifications must never hold a remediation up: bounded retries, failures recorded.
const observe = proxyActivities<ObservabilityActivities>({
  startToCloseTimeout: '90 seconds',
  scheduleToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1s', maximumInterval: '20s', backoffCoefficient: 2, maximumAttempts: 5 },
});

/** The longest a queued remediation waits before asking for a drain slot again, unless signalled. */
const MAX_BUDGET_RETRY_MS = 5 * 60_000;

/** patched() IDs: histories recorded before these steps existed replay without them. */
const PHASE_EVENTS_PATCH = 'node-phase-events';
const NOTIFY_PATCH = 'notify-sinks';
/**
 * The alert-to-cordon steps as one local activity (before: three activities, each a round trip),
 * each request for a drain slot as one (before: getNode once, then budgetAcquire per try), and the
 * node Events of phase changes as local activities.
 */
const LOCAL_QUARANTINE_PATCH = 'local-quarantine-steps';
/**
 * Phase Events through the control worker's Event recorder (a sink) instead of (local) activities,
 * and search attributes upserted only when their value changes (see `upsert` in `remediate`). One
 * patch for both: the SDK upserts the `TemporalChangeVersion` search attribute for every new patch,
 * which is the very cost the second change saves.
 */
const LEAN_STEPS_PATCH = 'lean-first-task';
/**
 * Every change above at once: a run started by this version or a later one asks for this patch
 * alone, not for each of the five (see `has` in `remediate`). Changes after it get a patch of their
 * own.
 */
const BASELINE_PATCH = 'baseline-2026-11';
const PATCHES_IN_BASELINE: ReadonlySet<string> = new Set([
  PHASE_EVENTS_PATCH,
  NOTIFY_PATCH,
  LOCAL_QUARANTINE_PATCH,
  LEAN_STEPS_PATCH,
  'capacity-check-before-drain',
]);

/** Where phase Events go: the control worker's Event recorder (registered by `createControlWorkers`). */
export interface PhaseEventSinks extends Sinks {
  readonly phaseEvents: { record(change: PhaseChange): void };
}
const { phaseEvents } = proxySinks<PhaseEventSinks>();

function agent(clusterId: string, node: string, policy: RemediationPolicy) {
  return proxyActivities<NodeAgentActivities>({
    taskQueue: nodeTaskQueue(clusterId, node),
    // An agent that never picks the task up is a node we cannot reach: escalate, do not wait forever.
    scheduleToStartTimeout: policy.agentScheduleToStartMs,
    startToCloseTimeout: policy.agentStartToCloseMs,
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1s', maximumInterval: '20s', maximumAttempts: 5 },
  });
}

function isScheduleToStartTimeout(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/** `95_000` -> `95 s`, `5_400_000` -> `90 min`, `36_000_000` -> `10 h`. */
function waitedFor(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3 * 3_600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * The GPU remediation of one node: classify the alert, quarantine (label, NoSchedule taint, cordon)
 * when the class calls for it, triage on the node, take a drain slot from the fleet budget, drain,
 * repair (automatic GPU reset where the class allows it, else an operator's approval), validate with
 * `dcgmi diag`, and return the node to service, or keep it quarantined with a visible reason.
 * Decisions live in `domain/`; this function orchestrates. No timeout ever returns a node to service.
 * Each phase change is recorded as a Kubernetes Event on the node, and operators are notified when
 * the remediation needs them (see docs/observability.md).
 */
export async function gpuRemediationWorkflow(input: RemediationInput): Promise<RemediationStatus> {
  const run: RunContext = { background: [], status: undefined };
  try {
    const result = await remediate(input, run);
    // Events and notifications run beside the remediation; let them end (their retries are bounded)
    // before the run closes, or the last ones would be dropped with it. Their failures join `reasons`.
    await Promise.allSettled(run.background);
    return run.background.length > 0 && run.status ? run.status() : result;
  } catch (err) {
    await Promise.allSettled(run.background);
    throw err;
  }
}

/** What the remediation shares with its wrapper: work started beside it, and its status. */
interface RunContext {
  readonly background: Promise<unknown>[];
  status: (() => RemediationStatus) | undefined;
}

async function remediate(input: RemediationInput, run: RunContext): Promise<RemediationStatus> {
  const { background } = run;
  const policy: RemediationPolicy = { ...DEFAULT_REMEDIATION_POLICY, ...input.policy };
  const { clusterId, node } = input;
  const { workflowId, runId } = workflowInfo();
  const nodeAgent = agent(clusterId, node, policy);

  const alerts: AlertSignal[] = [];
  let resolvedAlerts = 0;
  let phase: RemediationPhase = 'received';
  let cls: RemediationClass | null = null;
  const reasons: string[] = [];
  let waitingFor: string | null = null;
  let quarantineReason: string | null = null;
  let outcome: RemediationOutcome | null = null;
  let reminders = 0;
  let pending: { action: 'approve' | 'reject' | 'markRepaired'; decision: OperatorDecision } | undefined;
  const decisions: (OperatorDecision & { action: string; at: string })[] = [];
  let phaseStartedAt = new Date().toISOString();
  /** Whether this run takes the local steps (`LOCAL_QUARANTINE_PATCH`); set before the first phase. */
  let localSteps = false;
  let phaseChanges = 0;
  let notices = 0;
  /** The fleet budget signalled that a drain slot is free for this node (see `drainSlotFree`). */
  let slotFree = false;

  const status = (): RemediationStatus => ({
    clusterId,
    node,
    phase,
    class: cls,
    reasons: [...reasons],
    alerts: alerts.length,
    resolvedAlerts,
    waitingFor,
    quarantineReason,
    outcome,
    reminders,
    decisions: [...decisions],
  });

  /**
   * Whether this run takes the change `id`. A run with `BASELINE_PATCH` (every run started by this
   * version or a later one) has all of them and records one patch marker in all: each patch a new
   * run asks for costs a marker and an upsert of `TemporalChangeVersion` (the SDK's), and in an alert
   * storm the first workflow task of each remediation carried three of each. Older runs ask for each
   * patch where they did: the SDK refuses a history with a patch marker that no call asks for.
   */
  let baseline: boolean | undefined;
  /** Whether this run takes `LEAN_STEPS_PATCH`; set before the first phase. */
  let lean = false;
  const has = (id: string): boolean => {
    if (!PATCHES_IN_BASELINE.has(id)) throw new Error(`unknown patch ${id}`);
    baseline ??= patched(BASELINE_PATCH);
    return baseline || patched(id);
  };

  /**
   * Upserts the attributes whose value changes. With `LEAN_STEPS_PATCH`, an attribute that
   * already has the value (signal-with-start sets cluster, node, phase and alert at the start) is
   * left alone: each upsert costs the Temporal server a history event and a visibility write (in a
   * storm of 150 alerts, upserts took about 15 % of the dev server's CPU, and 3 of the 4 in the first
   * workflow task, the one that cordons, changed nothing).
   */
  function upsert(pairs: { key: typeof PHASE; value: string }[]): void {
    const changed = lean
      ? pairs.filter((p) => workflowInfo().typedSearchAttributes.get(p.key) !== p.value)
      : pairs;
    if (changed.length > 0) upsertSearchAttributes(changed);
  }

  /**
   * Enters a phase: search attribute, UI details, log, Event. A `transient` phase is left within the
   * same workflow task (quarantining, right before triage): its Event is written, but the search
   * attribute, which would be overwritten in the same instant, is not (with `LEAN_STEPS_PATCH`).
   */
  function setPhase(next: RemediationPhase, details?: string, transient = false): void {
    const previous = phase;
    phase = next;
    if (!(transient && lean)) upsert([{ key: PHASE, value: next }]);
    setCurrentDetails(`**${next}**${cls ? ` · class ${cls}` : ''}${details ? `\n\n${details}` : ''}`);
    log.info('remediation phase', { node, phase: next, class: cls, details });
    // A phase set again (a budget retry, a second repair attempt) is not a new Event, and a run that
    // ends at once because its episode was handled or its node is gone leaves nothing to tell.
    const nothingHappened =
      previous === 'received' && (outcome === 'duplicate-episode' || outcome === 'node-gone');
    if (next !== previous && !nothingHappened && has(PHASE_EVENTS_PATCH)) {
      const at = new Date().toISOString();
      const change: PhaseChange = {
        clusterId,
        node,
        workflowId,
        runId,
        sequence: ++phaseChanges,
        phase: next,
        previousPhase: previous,
        at,
        previousStartedAt: phaseStartedAt,
        class: cls,
        ...(details !== undefined && { details }),
        outcome,
      };
      phaseStartedAt = at;
      // The control worker's Event recorder writes the Event in the background (a sink: no step of
      // the workflow, nothing in its history, never called on replay), as client-go's recorder does
      // for controllers: an alert storm's 450 Events are no local activities holding workflow tasks.
      if (lean) {
        phaseEvents.record(change);
        return;
      }
      // Histories from before the recorder: the Event as a step, not awaited (an Event the API
      // server refuses must not fail or slow the remediation). With the local steps it is a local
      // activity bounded to 30 s in all, because the workflow task that started it completes only
      // when it ends.
      const event = localSteps
        ? localObserve.recordPhaseEvent.executeWithOptions({ summary: `event ${next} on ${node}` }, [change])
        : observe.recordPhaseEvent.executeWithOptions(
            {
              startToCloseTimeout: '30 seconds',
              scheduleToCloseTimeout: '2 minutes',
              summary: `event ${next} on ${node}`,
              retry: { initialInterval: '1s', maximumInterval: '10s', maximumAttempts: 5 },
            },
            [change],
          );
      background.push(
        event.catch((err: unknown) => {
          log.warn('phase event not recorded', { node, phase: next, error: failureMessage(err) });
        }),
      );
    }
  }

  /**
   * Tells the configured sinks (started beside the remediation, never awaited by it); a notification
   * that fails after its bounded retries is recorded in `reasons`.
   */
  function notify(
    kind: NotificationInput['kind'],
    message: string,
    extra: { reminder?: number; escalated?: boolean } = {},
  ): void {
    if (!has(NOTIFY_PATCH)) return;
    const notification: NotificationInput = {
      id: `${workflowId}/${runId}/${++notices}`,
      kind,
      cluster: clusterId,
      node,
      workflowId,
      runId,
      phase,
      class: cls,
      message,
      reminder: extra.reminder ?? 0,
      escalated: extra.escalated ?? false,
      at: new Date().toISOString(),
    };
    background.push(
      observe.notify
        .executeWithOptions(
          {
            startToCloseTimeout: '90 seconds',
            scheduleToCloseTimeout: '5 minutes',
            summary: `notify ${kind}: ${node}`,
            retry: {
              initialInterval: '1s',
              maximumInterval: '20s',
              backoffCoefficient: 2,
              maximumAttempts: 5,
            },
          },
          [notification],
        )
        .catch((err: unknown) => {
          reasons.push(`notification ${kind} not delivered: ${failureMessage(err)}`);
          log.warn('notification not delivered', { node, kind, error: failureMessage(err) });
        }),
    );
  }

  setHandler(statusQuery, status);
  run.status = status;
  setHandler(drainSlotFree, () => {
    slotFree = true;
  });
  setHandler(alertSignal, (alert) => {
    if (alert.status === 'resolved') {
      // A resolved alert is recorded; it never uncordons by itself (the fault may be masked, not fixed).
      resolvedAlerts++;
      return;
    }
    alerts.push(alert);
    if (cls !== null) {
      const next = maxClass(cls, classifyAlert(alert, policy).class);
      if (next !== cls) reasons.push(`later alert ${alert.alertName} escalated ${cls} -> ${next}`);
      cls = next;
    }
  });

  const decide = (action: 'approve' | 'reject' | 'markRepaired', allowed: RemediationPhase[]) => ({
    validator: (d: OperatorDecision) => {
      if (!d || typeof d.by !== 'string' || d.by.trim() === '')
        throw new Error('an operator identity (by) is required');
      if (!allowed.includes(phase) || pending) {
        const what = action === 'approve' ? 'approval' : action === 'reject' ? 'a decision' : 'a repair';
        throw new Error(`node ${node} is not waiting for ${what} (phase ${phase})`);
      }
    },
    handler: (d: OperatorDecision) => {
      pending = { action, decision: d };
      decisions.push({ ...d, action, at: new Date().toISOString() });
      return `${action} accepted for ${node} (phase ${phase})`;
    },
  });
  const approve = decide('approve', ['awaiting-approval', 'waiting-for-capacity']);
  setHandler(approveUpdate, approve.handler, { validator: approve.validator });
  const reject = decide('reject', ['awaiting-approval', 'waiting-for-capacity', 'quarantined']);
  setHandler(rejectUpdate, reject.handler, { validator: reject.validator });
  const repaired = decide('markRepaired', ['awaiting-approval', 'quarantined']);
  setHandler(markRepairedUpdate, repaired.handler, { validator: repaired.validator });

  lean = has(LEAN_STEPS_PATCH);
  upsert([
    { key: CLUSTER_ID, value: clusterId },
    { key: NODE, value: node },
  ]);

  // signal-with-start delivers the first alert with the start; a manual start may bring none yet.
  await condition(() => alerts.length > 0);
  const first = alerts[0]!;
  upsert([{ key: ALERT, value: first.alertName }]);
  const initial = classifyAlert(first, policy);
  cls = alerts.slice(1).reduce((c, a) => maxClass(c, classifyAlert(a, policy).class), initial.class);
  reasons.push(initial.reason);
  const finish = (o: RemediationOutcome, details?: string): RemediationStatus => {
    outcome = o;
    waitingFor = null;
    upsert([{ key: OUTCOME, value: o }]);
    setPhase('done', details ?? o);
    return status();
  };

  const blocked = (verdict: QuarantineVerdict): RemediationStatus => {
    reasons.push(`automatic quarantine blocked: ${verdict.detail}`);
    notify(
      verdict.reason === 'breaker-open' ? 'breaker-tripped' : 'automation-blocked',
      `automatic quarantine of ${node} refused (${cls}: ${initial.reason}): ${verdict.detail}`,
    );
    return finish('automation-blocked', verdict.detail);
  };

  // patched() here, before the first step: histories recorded before it replay the remote steps.
  const local = has(LOCAL_QUARANTINE_PATCH);
  localSteps = local;
  let quarantine: QuarantineNodeResult;
  if (local && cls !== 'ignore' && cls !== 'restart-app') {
    // Quarantine at once: a cordon is cheap and reversible, a faulty node accepting pods is not.
    // Episode check, breaker and cordon as one local activity of this first workflow task.
    const done = await localQuarantine.quarantineFailedNode.executeWithOptions(
      { summary: `quarantine ${node} (${cls}) unless handled before or refused by the breaker` },
      [
        {
          node,
          episodeKey: first.episodeKey,
          cooldownMs: policy.episodeCooldownMs,
          workflowId,
          reason: `${cls}: ${initial.reason}`,
        },
      ],
    );
    if (done.kind === 'node-gone') return finish('node-gone', `node ${node} does not exist`);
    if (done.kind === 'duplicate-episode')
      return finish('duplicate-episode', `episode ${first.episodeKey} was already handled`);
    if (done.kind === 'blocked') return blocked(done.verdict);
    quarantine = done.result;
    // Storm damping: in a burst of failures, containment first. Triage (an agent round trip, then a
    // request for a drain slot) waits until the burst's cordons are through; drains go one slot at a
    // time anyway. Old histories replay unchanged: their results carry no `recentFailures`.
    const burst = done.recentFailures ?? 0;
    if (policy.stormSettleMs > 0 && burst >= policy.stormFailures) {
      const failed = `${burst} node${burst === 1 ? '' : 's'} failed within a minute`;
      waitingFor = `the alert storm to settle (${failed}): triage in ${waitedFor(policy.stormSettleMs)}`;
      setPhase(
        'quarantining',
        `label, NoSchedule taint and cordon set; ${failed}: triage in ` +
          `${waitedFor(policy.stormSettleMs)}, once the storm's cordons are through`,
      );
      await sleep(policy.stormSettleMs);
      waitingFor = null;
    } else {
      setPhase('quarantining', 'label, NoSchedule taint and cordon set', true);
    }
  } else {
    const episodeInput = { node, key: first.episodeKey, cooldownMs: policy.episodeCooldownMs };
    const handled = local
      ? await localSupport.episodeHandled.executeWithOptions(
          { summary: `episode ${first.episodeKey} handled before on ${node}?` },
          [episodeInput],
        )
      : await support.episodeHandled(episodeInput);
    if (handled === 'node-gone') return finish('node-gone', `node ${node} does not exist`);
    if (handled) return finish('duplicate-episode', `episode ${first.episodeKey} was already handled`);

    if (cls === 'ignore') {
      await support.recordEpisode({ node, key: first.episodeKey });
      return finish('ignored', initial.reason);
    }
    if (cls === 'restart-app') {
      setPhase('restarting-pods', 'restarting only the pods using the faulty GPU');
      const pods = alerts.flatMap((a) => a.pods ?? []);
      for (const ns of [...new Set(pods.map((p) => p.namespace))]) {
        await k8s.restartPods.executeWithOptions({ summary: `restart pods in ${ns} on ${node}` }, [
          {
            node,
            namespace: ns,
            podNames: pods.filter((p) => p.namespace === ns).map((p) => p.name),
          },
        ]);
      }
      await support.recordEpisode({ node, key: first.episodeKey });
      return finish('pods-restarted', `${pods.length} pod(s) restarted, no quarantine`);
    }

    // Histories from before the patch: the same steps, each an activity of its own.
    const breaker = await support.budgetReportFailure({ node });
    if (!breaker.allowed) return blocked(breaker);
    setPhase('quarantining');
    quarantine = await k8s.quarantineNode.executeWithOptions({ summary: `quarantine ${node} (${cls})` }, [
      { node, workflowId, reason: `${cls}: ${initial.reason}` },
    ]);
  }
  quarantineReason = `remediation in progress (${cls})`;

  // Triage on the node: evidence may escalate the class, never lower it.
  setPhase('triage', 'dcgmi health and nvidia-smi on the node');
  try {
    const evidence: TriageEvidence = await nodeAgent.agentTriage.executeWithOptions(
      { summary: `triage ${node}: dcgmi health, nvidia-smi` },
      [{ clusterId, node, expectedGpuCount: 8 }],
    );
    const refined = refineWithEvidence(cls, evidence, policy);
    reasons.push(...refined.reasons.slice(1));
    cls = refined.class;
  } catch (err) {
    const why = isScheduleToStartTimeout(err)
      ? 'node agent unreachable'
      : `triage failed: ${failureMessage(err)}`;
    reasons.push(`${why} -> needs-operator`);
    cls = maxClass(cls, 'needs-operator');
    if (isScheduleToStartTimeout(err))
      notify(
        'agent-unreachable',
        `the node agent of ${node} did not pick up triage: quarantined, needs an operator`,
      );
  }

  let slotHeld = false;
  let askedForCapacity = false;
  try {
    // Take a drain slot from the fleet budget; wait (visibly) while the budget is exhausted.
    // With the local steps, each try reads the node and asks the budget in one local activity.
    let timestamps: number[] = [];
    if (!local) {
      const view = await k8s.getNode({ node });
      if (!view.exists) return finish('node-gone', `node ${node} was deleted`);
      timestamps = view.remediations.map((t) => Date.parse(t));
    }
    for (let attempt = 0; ; attempt++) {
      let admission: Admission;
      slotFree = false;
      if (local) {
        const asked = await localQuarantine.requestDrainSlot.executeWithOptions(
          { summary: `drain slot for ${node}` },
          [{ node }],
        );
        if (asked.kind === 'node-gone') return finish('node-gone', `node ${node} was deleted`);
        admission = asked.admission;
      } else {
        admission = await support.budgetAcquire.executeWithOptions({ summary: `drain slot for ${node}` }, [
          { node, remediationTimestamps: timestamps },
        ]);
      }
      if (admission.admitted) {
        slotHeld = true;
        if (admission.escalateTo) {
          reasons.push(admission.detail);
          cls = maxClass(cls, admission.escalateTo);
        }
        break;
      }
      waitingFor = `a drain slot: ${admission.detail}`;
      setPhase('waiting-for-budget', admission.detail);
      // Queued (the answer says how many wait before this node): the budget signals when a slot is
      // free for it, so asking again is only the fallback, rarer the further back in the queue
      // (answers recorded before the queue have no `ahead`, and wait as they did).
      const ahead = admission.ahead;
      const retryMs =
        ahead === undefined
          ? policy.budgetRetryMs
          : Math.min(policy.budgetRetryMs * (1 + ahead), Math.max(policy.budgetRetryMs, MAX_BUDGET_RETRY_MS));
      await condition(() => slotFree, retryMs);
    }
    waitingFor = null;

    // Check the pods fit elsewhere before evicting any: otherwise wait, or let an operator decide.
    // patched(): remediations that started before this check existed replay without it.
    while (has('capacity-check-before-drain')) {
      const capacity = await support.checkCapacity.executeWithOptions(
        { summary: `capacity check before draining ${node}` },
        [{ node }],
      );
      if (capacity.fits) break;
      const detail = capacity.unplaced.map((u) => `${u.pod}: ${u.summary}`).join('; ');
      waitingFor = `capacity for the pods to evict (${detail}); approve to drain anyway, reject to stop`;
      if (!askedForCapacity)
        notify(
          'needs-operator',
          `${node} waits for capacity before its drain: ${detail}; approve to drain anyway, reject to stop`,
        );
      setPhase('waiting-for-capacity', detail);
      askedForCapacity = true;
      pending = undefined;
      const decided = await condition(() => pending !== undefined, policy.capacityRetryMs);
      if (!decided) continue;
      const decision = pending!;
      pending = undefined;
      if (decision.action === 'reject') {
        quarantineReason = `drain rejected by ${decision.decision.by}: ${decision.decision.reason ?? 'pods do not fit elsewhere'}`;
        return finish('rejected', quarantineReason);
      }
      reasons.push(`drain approved by ${decision.decision.by} although pods do not fit elsewhere`);
      break;
    }
    waitingFor = null;

    setPhase('draining', 'evicting pods through the Eviction API (PDB-aware)');
    const drained = await k8s.drainNode.executeWithOptions(
      {
        startToCloseTimeout: policy.drainDeadlineSeconds * 1000 + 60_000,
        heartbeatTimeout: policy.drainHeartbeatTimeoutMs,
        summary: `drain ${node}`,
        retry: {
          initialInterval: '1s',
          maximumInterval: '30s',
          nonRetryableErrorTypes: ['DrainDeadlineExceeded', 'DrainRefused'],
        },
      },
      [
        {
          node,
          workflowId,
          deadlineSeconds: policy.drainDeadlineSeconds,
          deleteEmptyDirData: policy.deleteEmptyDirData,
        },
      ],
    );
    if (drained.nodeGone) return finish('node-gone', `node ${node} was deleted during the drain`);
    reasons.push(
      `drained: ${drained.evicted} pod(s) evicted, ${drained.refused429} eviction(s) refused by PDBs`,
    );

    // Repair, then validate; on failure stay quarantined and wait for an operator.
    for (;;) {
      const plan = planRepair(cls, policy);
      let repairedOk = false;
      if (plan.kind === 'automatic-reset') {
        setPhase('repairing', `automatic GPU reset of GPU(s) ${faultyGpus(alerts).join(', ')}`);
        repairedOk = await resetGpus(faultyGpus(alerts));
      }
      if (!repairedOk) {
        const decision = await awaitOperator(plan.description);
        if (decision.action === 'reject') {
          quarantineReason = `repair rejected by ${decision.decision.by}: ${decision.decision.reason ?? 'no reason given'}`;
          return finish('rejected', quarantineReason);
        }
        if (decision.action === 'approve' && plan.kind !== 'operator-only') {
          setPhase('repairing', `approved by ${decision.decision.by}`);
          repairedOk = await performApprovedRepair(plan.kind, faultyGpus(alerts));
          if (!repairedOk) continue; // the automatic step failed: back to the operator
        }
      }
      setPhase('validating', `dcgmi diag -r ${policy.diagLevel}`);
      const diag = await nodeAgent.agentDiag
        .executeWithOptions(
          {
            startToCloseTimeout: '4 hours',
            heartbeatTimeout: '1 minute',
            scheduleToStartTimeout: policy.agentScheduleToStartMs,
            summary: `validate ${node}`,
          },
          [{ clusterId, node, level: policy.diagLevel }],
        )
        .catch((err: unknown) => ({
          passed: false,
          runtimeError: isScheduleToStartTimeout(err) ? 'node agent unreachable' : failureMessage(err),
          errors: [],
        }));
      if (diag.passed) break;
      const why = diag.runtimeError ?? diag.errors.map((e) => `${e.test}: ${e.message}`).join('; ');
      quarantineReason = `validation failed: ${why || 'dcgmi diag did not pass'}`;
      reasons.push(quarantineReason);
      cls = maxClass(cls, 'needs-operator');
      setPhase('quarantined', quarantineReason);
      notify(
        'validation-failed',
        `${node} stays quarantined: ${quarantineReason}; repair it and mark it repaired, or reject`,
      );
    }

    setPhase('releasing', 'checking DaemonSets and GPU allocatable, then uncordoning');
    await k8s.recordRemediation({ node, at: new Date().toISOString() });
    await k8s.releaseNode.executeWithOptions({ summary: `release ${node}` }, [{ node, workflowId }]);
    quarantineReason = null;
    await support.recordEpisode({ node, key: first.episodeKey });
    if (quarantine.record.preexistingCordon)
      reasons.push('node was cordoned by someone else before: left cordoned');
    notify(
      'returned-to-service',
      `${node} passed validation and is back in service${quarantine.record.preexistingCordon ? ' (left cordoned: someone else had cordoned it)' : ''}`,
    );
    return finish('returned-to-service');
  } finally {
    if (slotHeld) await support.budgetRelease({ node });
  }

  async function resetGpus(gpus: number[]): Promise<boolean> {
    try {
      for (const gpu of gpus) {
        await nodeAgent.agentResetGpu.executeWithOptions({ summary: `reset GPU ${gpu} on ${node}` }, [
          { clusterId, node, gpu },
        ]);
      }
      return true;
    } catch (err) {
      const type = failureType(err);
      const why = isScheduleToStartTimeout(err) ? 'node agent unreachable' : failureMessage(err);
      reasons.push(`automatic reset not possible (${type ?? 'error'}): ${why}`);
      if (isScheduleToStartTimeout(err))
        notify(
          'agent-unreachable',
          `the node agent of ${node} did not pick up the GPU reset: needs an operator`,
        );
      cls = maxClass(cls ?? 'needs-operator', 'needs-operator');
      return false;
    }
  }

  async function performApprovedRepair(kind: string, gpus: number[]): Promise<boolean> {
    if (kind === 'reset') return resetGpus(gpus);
    if (kind === 'reboot') {
      try {
        await nodeAgent.agentRebootNode.executeWithOptions({ summary: `reboot ${node}` }, [
          { clusterId, node },
        ]);
        return true;
      } catch (err) {
        reasons.push(
          `automatic reboot not possible: ${failureMessage(err)}; reboot out of band and mark repaired`,
        );
        return false;
      }
    }
    return false;
  }

  /** Waits for an operator, reminding at intervals and escalating; never times out into service. */
  async function awaitOperator(proposal: string) {
    pending = undefined;
    waitingFor = `operator: ${proposal}`;
    quarantineReason = quarantineReason ?? `waiting for an operator (${cls})`;
    const waitStarted = Date.now();
    let escalated = false;
    if (phase !== 'quarantined') {
      setPhase('awaiting-approval', proposal);
      notify('needs-operator', `${node} needs an operator: ${proposal}`);
    }
    for (;;) {
      const decided = await condition(() => pending !== undefined, policy.approvalReminderMs);
      if (decided) break;
      reminders++;
      if (has(NOTIFY_PATCH)) {
        // Escalation counts from the start of this wait, not from earlier waits of the same run.
        const escalateNow = Date.now() - waitStarted >= policy.escalateAfterMs;
        notify(
          escalateNow && !escalated ? 'escalated' : 'reminder',
          `${node} has waited ${waitedFor(Date.now() - waitStarted)} for an operator: ${proposal}${escalateNow ? ' (ESCALATED)' : ''}`,
          { reminder: reminders, escalated: escalateNow },
        );
        escalated = escalateNow;
        continue;
      }
      await support.notifyOperator({
        node,
        workflowId,
        reminder: reminders,
        message: `${node} waits for an operator: ${proposal}${reminders * policy.approvalReminderMs >= policy.escalateAfterMs ? ' (ESCALATED)' : ''}`,
      });
    }
    waitingFor = null;
    const decision = pending!;
    pending = undefined;
    return decision;
  }
}
