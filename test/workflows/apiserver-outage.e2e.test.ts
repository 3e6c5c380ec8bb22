import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { apiServerUrl } from '../../src/k8s/kubeconfig.js';
import { MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import {
  apiServerRelay,
  clearRemediationHistory,
  clients,
  eventually,
  kubeconfigVia,
  liftQuarantine,
} from '../helpers/k8s.js';
import { xidAlert } from '../helpers/remediation-inputs.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime, localActivityMarkers } from '../helpers/temporal.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';

installQuietRuntime();

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
    const kc = kubeconfigVia(stack.kc, relay.port);
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
      alert: xidAlert(48, { gpu: 2 }),
      policy: { diagLevel: 1, agentScheduleToStartMs: 20_000 },
    });

    // The first step (episode check, breaker, cordon) is a local activity: its attempts run in
    // the worker and reach the history only when one succeeds. While they fail, the worker keeps the
    // workflow task alive by completing it before its 10 s timeout: wait for that heartbeat.
    await eventually('the workflow task kept alive while the API server is away', async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      return events.some((e) => e.workflowTaskCompletedEventAttributes) ? true : undefined;
    });
    const n = await clients(stack.kc).core.readNode({ name: target });
    assert.notEqual(n.spec?.unschedulable, true, 'nothing may change while the API server is away');

    await relay.up();
    const result = await handle.result();
    const first = localActivityMarkers(await handle.fetchHistory()).find(
      (m) => m.activityType === 'quarantineFailedNode',
    );
    assert.ok(
      (first?.attempt ?? 0) >= 2,
      `quarantineFailedNode succeeded on attempt ${first?.attempt}: it failed on the outage first`,
    );
    assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
    const released = await clients(stack.kc).core.readNode({ name: target });
    assert.notEqual(released.spec?.unschedulable, true);
    assert.equal(
      released.spec?.taints?.find((t) => t.key === 'fleetmedic.io/quarantine'),
      undefined,
    );
  });
});
