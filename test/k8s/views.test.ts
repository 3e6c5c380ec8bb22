import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { hasErrorCode } from '../../src/errors.js';
import { parseQuantity, quantityOrZero } from '../../src/k8s/quantity.js';
import { nodeSummary, nodeView, podRequests, podView } from '../../src/k8s/views.js';
import {
  CORDON_ANNOTATION,
  QUARANTINED_LABEL,
  REMEDIATIONS_ANNOTATION,
} from '../../src/k8s/remediation-labels.js';

describe('parseQuantity', () => {
  const cases: [string, number][] = [
    ['8', 8],
    ['0', 0],
    ['100m', 0.1],
    ['1.5', 1.5],
    ['250m', 0.25],
    ['1Ki', 1024],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['1536Gi', 1536 * 2 ** 30],
    ['2Ti', 2 * 2 ** 40],
    ['1k', 1000],
    ['5M', 5e6],
    ['1e3', 1000],
    ['1E-3', 0.001],
    ['.5', 0.5],
    ['500n', 5e-7],
  ];
  for (const [text, value] of cases) {
    it(`${text} -> ${value}`, () =>
      assert.ok(Math.abs(parseQuantity(text) - value) < 1e-12 * Math.max(1, value)));
  }
  for (const bad of ['', 'abc', '1.2.3', '5Qi', 'Gi', '1 Gi']) {
    it(`refuses ${JSON.stringify(bad)}`, () =>
      assert.throws(
        () => parseQuantity(bad),
        (err: Error) => hasErrorCode(err, 'INVALID_QUANTITY'),
      ));
  }
  it('quantityOrZero reports a malformed or missing value as 0', () => {
    assert.equal(quantityOrZero(undefined), 0);
    assert.equal(quantityOrZero('lots'), 0);
    assert.equal(quantityOrZero('8'), 8);
  });
});

describe('podRequests', () => {
  const cases: { name: string; spec: V1Pod['spec']; expect: Record<string, number> }[] = [
    {
      name: 'sums app containers',
      spec: {
        containers: [
          { name: 'a', resources: { requests: { cpu: '500m', memory: '1Gi', 'nvidia.com/gpu': '1' } } },
          { name: 'b', resources: { requests: { cpu: '250m' } } },
        ],
      },
      expect: { cpu: 0.75, memory: 2 ** 30, 'nvidia.com/gpu': 1 },
    },
    {
      name: 'a large regular init container sets the peak',
      spec: {
        initContainers: [{ name: 'load', resources: { requests: { cpu: '4', memory: '8Gi' } } }],
        containers: [{ name: 'a', resources: { requests: { cpu: '1', memory: '2Gi' } } }],
      },
      expect: { cpu: 4, memory: 8 * 2 ** 30 },
    },
    {
      name: 'sidecars run beside the app and beside later init containers',
      spec: {
        initContainers: [
          { name: 'proxy', restartPolicy: 'Always', resources: { requests: { cpu: '1' } } },
          { name: 'load', resources: { requests: { cpu: '2' } } },
        ],
        containers: [{ name: 'a', resources: { requests: { cpu: '1' } } }],
      },
      expect: { cpu: 3 },
    },
    {
      name: 'adds the runtime overhead',
      spec: { overhead: { cpu: '100m' }, containers: [{ name: 'a', resources: { requests: { cpu: '1' } } }] },
      expect: { cpu: 1.1 },
    },
    { name: 'no requests at all', spec: { containers: [{ name: 'a' }] }, expect: {} },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = podRequests({ spec: c.spec });
      assert.deepEqual(Object.keys(got).sort(), Object.keys(c.expect).sort());
      for (const [k, v] of Object.entries(c.expect))
        assert.ok(Math.abs((got[k] ?? NaN) - v) < 1e-9, `${k}: ${got[k]}`);
    });
  }
});

describe('views', () => {
  const node: V1Node = {
    metadata: {
      name: 'gpu-node-3',
      labels: {
        'kubernetes.io/hostname': 'gpu-node-3',
        'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
        [QUARANTINED_LABEL]: 'true',
        'fleetmedic.io/cluster': 'lab',
        'team.example.com/owner': 'ml',
      },
      annotations: {
        [CORDON_ANNOTATION]: JSON.stringify({
          workflowId: 'wf',
          reason: 'XID 79',
          at: 't',
          preexistingCordon: false,
        }),
        [REMEDIATIONS_ANNOTATION]: '["2026-01-01T00:00:00Z"]',
      },
    },
    spec: {
      unschedulable: true,
      taints: [{ key: 'fleetmedic.io/quarantine', effect: 'NoSchedule' }],
    },
    status: {
      capacity: { 'nvidia.com/gpu': '8' },
      allocatable: { 'nvidia.com/gpu': '7', cpu: '96', memory: '1536Gi', pods: '110' },
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };

  it('summarises a node with a default label subset plus asked-for keys', () => {
    const summary = nodeSummary(node, ['team.example.com/owner']);
    assert.deepEqual(summary, {
      name: 'gpu-node-3',
      unschedulable: true,
      ready: true,
      quarantined: true,
      quarantinedBy: 'wf',
      taints: [{ key: 'fleetmedic.io/quarantine', effect: 'NoSchedule' }],
      labels: { ...node.metadata!.labels },
      gpuCapacity: 8,
      gpuAllocatable: 7,
      allocatable: { cpu: 96, memory: 1536 * 2 ** 30, pods: 110 },
    });
    assert.equal(nodeSummary(node).labels['team.example.com/owner'], undefined);
  });

  it('shows a node in full, with record, history and errors for unreadable annotations', () => {
    const view = nodeView(node);
    assert.equal(view.exists, true);
    assert.deepEqual(view.cordon, { workflowId: 'wf', reason: 'XID 79', at: 't', preexistingCordon: false });
    assert.deepEqual(view.remediations, ['2026-01-01T00:00:00Z']);
    const broken = nodeView({
      ...node,
      metadata: {
        ...node.metadata,
        annotations: { [CORDON_ANNOTATION]: '{', [REMEDIATIONS_ANNOTATION]: 'x' },
      },
    });
    assert.equal(broken.cordon, null);
    assert.match(broken.cordonError ?? '', /not JSON/);
    assert.deepEqual(broken.remediations, []);
    assert.match(broken.remediationsError ?? '', /not JSON/);
  });

  it('turns a pod into a plain JSON view with only the hard scheduling constraints', () => {
    const pod: V1Pod = {
      metadata: {
        name: 'llm-0',
        namespace: 'inference',
        uid: 'u1',
        labels: { app: 'llm' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'llm', uid: 's', controller: true },
        ],
      },
      spec: {
        containers: [{ name: 'server', resources: { requests: { 'nvidia.com/gpu': '2', cpu: '8' } } }],
        tolerations: [{ key: 'fleetmedic.io/quarantine', operator: 'Exists', effect: 'NoSchedule' }],
        nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
        affinity: {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { labelSelector: { matchLabels: { app: 'llm' } }, topologyKey: 'kubernetes.io/hostname' },
            ],
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 1, podAffinityTerm: { topologyKey: 'zone' } },
            ],
          },
        },
        priorityClassName: 'inference',
      },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
    };
    const view = podView(pod);
    assert.deepEqual(view, {
      name: 'llm-0',
      namespace: 'inference',
      uid: 'u1',
      phase: 'Running',
      ready: true,
      terminating: false,
      ownerKind: 'StatefulSet',
      ownerName: 'llm',
      daemonSet: false,
      mirror: false,
      requests: { 'nvidia.com/gpu': 2, cpu: 8 },
      tolerations: [{ key: 'fleetmedic.io/quarantine', operator: 'Exists', effect: 'NoSchedule' }],
      nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
      affinity: {
        podAntiAffinity: [
          { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'llm' } } },
        ],
      },
      labels: { app: 'llm' },
      priorityClassName: 'inference',
    });
    assert.deepEqual(JSON.parse(JSON.stringify(view)), view, 'the view is plain JSON');
  });
});
