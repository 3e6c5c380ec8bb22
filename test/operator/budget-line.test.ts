import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { budgetLine } from '../../src/cli/commands/operator.js';
import type { BudgetView } from '../../src/client/operator-client.js';

const budget: BudgetView = {
  workflowId: 'fleet-budget/dev',
  paused: false,
  inUse: 1,
  rebuilding: false,
  limit: 1,
  draining: ['gpu-node-2'],
  queued: [],
  breaker: { state: 'closed' },
  healthyNodes: 3,
  gpuNodeCount: 4,
  minHealthyFraction: 0.51,
};

describe('budgetLine (fleetmedic status)', () => {
  it('names the slot holders, and the nodes waiting for a slot in queue order (the first five)', () => {
    assert.equal(
      budgetLine(budget),
      'fleet budget: 1/1 drain slot(s) in use (gpu-node-2), breaker closed, automation running, 3/4 GPU nodes healthy\n',
    );
    const queued = Array.from({ length: 7 }, (_, i) => `gpu-node-${i + 10}`);
    assert.match(
      budgetLine({ ...budget, queued }),
      /in use \(gpu-node-2\), 7 waiting \(gpu-node-10, gpu-node-11, gpu-node-12, gpu-node-13, gpu-node-14, \.\.\.\), breaker closed/,
    );
  });

  it('says a restarted budget is rebuilding rather than showing its empty figures', () => {
    assert.match(
      budgetLine({ ...budget, draining: [], inUse: 0, rebuilding: true }),
      /rebuilding from the cluster/,
    );
  });

  it('says when there is no budget yet', () => {
    assert.match(budgetLine(null), /none yet/);
  });
});
