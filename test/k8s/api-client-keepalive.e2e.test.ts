import { CoreV1Api } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeApiClient } from '../../src/k8s/api-client.js';
import { apiServerUrl } from '../../src/k8s/kubeconfig.js';
import { mergePatch } from '../../src/k8s/patch.js';
import { apiServerRelay, kubeconfigVia } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

// client-node 1.4 makes a new agent per request: without makeApiClient's shared keep-alive agent,
// every call below would open a connection (and do a TLS handshake) of its own.
describe('Kubernetes API clients keep their TLS connections to the API server', () => {
  let stack: TestStack;
  let relay: Awaited<ReturnType<typeof apiServerRelay>>;

  before(async () => {
    stack = await useTestStack();
    relay = await apiServerRelay(new URL(apiServerUrl(stack.kc)));
  });

  after(async () => {
    await relay?.close();
  });

  it('sends sequential calls of several clients, reads and patches, over one connection', async () => {
    const kc = kubeconfigVia(stack.kc, relay.port);
    const a = makeApiClient(kc, CoreV1Api);
    const b = makeApiClient(kc, CoreV1Api);
    const before = relay.connections;
    for (let i = 0; i < 5; i++) {
      await a.readNode({ name: 'gpu-node-1' });
      await b.listNamespace();
      await a.patchNode(
        { name: 'gpu-node-1', body: { metadata: { annotations: { 'fleetmedic.io/keepalive-test': null } } } },
        mergePatch,
      );
    }
    assert.equal(relay.connections - before, 1, '15 calls, one connection');
  });

  it('opens a connection per call in flight at once, and reuses them after', async () => {
    const kc = kubeconfigVia(stack.kc, relay.port);
    const core = makeApiClient(kc, CoreV1Api);
    const before = relay.connections;
    await Promise.all(Array.from({ length: 4 }, () => core.readNode({ name: 'gpu-node-2' })));
    const opened = relay.connections - before;
    assert.ok(opened <= 4, `4 concurrent calls opened ${opened} connection(s)`);
    await Promise.all(Array.from({ length: 4 }, () => core.readNode({ name: 'gpu-node-2' })));
    assert.equal(relay.connections - before, opened, 'the second batch reused the open connections');
  });
});
