/**
 * One step of the machine in progress (the state being built and the commands so far), and the small
 * helpers every transition uses.
 */
import type { NotificationKind } from '../../notify/message.js';
import type { RemediationClass } from '../remediation-class.js';
import type { RepairPlan } from '../remediation-plan.js';
import type {
  ActivityCommand,
  ActivityFailure,
  ActivityResults,
  Command,
  RemediationOutcome,
  RemediationState,
  Stage,
  TimerPurpose,
} from './types.js';

/** Bounds that keep a state held for weeks small enough to carry through continue-as-new. */
export const STATE_LIMITS = Object.freeze({
  reasons: 50,
  decisions: 20,
  episodes: 32,
  pods: 64,
  gpus: 64,
});

/** A state under construction. */
export type Draft = { -readonly [K in keyof RemediationState]: RemediationState[K] };

/** One step in progress: the state being built and the commands so far. */
export interface Tx {
  readonly s: Draft;
  readonly out: Command[];
  readonly now: number;
}

/** The result of activity `K` as the machine receives it. */
export type Result<K extends keyof ActivityResults> =
  (ActivityResults[K] & { readonly failed?: false }) | ActivityFailure;

/** Adds a reason; the first (the alert's classification) and the most recent ones are kept. */
export function note(tx: Tx, reason: string): void {
  const r = [...tx.s.reasons, reason];
  tx.s.reasons =
    r.length > STATE_LIMITS.reasons ? [r[0]!, ...r.slice(r.length - STATE_LIMITS.reasons + 1)] : r;
}

/** Moves to `stage`. */
export function go(tx: Tx, stage: Stage): void {
  tx.s.stage = stage;
}

/** Starts an activity; its result is the only one the machine accepts until it returns. */
export function run(tx: Tx, command: ActivityCommand): void {
  tx.s.inFlight = command.type;
  tx.out.push(command);
}

/** Starts a timer and returns its id; only the newest timer of a wait counts when it fires. */
export function timer(tx: Tx, purpose: TimerPurpose, ms: number): number {
  const id = tx.s.timerSeq + 1;
  tx.s.timerSeq = id;
  tx.out.push({ type: 'startTimer', id, ms, purpose });
  return id;
}

/** Tells the operators (in the background; a failed notification never holds the run up). */
export function notify(
  tx: Tx,
  kind: NotificationKind,
  message: string,
  reminder = 0,
  escalated = false,
): void {
  tx.out.push({ type: 'notify', kind, message, reminder, escalated });
}

/** Returns the drain slot, if the run may hold one (the budget's release is idempotent). */
export function releaseSlot(tx: Tx): void {
  if (!tx.s.slotHeld) return;
  tx.s.slotHeld = false;
  tx.out.push({ type: 'releaseSlot' });
}

/** Ends the run with `outcome`; a slot still held goes back first. */
export function finish(tx: Tx, outcome: RemediationOutcome, detail: string): void {
  releaseSlot(tx);
  go(tx, { name: 'done', outcome, detail });
  tx.out.push({ type: 'finish', outcome, detail });
}

/** Records the run's episodes on the node, so that their re-sent alerts start nothing. */
export function recordEpisodes(tx: Tx): void {
  if (tx.s.episodes.length > 0)
    tx.out.push({ type: 'recordEpisodes', episodes: tx.s.episodes.map((e) => e.key) });
}

/** The class decided so far; an unknown one is treated as the operator's. */
export function cls(tx: Tx): RemediationClass {
  return tx.s.class ?? 'needs-operator';
}

/** A failed step in a few words, for reasons and notifications. */
export function failureText(r: ActivityFailure): string {
  return r.unreachable ? 'node agent unreachable' : `${r.failureType ?? 'error'}: ${r.message}`;
}

/** Whether two repair plans ask the operator the same thing. */
export function samePlan(a: RepairPlan, b: RepairPlan): boolean {
  return a.kind === b.kind && a.description === b.description;
}
