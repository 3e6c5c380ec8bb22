import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1LabelSelector, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { coveringPdbs, selectorMatches } from '../../src/k8s/pdb.js';

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
