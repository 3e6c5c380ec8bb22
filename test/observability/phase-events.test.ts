import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  microTime,
  phaseEvent,
  phaseEventName,
  phaseEventType,
  phaseNote,
  phaseReason,
  previousPhaseSeconds,
  type PhaseChange,
} from '../../src/observability/phase-events.js';

const change: PhaseChange = {
  clusterId: 'c1',
  node: 'gpu-node-3',
  workflowId: 'remediation/c1/gpu-node-3',
  runId: '0198AB12-3456-7abc-def0-123456789abc',
  sequence: 4,
  phase: 'draining',
  previousPhase: 'waiting-for-budget',
  at: '2026-11-27T01:00:30.250Z',
  previousStartedAt: '2026-11-27T01:00:00.000Z',
  class: 'reset-gpu',
  details: 'evicting pods through the Eviction API (PDB-aware)',
};

describe('phase events', () => {
  const reasons: Array<[string, string]> = [
    ['quarantining', 'FleetmedicQuarantining'],
    ['awaiting-approval', 'FleetmedicAwaitingApproval'],
    ['waiting-for-budget', 'FleetmedicWaitingForBudget'],
    ['done', 'FleetmedicDone'],
  ];
  for (const [phase, reason] of reasons) {
    it(`reason of ${phase} is ${reason}`, () => assert.equal(phaseReason(phase), reason));
  }

  const types: Array<[string, string | null, 'Normal' | 'Warning']> = [
    ['quarantining', null, 'Normal'],
    ['draining', null, 'Normal'],
    ['awaiting-approval', null, 'Warning'],
    ['waiting-for-capacity', null, 'Warning'],
    ['quarantined', null, 'Warning'],
    ['done', 'returned-to-service', 'Normal'],
    ['done', 'node-gone', 'Warning'],
    ['done', 'automation-blocked', 'Warning'],
  ];
  for (const [phase, outcome, type] of types) {
    it(`${phase}${outcome ? ` (${outcome})` : ''} is ${type}`, () =>
      assert.equal(phaseEventType(phase, outcome), type));
  }

  it('the previous phase lasted from its start to this change; nonsense times give nothing', () => {
    assert.equal(previousPhaseSeconds(change), 30.25);
    assert.equal(previousPhaseSeconds({ at: 'x', previousStartedAt: change.at }), undefined);
    assert.equal(
      previousPhaseSeconds({ at: change.previousStartedAt, previousStartedAt: change.at }),
      undefined,
    );
  });

  it('MicroTime has six fractional digits', () => {
    assert.equal(microTime('2026-11-27T01:00:30.250Z'), '2026-11-27T01:00:30.250000Z');
    assert.throws(() => microTime('yesterday'), /not a time/);
  });

  it('names are deterministic per run and sequence, and valid DNS subdomains', () => {
    const name = phaseEventName(change);
    assert.equal(name, 'gpu-node-3.fleetmedic-0198ab1234567abc-4');
    assert.match(name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    assert.equal(phaseEventName({ ...change, node: 'n'.repeat(253) }).length <= 253, true);
  });

  it('the note says from where to where, class, details and workflow, within 1 kB', () => {
    assert.equal(
      phaseNote(change),
      'waiting-for-budget -> draining; class reset-gpu; evicting pods through the Eviction API (PDB-aware); workflow remediation/c1/gpu-node-3',
    );
    const long = phaseNote({ ...change, details: 'é'.repeat(2000) });
    assert.ok(Buffer.byteLength(long) <= 1024, `${Buffer.byteLength(long)} bytes`);
    assert.match(long, /\.\.\.$/);
  });

  it('a core/v1 Event about the Node, from fleetmedic, with the new-style fields', () => {
    const e = phaseEvent({ ...change, phase: 'done', outcome: 'node-gone' }, 'worker-1');
    assert.equal(e.reason, 'FleetmedicDone');
    assert.equal(e.action, 'PhaseDone');
    assert.equal(e.type, 'Warning');
    assert.equal(e.reportingComponent, 'fleetmedic.io/remediation');
    assert.equal(e.reportingInstance, 'worker-1');
    assert.equal(e.source.component, 'fleetmedic');
    assert.deepEqual(e.involvedObject, {
      kind: 'Node',
      apiVersion: 'v1',
      name: 'gpu-node-3',
      uid: 'gpu-node-3',
    });
    assert.equal(e.metadata.namespace, 'default');
    assert.equal(e.metadata.annotations['fleetmedic.io/sequence'], '4');
    assert.equal(e.eventTime, '2026-11-27T01:00:30.250000Z');
    assert.equal(e.firstTimestamp.toISOString(), '2026-11-27T01:00:30.250Z');
    assert.match(e.message, /outcome node-gone/);
  });
});
