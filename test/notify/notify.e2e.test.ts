import type { WorkflowHandleWithSignaledRunId } from '@temporalio/client';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import type { AlertSignal, RemediationPolicy } from '../../src/domain/remediation-plan.js';
import { parseNotifyConfig } from '../../src/notify/config.js';
import type { JsonNotification } from '../../src/notify/message.js';
import { MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { approveUpdate, statusQuery } from '../../src/contracts/remediation.js';
import type { gpuRemediationWorkflow } from '../../src/workflows/remediation/workflow.js';
import { clients, eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startReceiver } from './receiver.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';
import { clearRemediationHistory } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';

installQuietRuntime();

const basePolicy: Partial<RemediationPolicy> = { ...FAST_POLICY };

// Notifications through the real path: the remediation workflow on the test stack calls the notify
// activity of a control worker whose sinks POST to a receiver on 127.0.0.1.
describe('notifications end to end', () => {
  let stack: TestStack;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let workers: RemediationWorkers | undefined;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-notify-${process.pid}`;
  let gate: Promise<void> = Promise.resolve();

  before(async () => {
    stack = await useTestStack();
    // /down and /gated always answer 503: sinks that keep failing; /gated hangs while `gate` is closed.
    receiver = await startReceiver({
      respond: (path) => (path === '/down' || path === '/gated' ? 503 : 200),
      hold: (path) => (path === '/gated' ? gate : undefined),
    });
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus,
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 2 },
      notify: parseNotifyConfig({
        sinks: [
          {
            name: 'json',
            type: 'json',
            url: `${receiver.url}/json`,
            headers: { Authorization: 'Bearer t0k' },
          },
          { name: 'slack', type: 'slack', url: `${receiver.url}/slack` },
          {
            name: 'down',
            type: 'json',
            url: `${receiver.url}/down`,
            events: ['needs-operator'],
            timeoutMs: 2000,
          },
          {
            name: 'gated',
            type: 'json',
            url: `${receiver.url}/gated`,
            events: ['needs-operator'],
            timeoutMs: 60_000,
          },
        ],
      }),
    });
    await clearRemediationHistory(stack.kc, workers.nodes);
  });

  after(async () => {
    await workers?.stop();
    await receiver?.close();
  });

  function start(node: string, a: AlertSignal, policy: Partial<RemediationPolicy>) {
    return startOrJoinRemediation(workers!.client, {
      clusterId: stack.state.clusterId,
      node,
      taskQueue,
      alert: a,
      policy: { ...basePolicy, ...policy },
    });
  }

  const forNode = (node: string, runId: string) =>
    receiver.bodies<JsonNotification>('/json').filter((b) => b.node === node && b.runId === runId);

  const runIdOf = (handle: WorkflowHandleWithSignaledRunId<typeof gpuRemediationWorkflow>) =>
    handle.signaledRunId;

  it('tells the sinks a node needs an operator, reminds while it waits, escalates, and says when it is back', async () => {
    const target = 'gpu-node-2';
    await gpus.set(target, withFault(await gpus.get(target), { gpu: 3, xid: 79 }));
    const handle = await start(target, xidAlert(79), { approvalReminderMs: 1_000, escalateAfterMs: 2_500 });
    const runId = runIdOf(handle);

    // Wait for an escalation and one reminder after it, all while the workflow waits for approval.
    const seen = await eventually(
      'needs-operator, reminders, escalated and an escalated reminder',
      () => {
        const kinds = forNode(target, runId).map((b) => b.kind);
        const esc = kinds.indexOf('escalated');
        return Promise.resolve(
          esc > 0 && kinds.slice(esc + 1).includes('reminder') ? forNode(target, runId) : undefined,
        );
      },
      60_000,
    );
    assert.equal((await handle.query(statusQuery)).phase, 'awaiting-approval');
    const [first, ...rest] = seen;
    assert.equal(first!.kind, 'needs-operator');
    assert.equal(first!.version, 1);
    assert.equal(first!.cluster, stack.state.clusterId);
    assert.equal(first!.workflowId, handle.workflowId);
    assert.equal(first!.phase, 'awaiting-approval');
    assert.equal(first!.class, 'reboot-node');
    assert.equal(first!.reminder, 0);
    assert.equal(first!.escalated, false);
    assert.match(first!.message, /gpu-node-2 needs an operator: approve a reboot/);
    assert.equal(
      first!.url,
      `${stack.state.temporal.uiUrl.replace(/\/$/, '')}/namespaces/default/workflows/${encodeURIComponent(handle.workflowId)}/${runId}/history`,
    );
    // Reminders count up; the first at or after escalateAfterMs is the escalation, later ones say escalated.
    assert.deepEqual(
      rest.map((b) => b.reminder),
      rest.map((_, i) => i + 1),
    );
    const escAt = rest.findIndex((b) => b.kind === 'escalated');
    assert.ok(rest.slice(0, escAt).every((b) => b.kind === 'reminder' && !b.escalated));
    assert.ok(rest.slice(escAt).every((b) => b.escalated));
    assert.match(rest[escAt]!.message, /ESCALATED/);
    assert.equal(new Set(seen.map((b) => b.id)).size, seen.length, 'notification IDs repeat');
    assert.equal(receiver.received.find((r) => r.path === '/json')!.headers.authorization, 'Bearer t0k');

    // The Slack sink got the same story as mrkdwn text.
    const slack = receiver
      .bodies<{ text: string }>('/slack')
      .map((b) => b.text)
      .filter((t) => t.includes(`\`${target}\``));
    assert.ok(slack.some((t) => /:warning: needs an operator/.test(t) && t.includes(handle.workflowId)));
    assert.ok(slack.some((t) => /ESCALATED: still waiting/.test(t)));

    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', reason: 'reboot ok' }] });
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service');
    const last = forNode(target, runId).at(-1)!;
    assert.equal(last.kind, 'returned-to-service');
    assert.match(last.message, /back in service/);

    // The sink that keeps failing: each notification it wants was tried 5 times, then given up and
    // recorded; the remediation went on regardless.
    const downTries = receiver.bodies<JsonNotification>('/down').filter((b) => b.runId === runId);
    assert.deepEqual(
      downTries.map((b) => b.kind),
      ['needs-operator', 'needs-operator', 'needs-operator', 'needs-operator', 'needs-operator'],
    );
    assert.ok(
      result.reasons.some((r) =>
        /notification needs-operator not delivered: .*sink down: .*answered 503/.test(r),
      ),
      result.reasons.join('\n'),
    );
    // The healthy sinks got that notification once: retries only go to the sink that failed.
    assert.equal(forNode(target, runId).filter((b) => b.kind === 'needs-operator').length, 1);
    assert.notEqual((await clients(stack.kc).core.readNode({ name: target })).spec?.unschedulable, true);
  });

  it('a failing sink does not hold the remediation up: it is repaired and released while the sink hangs', async () => {
    const target = 'gpu-node-4';
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    try {
      await gpus.set(target, withFault(await gpus.get(target), { gpu: 1, xid: 79 }));
      const handle = await start(target, xidAlert(79, { gpu: 1 }), { approvalReminderMs: 600_000 });
      const runId = runIdOf(handle);
      await eventually(
        'awaiting approval',
        async () => ((await handle.query(statusQuery)).phase === 'awaiting-approval' ? true : undefined),
        60_000,
      );
      // The needs-operator notification hangs on /gated (it answers only when the gate opens) ...
      await eventually('the hanging sink called', () =>
        Promise.resolve(
          receiver.bodies<JsonNotification>('/gated').some((b) => b.runId === runId) ? true : undefined,
        ),
      );
      // ... yet the approval is taken, the node repaired, validated and released.
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
      await eventually(
        'the node back in service',
        async () =>
          (await clients(stack.kc).core.readNode({ name: target })).spec?.unschedulable !== true &&
          (await handle.query(statusQuery)).phase === 'done'
            ? true
            : undefined,
        60_000,
      );
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      assert.ok(
        pending.some((a) => a.activityType?.name === 'notify'),
        'the notification should still be pending while the remediation is done',
      );
      open();
      // The run closes once the notification gave up (bounded retries), with the failure recorded.
      const result = await handle.result();
      assert.equal(result.outcome, 'returned-to-service');
      assert.ok(
        result.reasons.some((r) => /notification needs-operator not delivered: .*sink gated/.test(r)),
        result.reasons.join('\n'),
      );
      assert.equal(receiver.bodies<JsonNotification>('/gated').filter((b) => b.runId === runId).length, 5);
    } finally {
      open();
      gate = Promise.resolve();
    }
  });
});
