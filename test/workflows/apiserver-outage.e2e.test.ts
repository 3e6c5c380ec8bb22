import { KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { apiServerUrl } from '../../src/k8s/kubeconfig.js';
import { MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { clearRemediationHistory, clients, eventually, liftQuarantine } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';

installQuietRuntime();

/**
 * A TCP relay on 127.0.0.1 in front of the API server that can be switched off (connections refused,
 * open ones cut) and on again: the workers reach the API server only through it. TLS passes through
 * untouched, so the API server's certificate for 127.0.0.1 still verifies.
 */
async function apiServerRelay(target: URL) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  await listen();
  return {
    get port() {
      return port;
    },
    /** Refuses new connections and cuts the open ones, like an API server that went away. */
    async down() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    up: listen,
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// Issue #3, "API server briefly unreachable -> retried": a transient outage makes the Kubernetes
// activities fail with a connection error, which Temporal retries; the remediation finishes once the
// API server is back, with nothing done twice.
describe('API server briefly unreachable', () => {
  let stack: TestStack;
  let relay: Awaited<ReturnType<typeof apiServerRelay>>;
  let workers: RemediationWorkers | undefined;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-outage-${process.pid}`;
  const target = 'gpu-node-4';

  before(async () => {
    stack = await useTestStack();
    relay = await apiServerRelay(new URL(apiServerUrl(stack.kc)));
    const kc = new KubeConfig();
    kc.loadFromString(stack.kc.exportConfig());
    const server = new URL(apiServerUrl(stack.kc));
    server.port = String(relay.port);
    kc.clusters = kc.clusters.map((c) => ({ ...c, server: server.origin }));
    await clearRemediationHistory(stack.kc, [target]);
    workers = await startRemediationWorkers(
      { ...stack, kc },
      {
        taskQueue,
        gpus,
        budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 2 },
      },
    );
  });

  after(async () => {
    await workers?.stop();
    await relay?.close();
    await liftQuarantine(stack.kc, target);
  });

  it('retries the Kubernetes steps through the outage and returns the node to service', async () => {
    await gpus.set(target, withFault(await gpus.get(target), { gpu: 2, xid: 48 }));
    await relay.down();
    const handle = await startOrJoinRemediation(workers!.client, {
      clusterId: stack.state.clusterId,
      node: target,
      taskQueue,
      alert: {
        alertName: 'GpuXidError',
        status: 'firing',
        episodeKey: `outage-${Date.now()}`,
        xid: 48,
        gpu: 2,
        source: 'test',
      },
      policy: { diagLevel: 1, agentScheduleToStartMs: 20_000 },
    });

    // Wait until an activity has failed on the outage and is waiting for its next attempt.
    const failedAttempt = await eventually('an activity attempt failed on the outage', async () => {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      return pending.find((a) => (a.attempt ?? 0) >= 2 && a.lastFailure?.message);
    });
    assert.match(
      failedAttempt.lastFailure?.message ?? '',
      /ECONNREFUSED|ECONNRESET|socket hang up|fetch failed|connect/i,
    );
    const n = await clients(stack.kc).core.readNode({ name: target });
    assert.notEqual(n.spec?.unschedulable, true, 'nothing may change while the API server is away');

    await relay.up();
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
    const released = await clients(stack.kc).core.readNode({ name: target });
    assert.notEqual(released.spec?.unschedulable, true);
    assert.equal(
      released.spec?.taints?.find((t) => t.key === 'fleetmedic.io/quarantine'),
      undefined,
    );
  });
});
