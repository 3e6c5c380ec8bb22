import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { budgetTaskQueue, nodeTaskQueue, remediationWorkflowId } from '../../src/contracts/ids.js';

// Cluster IDs are DNS labels, node names DNS subdomains (see src/config/config.ts).
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const subdomain = fc.array(label, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('.'));

describe('contracts: names that carry the cluster ID', () => {
  it('never give two (cluster, node) pairs the same node task queue or workflow ID', () => {
    assert.notEqual(nodeTaskQueue('prod-east', 'gpu-1'), nodeTaskQueue('prod', 'east-gpu-1'));
    fc.assert(
      fc.property(label, subdomain, label, subdomain, (c1, n1, c2, n2) => {
        fc.pre(c1 !== c2 || n1 !== n2);
        assert.notEqual(nodeTaskQueue(c1, n1), nodeTaskQueue(c2, n2));
        assert.notEqual(remediationWorkflowId(c1, n1), remediationWorkflowId(c2, n2));
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps the fleet budget on a queue of its own', () => {
    assert.equal(budgetTaskQueue('fleetmedic'), 'fleetmedic-fleet-budget');
    assert.equal(budgetTaskQueue('fleetmedic-fleet-budget'), 'fleetmedic-fleet-budget');
  });
});
