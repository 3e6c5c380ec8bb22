import { Watch, type V1Node, type V1Pod } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { execa, type ResultPromise } from 'execa';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { simulatedRunner } from '../../src/sim/sim-runner.js';
import { createNodeAgentWorkers } from '../../src/workers/node-agent-host.js';
import { fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { statusQuery } from '../../src/contracts/remediation.js';
import {
  clearRemediationHistory,
  clients,
  deployment,
  eventually,
  isReady,
  livePods,
  tempNamespace,
} from '../helpers/k8s.js';
import { xidAlert } from '../helpers/remediation-inputs.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';

installQuietRuntime();
const cli = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));

// Safety invariant 5: a worker killed at any point changes nothing in the outcome. The control worker
// runs as a separate process (`fleetmedic worker`) and is killed with SIGKILL in the middle of a drain.
describe('control worker killed mid-drain', () => {
  let stack: TestStack;
  let connection: NativeConnection;
  let clientConnection: Connection;
  let client: Client;
  let agents: Worker[];
  let agentsRunning: Promise<unknown>;
  let ns: { name: string; remove: () => Promise<void> };
  const taskQueue = `fleetmedic-kill-${process.pid}`;
  const children: ResultPromise[] = [];
  const logs: string[] = [];

  function startWorker(): ResultPromise {
    // reject: false: a killed child resolves with its signal instead of rejecting.
    const child = execa(process.execPath, [cli, 'worker'], {
      env: {
        FLEETMEDIC_STATE_DIR: stack.config.stateDir,
        FLEETMEDIC_TASK_QUEUE: taskQueue,
        FLEETMEDIC_LOG_LEVEL: 'warn',
      },
      reject: false,
      stdin: 'ignore',
      buffer: false,
    });
    child.stdout?.on('data', (d: Buffer) => logs.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
    children.push(child);
    return child;
  }

  before(async () => {
    stack = await useTestStack();
    connection = await NativeConnection.connect({ address: stack.state.temporal.address });
    clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection: clientConnection });
    ns = await tempNamespace(stack.kc, 'fmkill');
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const w of agents ?? []) w.shutdown();
    await agentsRunning;
    await client.workflow
      .getHandle(fleetBudgetWorkflowId(stack.state.clusterId))
      .terminate('test finished')
      .catch(() => {});
    await ns?.remove();
    await connection?.close();
    await clientConnection?.close();
  });

  // A kill in the middle of an eviction request can leave the PDB charged for a pod the API server
  // never deleted (the cancelled request dropped the deletion): the budget then refuses every other
  // eviction for 2 minutes. The retried drain finishes that eviction instead of waiting it out, so
  // the remediation completes well within the 120 s allowed here.
  it('completes after a SIGKILL and restart: every original pod evicted once, no replacement evicted, one uncordon', async () => {
    const target = 'gpu-node-3';
    // Earlier files may have remediated this node: clear its history, or the repeat guard (twice in
    // 7 days -> replace hardware) would rightly park this remediation for an operator.
    await clearRemediationHistory(stack.kc, [target]);
    const gpus = new MemoryGpuStateStore();
    await gpus.set(target, withFault(await gpus.get(target), { gpu: 5, xid: 48 }));
    agents = await createNodeAgentWorkers({
      connection,
      clusterId: stack.state.clusterId,
      nodes: [target],
      runnerFor: (n) => simulatedRunner(gpus, n),
    });
    agentsRunning = Promise.all(agents.map((w) => w.run()));

    const { apps, policy } = clients(stack.kc);
    const app = 'svc';
    const svc = deployment(app, 6, { preferNode: target });
    svc.spec!.template.spec!.containers[0]!.resources = { requests: { cpu: '10m' } };
    await apps.createNamespacedDeployment({ namespace: ns.name, body: svc });
    await policy.createNamespacedPodDisruptionBudget({
      namespace: ns.name,
      body: { metadata: { name: app }, spec: { maxUnavailable: 1, selector: { matchLabels: { app } } } },
    });
    const originals = await eventually('6 Ready pods on the target', async () => {
      const pods = await livePods(stack.kc, ns.name, app);
      return pods.length === 6 && pods.every(isReady) && pods.every((p) => p.spec?.nodeName === target)
        ? pods
        : undefined;
    });
    const originalUids = new Set(originals.map((p) => p.metadata!.uid!));

    // Record every pod deletion in the namespace and every cordon change of the node.
    const deleted: string[] = [];
    const cordonChanges: boolean[] = [];
    const watch = new Watch(stack.kc);
    const podWatch = await watch.watch(
      `/api/v1/namespaces/${ns.name}/pods`,
      {},
      (type, pod: V1Pod) => {
        if (type === 'DELETED') deleted.push(pod.metadata!.uid!);
      },
      () => {},
    );
    let last: boolean | undefined;
    const nodeWatch = await watch.watch(
      '/api/v1/nodes',
      { fieldSelector: `metadata.name=${target}` },
      (_type, n: V1Node) => {
        const now = n.spec?.unschedulable === true;
        if (last !== undefined && now !== last) cordonChanges.push(now);
        last = now;
      },
      () => {},
    );

    try {
      const first = startWorker();
      const handle = await startOrJoinRemediation(client, {
        clusterId: stack.state.clusterId,
        node: target,
        taskQueue,
        alert: xidAlert(48, { gpu: 5 }),
        policy: { drainHeartbeatTimeoutMs: 3_000, agentScheduleToStartMs: 20_000, diagLevel: 1 },
      });
      await eventually(
        'the drain under way',
        async () =>
          (await handle.query(statusQuery)).phase === 'draining' && deleted.length >= 1 ? true : undefined,
        60_000,
      );
      first.kill('SIGKILL');
      await first;
      const evictedBeforeKill = deleted.length;
      assert.ok(evictedBeforeKill < 6, 'the drain finished before the kill; nothing was tested');

      const second = startWorker();
      const result = await Promise.race([
        handle.result(),
        new Promise<never>((_, reject) =>
          setTimeout(() => {
            void Promise.all([
              handle.query(statusQuery),
              handle.describe(),
              policy.readNamespacedPodDisruptionBudget({ name: app, namespace: ns.name }),
              clients(stack.kc).core.listNamespacedPod({ namespace: ns.name }),
            ]).then(
              ([st, desc, pdb, podList]) =>
                reject(
                  new Error(
                    `remediation did not finish within 120 s of the restart: ${JSON.stringify(st)}; pending: ` +
                      JSON.stringify(
                        desc.raw.pendingActivities?.map((a) => ({
                          type: a.activityType?.name,
                          state: a.state,
                          attempt: a.attempt,
                          lastFailure: a.lastFailure?.message,
                          worker: a.lastWorkerIdentity,
                        })),
                      ) +
                      `; pdb ${JSON.stringify(pdb.status)}; pods ${JSON.stringify(
                        podList.items.map((p) => [
                          p.metadata?.name,
                          p.spec?.nodeName,
                          p.status?.phase,
                          isReady(p),
                          !!p.metadata?.deletionTimestamp,
                        ]),
                      )}` +
                      `; deleted ${JSON.stringify(deleted)}; worker log: ${logs.join('').slice(-3000)}`,
                  ),
                ),
              (err: unknown) =>
                reject(new Error(`remediation did not finish within 120 s of the restart (${String(err)})`)),
            );
          }, 120_000).unref(),
        ),
      ]);
      second.kill('SIGTERM');
      assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));

      const deletedOriginals = deleted.filter((u) => originalUids.has(u));
      assert.equal(deletedOriginals.length, 6, `deleted ${JSON.stringify(deleted)}`);
      assert.equal(new Set(deletedOriginals).size, 6);
      assert.deepEqual(
        deleted.filter((u) => !originalUids.has(u)),
        [],
        'a replacement pod was evicted',
      );
      assert.deepEqual(cordonChanges, [true, false], 'the node was not cordoned once and uncordoned once');
      const pods = await livePods(stack.kc, ns.name, app);
      assert.equal(pods.length, 6);
      assert.ok(pods.every((p) => p.spec?.nodeName !== target || p.metadata?.creationTimestamp));
    } finally {
      podWatch.abort();
      nodeWatch.abort();
    }
  });
});
