import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import {
  DEFAULT_FLEET_BUDGET,
  acquireSlot,
  admitDrain,
  allowsAutomaticQuarantine,
  decideDrainSlots,
  dequeue,
  enqueue,
  nextInQueue,
  evaluateBreaker,
  initialFleetState,
  recentFailureCount,
  recordFailure,
  releaseSlot,
  repeatGuard,
  resetBreaker,
  validateFleetBudgetConfig,
} from '../../src/domain/fleet-budget.js';
import type { DenialReason, FleetBudgetConfig, FleetState } from '../../src/domain/fleet-budget.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

const names = (n: number, prefix = 'gpu-'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** A fleet of `total` GPU nodes, all healthy unless `healthy` says otherwise. */
function fleet(
  total: number,
  over: Partial<FleetState> = {},
  config: Partial<FleetBudgetConfig> = {},
): FleetState {
  return {
    ...initialFleetState(total, names(total), { ...DEFAULT_FLEET_BUDGET, ...config }),
    ...over,
  };
}

describe('admitDrain', () => {
  const denied: [string, FleetState, string, DenialReason][] = [
    ['paused', fleet(10, { paused: true }), 'gpu-0', 'paused'],
    [
      'one drain already running (default limit 1)',
      fleet(10, { draining: ['gpu-1'] }),
      'gpu-0',
      'max-concurrent',
    ],
    [
      'two drains running with a limit of 2',
      fleet(10, { draining: ['gpu-1', 'gpu-2'] }, { maxConcurrentDrains: 2 }),
      'gpu-0',
      'max-concurrent',
    ],
    ['a limit of 0 blocks every drain', fleet(10, {}, { maxConcurrentDrains: 0 }), 'gpu-0', 'max-concurrent'],
    [
      'draining would leave 5 of 10 healthy (< 51%)',
      fleet(10, { healthyNodes: names(6) }, { maxConcurrentDrains: 5 }),
      'gpu-0',
      'min-healthy',
    ],
    ['a 1-node fleet cannot drain its only node', fleet(1), 'gpu-0', 'min-healthy'],
    ['a 2-node fleet keeps 1 of 2 = 50% < 51%', fleet(2), 'gpu-0', 'min-healthy'],
    [
      'a breaker already open',
      fleet(10, { breaker: { state: 'open', openedAt: NOW - DAY, reason: 'storm' } }),
      'gpu-0',
      'breaker-open',
    ],
    [
      '6 of 10 nodes failed within 5 minutes (> 50%)',
      fleet(10, { failures: names(6).map((node, i) => ({ node, at: NOW - i * 30_000 })) }),
      'gpu-9',
      'breaker-open',
    ],
    [
      'pause wins over an already held slot',
      fleet(10, { paused: true, draining: ['gpu-0'] }),
      'gpu-0',
      'paused',
    ],
    [
      'the breaker wins over an already held slot',
      fleet(10, { draining: ['gpu-0'], breaker: { state: 'open', openedAt: NOW, reason: 'x' } }),
      'gpu-0',
      'breaker-open',
    ],
  ];
  for (const [name, state, node, reason] of denied) {
    it(`denies: ${name} -> ${reason}`, () => {
      const result = admitDrain(state, { node }, NOW);
      assert.equal(result.admitted, false);
      if (!result.admitted) {
        assert.equal(result.reason, reason);
        assert.ok(result.detail.length > 0);
      }
    });
  }

  const admitted: [string, FleetState, string][] = [
    ['an idle, healthy fleet', fleet(10), 'gpu-0'],
    ['a node already holding its slot (idempotent retry)', fleet(10, { draining: ['gpu-0'] }), 'gpu-0'],
    [
      'a second drain under a limit of 2',
      fleet(10, { draining: ['gpu-1'] }, { maxConcurrentDrains: 2 }),
      'gpu-0',
    ],
    [
      'exactly 51 of 100 healthy after the drain',
      fleet(100, { healthyNodes: names(52) }, { maxConcurrentDrains: 10 }),
      'gpu-0',
    ],
    [
      'an already unhealthy node does not lower the healthy count',
      fleet(10, { healthyNodes: names(6) }, { maxConcurrentDrains: 5 }),
      'gpu-9',
    ],
    [
      'exactly 50% failed in the window does not trip the breaker',
      fleet(10, { failures: names(5).map((node) => ({ node, at: NOW - MINUTE })) }),
      'gpu-9',
    ],
    [
      'old failures fall out of the window',
      fleet(10, { failures: names(8).map((node) => ({ node, at: NOW - 6 * MINUTE })) }),
      'gpu-9',
    ],
    [
      'repeated failures of the same node count once',
      fleet(10, { failures: Array.from({ length: 9 }, (_, i) => ({ node: 'gpu-3', at: NOW - i * 1000 })) }),
      'gpu-9',
    ],
    ['a 3-node fleet keeps 2 of 3 = 66.7%', fleet(3), 'gpu-0'],
    ['minHealthyFraction 0 allows the last node', fleet(1, {}, { minHealthyFraction: 0 }), 'gpu-0'],
  ];
  for (const [name, state, node] of admitted) {
    it(`admits: ${name}`, () => {
      const result = admitDrain(state, { node }, NOW);
      assert.equal(result.admitted, true, JSON.stringify(result));
      if (result.admitted) assert.equal(result.escalateTo, null);
    });
  }

  const failSafe: [string, FleetState, number, string?][] = [
    ['zero GPU nodes are known', fleet(0, { healthyNodes: [] }), NOW],
    ['the GPU node count is NaN', fleet(3, { gpuNodeCount: Number.NaN }), NOW],
    ['the GPU node count is negative', fleet(3, { gpuNodeCount: -2 }), NOW],
    ['now is NaN', fleet(10), Number.NaN],
    ['now is infinite', fleet(10), Number.POSITIVE_INFINITY],
    ['maxConcurrentDrains is NaN', fleet(10, {}, { maxConcurrentDrains: Number.NaN }), NOW],
    ['maxConcurrentDrains is fractional', fleet(10, {}, { maxConcurrentDrains: 1.5 }), NOW],
    ['minHealthyFraction is NaN', fleet(10, {}, { minHealthyFraction: Number.NaN }), NOW],
    ['minHealthyFraction is above 1', fleet(10, {}, { minHealthyFraction: 51 }), NOW],
    ['breakerThreshold is negative', fleet(10, {}, { breakerThreshold: -0.5 }), NOW],
    ['breakerWindowMs is NaN', fleet(10, {}, { breakerWindowMs: Number.NaN }), NOW],
    ['repeatLimit is 0', fleet(10, {}, { repeatLimit: 0 }), NOW],
    ['repeatWindowMs is infinite', fleet(10, {}, { repeatWindowMs: Number.POSITIVE_INFINITY }), NOW],
    ['more nodes are healthy than exist', fleet(2, { healthyNodes: names(3) }), NOW],
    ['a failure has no valid time', fleet(10, { failures: [{ node: 'gpu-1', at: Number.NaN }] }), NOW],
    [
      'an open breaker has no valid time',
      fleet(10, { breaker: { state: 'open', openedAt: Number.NaN, reason: '' } }),
      NOW,
    ],
    ['the request names no node', fleet(10), NOW, ''],
  ];
  for (const [name, state, now, node] of failSafe) {
    it(`fails safe when ${name}`, () => {
      const result = admitDrain(state, { node: node ?? 'gpu-0' }, now);
      assert.equal(result.admitted, false);
      if (!result.admitted) {
        assert.equal(result.reason, 'cannot-evaluate');
        assert.match(result.detail, /cannot evaluate/);
      }
    });
  }

  it('fails safe when zero GPU nodes are known, also for automatic quarantine', () => {
    assert.equal(allowsAutomaticQuarantine(fleet(0, { healthyNodes: [] }), NOW).allowed, false);
  });

  it('names the nodes holding the slots', () => {
    const result = admitDrain(fleet(10, { draining: ['gpu-4'] }), { node: 'gpu-0' }, NOW);
    assert.ok(!result.admitted && result.detail.includes('gpu-4'));
  });

  it('never admits past the limit, whatever the order of requests (no storm exceeds the budget)', () => {
    let state = fleet(20, {}, { maxConcurrentDrains: 3 });
    const admitted: string[] = [];
    for (let i = 0; i < 20; i++) {
      const node = `gpu-${(i * 7) % 20}`;
      const result = admitDrain(state, { node }, NOW + i);
      if (result.admitted) {
        state = acquireSlot(state, node);
        state = { ...state, healthyNodes: state.healthyNodes.filter((n) => n !== node) };
        admitted.push(node);
      }
      assert.ok(state.draining.length <= 3);
    }
    assert.equal(admitted.length, 3);
  });
});

describe('the queue for drain slots (first come, first served)', () => {
  it('a free slot goes to the first in the queue; the others are refused as queued, with how many wait before them', () => {
    const state = fleet(10, { queue: ['gpu-3', 'gpu-1', 'gpu-2'] });
    assert.equal(admitDrain(state, { node: 'gpu-3' }, NOW).admitted, true);
    const second = admitDrain(state, { node: 'gpu-1' }, NOW);
    assert.ok(!second.admitted && second.reason === 'queued' && second.ahead === 1, JSON.stringify(second));
    assert.match(
      second.admitted ? '' : second.detail,
      /1 node\(s\) ahead in the queue for 1 free drain slot\(s\) \(gpu-3\)/,
    );
    // A newcomer goes behind everyone.
    const newcomer = admitDrain(state, { node: 'gpu-7' }, NOW);
    assert.ok(!newcomer.admitted && newcomer.reason === 'queued' && newcomer.ahead === 3);
  });

  it('with two free slots the first two are admitted; every slot taken refuses with the position', () => {
    const state = fleet(10, { queue: ['gpu-3', 'gpu-1', 'gpu-2'] }, { maxConcurrentDrains: 2 });
    assert.equal(admitDrain(state, { node: 'gpu-1' }, NOW).admitted, true);
    assert.equal(admitDrain(state, { node: 'gpu-2' }, NOW).admitted, false);
    const full = fleet(
      10,
      { draining: ['gpu-8', 'gpu-9'], queue: ['gpu-3', 'gpu-1'] },
      { maxConcurrentDrains: 2 },
    );
    const refused = admitDrain(full, { node: 'gpu-1' }, NOW);
    assert.ok(!refused.admitted && refused.reason === 'max-concurrent' && refused.ahead === 1);
    assert.deepEqual(nextInQueue(full), []);
    assert.deepEqual(nextInQueue({ ...full, draining: ['gpu-8'] }), ['gpu-3']);
  });

  it('enqueue is idempotent and skips slot holders; acquiring a slot and dequeue take a node out', () => {
    let state = fleet(10, { draining: ['gpu-9'] });
    state = enqueue(enqueue(enqueue(state, 'gpu-1'), 'gpu-2'), 'gpu-1');
    state = enqueue(state, 'gpu-9');
    assert.deepEqual(state.queue, ['gpu-1', 'gpu-2']);
    state = releaseSlot(state, 'gpu-9');
    assert.deepEqual(nextInQueue(state), ['gpu-1']);
    state = acquireSlot(state, 'gpu-1');
    assert.deepEqual(state.queue, ['gpu-2']);
    assert.deepEqual(dequeue(state, 'gpu-2').queue, []);
    assert.equal(dequeue(state, 'gpu-5'), state);
  });

  it('a state from before the queue (no queue field) admits as before', () => {
    const { queue: _omitted, ...old } = fleet(10);
    assert.equal(admitDrain(old, { node: 'gpu-0' }, NOW).admitted, true);
    assert.deepEqual(nextInQueue(old), []);
  });
});

describe('repeat guard', () => {
  const cases: [string, number[], boolean, number][] = [
    ['never remediated', [], false, 0],
    ['once yesterday', [NOW - DAY], false, 1],
    ['twice this week', [NOW - DAY, NOW - 3 * DAY], true, 2],
    ['twice, one of them 8 days ago', [NOW - DAY, NOW - 8 * DAY], false, 1],
    ['three times long ago', [NOW - 30 * DAY, NOW - 20 * DAY, NOW - 10 * DAY], false, 0],
    ['exactly 7 days ago falls out of the window', [NOW - DAY, NOW - 7 * DAY], false, 1],
    ['an unreadable timestamp counts (fail safe)', [NOW - DAY, Number.NaN], true, 2],
    ['a future timestamp (clock skew) counts', [NOW + MINUTE, NOW - DAY], true, 2],
  ];
  for (const [name, timestamps, repeated, count] of cases) {
    it(`${name}: repeated=${repeated}`, () => {
      const verdict = repeatGuard(timestamps, NOW, DEFAULT_FLEET_BUDGET);
      assert.equal(verdict.repeated, repeated);
      assert.equal(verdict.count, count);
    });
  }

  it('an admitted drain of a repeat offender escalates to replace-hardware', () => {
    const result = admitDrain(
      fleet(10),
      { node: 'gpu-0', remediationTimestamps: [NOW - DAY, NOW - 2 * DAY] },
      NOW,
    );
    assert.ok(result.admitted);
    assert.equal(result.escalateTo, 'replace-hardware');
    assert.match(result.detail, /replace the hardware/);
  });

  it('honours a configured limit and window', () => {
    const config = { ...DEFAULT_FLEET_BUDGET, repeatLimit: 3, repeatWindowMs: DAY };
    assert.equal(repeatGuard([NOW - 1000, NOW - 2000], NOW, config).repeated, false);
    assert.equal(repeatGuard([NOW - 1000, NOW - 2000, NOW - 3000], NOW, config).repeated, true);
    assert.equal(repeatGuard([NOW - 1000, NOW - 2000, NOW - 2 * DAY], NOW, config).repeated, false);
  });
});

describe('breaker and slots', () => {
  it('recordFailure trips the breaker when more than half the fleet fails within 5 minutes', () => {
    let state = fleet(4);
    state = recordFailure(state, 'gpu-0', NOW);
    state = recordFailure(state, 'gpu-1', NOW + MINUTE);
    assert.equal(state.breaker.state, 'closed');
    state = recordFailure(state, 'gpu-2', NOW + 2 * MINUTE);
    assert.equal(state.breaker.state, 'open');
    assert.ok(state.breaker.state === 'open' && state.breaker.openedAt === NOW + 2 * MINUTE);
    assert.equal(allowsAutomaticQuarantine(state, NOW + 3 * MINUTE).allowed, false);
  });

  it('recentFailureCount counts distinct nodes failed within the last minute', () => {
    let state = fleet(100, {}, { breakerWindowMs: 5 * MINUTE });
    state = recordFailure(state, 'gpu-0', NOW - 2 * MINUTE); // before the window
    state = recordFailure(state, 'gpu-1', NOW - MINUTE); // on its edge: out
    state = recordFailure(state, 'gpu-2', NOW - MINUTE + 1);
    state = recordFailure(state, 'gpu-2', NOW - 1_000); // the same node again counts once
    state = recordFailure(state, 'gpu-3', NOW + 5_000); // stamped ahead (clock skew) counts
    assert.equal(recentFailureCount(state, NOW), 2);
    assert.equal(recentFailureCount(state, NOW, 3 * MINUTE), 4);
    assert.equal(recentFailureCount(fleet(10), NOW), 0);
    // Only what the breaker keeps: with a 30-s window, older failures are gone.
    let short = fleet(100, {}, { breakerWindowMs: 30_000 });
    short = recordFailure(short, 'gpu-0', NOW - 40_000);
    short = recordFailure(short, 'gpu-1', NOW);
    assert.equal(recentFailureCount(short, NOW), 1);
  });

  it('spread-out failures never trip the breaker, and old ones are dropped', () => {
    let state = fleet(4);
    for (let i = 0; i < 4; i++) state = recordFailure(state, `gpu-${i}`, NOW + i * 6 * MINUTE);
    assert.equal(state.breaker.state, 'closed');
    assert.equal(state.failures.length, 1);
  });

  it('an open breaker stays open until an operator resets it', () => {
    const open = fleet(10, { breaker: { state: 'open', openedAt: NOW - 30 * DAY, reason: 'old storm' } });
    assert.equal(evaluateBreaker(open, NOW).state, 'open');
    assert.equal(admitDrain(open, { node: 'gpu-0' }, NOW).admitted, false);
    const reset = resetBreaker(open);
    assert.equal(reset.breaker.state, 'closed');
    assert.deepEqual(reset.failures, []);
    assert.equal(admitDrain(reset, { node: 'gpu-0' }, NOW).admitted, true);
  });

  it('pausing stops automatic quarantine; resuming allows it', () => {
    assert.equal(allowsAutomaticQuarantine(fleet(10, { paused: true }), NOW).allowed, false);
    assert.equal(allowsAutomaticQuarantine(fleet(10), NOW).allowed, true);
  });

  it('acquire and release are idempotent', () => {
    const a = acquireSlot(acquireSlot(fleet(10), 'gpu-1'), 'gpu-1');
    assert.deepEqual(a.draining, ['gpu-1']);
    const r = releaseSlot(releaseSlot(a, 'gpu-1'), 'gpu-1');
    assert.deepEqual(r.draining, []);
    assert.equal(releaseSlot(r, 'gpu-9'), r);
  });

  const configs: [Partial<FleetBudgetConfig>, RegExp | undefined][] = [
    [{}, undefined],
    [{ maxConcurrentDrains: -1 }, /maxConcurrentDrains is -1, expected an integer >= 0/],
    [{ minHealthyFraction: 1.2 }, /minHealthyFraction is 1.2, expected a fraction from 0 to 1/],
    [{ breakerThreshold: Number.NaN }, /breakerThreshold is NaN/],
    [{ repeatLimit: 0.5 }, /repeatLimit is 0.5/],
  ];
  for (const [override, problem] of configs) {
    it(`validateFleetBudgetConfig(${JSON.stringify(override)})`, () => {
      const result = validateFleetBudgetConfig({ ...DEFAULT_FLEET_BUDGET, ...override });
      if (problem === undefined) assert.equal(result, undefined);
      else assert.match(result ?? '', problem);
    });
  }

  it('freezes the defaults', () => {
    assert.ok(Object.isFrozen(DEFAULT_FLEET_BUDGET));
    assert.equal(DEFAULT_FLEET_BUDGET.breakerWindowMs, 5 * MINUTE);
    assert.equal(DEFAULT_FLEET_BUDGET.repeatWindowMs, 7 * DAY);
  });
});

describe('decideDrainSlots: the budget decides every request, with or without a fleet view', () => {
  const view = (state: FleetState) => ({
    gpuNodeCount: state.gpuNodeCount,
    healthyNodes: state.healthyNodes,
  });

  it('without a fleet view answers only refusals that need none; a request that passes them changes nothing', () => {
    const paused = fleet(10, { paused: true });
    const refused = decideDrainSlots(paused, { requests: [{ node: 'gpu-1' }, { node: 'gpu-2' }] }, NOW, true);
    assert.deepEqual(
      refused.answers.map((a) => 'admission' in a && !a.admission.admitted && a.admission.reason),
      ['paused', 'paused'],
    );
    // A pause does not queue (an operator resumes; the remediation asks again then).
    assert.deepEqual(refused.state.queue ?? [], []);

    const free = fleet(10, { queue: [] });
    const screened = decideDrainSlots(free, { requests: [{ node: 'gpu-1' }] }, NOW, true);
    assert.deepEqual(screened.answers, [{ needsFleetView: true }]);
    assert.deepEqual(screened.state, free);
    // With the view it is admitted.
    const decided = decideDrainSlots(free, { requests: [{ node: 'gpu-1' }], fleet: view(free) }, NOW, true);
    assert.ok('admission' in decided.answers[0]! && decided.answers[0].admission.admitted);
    assert.deepEqual(decided.state.draining, ['gpu-1']);
  });

  it('queues a request refused because every slot is taken, unless it says queue: false (a drill)', () => {
    const full = fleet(10, { draining: ['gpu-9'] }, { maxConcurrentDrains: 1 });
    const result = decideDrainSlots(
      full,
      { requests: [{ node: 'gpu-1' }, { node: 'gpu-2', queue: false }, { node: 'gpu-3' }] },
      NOW,
      true,
    );
    assert.deepEqual(result.state.queue, ['gpu-1', 'gpu-3']);
    const reasons = result.answers.map(
      (a) => 'admission' in a && !a.admission.admitted && a.admission.reason,
    );
    assert.deepEqual(reasons, ['max-concurrent', 'max-concurrent', 'max-concurrent']);
    // A budget recorded before the queue (its patch not taken) queues nothing.
    assert.deepEqual(
      decideDrainSlots(full, { requests: [{ node: 'gpu-1' }] }, NOW, false).state.queue ?? [],
      [],
    );
  });

  it('takes the slots of stale holders back first, and says to wake the queue', () => {
    const held = fleet(10, { draining: ['gpu-9'], queue: ['gpu-4'] }, { maxConcurrentDrains: 1 });
    const result = decideDrainSlots(
      held,
      { requests: [{ node: 'gpu-1' }], staleHolders: ['gpu-9'] },
      NOW,
      true,
    );
    assert.deepEqual(result.state.draining, []);
    // gpu-4 was first in line: gpu-1 waits behind it.
    assert.ok('admission' in result.answers[0]! && !result.answers[0].admission.admitted);
    assert.deepEqual(result.state.queue, ['gpu-4', 'gpu-1']);
    assert.equal(result.wake, true);
  });

  // Small fleets, so that slots, queue and the healthy guard all come into play.
  const POOL = names(6);
  const stateArb = fc
    .record({
      maxConcurrentDrains: fc.integer({ min: 1, max: 3 }),
      minHealthyFraction: fc.constantFrom(0, 0.5, 0.8),
      paused: fc.boolean(),
      draining: fc.subarray(POOL),
      queue: fc.subarray(POOL),
      healthy: fc.subarray(POOL),
    })
    .map(({ maxConcurrentDrains, minHealthyFraction, paused, draining, queue, healthy }) =>
      fleet(
        POOL.length,
        {
          paused,
          draining: draining.slice(0, maxConcurrentDrains),
          queue: queue.filter((n) => !draining.slice(0, maxConcurrentDrains).includes(n)),
          healthyNodes: healthy,
        },
        { maxConcurrentDrains, minHealthyFraction },
      ),
    );
  const requestsArb = fc.array(
    fc
      .record({ node: fc.constantFrom(...POOL), queue: fc.constantFrom(undefined, false) })
      .map((r) => (r.queue === false ? { node: r.node, queue: false } : { node: r.node })),
    { minLength: 1, maxLength: 5 },
  );

  it('asking first without a view and then with one decides as asking with the view at once (property)', () => {
    fc.assert(
      fc.property(stateArb, requestsArb, fc.subarray(POOL), (state, requests, staleHolders) => {
        const once = decideDrainSlots(state, { requests, staleHolders, fleet: view(state) }, NOW, true);
        const first = decideDrainSlots(state, { requests, staleHolders }, NOW, true);
        const pending = first.answers.flatMap((a, i) => ('needsFleetView' in a ? [i] : []));
        const second = decideDrainSlots(
          first.state,
          { requests: pending.map((i) => requests[i]!), fleet: view(state) },
          NOW,
          true,
        );
        const answers = first.answers.map((a) => a);
        pending.forEach((i, k) => (answers[i] = second.answers[k]!));
        // Without a view nothing is admitted; with one, everything is decided.
        assert.ok(first.answers.every((a) => 'needsFleetView' in a || !a.admission.admitted));
        assert.ok(second.answers.every((a) => 'admission' in a));
        const admitted = (as: typeof answers) =>
          as.map((a) => ('admission' in a ? a.admission.admitted : 'undecided'));
        assert.deepEqual(admitted(answers), admitted(once.answers));
        assert.deepEqual(second.state.draining, once.state.draining);
        assert.deepEqual(new Set(second.state.queue), new Set(once.state.queue));
      }),
      { numRuns: 500 },
    );
  });

  it('no sequence of batches, with or without views and stale holders, exceeds the slots (property)', () => {
    const batchArb = fc.record({
      requests: requestsArb,
      staleHolders: fc.subarray(POOL, { maxLength: 1 }),
      withView: fc.boolean(),
    });
    fc.assert(
      fc.property(stateArb, fc.array(batchArb, { maxLength: 8 }), (start, batches) => {
        let state = start;
        for (const { requests, staleHolders, withView } of batches) {
          const result = decideDrainSlots(
            state,
            { requests, staleHolders, ...(withView && { fleet: view(state) }) },
            NOW,
            true,
          );
          assert.equal(result.answers.length, requests.length);
          state = result.state;
          assert.ok(new Set(state.draining).size <= state.config.maxConcurrentDrains, JSON.stringify(state));
          assert.equal(new Set(state.draining).size, state.draining.length);
          assert.ok(!(state.queue ?? []).some((n) => state.draining.includes(n)));
          if (state.paused)
            assert.deepEqual(
              state.draining.filter((n) => !start.draining.includes(n)),
              [],
            );
        }
      }),
      { numRuns: 500 },
    );
  });
});
