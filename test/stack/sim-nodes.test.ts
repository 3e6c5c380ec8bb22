import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackAddress } from '../../src/k8s/loopback.js';
import { GPU_RESOURCE, SIMULATED_LABEL } from '../../src/k8s/labels.js';
import { assertSimulatedNode } from '../../src/stack/sim-cluster.js';
import { MAX_SIM_NODES, simNodeAddresses, simNodeManifest, simNodeName } from '../../src/stack/sim-nodes.js';

describe('simulated nodes', () => {
  it('gives every node of a 1,500-node fleet distinct loopback addresses and pod ranges', () => {
    const ips = new Set<string>();
    const cidrs = new Set<string>();
    for (let i = 0; i < 1500; i++) {
      const { nodeIP, podCIDR } = simNodeAddresses(i);
      assert.ok(isLoopbackAddress(nodeIP), nodeIP);
      assert.ok(isLoopbackAddress(podCIDR.split('/')[0]!), podCIDR);
      ips.add(nodeIP);
      cidrs.add(podCIDR);
    }
    assert.equal(ips.size, 1500);
    assert.equal(cidrs.size, 1500);
    assert.ok(![...ips].includes('127.0.0.1'));
  });

  it('rejects indexes outside the address plan', () => {
    assert.throws(() => simNodeAddresses(-1), RangeError);
    assert.throws(() => simNodeAddresses(MAX_SIM_NODES), RangeError);
    assert.throws(() => simNodeAddresses(1.5), RangeError);
    assert.doesNotThrow(() => simNodeAddresses(MAX_SIM_NODES - 1));
  });

  it('describes a GPU node managed by kwok and marked simulated', () => {
    const node = simNodeManifest(6, 'lab');
    assert.equal(node.metadata?.name, simNodeName(6));
    assert.equal(node.metadata?.name, 'gpu-node-7');
    assert.equal(node.metadata?.annotations?.['kwok.x-k8s.io/node'], 'fake');
    assert.equal(node.metadata?.labels?.[SIMULATED_LABEL], 'true');
    assert.equal(node.metadata?.labels?.['fleetmedic.io/cluster'], 'lab');
    assert.equal(node.status?.capacity?.[GPU_RESOURCE], '8');
    assert.equal(node.status?.allocatable?.[GPU_RESOURCE], '8');
    assert.doesNotThrow(() => assertSimulatedNode(node));
  });

  it('refuses a node without the simulation label', () => {
    assert.throws(
      () => assertSimulatedNode({ metadata: { name: 'real-gpu-1', labels: {} } }),
      /real-gpu-1 has no fleetmedic.io\/simulated=true label/,
    );
  });
});
