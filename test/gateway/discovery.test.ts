import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import {
  endpointsFromPods,
  podEndpoint,
  type Endpoint,
  type ReplicaDiscovery,
} from '../../src/gateway/discovery.js';
import { chat, gatewayOver, standins } from './helpers.js';

function pod(
  name: string,
  ip: string | undefined,
  changes: { ready?: boolean; deleting?: boolean; phase?: string } = {},
): V1Pod {
  return {
    metadata: {
      name,
      ...(changes.deleting && { deletionTimestamp: new Date('2026-03-01T12:00:00Z') }),
    },
    status: {
      phase: changes.phase ?? 'Running',
      ...(ip !== undefined && { podIP: ip }),
      conditions: [{ type: 'Ready', status: changes.ready === false ? 'False' : 'True' }],
    },
  };
}

/** Discovery driven by the test, as the pod watch drives it. */
class FakeDiscovery implements ReplicaDiscovery {
  private onChange: ((endpoints: readonly Endpoint[]) => void) | undefined;
  start(onChange: (endpoints: readonly Endpoint[]) => void): Promise<void> {
    this.onChange = onChange;
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  /** Publishes pods, each with its own port (the stand-ins all listen on 127.0.0.1). */
  pods(pods: [V1Pod, number][]): void {
    this.onChange?.(pods.flatMap(([p, port]) => endpointsFromPods([p], { port, loopbackOnly: true })));
  }
}

describe('replica discovery from pods', () => {
  const options = { port: 8080, loopbackOnly: true };
  const table: [string, V1Pod, string][] = [
    ['Running, Ready, with an IP', pod('a', '127.128.0.5'), 'http://127.128.0.5:8080'],
    [
      'terminating (deletionTimestamp), still Ready',
      pod('a', '127.128.0.5', { deleting: true }),
      'terminating',
    ],
    ['not Ready', pod('a', '127.128.0.5', { ready: false }), 'not ready'],
    ['Pending', pod('a', '127.128.0.5', { phase: 'Pending' }), 'phase Pending'],
    ['no pod IP yet', pod('a', undefined), 'no pod IP'],
    ['an address outside loopback in a simulation', pod('a', '10.0.0.5'), 'refusing'],
  ];
  for (const [name, p, expected] of table) {
    it(`${name}: ${expected}`, () => {
      const result = podEndpoint(p, options);
      if ('endpoint' in result) assert.equal(result.endpoint.url, expected);
      else assert.match(result.skip, new RegExp(expected));
    });
  }

  it('a pod that gets a deletionTimestamp leaves routing at once', async () => {
    const replicas = await standins(2);
    const discovery = new FakeDiscovery();
    const kube = { namespace: 'inference', deployment: 'llama', kubeconfig: '/nonexistent' };
    const gw = await gatewayOver([], { kube }, { discovery });
    const [a, b] = [replicas[0]!.port, replicas[1]!.port];
    discovery.pods([
      [pod('replica-a', '127.0.0.1'), a],
      [pod('replica-b', '127.0.0.1'), b],
    ]);
    assert.deepEqual(
      gw.replicas.list().map((r) => r.id),
      ['replica-a', 'replica-b'],
    );
    discovery.pods([
      [pod('replica-a', '127.0.0.1', { deleting: true }), a],
      [pod('replica-b', '127.0.0.1'), b],
    ]);
    assert.deepEqual(
      gw.replicas.list().map((r) => r.id),
      ['replica-b'],
    );
    for (let i = 0; i < 4; i++) {
      const res = await chat(gw);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-fleetmedic-replica'), 'replica-b');
    }
    assert.equal(replicas[0]!.stats.requests, 0);
  });
});
