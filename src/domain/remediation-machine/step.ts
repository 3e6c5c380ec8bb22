/**
 * The remediation of one node as a pure state machine: `step(state, event, now)` returns the next
 * state and the commands the workflow runs. This file takes events in (alerts, timers,
 * continue-as-new); the procedure itself is in `procedure.ts`.
 */
import { maxClass, severityOf, type RemediationClass } from '../remediation-class.js';
import { classifyAlert, type AlertSignal } from '../remediation-plan.js';
import { checkCapacity, onDecision, onResult, onSlotFree, requestSlot } from './procedure.js';
import { begin, triage } from './start.js';
import { go, note, notify, STATE_LIMITS, timer, type Draft, type Tx } from './tx.js';
import type { MachineEvent, RemediationState, Stage, StageName, StepResult } from './types.js';
import { formatWait } from './view.js';
import { onEscalated } from './waits.js';

/**
 * A run before its first alert.
 *
 * @param node - the node's name
 * @param policy - the remediation policy (defaults merged in by the caller)
 */
export function initialState(node: string, policy: RemediationState['policy']): RemediationState {
  return {
    version: 1,
    node,
    policy,
    stage: { name: 'received' },
    class: null,
    alertName: null,
    episode: null,
    episodes: [],
    handledEarlier: [],
    gpus: [],
    pods: [],
    alerts: 0,
    resolvedAlerts: 0,
    gpuCount: null,
    quarantined: false,
    preexistingCordon: false,
    slotHeld: false,
    drained: false,
    validatedSinceRepair: false,
    inFlight: null,
    pending: null,
    reasons: [],
    decisions: [],
    reminders: 0,
    timerSeq: 0,
    continueAsNewWanted: false,
  };
}

/**
 * Feeds one event to the machine. Pure: the same state, event and `now` give the same result. An
 * event that does not apply (a stale timer, a result nobody waits for, a refused decision, anything
 * after the end) returns the state unchanged and no commands.
 *
 * @param state - the current state (from {@link initialState} or a continue-as-new snapshot)
 * @param event - what happened
 * @param now - the time of the event in milliseconds since the epoch (the workflow's clock)
 * @example step(initialState('gpu-7', policy), { type: 'alert', alert }, Date.now()).commands
 *   // [{ type: 'quarantine', episode: 'fp@2026-03-01T12:00:00Z', reason: 'reboot-node: XID 79: ...' }]
 */
export function step(state: RemediationState, event: MachineEvent, now: number): StepResult {
  if (state.stage.name === 'done') return { state, commands: [] };
  const tx: Tx = { s: { ...state }, out: [], now };
  dispatch(tx, event);
  maybeContinueAsNew(tx);
  return tx.out.length === 0 && sameState(state, tx.s)
    ? { state, commands: [] }
    : { state: tx.s, commands: tx.out };
}

function sameState(a: RemediationState, b: Draft): boolean {
  return (Object.keys(a) as (keyof RemediationState)[]).every((k) => a[k] === b[k]);
}

function dispatch(tx: Tx, event: MachineEvent): void {
  switch (event.type) {
    case 'alert':
      return onAlert(tx, event.alert);
    case 'result':
      return onResult(tx, event);
    case 'decision':
      return onDecision(tx, event.decision);
    case 'timer':
      return onTimer(tx, event.id);
    case 'slot-free':
      return onSlotFree(tx);
    case 'continue-as-new-suggested':
      tx.s.continueAsNewWanted = true;
      return;
    case 'resumed':
      return onResumed(tx);
  }
}

// ---------------------------------------------------------------------------------------------
// Alerts

function onAlert(tx: Tx, alert: AlertSignal): void {
  const { s } = tx;
  if (alert.status === 'resolved') {
    // Counted only: a resolved alert never uncordons (the fault may be masked, not fixed).
    s.resolvedAlerts++;
    return;
  }
  s.alerts++;
  // A re-send of an episode the node says was handled changes nothing.
  if (s.handledEarlier.includes(alert.episodeKey)) return;
  const c = classifyAlert(alert, s.policy);
  joinEpisode(tx, alert.episodeKey, c.class, c.reason);
  if (alert.gpu !== undefined && Number.isInteger(alert.gpu) && alert.gpu >= 0 && !s.gpus.includes(alert.gpu))
    s.gpus = [...s.gpus, alert.gpu].sort((a, b) => a - b).slice(0, STATE_LIMITS.gpus);
  for (const pod of alert.pods ?? []) {
    if (s.pods.length >= STATE_LIMITS.pods) break;
    if (!s.pods.some((p) => p.namespace === pod.namespace && p.name === pod.name))
      s.pods = [...s.pods, { namespace: pod.namespace, name: pod.name }];
  }
  if (s.class === null) {
    s.class = c.class;
    s.alertName = alert.alertName;
    s.episode = alert.episodeKey;
    note(tx, c.reason);
    if (s.stage.name === 'received') begin(tx);
    return;
  }
  const next = maxClass(s.class, c.class);
  if (next === s.class) return;
  note(tx, `later alert ${alert.alertName} escalated ${s.class} -> ${next} (${c.reason})`);
  s.class = next;
  s.alertName = alert.alertName;
  // The episode whose check gates a quarantine is the one that asked for it.
  s.episode = alert.episodeKey;
  onEscalated(tx);
}

/** Adds the episode to the run (or raises its class); the oldest go first past the bound, never the gating one. */
function joinEpisode(tx: Tx, key: string, c: RemediationClass, reason: string): void {
  const { s } = tx;
  const known = s.episodes.find((e) => e.key === key);
  if (known !== undefined) {
    if (severityOf(c) > severityOf(known.class))
      s.episodes = s.episodes.map((e) => (e.key === key ? { ...e, class: c, reason } : e));
    return;
  }
  let episodes = [...s.episodes, { key, class: c, reason }];
  while (episodes.length > STATE_LIMITS.episodes) {
    const drop = episodes.findIndex((e) => e.key !== s.episode);
    episodes = episodes.filter((_, i) => i !== drop);
  }
  s.episodes = episodes;
}

// ---------------------------------------------------------------------------------------------
// Timers, continue-as-new

/** A timer fired; only the one the current wait started counts. */
function onTimer(tx: Tx, id: number): void {
  const stage = tx.s.stage;
  switch (stage.name) {
    case 'settling':
      if (stage.timer === id) triage(tx);
      return;
    case 'waiting-for-budget':
      if (!stage.asking && stage.timer === id) requestSlot(tx);
      return;
    case 'waiting-for-capacity':
      if (!stage.checking && stage.timer === id) checkCapacity(tx, stage.unplaced);
      return;
    case 'awaiting-approval':
    case 'held':
      if (stage.wait.timer === id) remind(tx, stage);
      return;
    default:
      return;
  }
}

/** A reminder to the operator, ESCALATED once the wait is longer than `escalateAfterMs`. */
function remind(tx: Tx, stage: Extract<Stage, { name: 'awaiting-approval' | 'held' }>): void {
  const { s, now } = tx;
  const w = stage.wait;
  const waited = now - w.since;
  // Escalation counts from the start of this wait; it never returns a node to service.
  const escalateNow = waited >= s.policy.escalateAfterMs;
  s.reminders++;
  const what = stage.name === 'held' ? stage.hold.reason : stage.plan.description;
  notify(
    tx,
    escalateNow && !w.escalated ? 'escalated' : 'reminder',
    `${s.node} has waited ${formatWait(waited)} for an operator: ${what}${escalateNow ? ' (ESCALATED)' : ''}`,
    w.reminders + 1,
    escalateNow,
  );
  const id = timer(tx, 'operator-reminder', s.policy.approvalReminderMs);
  go(tx, { ...stage, wait: { ...w, reminders: w.reminders + 1, escalated: escalateNow, timer: id } });
}

/** The first event of a continued run: the wait it was in starts its timer again (or asks now). */
function onResumed(tx: Tx): void {
  const stage = tx.s.stage;
  switch (stage.name) {
    case 'settling':
      return triage(tx);
    case 'waiting-for-budget':
      return stage.asking ? undefined : requestSlot(tx);
    case 'waiting-for-capacity':
      return stage.checking ? undefined : checkCapacity(tx, stage.unplaced);
    case 'awaiting-approval':
    case 'held': {
      const id = timer(tx, 'operator-reminder', tx.s.policy.approvalReminderMs);
      return go(tx, { ...stage, wait: { ...stage.wait, timer: id } });
    }
    default:
      return;
  }
}

/** The stages that wait (for an alert, a timer or an operator) rather than for a step. */
const WAITING: ReadonlySet<StageName> = new Set<StageName>([
  'received',
  'settling',
  'waiting-for-budget',
  'waiting-for-capacity',
  'awaiting-approval',
  'held',
]);

/** Continue-as-new only between steps: nothing in flight, no decision pending, the run waiting. */
function maybeContinueAsNew(tx: Tx): void {
  const { s } = tx;
  if (!s.continueAsNewWanted || s.inFlight !== null || s.pending !== null || !WAITING.has(s.stage.name))
    return;
  s.continueAsNewWanted = false;
  tx.out.push({ type: 'continueAsNew', state: { ...s } });
}
