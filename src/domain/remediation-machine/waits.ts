/**
 * The waits for an operator (an approval, a hold after a failure) and the repair plan they ask
 * about. No timeout ends them: reminders go out, and only an operator's decision moves on.
 */
import { planRepair, type RepairPlan } from '../remediation-plan.js';
import { cls, go, note, notify, releaseSlot, samePlan, timer, type Tx } from './tx.js';
import type { Hold, OperatorWait } from './types.js';

/** The GPUs to reset: those the alerts named, else every GPU of the node; null when unknown. */
export function targetGpus(tx: Tx): number[] | null {
  if (tx.s.gpus.length > 0) return [...tx.s.gpus];
  const n = tx.s.gpuCount;
  return n !== null && Number.isInteger(n) && n > 0 ? Array.from({ length: n }, (_, i) => i) : null;
}

/** The repair the class needs now; a reset without a GPU to name goes to an operator. */
export function repairPlan(tx: Tx): RepairPlan {
  const plan = planRepair(cls(tx), tx.s.policy);
  if ((plan.kind === 'automatic-reset' || plan.kind === 'reset') && targetGpus(tx) === null)
    return {
      kind: 'operator-only',
      description:
        'no alert names a GPU and the node reports no GPU count: reset by hand, then mark it repaired',
    };
  return plan;
}

/** Starts an operator wait: now, no reminders yet, the first reminder timer. */
export function newWait(tx: Tx): OperatorWait {
  const id = timer(tx, 'operator-reminder', tx.s.policy.approvalReminderMs);
  return { since: tx.now, reminders: 0, escalated: false, timer: id };
}

/** Waits for an operator to approve (or mark repaired, or reject) the repair `plan`. */
export function awaitOperator(tx: Tx, plan: RepairPlan): void {
  go(tx, { name: 'awaiting-approval', plan, wait: newWait(tx) });
  notify(tx, 'needs-operator', `${tx.s.node} needs an operator: ${plan.description}`);
}

/** Stays quarantined (the run open) with a reason, and tells an operator what they can do. */
export function hold(
  tx: Tx,
  kind: Hold['kind'],
  reason: string,
  retry: Hold['retry'],
  bootIdBefore?: string,
): void {
  releaseSlot(tx);
  note(tx, reason);
  const h: Hold = { kind, reason, retry, ...(bootIdBefore !== undefined && { bootIdBefore }) };
  go(tx, { name: 'held', hold: h, wait: newWait(tx) });
  const rejected = kind === 'rejected' || kind === 'rejected-earlier';
  const options = rejected
    ? 'release it or mark it repaired when it is back'
    : `${retry === null ? '' : `retry the ${retry}, `}mark it repaired, reject or release`;
  notify(
    tx,
    kind === 'validation-failed' ? 'validation-failed' : 'needs-operator',
    `${tx.s.node} stays quarantined: ${reason}; ${options}`,
  );
}

/** A higher class arrived. Steps in flight look at the class when they return; waits act now. */
export function onEscalated(tx: Tx): void {
  const stage = tx.s.stage;
  if (stage.name !== 'awaiting-approval') return;
  const plan = repairPlan(tx);
  if (samePlan(plan, stage.plan)) return;
  // The approval asked for was for another repair: ask again, for the one the class needs now.
  note(tx, `the repair plan changed with the class: ${plan.description}`);
  awaitOperator(tx, plan);
}
