/**
 * The procedure from triage to the end, each activity's result and the operator decisions (the
 * start is in `start.ts`, the operator waits in `waits.ts`). Decisions come from the other domain
 * modules (classification, evidence, repair plans); this module only sequences them.
 */
import { FailureType } from '../../errors.js';
import { maxClass } from '../remediation-class.js';
import type { RepairPlan } from '../remediation-plan.js';
import { refineWithEvidence } from '../xid-classification.js';
import {
  cls,
  failureText,
  finish,
  go,
  note,
  notify,
  recordEpisodes,
  releaseSlot,
  run,
  samePlan,
  STATE_LIMITS,
  timer,
  type Result,
  type Tx,
} from './tx.js';
import type { ActivityOutcome, OperatorDecision, RecordedDecision } from './types.js';
import { begin, onEpisodeChecked, onPodsRestarted, onQuarantined } from './start.js';
import { validateDecision } from './view.js';
import { awaitOperator, hold, repairPlan, targetGpus } from './waits.js';

/** The longest a queued remediation waits before asking for a drain slot again, unless signalled. */
const MAX_BUDGET_RETRY_MS = 5 * 60_000;

// ---------------------------------------------------------------------------------------------
// Activity results

/** Feeds the result of the activity in flight; any other result is stale and ignored. */
export function onResult(tx: Tx, event: ActivityOutcome): void {
  const { s } = tx;
  if (s.inFlight !== event.activity) return;
  s.inFlight = null;
  const r = event.result;
  if (r.failed && r.failureType === FailureType.NodeNotFound) {
    s.pending = null;
    return finish(tx, 'node-gone', `node ${s.node} was deleted (${event.activity})`);
  }
  switch (event.activity) {
    case 'checkEpisode':
      return onEpisodeChecked(tx, event.result);
    case 'restartPods':
      return onPodsRestarted(tx, event.result);
    case 'quarantine':
      return onQuarantined(tx, event.result);
    case 'triage':
      return onTriaged(tx, event.result);
    case 'requestSlot':
      return onSlotAnswer(tx, event.result);
    case 'checkCapacity':
      return onCapacity(tx, event.result);
    case 'drain':
      return onDrained(tx, event.result);
    case 'resetGpu':
      return onReset(tx, event.result);
    case 'readBootId':
      return onBootIdRead(tx, event.result);
    case 'reboot':
      return onRebooted(tx, event.result);
    case 'awaitBoot':
      return onNewBoot(tx, event.result);
    case 'validate':
      return onValidated(tx, event.result);
    case 'release':
      return onReleased(tx, event.result);
  }
}

function onTriaged(tx: Tx, r: Result<'triage'>): void {
  const { s } = tx;
  if (r.failed) {
    note(tx, `${r.unreachable ? 'node agent unreachable' : `triage failed: ${r.message}`} -> needs-operator`);
    s.class = maxClass(cls(tx), 'needs-operator');
    if (r.unreachable)
      notify(
        tx,
        'agent-unreachable',
        `the node agent of ${s.node} did not pick up triage: quarantined, needs an operator`,
      );
  } else {
    // The node's own GPU count, not the agent's nor a literal: a 4-GPU node lists 4.
    const evidence = { ...r.evidence, expectedGpuCount: s.gpuCount ?? undefined };
    const refined = refineWithEvidence(cls(tx), evidence, s.policy);
    for (const reason of refined.reasons.slice(1)) note(tx, reason);
    s.class = refined.class;
  }
  if (applyPending(tx)) return;
  requestSlot(tx);
}

export function requestSlot(tx: Tx): void {
  const stage = tx.s.stage;
  const detail = stage.name === 'waiting-for-budget' ? stage.detail : null;
  go(tx, { name: 'waiting-for-budget', asking: true, timer: null, detail, freeSignalled: false });
  run(tx, { type: 'requestSlot' });
}

function onSlotAnswer(tx: Tx, r: Result<'requestSlot'>): void {
  const { s } = tx;
  const stage = s.stage;
  const signalled = stage.name === 'waiting-for-budget' && stage.freeSignalled;
  if (r.failed) {
    // Whether the budget recorded a slot is unknown: release it (idempotent) if the run stops.
    s.slotHeld = true;
    if (applyPending(tx)) return;
    return waitForSlot(tx, `the fleet budget could not be asked (${failureText(r)})`, undefined, false);
  }
  const a = r.admission;
  if (a.admitted) {
    s.slotHeld = true;
    if (a.escalateTo !== null) {
      note(tx, a.detail);
      s.class = maxClass(cls(tx), a.escalateTo);
    }
    if (applyPending(tx)) return;
    return checkCapacity(tx, null);
  }
  s.slotHeld = false;
  if (applyPending(tx)) return;
  waitForSlot(tx, a.detail, a.ahead, signalled);
}

function waitForSlot(tx: Tx, detail: string, ahead: number | undefined, askNow: boolean): void {
  if (askNow) {
    go(tx, { name: 'waiting-for-budget', asking: true, timer: null, detail, freeSignalled: false });
    return run(tx, { type: 'requestSlot' });
  }
  const base = tx.s.policy.budgetRetryMs;
  // Further back in the queue, ask less often: the budget signals when a slot is free for this node.
  const ms = ahead === undefined ? base : Math.min(base * (1 + ahead), Math.max(base, MAX_BUDGET_RETRY_MS));
  const id = timer(tx, 'budget-retry', ms);
  go(tx, { name: 'waiting-for-budget', asking: false, timer: id, detail, freeSignalled: false });
}

export function onSlotFree(tx: Tx): void {
  const stage = tx.s.stage;
  if (stage.name !== 'waiting-for-budget') return;
  if (stage.asking) return go(tx, { ...stage, freeSignalled: true });
  requestSlot(tx);
}

export function checkCapacity(tx: Tx, unplaced: string | null): void {
  go(tx, { name: 'waiting-for-capacity', checking: true, timer: null, unplaced });
  run(tx, { type: 'checkCapacity' });
}

function onCapacity(tx: Tx, r: Result<'checkCapacity'>): void {
  const stage = tx.s.stage;
  const before = stage.name === 'waiting-for-capacity' ? stage.unplaced : null;
  if (applyPending(tx)) return;
  if (!r.failed && r.fits) return drain(tx);
  const unplaced = r.failed ? `the capacity check failed (${failureText(r)})` : r.detail;
  if (before === null)
    notify(
      tx,
      'needs-operator',
      `${tx.s.node} waits for capacity before its drain: ${unplaced}; approve to drain anyway, reject to stop`,
    );
  const id = timer(tx, 'capacity-retry', tx.s.policy.capacityRetryMs);
  go(tx, { name: 'waiting-for-capacity', checking: false, timer: id, unplaced });
}

function drain(tx: Tx): void {
  go(tx, { name: 'draining' });
  run(tx, { type: 'drain', deadlineSeconds: tx.s.policy.drainDeadlineSeconds });
}

function onDrained(tx: Tx, r: Result<'drain'>): void {
  // The slot caps concurrent drains, not time out of service: it goes back when the drain ends.
  releaseSlot(tx);
  if (!r.failed) {
    tx.s.drained = true;
    note(tx, `drained: ${r.evicted} pod(s) evicted, ${r.refused429} eviction(s) refused by PDBs`);
  }
  if (applyPending(tx)) return;
  if (r.failed) return hold(tx, 'drain-failed', `drain failed (${failureText(r)})`, 'drain');
  repair(tx);
}

// ---------------------------------------------------------------------------------------------
// Repair, validation, release

function repair(tx: Tx): void {
  const plan = repairPlan(tx);
  if (plan.kind === 'automatic-reset') return startReset(tx, plan);
  awaitOperator(tx, plan);
}

function startReset(tx: Tx, plan: RepairPlan): void {
  const gpus = targetGpus(tx) ?? [];
  tx.s.validatedSinceRepair = false;
  go(tx, { name: 'repairing', kind: 'reset', remaining: gpus, plan });
  run(tx, { type: 'resetGpu', gpu: gpus[0]! });
}

/** A reboot: the node's boot ID first, recorded here, so that every attempt of the reboot carries it. */
function startReboot(tx: Tx, plan: RepairPlan): void {
  tx.s.validatedSinceRepair = false;
  go(tx, { name: 'repairing', kind: 'reboot', remaining: [], plan });
  run(tx, { type: 'readBootId' });
}

/** Reboots the node unless it already left boot `bootIdBefore` (a retry after the reboot). */
function reboot(tx: Tx, plan: RepairPlan, bootIdBefore: string | null): void {
  tx.s.validatedSinceRepair = false;
  go(tx, { name: 'repairing', kind: 'reboot', remaining: [], plan, bootIdBefore });
  run(tx, { type: 'reboot', bootIdBefore });
}

/** A reboot that cannot be done or verified automatically goes to an operator. */
function rebootByOperator(tx: Tx, why: string): void {
  note(tx, `automatic reboot not possible (${why}): reboot out of band and mark repaired`);
  if (applyPending(tx)) return;
  awaitOperator(tx, {
    kind: 'operator-only',
    description: 'reboot the node out of band (automatic reboot not possible), then mark it repaired',
  });
}

function onBootIdRead(tx: Tx, r: Result<'readBootId'>): void {
  const stage = tx.s.stage;
  if (stage.name !== 'repairing') return;
  if (r.failed) return rebootByOperator(tx, `the node's boot ID cannot be read: ${failureText(r)}`);
  // A reject while the boot ID was read wins: nothing is rebooted.
  if (applyPending(tx)) return;
  reboot(tx, stage.plan, r.bootId);
}

function onReset(tx: Tx, r: Result<'resetGpu'>): void {
  const stage = tx.s.stage;
  if (stage.name !== 'repairing') return;
  if (r.failed) {
    note(tx, `automatic reset not possible (${failureText(r)})`);
    if (r.unreachable)
      notify(
        tx,
        'agent-unreachable',
        `the node agent of ${tx.s.node} did not pick up the GPU reset: needs an operator`,
      );
    tx.s.class = maxClass(cls(tx), 'needs-operator');
    if (applyPending(tx)) return;
    return awaitOperator(tx, repairPlan(tx));
  }
  const remaining = stage.remaining.slice(1);
  if (remaining.length === 0) return afterRepair(tx, stage.plan);
  if (applyPending(tx)) return;
  go(tx, { ...stage, remaining });
  run(tx, { type: 'resetGpu', gpu: remaining[0]! });
}

function onRebooted(tx: Tx, r: Result<'reboot'>): void {
  const stage = tx.s.stage;
  if (stage.name !== 'repairing') return;
  const before = stage.bootIdBefore ?? null;
  // An agent lost without a permanent answer may have gone down with the reboot: the boot tells.
  const lost = r.failed && !r.permanent && before !== null;
  if (r.failed && !lost) return rebootByOperator(tx, failureText(r));
  // Runs recorded before boots were checked: validation alone verifies the repair.
  if (before === null) return afterRepair(tx, stage.plan);
  note(
    tx,
    r.failed
      ? `the reboot's agent did not answer (${failureText(r)}): waiting for a new boot all the same`
      : r.alreadyRebooted
        ? `the node had already left boot ${before}: not rebooted again`
        : `reboot scheduled (boot ${before})`,
  );
  // The reboot is under way: a reject taken meanwhile holds the node as it comes back.
  if (applyPending(tx)) return;
  const deadline = tx.now + tx.s.policy.rebootDeadlineMs;
  go(tx, { ...stage, bootDeadline: deadline });
  run(tx, { type: 'awaitBoot', bootIdBefore: before, deadline });
}

function onNewBoot(tx: Tx, r: Result<'awaitBoot'>): void {
  const stage = tx.s.stage;
  if (stage.name !== 'repairing') return;
  if (r.failed) {
    const before = stage.bootIdBefore ?? undefined;
    if (applyPending(tx)) return;
    return hold(
      tx,
      'reboot-unverified',
      `${tx.s.node} did not come back with a new boot ID after its reboot (${failureText(r)})`,
      before === undefined ? null : 'reboot',
      before,
    );
  }
  note(tx, `the node is back from its reboot (boot ${r.bootId})`);
  afterRepair(tx, stage.plan);
}

function afterRepair(tx: Tx, plan: RepairPlan): void {
  if (applyPending(tx)) return;
  const now = repairPlan(tx);
  if (!samePlan(now, plan)) {
    // The class escalated while the repair ran: the repair done is not the one needed.
    note(tx, `the class escalated to ${cls(tx)} during the repair: ${now.description}`);
    return now.kind === 'automatic-reset' ? startReset(tx, now) : awaitOperator(tx, now);
  }
  validate(tx, plan);
}

function validate(tx: Tx, plan: RepairPlan | null): void {
  go(tx, { name: 'validating', plan });
  run(tx, { type: 'validate', level: tx.s.policy.diagLevel });
}

function onValidated(tx: Tx, r: Result<'validate'>): void {
  const { s } = tx;
  const stage = s.stage;
  const plan = stage.name === 'validating' ? stage.plan : null;
  const diag = r.failed ? { passed: false, runtimeError: failureText(r), errors: [] } : r.diag;
  if (diag.passed) s.validatedSinceRepair = true;
  if (applyPending(tx)) return;
  if (!diag.passed) {
    const why = diag.runtimeError ?? diag.errors.map((e) => `${e.test}: ${e.message}`).join('; ');
    s.class = maxClass(cls(tx), 'needs-operator');
    return hold(tx, 'validation-failed', `validation failed: ${why || 'dcgmi diag did not pass'}`, null);
  }
  if (plan !== null && !samePlan(repairPlan(tx), plan)) {
    note(tx, `the class escalated to ${cls(tx)} during validation: the repair done does not cover it`);
    return awaitOperator(tx, repairPlan(tx));
  }
  // Counted on the node before the release, so the repeat guard sees it even if the release fails.
  tx.out.push({ type: 'recordRemediation' });
  release(tx, false);
}

function release(tx: Tx, byOperator: boolean): void {
  go(tx, { name: 'releasing', byOperator });
  run(tx, { type: 'release' });
}

function onReleased(tx: Tx, r: Result<'release'>): void {
  const stage = tx.s.stage;
  const byOperator = stage.name === 'releasing' && stage.byOperator;
  if (r.failed) return hold(tx, 'release-failed', `release failed (${failureText(r)})`, 'release');
  tx.s.quarantined = false;
  recordEpisodes(tx);
  const cordoned = r.leftCordoned || tx.s.preexistingCordon;
  if (cordoned) note(tx, 'node was cordoned by someone else before: left cordoned');
  const outcome = byOperator ? 'released-by-operator' : 'returned-to-service';
  notify(
    tx,
    'returned-to-service',
    `${tx.s.node} ${byOperator ? 'was released by an operator' : 'passed validation and is back in service'}` +
      `${cordoned ? ' (left cordoned: someone else had cordoned it)' : ''}`,
  );
  finish(tx, outcome, outcome);
}

// ---------------------------------------------------------------------------------------------
// Operator decisions

/** Accepts a decision the validator allows: at once between steps, after the step in flight otherwise. */
export function onDecision(tx: Tx, decision: OperatorDecision): void {
  if (validateDecision(tx.s, decision) !== undefined) return;
  const recorded: RecordedDecision = {
    action: decision.action,
    by: decision.by,
    ...(decision.reason !== undefined && { reason: decision.reason }),
    at: tx.now,
  };
  tx.s.decisions = [...tx.s.decisions, recorded].slice(-STATE_LIMITS.decisions);
  // A step is running: the decision waits for it and is applied first when it returns.
  if (tx.s.inFlight !== null) {
    tx.s.pending = recorded;
    return;
  }
  apply(tx, recorded);
}

/** Applies a decision taken while the step that just returned ran; true when it took over. */
function applyPending(tx: Tx): boolean {
  const d = tx.s.pending;
  if (d === null) return false;
  tx.s.pending = null;
  apply(tx, d);
  return true;
}

function apply(tx: Tx, d: RecordedDecision): void {
  const { s } = tx;
  const stage = s.stage;
  const why = d.reason === undefined ? '' : `: ${d.reason}`;
  switch (d.action) {
    case 'reject': {
      const detail = `rejected by ${d.by}${d.reason === undefined ? ': no reason given' : why}`;
      // The reject outlives the run: it is marked on the node, so a later run (a re-sent or new
      // alert, a run started after this one was terminated) finds it and waits for an operator too.
      tx.out.push({ type: 'holdNode', by: d.by, reason: d.reason ?? 'no reason given' });
      // The run stays open, the node quarantined, until an operator releases it or marks it repaired.
      return hold(tx, 'rejected', detail, null);
    }
    case 'approve':
      if (stage.name === 'waiting-for-capacity') {
        note(tx, `drain approved by ${d.by} although pods do not fit elsewhere${why}`);
        return drain(tx);
      }
      if (stage.name === 'awaiting-approval') {
        note(tx, `${stage.plan.kind} approved by ${d.by}${why}`);
        return stage.plan.kind === 'reboot' ? startReboot(tx, stage.plan) : startReset(tx, stage.plan);
      }
      return;
    case 'markRepaired':
      note(tx, `marked repaired by ${d.by}${why}`);
      s.validatedSinceRepair = false;
      // An explicit operator action clears a reject's mark, known to this run or not (idempotent).
      tx.out.push({ type: 'clearHold' });
      return validate(tx, null);
    case 'release':
      note(tx, `released by ${d.by} without repair${why}`);
      tx.out.push({ type: 'clearHold' });
      return release(tx, true);
    case 'retry': {
      if (stage.name !== 'held' || stage.hold.retry === null) return;
      note(tx, `${stage.hold.retry} retried by ${d.by}${why}`);
      const step = stage.hold.retry;
      if (step === 'quarantine') return begin(tx);
      if (step === 'drain') return requestSlot(tx);
      if (step === 'reboot') return retryReboot(tx, stage.hold.bootIdBefore);
      return release(tx, !s.validatedSinceRepair);
    }
  }
}

/** An operator's retry of a reboot: it reboots again only if the node still runs the boot before. */
function retryReboot(tx: Tx, bootIdBefore: string | undefined): void {
  if (bootIdBefore === undefined) return startReboot(tx, repairPlan(tx));
  reboot(tx, repairPlan(tx), bootIdBefore);
}
