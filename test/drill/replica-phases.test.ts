import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeRestore, replicaRestore } from '../../src/drill/replica-phases.js';
import type { ReplicaPhases } from '../../src/runner/replica.js';

const START = '2026-12-03T07:00:00.000Z';
const T = Date.parse(START);

describe("a replacement replica's restore, from its /phases", () => {
  it('gives the restore steps at the times the replica measured, and the restore time to its slot', () => {
    const phases: ReplicaPhases = {
      startedAt: START,
      checkpoint: { name: 'b-2', sha256: 'x', attempts: [{ name: 'b-2', ok: true, durationMs: 40 }], ms: 40 },
      checkpointRestoredMs: 45,
      health200Ms: 900,
      slot: { name: 's-1', sha256: 'y', attempts: [{ name: 's-1', ok: true, durationMs: 5 }], ms: 5 },
      slotRestoredMs: 950,
      readyMs: 960,
    };
    const r = replicaRestore(phases, 'llama-x');
    assert.deepEqual(r.steps, [
      { step: 'checkpoint-restored', at: T + 45, detail: 'llama-x: checkpoint b-2' },
      { step: 'health-200', at: T + 900, detail: 'llama-x: model loaded' },
      { step: 'slot-restored', at: T + 950, detail: 'llama-x: slot s-1' },
    ]);
    assert.equal(r.restoreMs, 950);
  });

  it('says when the newest checkpoint was skipped (corrupted) and the previous verified one used', () => {
    const text = describeRestore({
      name: 'b-1',
      sha256: 'x',
      attempts: [
        { name: 'b-2', ok: false, reason: 'sha256 mismatch', durationMs: 3 },
        { name: 'b-1', ok: true, durationMs: 40 },
      ],
      ms: 45,
    });
    assert.equal(text, 'checkpoint b-1, after skipping 1 newer: b-2 (sha256 mismatch)');
  });

  it('has no restore time before the model is loaded, and no step for what did not happen', () => {
    const r = replicaRestore({ startedAt: START, checkpointRestoredMs: 45 }, 'p');
    assert.deepEqual(
      r.steps.map((s) => s.step),
      ['checkpoint-restored'],
    );
    assert.equal(r.restoreMs, undefined);
    assert.deepEqual(replicaRestore({ startedAt: 'not a time' }, 'p'), { steps: [] });
    // Without a slot restored, the restore ends with the model loaded.
    assert.equal(
      replicaRestore({ startedAt: START, health200Ms: 700, slot: { skipped: 'no slot backup' } }, 'p')
        .restoreMs,
      700,
    );
  });
});
