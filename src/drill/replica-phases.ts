import type { RecoveryStep } from './report.js';
import type { ReplicaPhases, RestoreOutcome } from '../runner/replica.js';

/** What a replacement replica's `/phases` add to a recovery: its restore steps and restore time. */
export interface ReplicaRestore {
  /** `checkpoint-restored`, `health-200`, `slot-restored`, at the times the replica measured. */
  readonly steps: RecoveryStep[];
  /**
   * The replica's restore from checkpoint: from its start until the model was restored, loaded and
   * its slot restored (`health-200` when it restored no slot). Undefined before it finished.
   */
  readonly restoreMs?: number;
}

function isOutcome(x: unknown): x is RestoreOutcome {
  return typeof x === 'object' && x !== null && 'attempts' in x && 'name' in x;
}

/** The checkpoint a replica used, in words: a newest one skipped is named with its reason. */
export function describeRestore(outcome: ReplicaPhases['checkpoint']): string | undefined {
  if (outcome === undefined) return undefined;
  if (!isOutcome(outcome)) return `${outcome.model} (no checkpoint: ${outcome.reason})`;
  const skipped = outcome.attempts.filter((a) => !a.ok);
  if (skipped.length === 0) return `checkpoint ${outcome.name}`;
  return (
    `checkpoint ${outcome.name}, after skipping ${skipped.length} newer: ` +
    skipped.map((a) => `${a.name} (${a.reason ?? 'failed'})`).join('; ')
  );
}

/**
 * The restore steps of one replica from its `/phases` (the replica wrapper, src/runner/replica.ts),
 * as epoch-ms recovery steps; `pod` names it in each step's detail. Pure.
 *
 * @example replicaRestore(await (await fetch(`http://${ip}:8081/phases`)).json(), 'llama-7f-x2').restoreMs
 */
export function replicaRestore(phases: ReplicaPhases, pod: string): ReplicaRestore {
  const start = Date.parse(phases.startedAt);
  if (!Number.isFinite(start)) return { steps: [] };
  const steps: RecoveryStep[] = [];
  const at = (ms: number | undefined) => (ms === undefined ? undefined : start + ms);
  const restored = at(phases.checkpointRestoredMs);
  if (restored !== undefined) {
    steps.push({
      step: 'checkpoint-restored',
      at: restored,
      detail: `${pod}: ${describeRestore(phases.checkpoint) ?? 'restored'}`,
    });
  }
  const health = at(phases.health200Ms);
  if (health !== undefined) steps.push({ step: 'health-200', at: health, detail: `${pod}: model loaded` });
  const slot = at(phases.slotRestoredMs);
  if (slot !== undefined) {
    const what =
      phases.slot && isOutcome(phases.slot)
        ? `slot ${phases.slot.name}`
        : phases.slot && 'skipped' in phases.slot
          ? `no slot restored (${phases.slot.skipped})`
          : 'slot';
    steps.push({ step: 'slot-restored', at: slot, detail: `${pod}: ${what}` });
  }
  const done = phases.slotRestoredMs ?? phases.health200Ms;
  return { steps, ...(done !== undefined && { restoreMs: done }) };
}
