import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '@temporalio/common';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { drillOwner, drillWorkflowId } from '../../src/contracts/drill.js';
import {
  describeOutcome,
  drillCordons,
  planDrillReap,
  runState,
  startDrillReaper,
  type DrillRun,
  type ReapOutcome,
} from '../../src/drill/reaper.js';
import { CLUSTER_LABEL } from '../../src/k8s/labels.js';
import { formatCordonRecord } from '../../src/k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../src/k8s/remediation-labels.js';

const CLUSTER = 'lab-1';

function node(name: string, owner?: string, options: { cluster?: string; raw?: string } = {}): V1Node {
  const annotations: Record<string, string> = {};
  if (options.raw !== undefined) annotations[CORDON_ANNOTATION] = options.raw;
  else if (owner !== undefined) {
    annotations[CORDON_ANNOTATION] = formatCordonRecord({
      workflowId: owner,
      reason: 'drill',
      at: '2026-03-01T11:00:00.000Z',
      preexistingCordon: false,
    });
  }
  return {
    metadata: {
      name,
      resourceVersion: '7',
      labels: options.cluster === undefined ? {} : { [CLUSTER_LABEL]: options.cluster },
      annotations,
    },
    spec: { unschedulable: owner !== undefined },
  };
}

const running: DrillRun = { state: 'running', status: 'RUNNING' };
const terminated: DrillRun = { state: 'closed', status: 'TERMINATED' };

describe('drill reaper decision', () => {
  it('finds only drill owners with a valid drill ID, on nodes of this cluster', () => {
    const nodes = [
      node('a', drillOwner('nightly')),
      node('b', `remediation/${CLUSTER}/b`),
      node('c'),
      node('d', drillOwner('other'), { cluster: 'lab-2' }),
      node('e', drillOwner('mine'), { cluster: CLUSTER }),
      node('f', undefined, { raw: '{not json' }),
      node('g', 'drill/a/b'),
    ];
    assert.deepEqual(drillCordons(nodes, CLUSTER), [
      {
        node: 'a',
        owner: 'drill/nightly',
        drillId: 'nightly',
        workflowId: drillWorkflowId(CLUSTER, 'nightly'),
      },
      { node: 'e', owner: 'drill/mine', drillId: 'mine', workflowId: drillWorkflowId(CLUSTER, 'mine') },
    ]);
  });

  const table: [string, DrillRun | undefined, 'revert' | 'leave'][] = [
    ['a terminated drill is reverted', terminated, 'revert'],
    ['a timed-out drill is reverted', { state: 'closed', status: 'TIMED_OUT' }, 'revert'],
    ['a completed drill is reverted', { state: 'closed', status: 'COMPLETED' }, 'revert'],
    ['a drill Temporal does not know is reverted', { state: 'not-found' }, 'revert'],
    ['a running drill keeps its cordon', running, 'leave'],
    [
      'fails safe: a run that could not be read keeps its cordon',
      { state: 'unknown', error: 'down' },
      'leave',
    ],
    ['fails safe: a drill not asked about keeps its cordon', undefined, 'leave'],
  ];
  for (const [name, run, action] of table) {
    it(name, () => {
      const cordons = drillCordons([node('a', drillOwner('d1'))], CLUSTER);
      const runs = new Map(run === undefined ? [] : [[drillWorkflowId(CLUSTER, 'd1'), run]]);
      assert.deepEqual(
        planDrillReap(cordons, runs).map((d) => d.action),
        [action],
      );
    });
  }

  it('maps Temporal statuses: open, closed, and anything else left alone', () => {
    assert.equal(runState('RUNNING'), 'running');
    assert.equal(runState('PAUSED'), 'running');
    for (const s of ['COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT'] as const) {
      assert.equal(runState(s), 'closed');
    }
    for (const s of ['CONTINUED_AS_NEW', 'UNSPECIFIED', 'UNKNOWN'] as const)
      assert.equal(runState(s), 'unknown');
  });

  it('property: never reverts a running drill, never touches a record that is not a drill', () => {
    const owner = fc.oneof(
      fc.constantFrom('d1', 'd2', 'd3').map(drillOwner),
      fc.constantFrom(`remediation/${CLUSTER}/n`, 'drill', 'drill/', 'drill/x/y', 'other/d1', 'DRILL/d1'),
    );
    const run: fc.Arbitrary<DrillRun> = fc.oneof(
      fc.constant(running),
      fc
        .constantFrom('COMPLETED', 'FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT')
        .map((status): DrillRun => ({ state: 'closed', status })),
      fc.constant<DrillRun>({ state: 'not-found' }),
      fc.constant<DrillRun>({ state: 'unknown', error: 'unavailable' }),
    );
    const nodeSpec = fc.record({
      owner: fc.option(owner, { nil: undefined }),
      cluster: fc.option(fc.constantFrom(CLUSTER, 'lab-2'), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(nodeSpec, { maxLength: 8 }),
        fc.dictionary(fc.constantFrom('d1', 'd2', 'd3'), run),
        (specs, runOf) => {
          const nodes = specs.map((s, i) => node(`n${i}`, s.owner, { cluster: s.cluster }));
          const runs = new Map(Object.entries(runOf).map(([id, r]) => [drillWorkflowId(CLUSTER, id), r]));
          const decisions = planDrillReap(drillCordons(nodes, CLUSTER), runs);
          for (const d of decisions) {
            const i = Number(d.cordon.node.slice(1));
            const spec = specs[i]!;
            // Only drill records of this cluster's nodes are decided on at all.
            assert.ok(spec.owner !== undefined && /^drill\/d[123]$/.test(spec.owner), spec.owner);
            assert.notEqual(spec.cluster, 'lab-2');
            const r = runOf[d.cordon.drillId];
            if (d.action === 'revert') {
              assert.ok(r !== undefined && (r.state === 'closed' || r.state === 'not-found'));
            } else {
              assert.ok(r === undefined || r.state === 'running' || r.state === 'unknown');
            }
          }
          // Every drill record of this cluster is decided on (none forgotten).
          const expected = specs.filter(
            (s) => s.owner !== undefined && /^drill\/d[123]$/.test(s.owner) && s.cluster !== 'lab-2',
          ).length;
          assert.equal(decisions.length, expected);
        },
      ),
    );
  });
});

describe('drill reaper loop', () => {
  const lines: [string, string][] = [];
  const logger = {
    log: () => {},
    trace: () => {},
    debug: (m: string) => lines.push(['debug', m]),
    info: (m: string) => lines.push(['info', m]),
    warn: (m: string) => lines.push(['warn', m]),
    error: (m: string) => lines.push(['error', m]),
  } as Logger;
  // Lets the pass's promises settle (setImmediate is not mocked).
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  beforeEach(() => {
    lines.length = 0;
    mock.timers.enable({ apis: ['setTimeout'] });
  });
  afterEach(() => mock.timers.reset());

  const outcome: ReapOutcome = {
    cordon: { node: 'gpu-1', owner: 'drill/d1', drillId: 'd1', workflowId: drillWorkflowId(CLUSTER, 'd1') },
    run: terminated,
    action: 'revert',
    result: 'uncordoned',
  };

  it('runs a pass at start, then every interval, and stops with no timer left', async () => {
    let passes = 0;
    const loop = startDrillReaper({
      reap: () => {
        passes++;
        return Promise.resolve([outcome]);
      },
      intervalMs: 60_000,
      logger,
    });
    await settle();
    assert.equal(passes, 1);
    mock.timers.tick(59_999);
    await settle();
    assert.equal(passes, 1);
    mock.timers.tick(1);
    await settle();
    assert.equal(passes, 2);
    await loop.stop();
    mock.timers.tick(600_000);
    await settle();
    assert.equal(passes, 2);
    assert.deepEqual(lines[0], ['info', `drill reaper: ${describeOutcome(outcome)}`]);
    assert.match(
      lines[0][1],
      /node gpu-1 is cordoned by drill d1; its workflow .* is terminated: cordon reverted/,
    );
  });

  it('logs a failed pass and goes on: the next interval runs again', async () => {
    let passes = 0;
    const loop = startDrillReaper({
      reap: () => {
        passes++;
        return passes === 1 ? Promise.reject(new Error('API server away')) : Promise.resolve([]);
      },
      intervalMs: 1_000,
      logger,
    });
    await settle();
    assert.deepEqual(lines, [
      ['warn', 'drill reaper: pass failed (the next one tries again): API server away'],
    ]);
    mock.timers.tick(1_000);
    await settle();
    assert.equal(passes, 2);
    await loop.stop();
  });

  it('stop waits for the pass in progress and schedules none after it', async () => {
    let finish: (o: ReapOutcome[]) => void = () => {};
    let passes = 0;
    const loop = startDrillReaper({
      reap: () => {
        passes++;
        return new Promise((resolve) => (finish = resolve));
      },
      intervalMs: 1_000,
      logger,
    });
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    await settle();
    assert.equal(stopped, false, 'stop returned while a pass was in progress');
    finish([]);
    await stopping;
    mock.timers.tick(10_000);
    await settle();
    assert.equal(passes, 1);
  });
});
