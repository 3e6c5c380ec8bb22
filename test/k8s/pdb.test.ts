import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1LabelSelector, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { coveringPdbs, pdbAllowance, selectorMatches } from '../../src/k8s/pdb.js';

describe('selectorMatches', () => {
  const labels = { app: 'web', tier: 'front' };
  const table: [string, V1LabelSelector | null | undefined, boolean][] = [
    ['a null selector matches nothing', null, false],
    ['an absent selector matches nothing', undefined, false],
    ['an empty selector matches everything', {}, true],
    [
      'empty matchLabels and matchExpressions match everything',
      { matchLabels: {}, matchExpressions: [] },
      true,
    ],
    ['matchLabels: all pairs present', { matchLabels: { app: 'web', tier: 'front' } }, true],
    ['matchLabels: a value differs', { matchLabels: { app: 'api' } }, false],
    ['matchLabels: a key missing', { matchLabels: { app: 'web', zone: 'a' } }, false],
    [
      'In: value listed',
      { matchExpressions: [{ key: 'app', operator: 'In', values: ['api', 'web'] }] },
      true,
    ],
    ['In: value not listed', { matchExpressions: [{ key: 'app', operator: 'In', values: ['api'] }] }, false],
    ['In: key missing', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, false],
    [
      'NotIn: value listed',
      { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] },
      false,
    ],
    [
      'NotIn: value not listed',
      { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['api'] }] },
      true,
    ],
    ['NotIn: key missing', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    ['Exists: key present', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, true],
    ['Exists: key missing', { matchExpressions: [{ key: 'zone', operator: 'Exists' }] }, false],
    ['DoesNotExist: key present', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, false],
    ['DoesNotExist: key missing', { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] }, true],
    [
      'matchLabels and expressions must all hold',
      {
        matchLabels: { app: 'web' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['front'] },
          { key: 'zone', operator: 'Exists' },
        ],
      },
      false,
    ],
  ];
  for (const [name, selector, expected] of table) {
    it(name, () => assert.equal(selectorMatches(selector, labels), expected));
  }

  it('treats a pod without labels as having none', () => {
    assert.equal(selectorMatches({}, undefined), true);
    assert.equal(selectorMatches({ matchLabels: { app: 'web' } }, undefined), false);
    assert.equal(
      selectorMatches({ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, undefined),
      true,
    );
  });

  it('rejects an unknown operator, naming it', () => {
    assert.throws(
      () => selectorMatches({ matchExpressions: [{ key: 'app', operator: 'Gt', values: ['1'] }] }, labels),
      /key "app" has operator "Gt"; expected In, NotIn, Exists or DoesNotExist/,
    );
  });
});

describe('coveringPdbs', () => {
  const pdb = (namespace: string, name: string, selector?: V1LabelSelector): V1PodDisruptionBudget => ({
    metadata: { namespace, name },
    spec: selector === undefined ? {} : { selector },
  });
  const pdbs = [
    pdb('a', 'web', { matchLabels: { app: 'web' } }),
    pdb('a', 'all', {}),
    pdb('a', 'none'),
    pdb('b', 'web', { matchLabels: { app: 'web' } }),
  ];

  it('returns the budgets of the pod namespace whose selector matches', () => {
    const names = (list: V1PodDisruptionBudget[]) =>
      list.map((p) => `${p.metadata!.namespace}/${p.metadata!.name}`);
    assert.deepEqual(names(coveringPdbs({ namespace: 'a', labels: { app: 'web' } }, pdbs)), [
      'a/web',
      'a/all',
    ]);
    assert.deepEqual(names(coveringPdbs({ namespace: 'a', labels: { app: 'db' } }, pdbs)), ['a/all']);
    assert.deepEqual(names(coveringPdbs({ namespace: 'b', labels: { app: 'web' } }, pdbs)), ['b/web']);
    assert.deepEqual(names(coveringPdbs({ namespace: 'c', labels: { app: 'web' } }, pdbs)), []);
  });
});

describe('pdbAllowance', () => {
  const pdb = (
    status: {
      disruptionsAllowed?: number;
      currentHealthy?: number;
      desiredHealthy?: number;
      observedGeneration?: number;
    },
    options: { generation?: number; policy?: string } = {},
  ): V1PodDisruptionBudget => ({
    metadata: { name: 'p', namespace: 'a', generation: options.generation ?? 1 },
    spec: { unhealthyPodEvictionPolicy: options.policy },
    status: {
      observedGeneration: 1,
      currentHealthy: 0,
      desiredHealthy: 0,
      disruptionsAllowed: 0,
      expectedPods: 0,
      ...status,
    },
  });
  const table: [string, V1PodDisruptionBudget, { disruptions: number; unhealthy: boolean }][] = [
    [
      'allows what the status allows',
      pdb({ disruptionsAllowed: 2, currentHealthy: 5, desiredHealthy: 3 }),
      { disruptions: 2, unhealthy: true },
    ],
    [
      'a status behind the spec allows no disruption',
      pdb({ disruptionsAllowed: 2, currentHealthy: 5, desiredHealthy: 3 }, { generation: 2 }),
      { disruptions: 0, unhealthy: true },
    ],
    [
      'IfHealthyBudget: unhealthy pods go while the healthy ones suffice',
      pdb({ currentHealthy: 2, desiredHealthy: 2 }),
      { disruptions: 0, unhealthy: true },
    ],
    [
      'IfHealthyBudget: not while fewer are healthy than desired',
      pdb({ currentHealthy: 1, desiredHealthy: 2 }),
      { disruptions: 0, unhealthy: false },
    ],
    [
      'IfHealthyBudget: not when nothing is desired (no status yet)',
      pdb({}),
      { disruptions: 0, unhealthy: false },
    ],
    [
      'AlwaysAllow: unhealthy pods always go',
      pdb({ currentHealthy: 0, desiredHealthy: 2 }, { policy: 'AlwaysAllow' }),
      { disruptions: 0, unhealthy: true },
    ],
    [
      'a negative status counts as none',
      pdb({ disruptionsAllowed: -1 }),
      { disruptions: 0, unhealthy: false },
    ],
  ];
  for (const [name, budget, expected] of table) {
    it(name, () => assert.deepEqual(pdbAllowance(budget), expected));
  }
});
