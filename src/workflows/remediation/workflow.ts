/**
 * The GPU remediation of one node, as a driver of the pure state machine in
 * src/domain/remediation-machine: every alert, step result, operator decision, timer and drain-slot
 * signal is fed to `step`, and the commands it returns are run here. Nothing is decided in this file;
 * what an operator sees (status query, search attributes, UI details, phase Events) is computed from
 * the machine's state. See docs/remediation.md.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxySinks,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { drainSlotFree } from '../../contracts/fleet-budget.js';
import {
  alertSignal,
  DECISION_UPDATES,
  statusQuery,
  type PhaseEventSinks,
  type RemediationInput,
  type RemediationStatus,
} from '../../contracts/remediation.js';
import { ALERT, CLUSTER_ID, NODE, OUTCOME, PHASE } from '../../contracts/search-attributes.js';
import {
  initialState,
  isActivityCommand,
  phaseOf,
  step,
  validateDecision,
  view,
  type Command,
  type MachineEvent,
  type OperatorAction,
  type RemediationState,
} from '../../domain/remediation-machine.js';
import { DEFAULT_REMEDIATION_POLICY } from '../../domain/remediation-plan.js';
import {
  observe,
  REBOOT_BOOT_ID_PATCH,
  runEffect,
  runStep,
  type EffectCommand,
  type StepContext,
} from './steps.js';

const { phaseEvents } = proxySinks<PhaseEventSinks>();

/**
 * History length at which the run continues as new even before Temporal suggests it (the server
 * suggests at 4 Ki events by default); `RemediationInput.continueAsNewAfterEvents` lowers it.
 */
const CONTINUE_AS_NEW_EVENTS = 10_000;

/** At most this many failures of effects and notifications are kept for the status. */
const MAX_DRIVER_REASONS = 20;

/**
 * The remediation of one node: classify, quarantine, triage, drain slot, capacity check, drain,
 * repair (automatic or approved), validate, release; or hold the node quarantined with a reason until
 * an operator acts. No timeout ever returns a node to service.
 */
export async function gpuRemediationWorkflow(input: RemediationInput): Promise<RemediationStatus> {
  const { clusterId, node } = input;
  const policy = { ...DEFAULT_REMEDIATION_POLICY, ...input.policy };
  const { workflowId, runId } = workflowInfo();
  const ctx: StepContext = { clusterId, node, workflowId, runId, policy };
  const casAfter = input.continueAsNewAfterEvents ?? CONTINUE_AS_NEW_EVENTS;

  let state: RemediationState = input.resume ?? initialState(node, policy);
  let ended = false;
  let continueWith: RemediationState | null = null;
  let casTold = false;
  /** Effects run one after another, and an activity starts only after the effects before it. */
  let effects: Promise<void> = Promise.resolve();
  /** Notifications in flight (timers are not awaited: pending ones are cancelled with the run). */
  const notifications: Promise<unknown>[] = [];
  const driverReasons: string[] = [];
  let notices = 0;
  let phaseChanges = 0;
  let phaseStartedAt = new Date().toISOString();

  const remember = (reason: string): void => {
    driverReasons.push(reason);
    if (driverReasons.length > MAX_DRIVER_REASONS) driverReasons.shift();
  };

  const status = (): RemediationStatus => {
    const v = view(state);
    return {
      clusterId,
      node,
      phase: v.phase,
      class: v.class,
      reasons: [...v.reasons, ...driverReasons],
      alerts: v.alerts,
      resolvedAlerts: v.resolvedAlerts,
      waitingFor: v.waitingFor,
      quarantineReason: v.quarantineReason,
      outcome: v.outcome,
      reminders: v.reminders,
      decisions: v.decisions.map((d) => ({
        action: d.action,
        by: d.by,
        ...(d.reason !== undefined && { reason: d.reason }),
        at: new Date(d.at).toISOString(),
      })),
      running: v.running,
      actions: v.actions,
      holdsDrainSlot: state.slotHeld,
    };
  };

  /** Upserts the search attributes whose value changed (each upsert costs a history event). */
  function upsert(pairs: { key: typeof PHASE; value: string | null }[]): void {
    const current = workflowInfo().typedSearchAttributes;
    const changed = pairs.filter(
      (p): p is { key: typeof PHASE; value: string } => p.value !== null && current.get(p.key) !== p.value,
    );
    if (changed.length > 0) upsertSearchAttributes(changed);
  }

  /** Shows the new state: search attributes, UI details, log and a phase Event when the phase changed. */
  function publish(before: RemediationState): void {
    const v = view(state);
    const previous = phaseOf(before);
    // `quarantining` while the local quarantine runs is left within the same workflow task: its
    // Event is written, but no upsert (in a storm of 150, each upsert of the first task is a history
    // event and a visibility write that delays the cordons).
    const transient = v.phase === 'quarantining' && v.running === 'quarantine';
    upsert([
      { key: PHASE, value: transient ? null : v.phase },
      { key: ALERT, value: v.alertName },
      { key: OUTCOME, value: v.outcome },
    ]);
    setCurrentDetails(v.details);
    if (v.phase === previous) return;
    log.info('remediation phase', { node, phase: v.phase, class: v.class, waitingFor: v.waitingFor });
    // A run that ends at once (its episode handled before, its node gone) leaves nothing to tell.
    if (previous === 'received' && (v.outcome === 'duplicate-episode' || v.outcome === 'node-gone')) return;
    const at = new Date().toISOString();
    const detail =
      v.waitingFor ?? v.quarantineReason ?? (v.outcome !== null ? (v.reasons.at(-1) ?? null) : null);
    // The control worker's Event recorder writes it in the background (a sink: nothing in the
    // history, never called on replay), as client-go's recorder does for controllers.
    phaseEvents.record({
      clusterId,
      node,
      workflowId,
      runId,
      sequence: ++phaseChanges,
      phase: v.phase,
      previousPhase: previous,
      at,
      previousStartedAt: phaseStartedAt,
      class: v.class,
      ...(detail !== null && { details: detail }),
      outcome: v.outcome,
    });
    phaseStartedAt = at;
  }

  /** Feeds one event and runs what the machine asks for. Synchronous: events never interleave. */
  function feed(event: MachineEvent): void {
    if (ended || continueWith !== null) return;
    const before = state;
    const result = step(state, event, Date.now());
    state = result.state;
    if (state !== before) publish(before);
    for (const command of result.commands) run(command);
    const info = workflowInfo();
    if (!casTold && (info.continueAsNewSuggested || info.historyLength >= casAfter)) {
      casTold = true;
      feed({ type: 'continue-as-new-suggested' });
    }
  }

  function run(c: Command): void {
    if (c.type === 'readBootId' && !patched(REBOOT_BOOT_ID_PATCH)) {
      // Recorded before boots were checked: the reboot is scheduled in this same task, as it was then.
      feed({ type: 'result', activity: 'readBootId', result: { bootId: null } });
      return;
    }
    if (isActivityCommand(c)) {
      // After the effects before it (a hold cleared before a release, an episode recorded first).
      effects = effects.then(() => {
        void runStep(ctx, c).then(feed);
      });
      return;
    }
    switch (c.type) {
      case 'releaseSlot':
      case 'recordRemediation':
      case 'recordEpisodes':
      case 'holdNode':
      case 'clearHold':
        effects = effects.then(() => effect(c));
        return;
      case 'notify':
        return notify(c);
      case 'startTimer':
        // A timer the machine no longer waits for is ignored when it fires.
        void sleep(c.ms).then(() => feed({ type: 'timer', id: c.id }));
        return;
      case 'continueAsNew':
        continueWith = c.state;
        return;
      case 'finish':
        ended = true;
        return;
    }
  }

  async function effect(c: EffectCommand): Promise<void> {
    try {
      await runEffect(ctx, c);
    } catch (err) {
      // Only a permanent failure ends up here (an unreadable annotation, a node deleted).
      const why =
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      remember(`${c.type} failed: ${why}`);
      log.warn('remediation effect failed', { node, effect: c.type, error: why });
    }
  }

  function notify(c: Extract<Command, { type: 'notify' }>): void {
    const v = view(state);
    notifications.push(
      observe.notify
        .executeWithOptions({ summary: `notify ${c.kind}: ${node}` }, [
          {
            id: `${workflowId}/${runId}/${++notices}`,
            kind: c.kind,
            cluster: clusterId,
            node,
            workflowId,
            runId,
            phase: v.phase,
            class: v.class,
            message: c.message,
            reminder: c.reminder,
            escalated: c.escalated,
            at: new Date().toISOString(),
          },
        ])
        .catch((err: unknown) => {
          const why =
            err instanceof Error
              ? err.cause instanceof Error
                ? err.cause.message
                : err.message
              : String(err);
          remember(`notification ${c.kind} not delivered: ${why}`);
          log.warn('notification not delivered', { node, kind: c.kind, error: why });
        }),
    );
  }

  setHandler(statusQuery, status);
  setHandler(alertSignal, (alert) => feed({ type: 'alert', alert }));
  setHandler(drainSlotFree, () => feed({ type: 'slot-free' }));
  for (const action of Object.keys(DECISION_UPDATES) as OperatorAction[]) {
    setHandler(
      DECISION_UPDATES[action],
      (d) => {
        feed({
          type: 'decision',
          decision: { action, by: d.by, ...(d.reason !== undefined && { reason: d.reason }) },
        });
        return `${action} accepted for ${node} (phase ${phaseOf(state)})`;
      },
      {
        validator: (d) => {
          const why = validateDecision(state, { ...(d as object), action } as never);
          if (why !== undefined) throw new Error(why);
        },
      },
    );
  }

  upsert([
    { key: CLUSTER_ID, value: clusterId },
    { key: NODE, value: node },
  ]);
  if (input.resume !== undefined) feed({ type: 'resumed' });
  else setCurrentDetails(view(state).details);

  await condition(() => ended || continueWith !== null);
  // Effects (a slot returned, a hold marked) finish before the run closes or continues.
  await effects;
  if (continueWith !== null) {
    await condition(allHandlersFinished);
    await Promise.allSettled(notifications);
    return continueAsNew<typeof gpuRemediationWorkflow>({
      clusterId,
      node,
      ...(input.policy !== undefined && { policy: input.policy }),
      ...(input.continueAsNewAfterEvents !== undefined && {
        continueAsNewAfterEvents: input.continueAsNewAfterEvents,
      }),
      resume: continueWith,
    });
  }
  // Notifications run beside the remediation; let them end (their retries are bounded) so that the
  // last ones are not dropped with the run. Timers still pending are cancelled with it.
  await Promise.allSettled(notifications);
  await condition(allHandlersFinished);
  return status();
}
