import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import {
  describeRefusals,
  EVICTION_BACKOFF_CAP_MS,
  evictionBackoffMs,
  planDrain,
  type DrainPlan,
  type DrainPlanOptions,
} from '../../src/k8s/drain-plan.js';
import { MIRROR_POD_ANNOTATION } from '../../src/k8s/remediation-labels.js';

interface PodSpec {
  name: string;
  namespace?: string;
  /** Kind of the controlling owner; none for an unmanaged pod. */
  owner?: string;
  /** An owner reference that is not the controller (does not make the pod managed). */
  nonControllerOwner?: boolean;
  mirror?: boolean;
  deleting?: boolean;
  phase?: string;
  emptyDir?: boolean;
}

function pod(s: PodSpec): V1Pod {
  const ownerReferences: NonNullable<NonNullable<V1Pod['metadata']>['ownerReferences']> = [];
  if (s.owner)
    ownerReferences.push({
      apiVersion: 'v1',
      kind: s.owner,
      name: `${s.name}-owner`,
      uid: 'o1',
      controller: true,
    });
  if (s.nonControllerOwner)
    ownerReferences.push({ apiVersion: 'v1', kind: 'ConfigMap', name: 'cm', uid: 'o2' });
  return {
    metadata: {
      name: s.name,
      namespace: s.namespace ?? 'default',
      uid: `uid-${s.name}`,
      ownerReferences,
      annotations: s.mirror ? { [MIRROR_POD_ANNOTATION]: 'abc' } : {},
      deletionTimestamp: s.deleting ? new Date('2026-01-01T00:00:00Z') : undefined,
    },
    spec: {
      nodeName: 'gpu-node-1',
      containers: [{ name: 'c' }],
      volumes: s.emptyDir ? [{ name: 'scratch', emptyDir: {} }] : [{ name: 'cfg', configMap: { name: 'x' } }],
    },
    status: { phase: s.phase ?? 'Running' },
  };
}

/** The plan as names, for readable expectations. */
function names(plan: DrainPlan) {
  const n = (refs: { name: string }[]) => refs.map((r) => r.name);
  return {
    toEvict: n(plan.toEvict),
    daemonSet: n(plan.skipped.daemonSet),
    mirror: n(plan.skipped.mirror),
    terminating: n(plan.skipped.terminating),
    completed: n(plan.skipped.completed),
    filtered: n(plan.skipped.filtered),
    refused: plan.refused.map((r) => `${r.pod.name}:${r.reasons.join('+')}`),
  };
}

const empty: ReturnType<typeof names> = {
  toEvict: [],
  daemonSet: [],
  mirror: [],
  terminating: [],
  completed: [],
  filtered: [],
  refused: [],
};

describe('planDrain', () => {
  const cases: {
    name: string;
    pods: PodSpec[];
    options?: DrainPlanOptions;
    expect: Partial<typeof empty>;
  }[] = [
    {
      name: 'evicts a ReplicaSet pod',
      pods: [{ name: 'web', owner: 'ReplicaSet' }],
      expect: { toEvict: ['web'] },
    },
    {
      name: 'evicts a StatefulSet pod',
      pods: [{ name: 'db-0', owner: 'StatefulSet' }],
      expect: { toEvict: ['db-0'] },
    },
    {
      name: 'skips a DaemonSet pod',
      pods: [{ name: 'dcgm', owner: 'DaemonSet' }],
      expect: { daemonSet: ['dcgm'] },
    },
    {
      name: 'skips a mirror pod (static pod owned by the Node)',
      pods: [{ name: 'etcd-n1', owner: 'Node', mirror: true }],
      expect: { mirror: ['etcd-n1'] },
    },
    {
      name: 'skips a terminating pod (to wait for it)',
      pods: [{ name: 'old', owner: 'ReplicaSet', deleting: true }],
      expect: { terminating: ['old'] },
    },
    {
      name: 'skips a Succeeded pod',
      pods: [{ name: 'job-a', owner: 'Job', phase: 'Succeeded' }],
      expect: { completed: ['job-a'] },
    },
    {
      name: 'skips a Failed pod',
      pods: [{ name: 'job-b', owner: 'Job', phase: 'Failed' }],
      expect: { completed: ['job-b'] },
    },
    {
      name: 'refuses an unmanaged pod without force',
      pods: [{ name: 'bare' }],
      expect: { refused: ['bare:unmanaged'] },
    },
    {
      name: 'evicts an unmanaged pod with force',
      pods: [{ name: 'bare' }],
      options: { force: true },
      expect: { toEvict: ['bare'] },
    },
    {
      name: 'a non-controller owner reference does not make a pod managed',
      pods: [{ name: 'half', nonControllerOwner: true }],
      expect: { refused: ['half:unmanaged'] },
    },
    {
      name: 'refuses an emptyDir pod without deleteEmptyDirData',
      pods: [{ name: 'cache', owner: 'ReplicaSet', emptyDir: true }],
      expect: { refused: ['cache:emptyDir'] },
    },
    {
      name: 'evicts an emptyDir pod with deleteEmptyDirData',
      pods: [{ name: 'cache', owner: 'ReplicaSet', emptyDir: true }],
      options: { deleteEmptyDirData: true },
      expect: { toEvict: ['cache'] },
    },
    {
      name: 'names both reasons for an unmanaged emptyDir pod',
      pods: [{ name: 'scratch', emptyDir: true }],
      expect: { refused: ['scratch:unmanaged+emptyDir'] },
    },
    {
      name: 'force alone still refuses the emptyDir part',
      pods: [{ name: 'scratch', emptyDir: true }],
      options: { force: true },
      expect: { refused: ['scratch:emptyDir'] },
    },
    {
      name: 'both opt-ins evict an unmanaged emptyDir pod',
      pods: [{ name: 'scratch', emptyDir: true }],
      options: { force: true, deleteEmptyDirData: true },
      expect: { toEvict: ['scratch'] },
    },
    {
      name: 'never refuses a completed pod, even unmanaged with emptyDir',
      pods: [{ name: 'done', emptyDir: true, phase: 'Succeeded' }],
      expect: { completed: ['done'] },
    },
    {
      name: 'never refuses a terminating unmanaged pod',
      pods: [{ name: 'going', deleting: true }],
      expect: { terminating: ['going'] },
    },
    {
      name: 'a terminating DaemonSet pod counts as DaemonSet (not waited for)',
      pods: [{ name: 'ds-old', owner: 'DaemonSet', deleting: true }],
      expect: { daemonSet: ['ds-old'] },
    },
    {
      name: 'a DaemonSet pod with emptyDir is skipped, not refused',
      pods: [{ name: 'ds-cache', owner: 'DaemonSet', emptyDir: true }],
      expect: { daemonSet: ['ds-cache'] },
    },
    {
      name: 'podFilter.namespaces leaves other namespaces alone',
      pods: [
        { name: 'a', namespace: 'inference', owner: 'ReplicaSet' },
        { name: 'b', namespace: 'batch', owner: 'ReplicaSet' },
        { name: 'c', namespace: 'batch' },
      ],
      options: { podFilter: { namespaces: ['inference'] } },
      expect: { toEvict: ['a'], filtered: ['b', 'c'] },
    },
    {
      name: 'podFilter.excludeNamespaces',
      pods: [
        { name: 'a', namespace: 'inference', owner: 'ReplicaSet' },
        { name: 'b', namespace: 'kube-system', owner: 'ReplicaSet' },
      ],
      options: { podFilter: { excludeNamespaces: ['kube-system'] } },
      expect: { toEvict: ['a'], filtered: ['b'] },
    },
    {
      name: 'mixed node: one refusal, everything classified',
      pods: [
        { name: 'web-1', owner: 'ReplicaSet' },
        { name: 'web-2', owner: 'ReplicaSet' },
        { name: 'plugin', owner: 'DaemonSet' },
        { name: 'static', owner: 'Node', mirror: true },
        { name: 'old', owner: 'ReplicaSet', deleting: true },
        { name: 'job', owner: 'Job', phase: 'Succeeded' },
        { name: 'bare' },
        { name: 'cache', owner: 'ReplicaSet', emptyDir: true },
      ],
      expect: {
        toEvict: ['web-1', 'web-2'],
        daemonSet: ['plugin'],
        mirror: ['static'],
        terminating: ['old'],
        completed: ['job'],
        refused: ['bare:unmanaged', 'cache:emptyDir'],
      },
    },
    {
      name: 'mixed node with both opt-ins: nothing refused',
      pods: [
        { name: 'web-1', owner: 'ReplicaSet' },
        { name: 'plugin', owner: 'DaemonSet' },
        { name: 'bare' },
        { name: 'cache', owner: 'ReplicaSet', emptyDir: true },
      ],
      options: { force: true, deleteEmptyDirData: true },
      expect: { toEvict: ['web-1', 'bare', 'cache'], daemonSet: ['plugin'] },
    },
    { name: 'an empty node', pods: [], expect: {} },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(names(planDrain(c.pods.map(pod), c.options)), { ...empty, ...c.expect });
    });
  }

  it('keeps namespace, name and UID of every pod it plans to evict', () => {
    const plan = planDrain([pod({ name: 'web', namespace: 'inf', owner: 'ReplicaSet' })]);
    assert.deepEqual(plan.toEvict, [{ namespace: 'inf', name: 'web', uid: 'uid-web' }]);
  });

  it('describes refusals naming each pod, its namespace and the option that would allow it', () => {
    const plan = planDrain([
      pod({ name: 'bare', namespace: 'ml' }),
      pod({ name: 'cache', owner: 'ReplicaSet', emptyDir: true }),
    ]);
    const text = describeRefusals(plan.refused);
    assert.match(text, /ml\/bare: not managed by a controller \(use force/);
    assert.match(text, /default\/cache: uses emptyDir volumes \(use deleteEmptyDirData/);
  });
});

describe('evictionBackoffMs', () => {
  const cases: [retry: number, random: number, ms: number][] = [
    [0, 0, 1_000],
    [1, 0, 2_000],
    [2, 0, 4_000],
    [3, 0, 8_000],
    [4, 0, 10_000],
    [50, 0, 10_000],
    [0, 0.5, 1_100],
    [4, 0.999, 11_998],
    [-3, 0, 1_000],
  ];
  for (const [retry, random, ms] of cases) {
    it(`retry ${retry}, jitter ${random} -> ${ms} ms`, () => {
      assert.equal(evictionBackoffMs(retry, random), ms);
    });
  }

  it('never exceeds the cap plus 20% jitter', () => {
    for (let retry = 0; retry < 100; retry++) {
      assert.ok(evictionBackoffMs(retry) <= EVICTION_BACKOFF_CAP_MS * 1.2);
    }
  });
});
