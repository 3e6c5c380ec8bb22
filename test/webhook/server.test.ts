import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWebhookMetrics } from '../../src/webhook/metrics.js';
import { startWebhookServer, UNAVAILABLE_MESSAGE, type AlertOutcome } from '../../src/webhook/server.js';
import { AUTH, FakeNodes, FakeStarter, harness, node, post, rules, TOKEN, xidPayload } from './helpers.js';

function outcomes(body: Record<string, unknown>): AlertOutcome[] {
  return body.alerts as AlertOutcome[];
}

describe('webhook: alerts to workflows (fakes)', () => {
  it('a firing alert starts the node remediation with the rule policy; the answer names the workflow', async () => {
    const { app, starter } = await harness();
    const res = await post(app, xidPayload('gpu-node-2'));
    assert.equal(res.status, 202);
    assert.deepEqual(res.body.workflowIds, ['remediation/fmunit/gpu-node-2']);
    assert.equal(res.body.caller, 'alertmanager');
    assert.equal(outcomes(res.body)[0]?.result, 'started');
    assert.equal(starter.started.length, 1);
    const call = starter.started[0]!;
    assert.equal(call.node, 'gpu-node-2');
    assert.equal(call.taskQueue, 'fleetmedic');
    assert.deepEqual(call.policy, { autoReset: false, diagLevel: 1 });
    assert.equal(call.alert.xid, 79);
    assert.equal(call.alert.gpu, 3);
    assert.equal(call.alert.episodeKey, '3b1f0c9d2e4a5b6c@2026-03-01T12:42:15.123456789Z');
    assert.match(call.alert.source, /alertmanager:gpu-remediator via webhook \(caller alertmanager\)/);
  });

  it('repeated alerts for a node join the same workflow', async () => {
    const { app } = await harness();
    const first = await post(app, xidPayload('gpu-node-2'));
    const second = await post(app, xidPayload('gpu-node-2', { gpu: '5' }));
    assert.deepEqual(second.body.workflowIds, first.body.workflowIds);
    assert.equal(outcomes(second.body)[0]?.result, 'joined');
    assert.equal(outcomes(second.body)[0]?.runId, outcomes(first.body)[0]?.runId);
  });

  it('identical alerts in flight at once share one Temporal call, and all are answered after it', async () => {
    const starter = new FakeStarter();
    starter.delayMs = 50;
    const { app } = await harness({ starter });
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(app, xidPayload('gpu-node-3'))));
    assert.ok(answers.every((a) => a.status === 202));
    assert.equal(starter.started.length, 1);
  });

  it('an identical alert Temporal acknowledged moments ago is answered from that acknowledgement', async () => {
    let now = 1_000_000;
    const { app, starter } = await harness({ clock: () => now, dedupeWindowMs: 30_000 });
    const first = await post(app, xidPayload('gpu-node-2'));
    now += 14_000; // within half the window: always deduplicated
    const again = await post(app, xidPayload('gpu-node-2'));
    assert.equal(starter.started.length, 1);
    assert.deepEqual(
      [
        outcomes(again.body)[0]?.result,
        outcomes(again.body)[0]?.deduplicated,
        outcomes(again.body)[0]?.runId,
      ],
      ['joined', true, outcomes(first.body)[0]?.runId],
    );
    now += 17_000; // past the whole window: Temporal is asked again
    const later = await post(app, xidPayload('gpu-node-2'));
    assert.equal(starter.started.length, 2);
    assert.equal(outcomes(later.body)[0]?.deduplicated, undefined);
    const off = await harness({ dedupeWindowMs: 0 });
    await post(off.app, xidPayload('gpu-node-2'));
    await post(off.app, xidPayload('gpu-node-2'));
    assert.equal(off.starter.started.length, 2);
  });

  it('a resolved alert is recorded in the running remediation, and ignored when none runs', async () => {
    const { app, starter } = await harness();
    const resolved = xidPayload('gpu-node-1');
    resolved.alerts[0]!.status = 'resolved';
    const none = await post(app, resolved);
    assert.equal(none.status, 202);
    assert.equal(outcomes(none.body)[0]?.code, 'no-remediation-running');
    assert.match(outcomes(none.body)[0]?.reason ?? '', /no remediation of gpu-node-1 is running/);
    await post(app, xidPayload('gpu-node-1'));
    const recorded = await post(app, resolved);
    assert.equal(outcomes(recorded.body)[0]?.result, 'resolved-recorded');
    assert.equal(starter.resolved.length, 2);
    assert.equal(starter.started.length, 1, 'a resolved alert started a workflow');
  });

  it('a mixed group: each alert gets its own outcome, in payload order', async () => {
    const { app } = await harness();
    const body = xidPayload('gpu-node-1');
    body.alerts.push(
      { ...body.alerts[0]!, labels: { alertname: 'GpuXidCritical', Hostname: 'gpu-node-4', xid: '79' } },
      { ...body.alerts[0]!, labels: { alertname: 'DiskFull', Hostname: 'gpu-node-2' } },
      { ...body.alerts[0]!, labels: { alertname: 'GpuXidCritical', instance: 'x' } },
      { ...body.alerts[0]!, labels: { alertname: 'GpuXidCritical', Hostname: 'gpu-node-9', xid: '79' } },
    );
    const res = await post(app, body);
    assert.equal(res.status, 202);
    assert.deepEqual(
      outcomes(res.body).map((o) => [o.index, o.result, o.code]),
      [
        [0, 'started', undefined],
        [1, 'ignored', 'opted-out'],
        [2, 'ignored', 'no-rule'],
        [3, 'rejected', 'invalid'],
        [4, 'ignored', 'node-not-found'],
      ],
    );
    assert.equal((res.body.ignored as unknown[]).length, 4);
  });

  it('reports alerts Alertmanager truncated from a notification (max_alerts), which it never saw', async () => {
    const { app } = await harness();
    const body = { ...xidPayload('gpu-node-2'), truncatedAlerts: 3 };
    const res = await post(app, body);
    assert.equal(res.status, 202);
    assert.equal(res.body.truncatedAlerts, 3);
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    assert.match(m.body, /fleetmedic_webhook_alerts_total\{result="truncated",format="alertmanager"\} 3/);
  });

  it('shadow mode records what would happen and acts on nothing', async () => {
    const { app, starter } = await harness({
      rules: rules({
        mode: 'shadow',
        rules: [{ name: 'all', match: { alertname: 'GpuXidCritical' }, action: 'remediate' }],
      }),
    });
    const res = await post(app, xidPayload('gpu-node-2'));
    assert.equal(res.status, 202);
    assert.equal(starter.calls, 0);
    assert.deepEqual(res.body.workflowIds, []);
    assert.equal(outcomes(res.body)[0]?.result, 'shadow');
    assert.match(
      outcomes(res.body)[0]?.reason ?? '',
      /shadow mode: would start-or-join remediation\/fmunit\/gpu-node-2/,
    );
  });

  it('the rollout node selector and the opt-out annotation keep nodes out', async () => {
    const nodes = new FakeNodes();
    nodes.nodes.set('gpu-node-1', node('gpu-node-1', { pool: 'a100' }));
    const { app, starter } = await harness({
      nodes,
      rules: rules({
        rollout: { nodeSelector: { matchLabels: { pool: 'h100' } } },
        rules: [{ name: 'all', match: { alertname: 'GpuXidCritical' }, action: 'remediate' }],
      }),
    });
    const a100 = await post(app, xidPayload('gpu-node-1'));
    assert.equal(outcomes(a100.body)[0]?.code, 'not-selected');
    const optedOut = await post(app, xidPayload('gpu-node-4'));
    assert.equal(outcomes(optedOut.body)[0]?.code, 'opted-out');
    assert.equal(starter.calls, 0);
    const selected = await post(app, xidPayload('gpu-node-2'));
    assert.equal(outcomes(selected.body)[0]?.result, 'started');
  });

  it('dry-run (HTTP) answers what the payload would do and starts nothing', async () => {
    const { app, starter } = await harness();
    const res = await post(app, xidPayload('gpu-node-2'), { url: '/v1/alerts/alertmanager?dryRun=true' });
    assert.equal(res.status, 200);
    assert.equal(res.body.dryRun, true);
    const [plan] = res.body.alerts as { action: string; workflowId: string; rule: string }[];
    assert.deepEqual(
      [plan?.action, plan?.workflowId, plan?.rule],
      ['start-or-join', 'remediation/fmunit/gpu-node-2', 'gpu-faults'],
    );
    assert.equal(starter.calls, 0);
  });

  it('the generic form starts remediations the same way', async () => {
    const { app, starter } = await harness();
    const res = await post(
      app,
      {
        source: 'my-monitor',
        alerts: [{ alertName: 'GpuXidError', node: 'gpu-node-3', xid: 48, gpu: 1, episodeKey: 'e1' }],
      },
      { url: '/v1/alerts' },
    );
    assert.equal(res.status, 202);
    assert.equal(outcomes(res.body)[0]?.result, 'started');
    assert.equal(starter.started[0]?.alert.episodeKey, 'e1');
    assert.match(starter.started[0]?.alert.source ?? '', /^generic:my-monitor/);
  });

  it('answers 503 (with Retry-After) when Temporal does not acknowledge, so Alertmanager retries', async () => {
    const starter = new FakeStarter();
    starter.fail = new Error('14 UNAVAILABLE: connection refused');
    const { app } = await harness({ starter });
    const res = await post(app, xidPayload('gpu-node-2'));
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '5');
    // The details (which call, what error) are logged under the request ID, not answered.
    assert.deepEqual(res.body, { error: UNAVAILABLE_MESSAGE, requestId: res.headers['x-request-id'] });
  });

  it('answers 503 when the node cannot be read, and starts nothing (fail safe: opt-out unchecked)', async () => {
    const nodes = new FakeNodes(new Map([['gpu-node-2', new Error('connect ECONNREFUSED')]]));
    const { app, starter } = await harness({ nodes });
    const res = await post(app, xidPayload('gpu-node-2'));
    assert.equal(res.status, 503);
    assert.equal(res.body.error, UNAVAILABLE_MESSAGE);
    assert.doesNotMatch(JSON.stringify(res.body), /ECONNREFUSED|gpu-node-2/);
    assert.equal(starter.calls, 0);
  });

  it('serves /healthz and Prometheus /metrics without credentials', async () => {
    const metrics = createWebhookMetrics({ defaultMetrics: true });
    const { app } = await harness({ metrics });
    await post(app, xidPayload('gpu-node-2'));
    await post(app, xidPayload('gpu-node-2', { gpu: '1' }));
    await post(app, xidPayload('gpu-node-2'));
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    assert.deepEqual([health.statusCode, health.json()], [200, { status: 'ok' }]);
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(m.statusCode, 200);
    assert.match(String(m.headers['content-type']), /text\/plain/);
    assert.match(m.body, /fleetmedic_webhook_alerts_total\{result="started",format="alertmanager"\} 1/);
    assert.match(m.body, /fleetmedic_webhook_workflows_total\{action="joined"\} 1/);
    assert.match(m.body, /fleetmedic_webhook_alerts_deduplicated_total 1/);
    assert.match(
      m.body,
      /fleetmedic_webhook_request_duration_seconds_count\{route="\/v1\/alerts\/alertmanager",status="202"\} 3/,
    );
    assert.match(m.body, /process_resident_memory_bytes/);
  });

  it('listens on 127.0.0.1 by default and refuses a public address without credentials', async () => {
    const deps = {
      clusterId: 'fmunit',
      taskQueue: 'fleetmedic',
      rules: rules(),
      starter: new FakeStarter(),
      nodes: new FakeNodes(),
      auth: AUTH,
      metrics: createWebhookMetrics({ defaultMetrics: false }),
    };
    const running = await startWebhookServer(deps);
    try {
      assert.match(running.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${running.url}/v1/alerts/alertmanager`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(xidPayload('gpu-node-2')),
      });
      assert.equal(res.status, 202);
    } finally {
      await running.close();
    }
    await assert.rejects(
      startWebhookServer({ ...deps, host: '0.0.0.0', auth: { tokens: [], hmacKeys: [] } }),
      /not a loopback address: a bearer token/,
    );
  });
});
