import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Node, V1Pod, V1PodAffinityTerm, V1Taint, V1Toleration } from '@kubernetes/client-node';
import { hasErrorCode } from '../../src/errors.js';
import {
  parseQuantity,
  podRequests,
  podsFitElsewhere,
  podsToEvict,
  selectorMatches,
  tolerates,
} from '../../src/domain/capacity.js';

interface NodeOpts {
  cpu?: string;
  memory?: string;
  gpu?: string;
  labels?: Record<string, string>;
  taints?: V1Taint[];
  unschedulable?: boolean;
  ready?: 'True' | 'False' | 'Unknown';
}

function node(name: string, o: NodeOpts = {}): V1Node {
  const allocatable: Record<string, string> = { cpu: o.cpu ?? '16', memory: o.memory ?? '64Gi', pods: '110' };
  if (o.gpu !== undefined) allocatable['nvidia.com/gpu'] = o.gpu;
  return {
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...o.labels } },
    spec: { unschedulable: o.unschedulable, taints: o.taints },
    status: {
      allocatable,
      capacity: allocatable,
      conditions: [{ type: 'Ready', status: o.ready ?? 'True' }],
    },
  };
}

interface PodOpts {
  ns?: string;
  cpu?: string;
  memory?: string;
  gpu?: string;
  labels?: Record<string, string>;
  tolerations?: V1Toleration[];
  nodeSelector?: Record<string, string>;
  antiAffinity?: V1PodAffinityTerm[];
  affinity?: V1PodAffinityTerm[];
  owner?: string;
  phase?: string;
  limitsOnly?: boolean;
}

function pod(name: string, nodeName: string, o: PodOpts = {}): V1Pod {
  const resources: Record<string, string> = {};
  if (o.cpu !== undefined) resources['cpu'] = o.cpu;
  if (o.memory !== undefined) resources['memory'] = o.memory;
  if (o.gpu !== undefined) resources['nvidia.com/gpu'] = o.gpu;
  return {
    metadata: {
      name,
      namespace: o.ns ?? 'serving',
      labels: o.labels,
      ownerReferences:
        o.owner === undefined ? undefined : [{ apiVersion: 'apps/v1', kind: o.owner, name: 'x', uid: 'u' }],
    },
    spec: {
      nodeName,
      nodeSelector: o.nodeSelector,
      tolerations: o.tolerations,
      containers: [
        {
          name: 'c',
          resources:
            o.limitsOnly === true ? { limits: resources } : { requests: resources, limits: resources },
        },
      ],
      affinity:
        o.antiAffinity === undefined && o.affinity === undefined
          ? undefined
          : {
              podAntiAffinity: o.antiAffinity && {
                requiredDuringSchedulingIgnoredDuringExecution: o.antiAffinity,
              },
              podAffinity: o.affinity && { requiredDuringSchedulingIgnoredDuringExecution: o.affinity },
            },
    },
    status: { phase: o.phase ?? 'Running' },
  };
}

const hostnameAnti = (app: string): V1PodAffinityTerm[] => [
  { labelSelector: { matchLabels: { app } }, topologyKey: 'kubernetes.io/hostname' },
];
const quarantineTaint: V1Taint = { key: 'fleetmedic.io/quarantine', value: 'xid-79', effect: 'NoSchedule' };

describe('parseQuantity', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['8', 8],
    ['500m', 0.5],
    ['100m', 0.1],
    ['1.5', 1.5],
    ['.5', 0.5],
    ['2Ki', 2048],
    ['1Mi', 1048576],
    ['2Gi', 2147483648],
    ['1.5Gi', 1610612736],
    ['1Ti', 2 ** 40],
    ['1Ei', 2 ** 60],
    ['1k', 1000],
    ['100M', 1e8],
    ['64G', 64e9],
    ['1T', 1e12],
    ['1P', 1e15],
    ['2E', 2e18],
    ['1e3', 1000],
    ['1E3', 1000],
    ['5e-1', 0.5],
    ['250u', 0.00025],
    ['100n', 1e-7],
    ['+3', 3],
    [' 4 ', 4],
  ];
  for (const [q, want] of cases) {
    it(`${JSON.stringify(q)} = ${want}`, () =>
      assert.ok(Math.abs(parseQuantity(q) - want) <= Math.abs(want) * 1e-12));
  }
  for (const bad of ['', 'abc', '1Gb', '1 Gi', '1.2.3', 'Gi', '--1', '1KiB', 'NaN', '1e']) {
    it(`rejects ${JSON.stringify(bad)}`, () =>
      assert.throws(
        () => parseQuantity(bad),
        (err) => hasErrorCode(err, 'INVALID_QUANTITY'),
      ));
  }
});

describe('pod requests', () => {
  it('sums containers, takes the max with init containers, adds overhead, defaults requests to limits', () => {
    const p: V1Pod = {
      metadata: { name: 'p' },
      spec: {
        containers: [
          { name: 'a', resources: { requests: { cpu: '500m', memory: '1Gi' } } },
          { name: 'b', resources: { limits: { cpu: '1', 'nvidia.com/gpu': '2' } } },
        ],
        initContainers: [{ name: 'i', resources: { requests: { cpu: '4', memory: '512Mi' } } }],
        overhead: { cpu: '100m' },
      },
    };
    const r = podRequests(p);
    assert.equal(r.get('cpu'), 4100);
    assert.equal(r.get('memory'), 2 ** 30);
    assert.equal(r.get('nvidia.com/gpu'), 2);
  });
});

describe('matching helpers', () => {
  const labels = { app: 'llm', tier: 'gpu', gen: '3' };
  const selectors: [string, Parameters<typeof selectorMatches>[0], boolean][] = [
    ['undefined selector matches nothing', undefined, false],
    ['empty selector matches everything', {}, true],
    ['matchLabels equal', { matchLabels: { app: 'llm' } }, true],
    ['matchLabels differ', { matchLabels: { app: 'web' } }, false],
    ['In', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['gpu', 'cpu'] }] }, true],
    ['In missing key', { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }, false],
    ['NotIn', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['cpu'] }] }, true],
    ['NotIn missing key', { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'app', operator: 'Exists' }] }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] }, false],
    ['Gt', { matchExpressions: [{ key: 'gen', operator: 'Gt', values: ['2'] }] }, true],
    ['Lt', { matchExpressions: [{ key: 'gen', operator: 'Lt', values: ['2'] }] }, false],
    [
      'unknown operator fails',
      { matchExpressions: [{ key: 'app', operator: 'Like', values: ['llm'] }] },
      false,
    ],
    [
      'labels and expressions are ANDed',
      { matchLabels: { app: 'llm' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['cpu'] }] },
      false,
    ],
  ];
  for (const [name, selector, want] of selectors) {
    it(`selector: ${name}`, () => assert.equal(selectorMatches(selector, labels), want));
  }

  const taint: V1Taint = { key: 'fleetmedic.io/quarantine', value: 'xid', effect: 'NoSchedule' };
  const tolerations: [string, V1Toleration[], boolean][] = [
    ['none', [], false],
    ['Exists on the key', [{ key: 'fleetmedic.io/quarantine', operator: 'Exists' }], true],
    ['Equal with the value', [{ key: 'fleetmedic.io/quarantine', operator: 'Equal', value: 'xid' }], true],
    ['Equal is the default operator', [{ key: 'fleetmedic.io/quarantine', value: 'xid' }], true],
    ['Equal with another value', [{ key: 'fleetmedic.io/quarantine', value: 'other' }], false],
    [
      'matching effect',
      [{ key: 'fleetmedic.io/quarantine', operator: 'Exists', effect: 'NoSchedule' }],
      true,
    ],
    ['other effect', [{ key: 'fleetmedic.io/quarantine', operator: 'Exists', effect: 'NoExecute' }], false],
    ['empty key with Exists tolerates all', [{ operator: 'Exists' }], true],
    ['empty key with Equal tolerates nothing', [{ operator: 'Equal' }], false],
    ['another key', [{ key: 'nvidia.com/gpu', operator: 'Exists' }], false],
  ];
  for (const [name, list, want] of tolerations) {
    it(`toleration: ${name}`, () => assert.equal(tolerates(list, taint), want));
  }
});

describe('podsToEvict', () => {
  it('skips DaemonSet, mirror, finished pods and pods on other nodes', () => {
    const mirror = pod('static', 'n1');
    mirror.metadata!.annotations = { 'kubernetes.io/config.mirror': 'abc' };
    const pods = [
      pod('web', 'n1', { owner: 'ReplicaSet' }),
      pod('bare', 'n1'),
      pod('dcgm-exporter', 'n1', { owner: 'DaemonSet' }),
      pod('done', 'n1', { phase: 'Succeeded' }),
      pod('failed', 'n1', { phase: 'Failed' }),
      mirror,
      pod('elsewhere', 'n2'),
    ];
    assert.deepEqual(
      podsToEvict(pods, 'n1').map((p) => p.metadata?.name),
      ['web', 'bare'],
    );
  });
});

describe('podsFitElsewhere', () => {
  const cases: {
    name: string;
    nodes: V1Node[];
    pods: V1Pod[];
    fits: boolean;
    unplaced?: string[];
    reason?: RegExp;
  }[] = [
    {
      name: 'nothing to evict fits trivially',
      nodes: [node('n1'), node('n2')],
      pods: [pod('ds', 'n1', { owner: 'DaemonSet', cpu: '100' })],
      fits: true,
    },
    {
      name: 'a GPU pod fits on a node with a free GPU',
      nodes: [node('n1', { gpu: '8' }), node('n2', { gpu: '8' })],
      pods: [pod('llm', 'n1', { gpu: '8', cpu: '4', memory: '32Gi' })],
      fits: true,
    },
    {
      name: 'GPUs already taken on the only other node',
      nodes: [node('n1', { gpu: '8' }), node('n2', { gpu: '8' })],
      pods: [pod('llm-a', 'n1', { gpu: '8' }), pod('llm-b', 'n2', { gpu: '4' })],
      fits: false,
      unplaced: ['serving/llm-a'],
      reason: /n2: insufficient nvidia\.com\/gpu \(requested 8, free 4\)/,
    },
    {
      name: 'a node without GPUs cannot take a GPU pod',
      nodes: [node('n1', { gpu: '1' }), node('cpu-1')],
      pods: [pod('llm', 'n1', { gpu: '1' })],
      fits: false,
      reason: /insufficient nvidia\.com\/gpu/,
    },
    {
      name: 'GPU requests given as limits only still count',
      nodes: [node('n1', { gpu: '2' }), node('n2', { gpu: '1' })],
      pods: [pod('llm', 'n1', { gpu: '2', limitsOnly: true })],
      fits: false,
      reason: /requested 2, free 1/,
    },
    {
      name: 'cpu in millicores',
      nodes: [node('n1'), node('n2', { cpu: '2' })],
      pods: [pod('a', 'n1', { cpu: '1500m' }), pod('b', 'n2', { cpu: '600m' })],
      fits: false,
      reason: /insufficient cpu \(requested 1500m, free 1400m\)/,
    },
    {
      name: 'memory already requested',
      nodes: [node('n1'), node('n2', { memory: '8Gi' })],
      pods: [pod('a', 'n1', { memory: '6Gi' }), pod('b', 'n2', { memory: '3Gi' })],
      fits: false,
      reason: /insufficient memory/,
    },
    {
      name: 'finished pods on the target do not hold resources',
      nodes: [node('n1', { gpu: '1' }), node('n2', { gpu: '1' })],
      pods: [pod('a', 'n1', { gpu: '1' }), pod('old', 'n2', { gpu: '1', phase: 'Succeeded' })],
      fits: true,
    },
    {
      name: 'a cordoned node is skipped',
      nodes: [node('n1'), node('n2', { unschedulable: true })],
      pods: [pod('a', 'n1', { cpu: '1' })],
      fits: false,
      reason: /n2: unschedulable/,
    },
    {
      name: 'a NotReady node is skipped',
      nodes: [node('n1'), node('n2', { ready: 'False' })],
      pods: [pod('a', 'n1', { cpu: '1' })],
      fits: false,
      reason: /n2: not Ready/,
    },
    {
      name: 'the quarantine taint keeps pods away',
      nodes: [node('n1', { gpu: '1' }), node('n2', { gpu: '1', taints: [quarantineTaint] })],
      pods: [pod('a', 'n1', { gpu: '1' })],
      fits: false,
      reason: /untolerated taint fleetmedic\.io\/quarantine=xid-79:NoSchedule/,
    },
    {
      name: 'a toleration lets a pod onto a tainted node',
      nodes: [node('n1'), node('n2', { taints: [quarantineTaint] })],
      pods: [pod('agent', 'n1', { tolerations: [{ key: 'fleetmedic.io/quarantine', operator: 'Exists' }] })],
      fits: true,
    },
    {
      name: 'NoExecute taints also block',
      nodes: [
        node('n1'),
        node('n2', { taints: [{ key: 'dedicated', value: 'infra', effect: 'NoExecute' }] }),
      ],
      pods: [pod('a', 'n1')],
      fits: false,
      reason: /dedicated=infra:NoExecute/,
    },
    {
      name: 'PreferNoSchedule taints do not block',
      nodes: [node('n1'), node('n2', { taints: [{ key: 'soft', effect: 'PreferNoSchedule' }] })],
      pods: [pod('a', 'n1')],
      fits: true,
    },
    {
      name: 'nodeSelector must match',
      nodes: [node('n1', { labels: { pool: 'h100' } }), node('n2', { labels: { pool: 'a100' } })],
      pods: [pod('a', 'n1', { nodeSelector: { pool: 'h100' } })],
      fits: false,
      reason: /nodeSelector pool=h100 does not match/,
    },
    {
      name: 'nodeSelector matches another node',
      nodes: [
        node('n1', { labels: { pool: 'h100' } }),
        node('n2', { labels: { pool: 'a100' } }),
        node('n3', { labels: { pool: 'h100' } }),
      ],
      pods: [pod('a', 'n1', { nodeSelector: { pool: 'h100' } })],
      fits: true,
    },
    {
      name: 'required anti-affinity: the other nodes already run a replica',
      nodes: [node('n1'), node('n2'), node('n3')],
      pods: [
        pod('llm-0', 'n1', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
        pod('llm-1', 'n2', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
        pod('llm-2', 'n3', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
      ],
      fits: false,
      reason: /required anti-affinity on kubernetes\.io\/hostname: serving\/llm-/,
    },
    {
      name: 'required anti-affinity: a spare node takes the replica',
      nodes: [node('n1'), node('n2'), node('n3'), node('n4')],
      pods: [
        pod('llm-0', 'n1', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
        pod('llm-1', 'n2', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
        pod('llm-2', 'n3', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
      ],
      fits: true,
    },
    {
      name: 'required anti-affinity between pods placed in the same simulation',
      nodes: [node('n1'), node('n2')],
      pods: [
        pod('llm-0', 'n1', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
        pod('llm-1', 'n1', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
      ],
      fits: false,
      unplaced: ['serving/llm-1'],
    },
    {
      name: 'anti-affinity only applies within the namespace by default',
      nodes: [node('n1'), node('n2')],
      pods: [
        pod('llm-0', 'n1', { labels: { app: 'llm' }, antiAffinity: hostnameAnti('llm') }),
        pod('llm-x', 'n2', { ns: 'other', labels: { app: 'llm' } }),
      ],
      fits: true,
    },
    {
      name: 'anti-affinity with matchExpressions',
      nodes: [node('n1'), node('n2')],
      pods: [
        pod('a', 'n1', {
          labels: { app: 'llm' },
          antiAffinity: [
            {
              labelSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['llm', 'embed'] }] },
              topologyKey: 'kubernetes.io/hostname',
            },
          ],
        }),
        pod('b', 'n2', { labels: { app: 'embed' } }),
      ],
      fits: false,
      reason: /anti-affinity/,
    },
    {
      name: 'the anti-affinity of a pod already on the node repels the incoming pod',
      nodes: [node('n1'), node('n2')],
      pods: [
        pod('web', 'n1', { labels: { app: 'web' } }),
        pod('guard', 'n2', { antiAffinity: hostnameAnti('web') }),
      ],
      fits: false,
      reason: /serving\/guard has required anti-affinity/,
    },
    {
      name: 'zone anti-affinity sees pods on other nodes of the zone',
      nodes: [
        node('n1', { labels: { zone: 'a' } }),
        node('n2', { labels: { zone: 'b' } }),
        node('n3', { labels: { zone: 'b' } }),
      ],
      pods: [
        pod('x-0', 'n1', {
          labels: { app: 'x' },
          antiAffinity: [{ labelSelector: { matchLabels: { app: 'x' } }, topologyKey: 'zone' }],
        }),
        pod('x-1', 'n3', { labels: { app: 'x' } }),
      ],
      fits: false,
      reason: /anti-affinity on zone/,
    },
    {
      name: 'required pod affinity follows its partner',
      nodes: [node('n1'), node('n2'), node('n3')],
      pods: [
        pod('cache', 'n3', { labels: { app: 'cache' } }),
        pod('app', 'n1', {
          affinity: [
            { labelSelector: { matchLabels: { app: 'cache' } }, topologyKey: 'kubernetes.io/hostname' },
          ],
        }),
      ],
      fits: true,
    },
    {
      name: 'required pod affinity with no partner anywhere does not fit',
      nodes: [node('n1'), node('n2')],
      pods: [
        pod('app', 'n1', {
          affinity: [
            { labelSelector: { matchLabels: { app: 'cache' } }, topologyKey: 'kubernetes.io/hostname' },
          ],
        }),
      ],
      fits: false,
      reason: /pod affinity|affinity on kubernetes\.io\/hostname/,
    },
    {
      name: 'a pod with unreadable requests cannot be evaluated and does not fit',
      nodes: [node('n1'), node('n2')],
      pods: [pod('bad', 'n1', { cpu: 'lots' })],
      fits: false,
      reason: /cannot be read/,
    },
    {
      name: 'greedy first-fit places the larger GPU pod first',
      // In list order, small would take n2 and leave big (6) nowhere; largest first fits both.
      nodes: [node('n1', { gpu: '8' }), node('n2', { gpu: '8' }), node('n3', { gpu: '4' })],
      pods: [
        pod('small', 'n1', { gpu: '2' }),
        pod('big', 'n1', { gpu: '6' }),
        pod('tiny', 'n2', { gpu: '1' }),
      ],
      fits: true,
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const result = podsFitElsewhere(c.pods, c.nodes, 'n1');
      assert.equal(result.fits, c.fits, JSON.stringify(result.unplaced));
      if (c.unplaced !== undefined) {
        assert.deepEqual(
          result.unplaced.map((u) => u.pod),
          c.unplaced,
        );
      }
      if (c.reason !== undefined) {
        const all = result.unplaced.flatMap((u) => [...u.reasons, u.summary]).join('\n');
        assert.match(all, c.reason);
      }
      if (c.fits) {
        assert.equal(result.placements.length, podsToEvict(c.pods, 'n1').length);
        for (const p of result.placements) assert.notEqual(p.node, 'n1');
      }
    });
  }

  it('never places a pod on the draining node and summarises like the scheduler', () => {
    const result = podsFitElsewhere(
      [pod('llm', 'n1', { gpu: '8' })],
      [node('n1', { gpu: '8' }), node('n2', { gpu: '4' }), node('n3', { unschedulable: true, gpu: '8' })],
      'n1',
    );
    assert.equal(result.fits, false);
    assert.equal(
      result.unplaced[0]?.summary,
      '0/2 nodes fit: 1 insufficient nvidia.com/gpu, 1 unschedulable',
    );
  });

  it('places pods greedily and reports where', () => {
    const result = podsFitElsewhere(
      [pod('a', 'n1', { gpu: '4' }), pod('b', 'n1', { gpu: '4' })],
      [node('n1', { gpu: '8' }), node('n2', { gpu: '4' }), node('n3', { gpu: '4' })],
      'n1',
    );
    assert.deepEqual(result.placements, [
      { pod: 'serving/a', node: 'n2' },
      { pod: 'serving/b', node: 'n3' },
    ]);
  });

  it('counts pod slots: a node at its pod limit takes no more pods', () => {
    const full = node('n2');
    full.status!.allocatable!['pods'] = '2';
    const pods = [pod('a', 'n1'), pod('x', 'n2'), pod('y', 'n2')];
    const result = podsFitElsewhere(pods, [node('n1'), full], 'n1');
    assert.equal(result.fits, false);
    assert.match(result.unplaced[0]?.reasons[0] ?? '', /n2: insufficient pods \(requested 1, free 0\)/);
    full.status!.allocatable!['pods'] = '3';
    assert.equal(podsFitElsewhere(pods, [node('n1'), full], 'n1').fits, true);
  });

  it('treats a node with an unreadable allocatable as unusable', () => {
    const broken = node('n2');
    broken.status!.allocatable = { cpu: 'many' };
    const result = podsFitElsewhere([pod('a', 'n1', { cpu: '1' })], [node('n1'), broken], 'n1');
    assert.equal(result.fits, false);
    assert.match(result.unplaced[0]?.reasons[0] ?? '', /n2: cannot read its resources/);
  });
});
