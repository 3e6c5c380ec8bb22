import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type Worker } from '@temporalio/worker';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { drillOwner, drillWorkflowId, type DrillResult } from '../../src/contracts/drill.js';
import { drillScheduleId, scheduledDrillId } from '../../src/contracts/drill-schedule.js';
import { fleetBudgetWorkflowId } from '../../src/contracts/fleet-budget.js';
import { parseGatewayConfig } from '../../src/gateway/config.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { standinManifests } from '../../src/drill/standin-manifest.js';
import { parseCordonRecord } from '../../src/k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../src/k8s/remediation-labels.js';
import { ProcessRunner } from '../../src/runner/process-runner.js';
import { createControlWorkers, workflowBundleOptions } from '../../src/workers/control-worker.js';
import { stackCli } from '../helpers/cli.js';
import { clients, eventually, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { forgetBudgetSettings } from '../helpers/workers.js';

// A scheduled run of the real drill, end to end: `fleetmedic drill-schedule create --standin` and
// `trigger` as processes, the launcher and the drill on a control worker with the real activities,
// the drill's stand-in replicas through the process runner and a gateway in front of them. The drill ID the launcher
// derives (with its `.`) is a label value, a report file name and the key the fleet budget and the
// reaper use: the drill passes, no node is left cordoned, and the schedule's listing shows the verdict.
const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const APP = 'llama';

describe('a scheduled drill, real activities (embedded stack)', { timeout: 600_000 }, () => {
  let stack: TestStack;
  let ns: { name: string; remove: () => Promise<void> };
  let dir: string;
  let runner: ProcessRunner | undefined;
  let connection: NativeConnection;
  let clientConnection: Connection;
  let client: Client;
  let workers: Worker[] = [];
  let running: Promise<unknown>;
  let gw: RunningGateway | undefined;
  const taskQueue = `drill-schedule-run-e2e-${process.pid}`;
  const name = `run-${process.pid}`;

  before(async () => {
    stack = await useTestStack();
    ns = await tempNamespace(stack.kc, 'fmdrillsched');
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-drill-schedule-'));
    runner = new ProcessRunner({ kc: stack.kc, stateDir: dir, restartBackoffMs: 200 });
    await runner.start();
    connection = await NativeConnection.connect({ address: stack.state.temporal.address });
    clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection: clientConnection });
    workers = await createControlWorkers({
      connection,
      client,
      kc: stack.kc,
      clusterId: stack.state.clusterId,
      taskQueue,
      workflowBundle: await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent }),
      drillDir: path.join(dir, 'drills'),
    });
    running = Promise.all(workers.map((w) => w.run()));
  });

  after(async () => {
    await gw?.close();
    await client.schedule
      .getHandle(drillScheduleId(stack.state.clusterId, name))
      .delete()
      .catch(() => undefined);
    // The budget stays on this file's queue: a later file's worker would never serve it.
    await client.workflow
      .getHandle(fleetBudgetWorkflowId(stack.state.clusterId))
      .terminate('drill schedule test finished')
      .catch(() => {});
    await forgetBudgetSettings(stack.kc, stack.state.clusterId);
    for (const w of workers) w.shutdown();
    await running;
    await clientConnection?.close();
    await connection?.close();
    await runner?.stop();
    const { apps, core, policy } = clients(stack.kc);
    await apps.deleteCollectionNamespacedDeployment({ namespace: ns.name }).catch(() => undefined);
    await policy.deleteNamespacedPodDisruptionBudget({ namespace: ns.name, name: APP }).catch(() => {});
    await core.deleteNamespacedService({ namespace: ns.name, name: APP }).catch(() => undefined);
    for (const pod of (await core.listNamespacedPod({ namespace: ns.name })).items) {
      await core
        .deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ns.name, gracePeriodSeconds: 0 })
        .catch(() => undefined);
    }
    await ns?.remove();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('create and trigger run the drill: PASS, the derived ID everywhere, nothing left cordoned', async () => {
    // The gateway reads the Deployment's selector once, at its start: stand-ins of another owner
    // give it one, and go before the drill, which creates its own (`--standin`) with that selector.
    const { apps, core } = clients(stack.kc);
    const m = standinManifests({ namespace: ns.name, name: APP, drillId: 'gateway-start' });
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: { ...m.deployment, spec: { ...m.deployment.spec!, replicas: 0 } },
    });
    gw = await startGateway(
      parseGatewayConfig({
        port: 0,
        kube: { namespace: ns.name, deployment: APP, kubeconfig: stack.state.kube.kubeconfig },
        health: { intervalMs: 1_000 },
      }),
    );
    await apps.deleteNamespacedDeployment({ namespace: ns.name, name: APP });
    await eventually('the Deployment gone', () =>
      apps.readNamespacedDeployment({ namespace: ns.name, name: APP }).then(
        () => undefined,
        () => true,
      ),
    );

    const cli = stackCli(() => stack, taskQueue);
    const created = await cli(
      ...['drill-schedule', 'create', name, '--every', '1d', '--target-url', gw.url],
      ...['--namespace', ns.name, '--deployment', APP, '--standin', '--eviction-slack', '15'],
    );
    assert.equal(created.exitCode, 0, created.stderr);
    const triggered = await cli('drill-schedule', 'trigger', name);
    assert.equal(triggered.exitCode, 0, triggered.stderr);

    const scheduleId = drillScheduleId(stack.state.clusterId, name);
    const run = await eventually('the run', async () => {
      const d = await client.schedule.getHandle(scheduleId).describe();
      return d.info.recentActions.at(-1)?.action.workflow;
    });
    const launcher = client.workflow.getHandle(run.workflowId, run.firstExecutionRunId);
    const drillId = scheduledDrillId(scheduleId, (await launcher.describe()).startTime.getTime());
    const result = (await launcher.result()) as DrillResult;
    process.stderr.write(
      `scheduled drill ${result.drillId}: ${result.pass ? 'PASS' : 'FAIL'} ${result.reasons.join('; ')}\n` +
        result.phases
          .map(
            (p) => `  ${p.name}: ${p.requests} requests, ${p.failed} failed, recovery ${p.recoveryMs} ms\n`,
          )
          .join(''),
    );
    assert.equal(result.drillId, drillId);
    assert.equal(result.pass, true, result.reasons.join('; '));
    assert.equal(result.restore?.uncordoned.length, 1);
    assert.ok(
      result.restore?.deleted.some((o) => o.startsWith('Deployment')),
      'the stand-ins removed',
    );
    assert.ok(path.basename(result.report.json).includes(drillId), result.report.json);
    assert.equal(
      (await client.workflow.getHandle(drillWorkflowId(stack.state.clusterId, drillId)).describe()).status
        .name,
      'COMPLETED',
    );
    const nodes = (await core.listNode()).items.filter((n) => {
      const r = parseCordonRecord(n.metadata?.annotations?.[CORDON_ANNOTATION]);
      return (
        n.spec?.unschedulable === true || (r.kind === 'ok' && r.record.workflowId === drillOwner(drillId))
      );
    });
    assert.deepEqual(
      nodes.map((n) => n.metadata!.name),
      [],
    );
    const list = await cli('drill-schedule', 'list');
    assert.match(list.stdout, new RegExp(`^${name}  every 1d  next \\S+  last: ${drillId} PASS$`, 'm'));
  });
});
