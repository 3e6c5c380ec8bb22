import { CoreV1Api } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import type { FleetBudgetConfig } from '../../src/domain/fleet-budget.js';
import type { RemediationPolicy } from '../../src/domain/remediation-plan.js';
import { parseNotifyConfig } from '../../src/notify/config.js';
import type { JsonNotification } from '../../src/notify/message.js';
import { MemoryGpuStateStore } from '../../src/sim/gpu-state.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { rejectUpdate, statusQuery } from '../../src/contracts/remediation.js';
import { eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startReceiver } from './receiver.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';
import { clearRemediationHistory } from '../helpers/k8s.js';
import { xidAlert } from '../helpers/remediation-inputs.js';

installQuietRuntime();

const policy: Partial<RemediationPolicy> = {
  approvalReminderMs: 600_000,
  budgetRetryMs: 500,
  agentScheduleToStartMs: 2_000,
  diagLevel: 1,
  drainDeadlineSeconds: 120,
  drainHeartbeatTimeoutMs: 5_000,
  capacityRetryMs: 1_000,
};

let setups = 0;

/** A receiver and workers whose fleet budget has `budgetConfig`, for one describe block. */
function setup(budgetConfig: Partial<FleetBudgetConfig>) {
  const ctx = {} as {
    stack: TestStack;
    receiver: Awaited<ReturnType<typeof startReceiver>>;
    workers: RemediationWorkers;
    taskQueue: string;
  };
  before(async () => {
    ctx.stack = await useTestStack();
    ctx.receiver = await startReceiver();
    ctx.taskQueue = `fleetmedic-fleet-${process.pid}-${setups++}`;
    ctx.workers = await startRemediationWorkers(ctx.stack, {
      taskQueue: ctx.taskQueue,
      gpus: new MemoryGpuStateStore(),
      budgetConfig,
      notify: parseNotifyConfig({
        sinks: [{ name: 'json', type: 'json', url: `${ctx.receiver.url}/json` }],
      }),
    });
    await clearRemediationHistory(ctx.stack.kc, ctx.workers.nodes);
  });
  after(async () => {
    await ctx.workers?.stop();
    await ctx.receiver?.close();
  });
  return ctx;
}

describe('notification when the fleet breaker refuses automatic quarantine', () => {
  // A threshold of 0: the first failure trips the breaker.
  const ctx = setup({ breakerThreshold: 0, minHealthyFraction: 0 });

  it('says breaker-tripped, and the node is left untouched', async () => {
    const target = 'gpu-node-1';
    const handle = await startOrJoinRemediation(ctx.workers.client, {
      clusterId: ctx.stack.state.clusterId,
      node: target,
      taskQueue: ctx.taskQueue,
      alert: xidAlert(79, { gpu: 0 }),
      policy,
    });
    const result = await handle.result();
    assert.equal(result.outcome, 'automation-blocked');
    const [sent] = ctx.receiver
      .bodies<JsonNotification>('/json')
      .filter((b) => b.runId === handle.signaledRunId);
    assert.equal(sent?.kind, 'breaker-tripped');
    assert.equal(sent?.node, target);
    assert.match(sent?.message ?? '', /automatic quarantine of gpu-node-1 refused .*circuit breaker open/);
    const node = await ctx.stack.kc.makeApiClient(CoreV1Api).readNode({ name: target });
    assert.notEqual(node.spec?.unschedulable, true);
  });
});

describe('notification when a node agent is unreachable', () => {
  const ctx = setup({ breakerThreshold: 1, minHealthyFraction: 0 });

  it('says agent-unreachable, then needs-operator', async () => {
    const core = ctx.stack.kc.makeApiClient(CoreV1Api);
    // A node with no agent polling its task queue: triage can never be scheduled.
    const manifest = simNodeManifest(95, ctx.stack.state.clusterId);
    const name = manifest.metadata!.name!;
    await core.createNode({ body: manifest });
    try {
      const handle = await startOrJoinRemediation(ctx.workers.client, {
        clusterId: ctx.stack.state.clusterId,
        node: name,
        taskQueue: ctx.taskQueue,
        alert: xidAlert(48, { gpu: 0 }),
        policy,
      });
      const kinds = await eventually(
        'agent-unreachable and needs-operator',
        () => {
          const k = ctx.receiver
            .bodies<JsonNotification>('/json')
            .filter((b) => b.runId === handle.signaledRunId)
            .map((b) => b.kind);
          return Promise.resolve(k.includes('needs-operator') ? k : undefined);
        },
        60_000,
      );
      assert.deepEqual(kinds, ['agent-unreachable', 'needs-operator']);
      assert.equal((await handle.query(statusQuery)).class, 'needs-operator');
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'erin', reason: 'decommissioned' }] });
      // A reject holds the node (the run stays open) until an operator releases it; this node goes.
      await eventually('held by the reject', async () =>
        (await handle.query(statusQuery)).actions.includes('release') ? true : undefined,
      );
      await handle.terminate('node decommissioned');
    } finally {
      await core.deleteNode({ name });
    }
  });
});
