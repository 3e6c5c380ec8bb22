import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { makeApiClient } from '../../src/k8s/api-client.js';
import { mergePatch } from '../../src/k8s/patch.js';

/** A kubeconfig for a plain-HTTP server on 127.0.0.1 (no credentials: the server never answers). */
function kubeconfigFor(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

// An API server that accepts connections and never answers must not hold a call forever.
describe('Kubernetes API clients with a request timeout', { timeout: 20_000 }, () => {
  let server: net.Server;
  const sockets = new Set<net.Socket>();
  let port = 0;

  before(async () => {
    server = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('fails a read the server never answers once the timeout passes', async () => {
    const core = makeApiClient(kubeconfigFor(port), CoreV1Api, 300);
    await assert.rejects(core.readNode({ name: 'gpu-node-1' }), /abort/i);
  });

  it('keeps the timeout on calls that add their own middleware (merge patches)', async () => {
    const core = makeApiClient(kubeconfigFor(port), CoreV1Api, 300);
    await assert.rejects(
      core.patchNode({ name: 'gpu-node-1', body: { metadata: { labels: { a: 'b' } } } }, mergePatch),
      /abort/i,
    );
  });

  it('refuses a kubeconfig without a current cluster', () => {
    assert.throws(() => makeApiClient(new KubeConfig(), CoreV1Api), /no current cluster/);
  });
});
