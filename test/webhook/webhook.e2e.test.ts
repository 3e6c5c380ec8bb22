import { Client, Connection } from '@temporalio/client';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryGpuStateStore } from '../../src/sim/gpu-state.js';
import { pickFreePorts } from '../../src/stack/processes.js';
import { approveUpdate, statusQuery } from '../../src/contracts/remediation.js';
import { createWebhookMetrics } from '../../src/webhook/metrics.js';
import { CachedNodeLookup, KubernetesNodeLookup } from '../../src/webhook/node-lookup.js';
import { parseRules } from '../../src/webhook/rules.js';
import {
  startWebhookServer,
  UNAVAILABLE_MESSAGE,
  type AlertOutcome,
  type RunningWebhook,
} from '../../src/webhook/server.js';
import { TemporalRemediationStarter } from '../../src/webhook/starter.js';
import { eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';
import { TOKEN, xidPayload } from './helpers.js';

installQuietRuntime();

// The webhook in front of the real thing: Temporal dev server, Kubernetes control plane with kwok
// nodes, the control worker and simulated node agents. The SYNTHETIC Alertmanager fixture, pointed at
// a simulated node, must start one remediation; the same alert again must join it.
describe('webhook end to end (embedded stack)', () => {
  let stack: TestStack;
  let remediationWorkers: RemediationWorkers | undefined;
  let client: Client;
  let webhook: RunningWebhook;
  const taskQueue = `fleetmedic-webhook-e2e-${process.pid}`;
  const target = 'gpu-node-2';

  before(async () => {
    stack = await useTestStack();
    remediationWorkers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus: new MemoryGpuStateStore(),
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0.25, maxConcurrentDrains: 2 },
    });
    client = remediationWorkers.client;
    const clusterId = stack.state.clusterId;
    webhook = await startWebhookServer({
      clusterId,
      taskQueue,
      rules: parseRules({
        rules: [
          {
            name: 'gpu-faults',
            match: { alertname: 'GpuXidCritical' },
            action: 'remediate',
            policy: {
              approvalReminderMs: 3000,
              budgetRetryMs: 500,
              agentScheduleToStartMs: 15_000,
              diagLevel: 1,
              drainDeadlineSeconds: 120,
            },
          },
        ],
      }),
      starter: new TemporalRemediationStarter(client),
      nodes: new CachedNodeLookup(new KubernetesNodeLookup(stack.kc)),
      auth: { tokens: [{ caller: 'alertmanager', token: TOKEN }], hmacKeys: [] },
      metrics: createWebhookMetrics({ defaultMetrics: false }),
    });
  });

  after(async () => {
    await webhook?.close();
    await remediationWorkers?.stop();
  });

  async function send(url: string, body: unknown) {
    const res = await fetch(`${url}/v1/alerts/alertmanager`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    return {
      status: res.status,
      body: (await res.json()) as { workflowIds: string[]; alerts: AlertOutcome[]; error?: string },
    };
  }

  it('the SYNTHETIC Alertmanager alert starts one remediation; the same alert again joins it', async () => {
    const testStart = new Date(Date.now() - 1000).toISOString();
    const payload = xidPayload(target);
    // A fresh episode, so a reused stack's memory of earlier runs does not make this a duplicate.
    payload.alerts[0]!.fingerprint = `e2e${Date.now().toString(16)}`;
    payload.alerts[0]!.startsAt = new Date().toISOString();

    const first = await send(webhook.url, payload);
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const workflowId = `remediation/${stack.state.clusterId}/${target}`;
    assert.deepEqual(first.body.workflowIds, [workflowId]);
    assert.equal(first.body.alerts[0]?.result, 'started');
    const handle = client.workflow.getHandle(workflowId);
    const status = await eventually('the remediation answers its status query', async () => {
      const s = await handle.query(statusQuery);
      return s.alerts === 1 ? s : undefined;
    });
    assert.equal(status.node, target);
    assert.match(status.reasons[0] ?? '', /XID 79/);

    // The same alert again (Alertmanager's repeat): joined, answered from Temporal's acknowledgement.
    const second = await send(webhook.url, payload);
    assert.equal(second.status, 202);
    assert.deepEqual(second.body.workflowIds, [workflowId]);
    assert.equal(second.body.alerts[0]?.result, 'joined');
    assert.equal(second.body.alerts[0]?.runId, first.body.alerts[0]?.runId);
    // The same fault seen on a second GPU: a new signal, through Temporal, into the same run.
    const otherGpu = xidPayload(target, { gpu: '5' });
    otherGpu.alerts[0]!.fingerprint = `${payload.alerts[0]!.fingerprint}g5`;
    otherGpu.alerts[0]!.startsAt = payload.alerts[0]!.startsAt;
    const third = await send(webhook.url, otherGpu);
    assert.equal(third.status, 202);
    assert.deepEqual(
      [
        third.body.workflowIds,
        third.body.alerts[0]?.result,
        third.body.alerts[0]?.deduplicated,
        third.body.alerts[0]?.runId,
      ],
      [[workflowId], 'joined', undefined, first.body.alerts[0]?.runId],
    );
    await eventually('the second alert recorded in the same run', async () =>
      (await handle.query(statusQuery)).alerts === 2 ? true : undefined,
    );
    const runs = await eventually('visibility lists the run', async () => {
      const found: string[] = [];
      for await (const w of client.workflow.list({
        query: `WorkflowId = '${workflowId}' AND StartTime >= '${testStart}'`,
      })) {
        found.push(w.runId);
      }
      return found.length > 0 ? found : undefined;
    });
    assert.deepEqual(runs, [first.body.alerts[0]?.runId], 'more than one run for the node');

    // Leave the node as we found it: approve the reboot the XID 79 calls for, validate, release.
    await eventually(
      'awaiting approval',
      async () => ((await handle.query(statusQuery)).phase === 'awaiting-approval' ? true : undefined),
      60_000,
    );
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'webhook-e2e' }] });
    const result = (await handle.result()) as { outcome: string };
    assert.equal(result.outcome, 'returned-to-service');
  });

  it('answers 503 when Temporal cannot be reached, so Alertmanager retries', async () => {
    const [closedPort] = await pickFreePorts(1);
    const unreachable = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${closedPort}` }) });
    const down = await startWebhookServer({
      clusterId: stack.state.clusterId,
      taskQueue,
      rules: parseRules({
        rules: [{ name: 'all', match: { alertname: 'GpuXidCritical' }, action: 'remediate' }],
      }),
      starter: new TemporalRemediationStarter(unreachable, 1500),
      nodes: new KubernetesNodeLookup(stack.kc),
      auth: { tokens: [{ caller: 'alertmanager', token: TOKEN }], hmacKeys: [] },
      metrics: createWebhookMetrics({ defaultMetrics: false }),
    });
    try {
      const started = Date.now();
      const res = await send(down.url, xidPayload('gpu-node-3'));
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.error, UNAVAILABLE_MESSAGE);
      assert.ok(Date.now() - started < 10_000, 'the 503 took too long');
    } finally {
      await down.close();
      await unreachable.connection.close().catch(() => {});
    }
  });
});
