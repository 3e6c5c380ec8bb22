import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RetryBudget } from '../../src/gateway/retry-budget.js';

type Op = 'start' | 'end' | 'acquire' | 'release';

describe('retry budget (Envoy semantics)', () => {
  it('allows max(minConcurrent, percent of active requests) retries at once', () => {
    const budget = new RetryBudget({ budgetPercent: 20, minConcurrent: 3 });
    for (let i = 0; i < 10; i++) budget.requestStarted();
    assert.equal(budget.limit, 3, '20 % of 10 is 2, below the minimum');
    for (let i = 0; i < 40; i++) budget.requestStarted();
    assert.equal(budget.limit, 10);
    let granted = 0;
    while (budget.tryAcquire()) granted++;
    assert.equal(granted, 10);
    budget.release();
    assert.equal(budget.tryAcquire(), true);
  });

  it('property: concurrent retries never exceed the limit in force when each was granted', () => {
    fc.assert(
      fc.property(
        fc.record({ percent: fc.integer({ min: 0, max: 100 }), min: fc.integer({ min: 0, max: 5 }) }),
        fc.array(fc.constantFrom<Op>('start', 'end', 'acquire', 'release'), { maxLength: 300 }),
        ({ percent, min }, ops) => {
          const budget = new RetryBudget({ budgetPercent: percent, minConcurrent: min });
          let active = 0;
          let retries = 0;
          for (const op of ops) {
            if (op === 'start') {
              budget.requestStarted();
              active++;
            } else if (op === 'end' && active > 0) {
              budget.requestEnded();
              active--;
            } else if (op === 'acquire') {
              const limit = Math.max(min, Math.floor((active * percent) / 100));
              const granted = budget.tryAcquire();
              assert.equal(granted, retries < limit);
              if (granted) {
                retries++;
                // Checked at the grant: requests that end later lower the limit below the retries
                // already running, which then finish (they are never cut short).
                assert.ok(retries <= limit);
              }
            } else if (op === 'release' && retries > 0) {
              budget.release();
              retries--;
            }
            assert.equal(budget.activeRetries, retries);
            assert.equal(budget.activeRequests, active);
          }
        },
      ),
    );
  });
});
