import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { OperatorClient, type RemediationRow } from '../../src/client/operator-client.js';
import type { RemediationPolicy } from '../../src/domain/remediation-plan.js';
import { healthyGpuState, MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { KubernetesNodeLookup } from '../../src/webhook/node-lookup.js';
import { parseRules } from '../../src/webhook/rules.js';
import { buildWebhookServer, UNAVAILABLE_MESSAGE, type WebhookApp } from '../../src/webhook/server.js';
import { TemporalRemediationStarter } from '../../src/webhook/starter.js';
import { createWebhookMetrics } from '../../src/webhook/metrics.js';
import { fleetBudgetState, fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { remediationWorkflowId } from '../../src/contracts/ids.js';
import { statusQuery, type RemediationStatus } from '../../src/contracts/remediation.js';
import type { gpuRemediationWorkflow } from '../../src/workflows/remediation/workflow.js';
import {
  clearRemediationHistory,
  clients,
  deployment,
  eventually,
  isReady,
  liftQuarantine,
  livePods,
  tempNamespace,
} from '../helpers/k8s.js';
import { stackCli } from '../helpers/cli.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';

installQuietRuntime();

const TOKEN = 'operator-test-token-0123456789';
/** A token whose line names no scope: alerts only. */
const ALERTS_TOKEN = 'alerts-only-token-0123456789';
const CALLER = 'chatops-alice';
const RULES = parseRules({
  rules: [{ name: 'gpu', match: { alertname: 'GpuXidError' }, action: 'remediate' }],
});

const policy: Partial<RemediationPolicy> = { ...FAST_POLICY, approvalReminderMs: 60_000 };

/** The identities recorded in the history's accepted updates, as [update name, by, reason]. */
async function acceptedUpdates(handle: WorkflowHandle): Promise<[string, string, string | undefined][]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const request = e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest;
    const payload = request?.input?.args?.payloads?.[0];
    if (!request || !payload) return [];
    const arg = defaultPayloadConverter.fromPayload<{ by: string; reason?: string }>(payload);
    return [[request.input?.name ?? '', arg.by, arg.reason] as [string, string, string | undefined]];
  });
}

// Operator interfaces against the embedded stack: the CLI (spawned as an operator runs it) and the
// webhook's HTTP routes (same auth as the alert routes), both acting through Temporal updates on real
// remediation and fleet budget workflows, with the control worker and simulated node agents running.
describe('operator CLI and HTTP actions', () => {
  let stack: TestStack;
  let workers: RemediationWorkers | undefined;
  let client: Client;
  let app: WebhookApp;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-operator-${process.pid}`;
  const nodes = ['gpu-node-2', 'gpu-node-3'];

  const cli = stackCli(() => stack, taskQueue);

  const http = async (
    method: 'GET' | 'POST',
    url: string,
    options: { body?: unknown; token?: string | null; on?: WebhookApp } = {},
  ) => {
    const token = options.token === undefined ? TOKEN : options.token;
    const res = await (options.on ?? app).inject({
      method,
      url,
      headers: {
        ...(token !== null && { authorization: `Bearer ${token}` }),
        ...(options.body !== undefined && { 'content-type': 'application/json' }),
      },
      ...(options.body !== undefined && { payload: JSON.stringify(options.body) }),
    });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: JSON.parse(res.body) as Record<string, unknown>,
    };
  };

  async function cleanNodes() {
    for (const name of nodes) {
      await liftQuarantine(stack.kc, name).catch(() => {});
      await clearRemediationHistory(stack.kc, [name]);
      await gpus.set(name, healthyGpuState(name));
    }
  }

  async function budgetPaused(): Promise<boolean> {
    return (
      await client.workflow.getHandle(fleetBudgetWorkflowId(stack.state.clusterId)).query(fleetBudgetState)
    ).paused;
  }

  before(async () => {
    stack = await useTestStack();
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus,
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 1 },
    });
    client = workers.client;
    await cleanNodes();
    app = await buildWebhookServer({
      clusterId: stack.state.clusterId,
      taskQueue,
      rules: RULES,
      starter: new TemporalRemediationStarter(client),
      nodes: new KubernetesNodeLookup(stack.kc),
      auth: {
        tokens: [
          { caller: CALLER, token: TOKEN, scopes: ['operator'] },
          { caller: 'alertmanager', token: ALERTS_TOKEN },
        ],
        hmacKeys: [],
      },
      metrics: createWebhookMetrics({ defaultMetrics: false }),
      operator: new OperatorClient(client, { clusterId: stack.state.clusterId, taskQueue }),
    });
  });

  after(async () => {
    await app?.close();
    // A failed test must not leave its remediations running (holding the drain slot, the nodes
    // quarantined) for the next test file on the shared stack.
    for (const name of nodes) {
      await client?.workflow
        .getHandle(remediationWorkflowId(stack.state.clusterId, name))
        .terminate('operator test finished')
        .catch(() => {});
    }
    await workers?.stop();
    if (stack) await cleanNodes();
  });

  it('pause and resume from the CLI and over HTTP change the fleet budget; a body `by` is refused', async () => {
    const budgetId = fleetBudgetWorkflowId(stack.state.clusterId);
    // No budget yet: pause starts it (update-with-start) and pauses it in one step.
    await client.workflow
      .getHandle(budgetId)
      .terminate('operator test starts without a budget')
      .catch(() => {});

    const paused = await cli('pause', '--by', 'alice', '--reason', 'driver rollout');
    assert.equal(paused.exitCode, 0, paused.stderr);
    assert.match(paused.stdout, /automation paused by alice \(driver rollout\)/);
    assert.match(paused.stdout, /automatic quarantine and new drains are paused/);
    assert.match(paused.stdout, /running remediations continue/);
    assert.match(paused.stdout, /automation PAUSED/);
    assert.equal(await budgetPaused(), true);

    const status = await cli('status');
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /^stack healthy: cluster /m);
    assert.match(
      status.stdout,
      /fleet budget: 0\/1 drain slot\(s\) in use, breaker closed, automation PAUSED/,
    );

    // The identity comes from the credential: a body naming someone is refused and changes nothing.
    const spoofed = await http('POST', '/v1/automation/resume', { body: { by: 'mallory' } });
    assert.equal(spoofed.status, 400);
    assert.match(String(spoofed.body.error), /body\.by is not accepted.*chatops-alice/);
    assert.equal(await budgetPaused(), true);

    const resumed = await http('POST', '/v1/automation/resume', { body: { reason: 'rollout done' } });
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.paused, false);
    assert.equal(resumed.body.by, CALLER);
    assert.equal(await budgetPaused(), false);

    const unauthenticated = await http('POST', '/v1/automation/pause', { token: null });
    assert.equal(unauthenticated.status, 401);
    const wrong = await http('POST', '/v1/automation/pause', { token: 'not-the-token-0123456789' });
    assert.equal(wrong.status, 401);
    assert.equal(await budgetPaused(), false);
    const reset = await http('POST', '/v1/automation/reset-breaker', { body: { reason: 'fleet checked' } });
    assert.equal(reset.status, 200, JSON.stringify(reset.body));
    assert.deepEqual((reset.body.budget as { breaker: unknown }).breaker, { state: 'closed' });

    assert.deepEqual(
      (await acceptedUpdates(client.workflow.getHandle(budgetId))).map(([name, by, reason]) => [
        name,
        by,
        reason,
      ]),
      [
        ['pauseAutomation', 'alice', 'driver rollout'],
        ['resumeAutomation', CALLER, 'rollout done'],
        ['resetFleetBreaker', CALLER, 'fleet checked'],
      ],
    );
    // Later remediations start the budget with the workers' limits.
    await client.workflow.getHandle(budgetId).terminate('operator test: pause scenario done');
  });

  it('approve is refused with the validator message while not waiting, accepted while waiting; reject holds, release lifts; list and status show each', async () => {
    const [first, second] = nodes as [string, string];
    type Handle = WorkflowHandle<typeof gpuRemediationWorkflow>;
    const start = (node: string) =>
      startOrJoinRemediation(client, {
        clusterId: stack.state.clusterId,
        node,
        taskQueue,
        alert: xidAlert(79),
        // The blocked drain outlasts the CLI calls below on a slow machine: no deadline may end it first.
        policy: { ...policy, drainDeadlineSeconds: 600 },
      });
    const until = (handle: Handle, what: string, test: (s: RemediationStatus) => boolean) =>
      eventually(
        `${handle.workflowId}: ${what}`,
        async () => {
          const s = await handle.query(statusQuery);
          return test(s) ? s : undefined;
        },
        60_000,
      );

    // A pod on the second node that no eviction may take (a PDB with maxUnavailable 0): its drain
    // runs until the PDB goes, and meanwhile the run accepts nothing but reject.
    const ns = await tempNamespace(stack.kc, 'fmop');
    const { apps, policy: pdbApi } = clients(stack.kc);
    const blocker = 'operator-blocker';
    const unblock = () =>
      pdbApi.deleteNamespacedPodDisruptionBudget({ name: blocker, namespace: ns.name }).catch(() => {});
    try {
      await apps.createNamespacedDeployment({
        namespace: ns.name,
        body: deployment(blocker, 1, { preferNode: second }),
      });
      await pdbApi.createNamespacedPodDisruptionBudget({
        namespace: ns.name,
        body: {
          metadata: { name: blocker },
          spec: { maxUnavailable: 0, selector: { matchLabels: { app: blocker } } },
        },
      });
      await eventually(
        `${blocker} Ready on ${second}`,
        async () => {
          const pods = await livePods(stack.kc, ns.name, blocker);
          return pods.length === 1 && isReady(pods[0]!) && pods[0]!.spec?.nodeName === second
            ? true
            : undefined;
        },
        60_000,
      );

      await gpus.set(first, withFault(await gpus.get(first), { gpu: 3, xid: 79 }));
      await gpus.set(second, withFault(await gpus.get(second), { gpu: 3, xid: 79 }));
      // The first drains (nothing blocks it), gives the slot back and waits for an operator; the
      // second takes the slot and sits in its blocked drain.
      const h1 = await start(first);
      await until(h1, 'awaiting approval', (s) => s.phase === 'awaiting-approval');
      const h2 = await start(second);
      const draining = await until(h2, 'in its blocked drain', (s) => s.running === 'drain');
      assert.equal(draining.phase, 'draining');
      assert.deepEqual([...draining.actions], ['reject']);

      // Refused with the workflow validator's message, from the CLI and over HTTP.
      const notWaiting = `approve refused: node ${second} is not waiting for approve (phase draining; it accepts reject)`;
      const refusedCli = await cli('approve', second, '--by', 'bob');
      assert.equal(refusedCli.exitCode, 1, refusedCli.stdout);
      assert.equal(refusedCli.stderr.trim(), `fleetmedic: ${notWaiting}`);
      const refusedHttp = await http('POST', `/v1/remediations/${second}/approve`, { body: {} });
      assert.equal(refusedHttp.status, 409, JSON.stringify(refusedHttp.body));
      assert.equal(refusedHttp.body.error, notWaiting);
      // The refusal lists the actions by the names an operator types (markRepaired -> mark-repaired).
      const notRepaired = await http('POST', `/v1/remediations/${second}/mark-repaired`, { body: {} });
      assert.equal(notRepaired.status, 409, JSON.stringify(notRepaired.body));
      assert.equal(
        notRepaired.body.error,
        `mark-repaired refused: node ${second} is not waiting for mark-repaired (phase draining; it accepts reject)`,
      );
      assert.deepEqual(await acceptedUpdates(h2), [], 'a refused update reached the history');

      // Bad input and unknown nodes.
      assert.equal((await http('POST', '/v1/remediations/GPU_Node!/approve', { body: {} })).status, 400);
      // A name no other test file uses: they share the stack, and a closed remediation is not "none".
      const never = `gpu-node-never-${process.pid}`;
      const missing = await http('POST', `/v1/remediations/${never}/approve`);
      assert.equal(missing.status, 404, JSON.stringify(missing.body));
      assert.match(String(missing.body.error), new RegExp(`${never} has no open remediation to approve`));
      assert.equal((await http('GET', `/v1/remediations/${never}`)).status, 404);
      assert.equal((await http('GET', '/v1/remediations?phase=sleeping')).status, 400);
      assert.equal((await http('GET', '/v1/remediations', { token: null })).status, 401);

      // list and status: phase, age, what each waits for and what each accepts.
      const listed = await eventually('both remediations listed with their phases', async () => {
        const res = await http('GET', '/v1/remediations');
        const rows = res.body.remediations as RemediationRow[];
        const a = rows.find((r) => r.node === first);
        const b = rows.find((r) => r.node === second);
        return a?.phase === 'awaiting-approval' && b?.phase === 'draining' ? { a, b, res } : undefined;
      });
      assert.match(listed.a.waitingFor ?? '', /^operator: /);
      assert.deepEqual(listed.a.actions, ['approve', 'reject', 'mark-repaired']);
      assert.ok(listed.a.ageSeconds >= 0 && listed.a.status === 'RUNNING');
      assert.equal(listed.b.waitingFor, null, 'a running drain waits for nothing but itself');
      assert.deepEqual(listed.b.actions, ['reject']);
      // The slot belongs to the drain, not to the run waiting for approval.
      const budget = listed.res.body.budget as { draining: string[]; queued: string[] };
      assert.deepEqual(budget.draining, [second]);
      assert.deepEqual(budget.queued, []);
      const one = await http('GET', `/v1/remediations/${first}`);
      assert.equal(one.status, 200);
      assert.equal((one.body.remediation as RemediationStatus).phase, 'awaiting-approval');
      assert.equal((one.body.remediation as RemediationStatus).class, 'reboot-node');
      assert.deepEqual(one.body.actions, ['approve', 'reject', 'mark-repaired']);

      const table = await cli('list');
      assert.equal(table.exitCode, 0, table.stderr);
      assert.match(table.stdout, /^NODE\s+PHASE\s+OUTCOME\s+AGE\s+WAITING FOR$/m);
      assert.match(
        table.stdout,
        new RegExp(`^${first}\\s+awaiting-approval\\s+-\\s+\\d+(m\\d\\ds|s)\\s+operator: `, 'm'),
      );
      assert.match(table.stdout, new RegExp(`^${second}\\s+draining\\s+-\\s+\\S+\\s+-$`, 'm'));
      const filtered = await cli('list', '--phase', 'draining', '--json');
      assert.deepEqual(
        (JSON.parse(filtered.stdout) as RemediationRow[]).map((r) => r.node),
        [second],
      );
      const overview = await cli('status');
      assert.match(
        overview.stdout,
        new RegExp(
          `fleet budget: 1/1 drain slot\\(s\\) in use \\(${second}\\), breaker closed, automation running`,
        ),
      );
      assert.match(overview.stdout, new RegExp(`^${second}\\s+draining`, 'm'));
      const detail = await cli('status', first);
      assert.equal(detail.exitCode, 0, detail.stderr);
      assert.match(detail.stdout, /^ {2}phase {8}awaiting-approval$/m);
      assert.match(detail.stdout, /^ {2}waiting for {2}operator: /m);
      assert.match(detail.stdout, /^ {2}accepts {6}approve, reject, mark-repaired$/m);
      const shown = await cli('show', first, '--json');
      assert.equal(
        (JSON.parse(shown.stdout) as { remediation: RemediationStatus }).remediation.class,
        'reboot-node',
      );

      // A body `by` does not override the credential's identity: refused, nothing recorded.
      const spoofed = await http('POST', `/v1/remediations/${first}/approve`, { body: { by: 'mallory' } });
      assert.equal(spoofed.status, 400);
      assert.equal((await h1.query(statusQuery)).phase, 'awaiting-approval');

      // Accepted over HTTP: the history records the credential's caller and the reason.
      const approved = await http('POST', `/v1/remediations/${first}/approve`, {
        body: { reason: 'reboot ok' },
      });
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      assert.match(String(approved.body.result), new RegExp(`approve accepted for ${first}`));
      assert.equal(approved.body.by, CALLER);
      const done1 = await h1.result();
      assert.equal(done1.outcome, 'returned-to-service', done1.reasons.join('\n'));
      assert.deepEqual(await acceptedUpdates(h1), [['approve', CALLER, 'reboot ok']]);
      assert.deepEqual(
        done1.decisions.map((d) => [d.action, d.by]),
        [['approve', CALLER]],
      );

      // The PDB goes: the second's drain ends and it waits for approval; rejected from the CLI, it
      // holds the node with the run open, and approve is refused in the names the operator types.
      await unblock();
      await until(h2, 'awaiting approval', (s) => s.phase === 'awaiting-approval');
      const rejected = await cli('reject', second, '--by', 'bob', '--reason', 'RMA');
      assert.equal(rejected.exitCode, 0, rejected.stderr);
      assert.match(rejected.stdout, new RegExp(`reject accepted for ${second}`));
      const held = await until(h2, 'held by the reject', (s) => s.phase === 'quarantined');
      assert.match(held.quarantineReason ?? '', /rejected by bob/);
      const heldRow = await http('GET', `/v1/remediations/${second}`);
      assert.equal(heldRow.body.status, 'RUNNING');
      assert.deepEqual(heldRow.body.actions, ['mark-repaired', 'release']);
      const stillHeld = await cli('approve', second, '--by', 'bob');
      assert.equal(stillHeld.exitCode, 1, stillHeld.stdout);
      assert.equal(
        stillHeld.stderr.trim(),
        `fleetmedic: approve refused: node ${second} is not waiting for approve (phase quarantined; it accepts mark-repaired, release)`,
      );

      // Released over HTTP (the RMA was cancelled): back in service without a repair, by the caller.
      await gpus.set(second, healthyGpuState(second));
      const released = await http('POST', `/v1/remediations/${second}/release`, {
        body: { reason: 'RMA cancelled' },
      });
      assert.equal(released.status, 200, JSON.stringify(released.body));
      assert.equal(released.body.by, CALLER);
      const done2 = await h2.result();
      assert.equal(done2.outcome, 'released-by-operator', done2.reasons.join('\n'));
      assert.deepEqual(await acceptedUpdates(h2), [
        ['reject', 'bob', 'RMA'],
        ['release', CALLER, 'RMA cancelled'],
      ]);
      const node2 = await clients(stack.kc).core.readNode({ name: second });
      assert.notEqual(node2.spec?.unschedulable, true, 'the released node is still cordoned');

      // Closed remediations: refused (ended, with what to do), listed with --all from their search attributes.
      const late = await http('POST', `/v1/remediations/${first}/reject`, { body: { reason: 'too late' } });
      assert.equal(late.status, 409);
      assert.match(
        String(late.body.error),
        new RegExp(
          `reject refused: node ${first} has no open remediation to reject: ` +
            'its last one has ended \\(completed, outcome returned-to-service;',
        ),
      );
      const all = await eventually('closed remediations listed', async () => {
        const res = await cli('list', '--all', '--node', first, '--json');
        const rows = JSON.parse(res.stdout) as RemediationRow[];
        return rows.some((r) => r.runId === h1.signaledRunId && r.status === 'COMPLETED') ? rows : undefined;
      });
      const closed = all.find((r) => r.runId === h1.signaledRunId)!;
      assert.equal(closed.outcome, 'returned-to-service');
      assert.equal(closed.phase, 'done');
      assert.equal(closed.waitingFor, null);
      assert.deepEqual(closed.actions, []);
      const closedHttp = await eventually('the released remediation listed over HTTP', async () => {
        const res = await http('GET', `/v1/remediations?all=true&node=${second}`);
        const rows = res.body.remediations as RemediationRow[];
        return rows.find((r) => r.runId === h2.signaledRunId && r.status === 'COMPLETED');
      });
      assert.equal(closedHttp.outcome, 'released-by-operator');
      const openOnly = await cli('list', '--node', first);
      assert.equal(openOnly.stdout, 'no open remediations');
    } finally {
      await unblock();
      await ns.remove();
    }
  });

  it('refuses operator routes to a credential without the operator scope, and changes nothing', async () => {
    const before = await budgetPaused();
    for (const [method, url] of [
      ['POST', '/v1/automation/pause'],
      ['POST', '/v1/automation/resume'],
      ['POST', '/v1/automation/reset-breaker'],
      ['POST', '/v1/remediations/gpu-node-2/approve'],
      ['POST', '/v1/remediations/gpu-node-2/reject'],
      ['POST', '/v1/remediations/gpu-node-2/mark-repaired'],
      ['GET', '/v1/remediations'],
      ['GET', '/v1/remediations/gpu-node-2'],
    ] as const) {
      const res = await http(method, url, { token: ALERTS_TOKEN });
      assert.equal(res.status, 403, `${method} ${url}: ${JSON.stringify(res.body)}`);
      assert.match(String(res.body.error), /credential alertmanager lacks the "operator" scope/);
    }
    assert.equal(await budgetPaused(), before);
  });

  it('refuses operator routes when no credential is configured, and answers 503 without Temporal', async () => {
    const anonymous = await buildWebhookServer({
      clusterId: stack.state.clusterId,
      taskQueue,
      rules: RULES,
      starter: new TemporalRemediationStarter(client),
      nodes: new KubernetesNodeLookup(stack.kc),
      auth: { tokens: [], hmacKeys: [] },
      metrics: createWebhookMetrics({ defaultMetrics: false }),
      operator: new OperatorClient(client, { clusterId: stack.state.clusterId, taskQueue }),
    });
    try {
      const res = await http('POST', '/v1/automation/pause', { token: null, on: anonymous });
      assert.equal(res.status, 403);
      assert.match(String(res.body.error), /operator actions need a configured credential/);
      assert.equal((await http('GET', '/v1/remediations', { token: null, on: anonymous })).status, 403);
      // The alert route keeps its anonymous loopback behaviour.
      const dry = await anonymous.inject({
        method: 'POST',
        url: '/v1/alerts?dryRun=true',
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ alerts: [{ alertName: 'GpuXidError', node: 'gpu-node-1', xid: 79 }] }),
      });
      assert.equal(dry.statusCode, 200, dry.body);
    } finally {
      await anonymous.close();
    }

    // A Temporal frontend that is not there: a port nobody listens on.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as net.AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const connection = Connection.lazy({ address: `127.0.0.1:${port}` });
    const away = await buildWebhookServer({
      clusterId: stack.state.clusterId,
      taskQueue,
      rules: RULES,
      starter: new TemporalRemediationStarter(new Client({ connection })),
      nodes: new KubernetesNodeLookup(stack.kc),
      auth: { tokens: [{ caller: CALLER, token: TOKEN, scopes: ['operator'] }], hmacKeys: [] },
      metrics: createWebhookMetrics({ defaultMetrics: false }),
      operator: new OperatorClient(new Client({ connection }), {
        clusterId: stack.state.clusterId,
        taskQueue,
        timeoutMs: 2_000,
      }),
    });
    try {
      const res = await http('POST', `/v1/remediations/gpu-node-1/approve`, { on: away });
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.headers['retry-after'], '5');
      // What was away is in the log under the request ID, not in the answer.
      assert.deepEqual(res.body, { error: UNAVAILABLE_MESSAGE, requestId: res.headers['x-request-id'] });
      assert.equal((await http('GET', '/v1/remediations', { on: away })).status, 503);
    } finally {
      await away.close();
      await connection.close().catch(() => {});
    }
  });
});
