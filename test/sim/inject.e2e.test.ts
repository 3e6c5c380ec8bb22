import type { Client } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FileGpuStateStore, healthyGpuState, simGpuStateDir } from '../../src/sim/gpu-state.js';
import { pickFreePorts } from '../../src/stack/processes.js';
import { readWebhookEndpoint } from '../../src/webhook/endpoint-record.js';
import { remediationWorkflowId } from '../../src/contracts/ids.js';
import { approveUpdate, statusQuery } from '../../src/contracts/remediation.js';
import { ALERT, NODE } from '../../src/contracts/search-attributes.js';
import { clearRemediationHistory, eventually, liftQuarantine } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, type RemediationWorkers } from '../helpers/workers.js';

installQuietRuntime();

const CLI = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));
const TOKEN = 'sim-inject-token-0123456789abcdef';

// `fleetmedic sim inject` through the real path: the CLI sets the fault in the simulated GPU state and
// POSTs the Alertmanager notification to a `fleetmedic webhook serve` process it finds through the
// state directory; the webhook starts the remediation on Temporal; the control worker and the node
// agents (reading the same GPU state) run it.
describe('fleetmedic sim inject -> webhook -> remediation', () => {
  let stack: TestStack;
  let workers: RemediationWorkers | undefined;
  let client: Client;
  let dir: string;
  let gpus: FileGpuStateStore;
  let serve: ResultPromise | undefined;
  let env: Record<string, string>;
  const taskQueue = `fleetmedic-sim-inject-${process.pid}`;
  const target = 'gpu-node-1';

  async function clearNodeHistory(name: string) {
    await clearRemediationHistory(stack.kc, [name]);
  }

  function cli(...args: string[]) {
    return execa(process.execPath, [CLI, ...args], { env, extendEnv: true, reject: false, timeout: 60_000 });
  }

  before(async () => {
    stack = await useTestStack();
    // A state directory of its own (the webhook's record and the simulated GPU state live there),
    // pointing at the shared stack through explicit configuration.
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-sim-inject-'));
    env = {
      FLEETMEDIC_STATE_DIR: dir,
      FLEETMEDIC_TEMPORAL_ADDRESS: stack.state.temporal.address,
      FLEETMEDIC_KUBECONFIG: stack.state.kube.kubeconfig,
      FLEETMEDIC_CLUSTER_ID: stack.state.clusterId,
      FLEETMEDIC_LOG_LEVEL: 'warn',
    };
    gpus = new FileGpuStateStore(simGpuStateDir(dir, stack.state.clusterId));
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus,
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0.25, maxConcurrentDrains: 2 },
    });
    client = workers.client;
    await clearNodeHistory(target);
    await fs.writeFile(path.join(dir, 'tokens'), `alertmanager ${TOKEN}\n`);
    await fs.writeFile(
      path.join(dir, 'rules.yaml'),
      [
        `taskQueue: ${taskQueue}`,
        'rules:',
        '  - name: gpu-faults',
        '    match: { alertname: [GpuXidCritical, GpuHealthFailure] }',
        '    action: remediate',
        '    policy:',
        '      { approvalReminderMs: 3000, budgetRetryMs: 500, agentScheduleToStartMs: 15000, diagLevel: 1, drainDeadlineSeconds: 120 }',
        '',
      ].join('\n'),
    );
  });

  after(async () => {
    if (serve?.pid !== undefined) {
      serve.kill('SIGTERM');
      await serve.catch(() => {});
    }
    await workers?.stop();
    if (stack) {
      await liftQuarantine(stack.kc, target).catch(() => {});
      await clearNodeHistory(target).catch(() => {});
    }
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('without a webhook running, says how to start one and sets no fault', async () => {
    const r = await cli('sim', 'inject', '--node', target, '--xid', '79', '--gpu', '3');
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, /no webhook to send the alert to: .*fleetmedic webhook serve --rules/);
    assert.equal((await gpus.get(target)).gpus[3]?.xid, undefined, 'a fault was set');
  });

  it('refuses a webhook beyond loopback (a simulation sends nothing there) and sets no fault', async () => {
    const r = await cli(
      'sim',
      'inject',
      '--node',
      target,
      '--xid',
      '79',
      '--gpu',
      '3',
      '--webhook-url',
      'http://10.1.2.3:9095',
    );
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(
      r.stderr,
      /refusing the webhook at http:\/\/10\.1\.2\.3:9095: the cluster is a fleetmedic simulation/,
    );
    assert.equal((await gpus.get(target)).gpus[3]?.xid, undefined, 'a fault was set');
  });

  it('sets the fault, POSTs the Alertmanager alert; the webhook starts the remediation and counts it', async () => {
    const [port] = await pickFreePorts(1);
    serve = execa(
      process.execPath,
      [
        CLI,
        'webhook',
        'serve',
        '--rules',
        path.join(dir, 'rules.yaml'),
        '--token-file',
        path.join(dir, 'tokens'),
        '--port',
        String(port),
      ],
      { env, extendEnv: true, reject: false },
    );
    const recorded = await eventually('the webhook records its address in the state directory', () =>
      readWebhookEndpoint(dir),
    );
    assert.equal(recorded.url, `http://127.0.0.1:${port}`);
    assert.equal(recorded.pid, serve.pid);

    // The webhook requires a token: without one the CLI says so.
    const refused = await cli('sim', 'inject', '--node', target, '--xid', '79', '--gpu', '3');
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /answered HTTP 401: .*FLEETMEDIC_WEBHOOK_TOKEN/);

    const started = Date.now();
    const r = await execa(
      process.execPath,
      [CLI, 'sim', 'inject', '--node', target, '--xid', '79', '--gpu', '3'],
      {
        env: { ...env, FLEETMEDIC_WEBHOOK_TOKEN: TOKEN },
        extendEnv: true,
        reject: false,
        timeout: 60_000,
      },
    );
    assert.equal(r.exitCode, 0, r.stderr);
    const workflowId = remediationWorkflowId(stack.state.clusterId, target);
    assert.match(
      r.stdout,
      /alert GpuXidCritical \(fingerprint [0-9a-f]{16}\) sent to http:\/\/127\.0\.0\.1:\d+\/v1\/alerts\/alertmanager: HTTP 202/,
    );
    assert.match(r.stdout, new RegExp(`gpu-node-1: started ${workflowId.replace(/\//g, '\\/')} \\(run `));
    assert.match(r.stdout, new RegExp(`workflows: ${workflowId}`));
    assert.equal((await gpus.get(target)).gpus[3]?.xid, 79, 'the fault was not set');

    // The workflow exists for the node, with the alert's XID and GPU.
    const handle = client.workflow.getHandle(workflowId);
    const status = await eventually('the remediation reports the alert', async () => {
      const s = await handle.query(statusQuery);
      return s.alerts === 1 && s.class !== null ? s : undefined;
    });
    assert.equal(status.node, target);
    assert.match(status.reasons[0] ?? '', /XID 79/);
    const described = await eventually('search attributes set', async () => {
      const d = await handle.describe();
      return d.typedSearchAttributes.get(ALERT) ? d : undefined;
    });
    assert.equal(described.typedSearchAttributes.get(NODE), target);
    assert.equal(described.typedSearchAttributes.get(ALERT), 'GpuXidCritical');
    assert.ok(described.startTime.getTime() >= started - 1000, 'an older run answered');
    assert.match((await described.staticSummary()) ?? '', /GpuXidCritical XID 79, GPU 3/);

    // The webhook counted it.
    const metrics = await (await fetch(`${recorded.url}/metrics`)).text();
    assert.match(metrics, /fleetmedic_webhook_workflows_total\{action="started"\} 1\b/);
    assert.match(metrics, /fleetmedic_webhook_alerts_total\{result="started",format="alertmanager"\} 1\b/);

    // Leave the node as found: approve the reboot XID 79 calls for; the simulated reboot brings the
    // GPU back, validation passes, the node returns to service.
    await eventually(
      'awaiting approval',
      async () => ((await handle.query(statusQuery)).phase === 'awaiting-approval' ? true : undefined),
      60_000,
    );
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'sim-inject-test' }] });
    const result = (await handle.result()) as { outcome: string };
    assert.equal(result.outcome, 'returned-to-service');
    await gpus.set(target, healthyGpuState(target));

    serve.kill('SIGTERM');
    await serve;
    assert.equal(await readWebhookEndpoint(dir), undefined, 'the record outlived the webhook');
  });
});
