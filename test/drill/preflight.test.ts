import type { V1Deployment, V1Node, V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { preflightDrill, refusalReasons, type PreflightInput } from '../../src/drill/preflight.js';

const labels = { app: 'llama' };

function deployment(
  overrides: {
    anti?: 'required' | 'preferred' | 'none';
    maxUnavailable?: number | string;
    recreate?: boolean;
    replicas?: number;
  } = {},
): V1Deployment {
  const term = { labelSelector: { matchLabels: labels }, topologyKey: 'kubernetes.io/hostname' };
  const anti = overrides.anti ?? 'required';
  return {
    metadata: { name: 'llama', namespace: 'inference' },
    spec: {
      replicas: overrides.replicas ?? 3,
      selector: { matchLabels: labels },
      strategy: overrides.recreate
        ? { type: 'Recreate' }
        : {
            type: 'RollingUpdate',
            rollingUpdate: { maxSurge: 1, maxUnavailable: overrides.maxUnavailable ?? 0 },
          },
      template: {
        metadata: { labels },
        spec: {
          containers: [{ name: 'server' }],
          affinity: {
            podAntiAffinity:
              anti === 'required'
                ? { requiredDuringSchedulingIgnoredDuringExecution: [term] }
                : anti === 'preferred'
                  ? {
                      preferredDuringSchedulingIgnoredDuringExecution: [
                        { weight: 100, podAffinityTerm: term },
                      ],
                    }
                  : undefined,
          },
        },
      },
    },
  };
}

const pdb: V1PodDisruptionBudget = {
  metadata: { name: 'llama', namespace: 'inference' },
  spec: { minAvailable: 2, selector: { matchLabels: labels } },
};

function node(name: string, options: { cordoned?: boolean; ready?: boolean; gpus?: string } = {}): V1Node {
  return {
    metadata: { name },
    spec: { unschedulable: options.cordoned },
    status: {
      allocatable: { 'nvidia.com/gpu': options.gpus ?? '8' },
      conditions: [{ type: 'Ready', status: options.ready === false ? 'False' : 'True' }],
    },
  };
}

function pod(name: string, nodeName: string | undefined, terminating = false): V1Pod {
  return {
    metadata: { name, namespace: 'inference', labels, ...(terminating && { deletionTimestamp: new Date() }) },
    spec: { containers: [], nodeName },
  };
}

function healthy(): PreflightInput {
  return {
    deployment: deployment(),
    pdbs: [pdb],
    pods: [pod('a', 'n1'), pod('b', 'n2'), pod('c', 'n3')],
    nodes: ['n1', 'n2', 'n3', 'n4'].map((n) => node(n)),
  };
}

describe('preflightDrill', () => {
  it('passes a Deployment that can lose a pod and a node', () => {
    const findings = preflightDrill(healthy());
    assert.deepEqual(refusalReasons(findings), []);
    assert.deepEqual(
      findings.map((f) => f.check),
      ['pdb', 'anti-affinity', 'max-unavailable', 'schedulable-nodes', 'distinct-nodes'],
    );
  });

  const table: { name: string; change: (i: PreflightInput) => PreflightInput; reason: string }[] = [
    { name: 'no PDB', change: (i) => ({ ...i, pdbs: [] }), reason: 'no PDB' },
    {
      name: 'a PDB of another namespace',
      change: (i) => ({ ...i, pdbs: [{ ...pdb, metadata: { name: 'llama', namespace: 'other' } }] }),
      reason: 'no PDB',
    },
    {
      name: 'preferred anti-affinity',
      change: (i) => ({ ...i, deployment: deployment({ anti: 'preferred' }) }),
      reason: 'anti-affinity preferred, not required',
    },
    {
      name: 'no anti-affinity',
      change: (i) => ({ ...i, deployment: deployment({ anti: 'none' }) }),
      reason: 'no required anti-affinity on kubernetes.io/hostname',
    },
    {
      name: 'maxUnavailable 1',
      change: (i) => ({ ...i, deployment: deployment({ maxUnavailable: 1 }) }),
      reason: 'maxUnavailable is not 0 (1)',
    },
    {
      name: 'Recreate strategy',
      change: (i) => ({ ...i, deployment: deployment({ recreate: true }) }),
      reason: 'maxUnavailable is not 0 (Recreate)',
    },
    {
      name: 'a cordoned node leaves 3 schedulable',
      change: (i) => ({ ...i, nodes: [...i.nodes.slice(0, 3), node('n4', { cordoned: true })] }),
      reason: 'only 3 schedulable GPU nodes (needs replicas + 1 = 4)',
    },
    {
      name: 'a node without GPUs does not count',
      change: (i) => ({ ...i, nodes: [...i.nodes.slice(0, 3), node('n4', { gpus: '0' })] }),
      reason: 'only 3 schedulable GPU nodes (needs replicas + 1 = 4)',
    },
    {
      name: 'a NotReady node does not count',
      change: (i) => ({ ...i, nodes: [...i.nodes.slice(0, 3), node('n4', { ready: false })] }),
      reason: 'only 3 schedulable GPU nodes (needs replicas + 1 = 4)',
    },
    {
      name: 'two replicas on one node',
      change: (i) => ({ ...i, pods: [pod('a', 'n1'), pod('b', 'n1'), pod('c', 'n3')] }),
      reason: 'replicas not on distinct nodes (3 of 3 pods, on 2 nodes)',
    },
    {
      name: 'a replica not scheduled yet (fails safe)',
      change: (i) => ({ ...i, pods: [pod('a', 'n1'), pod('b', 'n2'), pod('c', undefined)] }),
      reason: 'replicas not on distinct nodes (3 of 3 pods, on 2 nodes)',
    },
    {
      name: 'a replica missing',
      change: (i) => ({ ...i, pods: [pod('a', 'n1'), pod('b', 'n2'), pod('c', 'n3', true)] }),
      reason: 'replicas not on distinct nodes (2 of 3 pods, on 2 nodes)',
    },
  ];
  for (const row of table) {
    it(`refuses: ${row.name}`, () => {
      assert.deepEqual(refusalReasons(preflightDrill(row.change(healthy()))), [row.reason]);
    });
  }

  it('property: with at most replicas schedulable nodes it always refuses, naming the count', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 8 }), (replicas, extra) => {
        const nodes = Array.from({ length: replicas + 1 + extra }, (_, k) =>
          node(`n${k}`, { cordoned: k < 1 + extra }),
        );
        const pods = Array.from({ length: replicas }, (_, k) => pod(`p${k}`, `n${k}`));
        const reasons = refusalReasons(
          preflightDrill({ deployment: deployment({ replicas }), pdbs: [pdb], pods, nodes }),
        );
        assert.deepEqual(reasons, [
          `only ${replicas} schedulable GPU nodes (needs replicas + 1 = ${replicas + 1})`,
        ]);
      }),
    );
  });
});
