import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Node } from '@kubernetes/client-node';
import { GPU_RESOURCE, QUARANTINE_TAINT_KEY, isNodeHealthy } from '../../src/domain/node-health.js';

interface Opts {
  ready?: string | null;
  unschedulable?: boolean;
  taints?: { key: string; value?: string; effect: string }[];
  capacity?: string | null;
  allocatable?: string | null;
}

function gpuNode(o: Opts = {}): V1Node {
  const capacity: Record<string, string> = { cpu: '64', memory: '512Gi' };
  const allocatable: Record<string, string> = { cpu: '63', memory: '500Gi' };
  if (o.capacity !== null) capacity[GPU_RESOURCE] = o.capacity ?? '8';
  if (o.allocatable !== null) allocatable[GPU_RESOURCE] = o.allocatable ?? '8';
  return {
    metadata: { name: 'gpu-node-7' },
    spec: { unschedulable: o.unschedulable, taints: o.taints },
    status: {
      capacity,
      allocatable,
      conditions:
        o.ready === null
          ? [{ type: 'MemoryPressure', status: 'False' }]
          : [
              { type: 'MemoryPressure', status: 'False' },
              { type: 'Ready', status: o.ready ?? 'True' },
            ],
    },
  };
}

describe('isNodeHealthy', () => {
  const cases: [string, Opts, boolean, RegExp?][] = [
    ['a ready, schedulable node with all GPUs', {}, true],
    ['other taints do not matter', { taints: [{ key: 'nvidia.com/gpu', effect: 'NoSchedule' }] }, true],
    ['Ready False', { ready: 'False' }, false, /Ready condition is False/],
    ['Ready Unknown', { ready: 'Unknown' }, false, /Ready condition is Unknown/],
    ['no Ready condition (fail safe)', { ready: null }, false, /no Ready condition/],
    ['cordoned', { unschedulable: true }, false, /cordoned/],
    [
      'quarantine taint',
      { taints: [{ key: QUARANTINE_TAINT_KEY, value: 'xid-79', effect: 'NoSchedule' }] },
      false,
      /quarantine taint fleetmedic\.io\/quarantine:NoSchedule/,
    ],
    [
      'quarantine taint with any effect',
      { taints: [{ key: QUARANTINE_TAINT_KEY, effect: 'PreferNoSchedule' }] },
      false,
      /quarantine taint/,
    ],
    [
      'one GPU withdrawn by the device plugin',
      { allocatable: '7' },
      false,
      /allocatable nvidia\.com\/gpu 7 differs from capacity 8/,
    ],
    ['no allocatable GPUs', { allocatable: '0' }, false, /allocatable nvidia\.com\/gpu 0/],
    ['allocatable missing', { allocatable: null }, false, /no allocatable nvidia\.com\/gpu/],
    [
      'capacity missing (device plugin not running)',
      { capacity: null, allocatable: null },
      false,
      /no nvidia\.com\/gpu capacity/,
    ],
    ['zero capacity', { capacity: '0', allocatable: '0' }, false, /capacity 0/],
    [
      'unreadable capacity (fail safe)',
      { capacity: 'eight' },
      false,
      /cannot read nvidia\.com\/gpu capacity/,
    ],
    ['unreadable allocatable (fail safe)', { allocatable: '8x' }, false, /cannot read allocatable/],
    ['quantities compare by value', { capacity: '8', allocatable: '8000m' }, true],
  ];
  for (const [name, opts, healthy, reason] of cases) {
    it(`${name}: ${healthy ? 'healthy' : 'unhealthy'}`, () => {
      const result = isNodeHealthy(gpuNode(opts));
      assert.equal(result.healthy, healthy, JSON.stringify(result.reasons));
      assert.equal(result.reasons.length === 0, healthy);
      if (reason !== undefined) assert.match(result.reasons.join('; '), reason);
    });
  }

  it('lists every reason at once', () => {
    const result = isNodeHealthy(
      gpuNode({
        ready: 'False',
        unschedulable: true,
        taints: [{ key: QUARANTINE_TAINT_KEY, effect: 'NoSchedule' }],
        allocatable: '6',
      }),
    );
    assert.equal(result.reasons.length, 4);
  });

  it('accepts another GPU resource and taint key', () => {
    const node = gpuNode({ taints: [{ key: 'example.com/hold', effect: 'NoSchedule' }] });
    node.status!.capacity!['amd.com/gpu'] = '4';
    node.status!.allocatable!['amd.com/gpu'] = '4';
    assert.equal(isNodeHealthy(node, { gpuResource: 'amd.com/gpu' }).healthy, true);
    assert.equal(
      isNodeHealthy(node, { gpuResource: 'amd.com/gpu', quarantineTaintKey: 'example.com/hold' }).healthy,
      false,
    );
  });
});
