import type { V1Node } from '@kubernetes/client-node';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, type Worker } from '@temporalio/worker';
import { execa, type ResultPromise } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { fleetBudgetWorkflowId } from '../../src/contracts/fleet-budget.js';
import {
  rejectUpdate,
  releaseUpdate,
  statusQuery,
  type RemediationStatus,
} from '../../src/contracts/remediation.js';
import type { AlertSignal } from '../../src/domain/remediation-plan.js';
import {
  CORDON_ANNOTATION,
  EPISODES_ANNOTATION,
  HOLD_ANNOTATION,
  QUARANTINED_LABEL,
  QUARANTINE_TAINT_KEY,
  REMEDIATIONS_ANNOTATION,
} from '../../src/k8s/remediation-labels.js';
import { NODE_EVENT_NAMESPACE } from '../../src/observability/phase-events.js';
import { healthyGpuState, MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { simulatedRunner } from '../../src/sim/sim-runner.js';
import { simNodeManifest } from '../../src/stack/sim-nodes.js';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import { createNodeAgentWorkers } from '../../src/workers/node-agent-host.js';
import type { gpuRemediationWorkflow } from '../../src/workflows/remediation/workflow.js';
import { clients, deployment, eventually, isReady, livePods, tempNamespace } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';
import { TEST_STACK_ENV, useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { forgetBudgetSettings, terminateRemediations } from '../helpers/workers.js';

installQuietRuntime();
const KILL_WORKER = fileURLToPath(new URL('../helpers/kill-after-worker.ts', import.meta.url));
const NODE_INDEX = { reset: 84, held: 85 } as const;
type Handle = WorkflowHandle<typeof gpuRemediationWorkflow>;

// Issue #13, section 3: for each remediation command with a side effect, the control worker (a child
// process) is killed after the side effect and before its completion reaches Temporal; a fresh worker
// takes over. Labels, taints, annotations, Events and the run's decisions must end exactly as in an
// uninterrupted run: nothing doubled, no ownership record lost, the node returned. Notifications are
// not killed here (their activity is bounded at 90 s; every notification carries a stable id that a
// retry resends, see src/notify/message.ts).
describe('the control worker killed right after each side effect', { timeout: 10 * 60_000 }, () => {
  let stack: TestStack;
  let connection: NativeConnection;
  let clientConnection: Connection;
  let client: Client;
  let agents: Worker[] = [];
  let agentsRunning: Promise<unknown> | undefined;
  let ns: { name: string; remove: () => Promise<void> };
  let dir: string;
  let bundleFile: string;
  const gpus = new MemoryGpuStateStore();
  const taskQueue = `fleetmedic-killpoints-${process.pid}`;
  const created: string[] = [];
  const logs: string[] = [];

  const nodeName = (key: keyof typeof NODE_INDEX) => simNodeManifest(NODE_INDEX[key], 'x').metadata!.name!;
  const readNode = (name: string) => clients(stack.kc).core.readNode({ name });

  before(async () => {
    stack = await useTestStack();
    const { core } = clients(stack.kc);
    for (const index of Object.values(NODE_INDEX)) {
      const manifest = simNodeManifest(index, stack.state.clusterId);
      const name = manifest.metadata!.name!;
      await core.deleteNode({ name }).catch(() => undefined);
      await eventually(`${name} gone`, async () =>
        (await core.readNode({ name }).catch(() => undefined)) === undefined ? true : undefined,
      );
      await core.createNode({ body: manifest });
      created.push(name);
    }
    connection = await NativeConnection.connect({ address: stack.state.temporal.address });
    clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection: clientConnection });
    agents = await createNodeAgentWorkers({
      connection,
      clusterId: stack.state.clusterId,
      nodes: created,
      runnerFor: (n) => simulatedRunner(gpus, n),
    });
    agentsRunning = Promise.all(agents.map((w) => w.run()));
    ns = await tempNamespace(stack.kc, 'fmkillpt');
    // One bundle for every worker this file starts: a restart takes seconds, not a webpack run.
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-killpoints-'));
    bundleFile = path.join(dir, 'workflows.js');
    const { code } = await bundleWorkflowCode({
      ...workflowBundleOptions(),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    });
    await fs.writeFile(bundleFile, code);
  });

  after(async () => {
    await terminateRemediations(client, stack.state.clusterId, created);
    // The budget ran on this file's task queue, whose worker is gone: the next file starts its own.
    await client?.workflow
      .getHandle(fleetBudgetWorkflowId(stack.state.clusterId))
      .terminate('test finished')
      .catch(() => undefined);
    for (const w of agents) w.shutdown();
    await agentsRunning;
    await forgetBudgetSettings(stack.kc, stack.state.clusterId);
    await ns?.remove();
    for (const name of created)
      await clients(stack.kc)
        .core.deleteNode({ name })
        .catch(() => undefined);
    await clientConnection?.close();
    await connection?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  /**
   * Runs the control worker as a child process, and again each time it killed itself after one of
   * `kills` (each kill point once), until `stop`. `killed` lists the kill points reached, in order.
   */
  function supervise(kills: readonly string[]) {
    const killed: string[] = [];
    const marker = path.join(dir, `killed-${kills.join('-')}`);
    let stopped = false;
    let current: ResultPromise | undefined;
    const loop = (async () => {
      let remaining = [...kills];
      while (!stopped) {
        await fs.rm(marker, { force: true });
        const child = execa(process.execPath, ['--import', 'tsx', KILL_WORKER], {
          env: {
            [TEST_STACK_ENV]: stack.config.stateDir,
            FLEETMEDIC_TASK_QUEUE: taskQueue,
            FLEETMEDIC_WORKFLOW_BUNDLE: bundleFile,
            FLEETMEDIC_TEST_KILL_AFTER: remaining.join(','),
            FLEETMEDIC_TEST_KILL_MARKER: marker,
            NODE_TEST_CONTEXT: undefined,
          },
          reject: false,
          stdin: 'ignore',
          buffer: false,
        });
        child.stdout?.on('data', (d: Buffer) => logs.push(d.toString()));
        child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
        current = child;
        const end = await child;
        if (stopped) break;
        const which = await fs.readFile(marker, 'utf8').catch(() => undefined);
        if (which === undefined) {
          throw new Error(
            `the worker ended without a kill (${end.signal ?? end.exitCode}): ${logs.join('').slice(-2000)}`,
          );
        }
        killed.push(which);
        remaining = remaining.filter((k) => k !== which);
      }
    })();
    return {
      killed,
      async stop() {
        stopped = true;
        current?.kill('SIGKILL');
        await loop;
      },
    };
  }

  const start = (node: string, alert: AlertSignal) =>
    startOrJoinRemediation(client, {
      clusterId: stack.state.clusterId,
      node,
      taskQueue,
      alert,
      policy: { ...FAST_POLICY, approvalReminderMs: 60_000 },
    });
  const until = (handle: Handle, what: string, test: (s: RemediationStatus) => boolean) =>
    eventually(
      what,
      async () => {
        const s = await handle.query(statusQuery);
        return test(s) ? s : undefined;
      },
      180_000,
    );

  /** The node as fleetmedic leaves it after a run that returned it: nothing of ours but the records. */
  function assertReturned(n: V1Node) {
    assert.notEqual(n.spec?.unschedulable, true, 'left cordoned');
    assert.equal(
      n.spec?.taints?.find((t) => t.key === QUARANTINE_TAINT_KEY),
      undefined,
      'quarantine taint left',
    );
    assert.equal(n.metadata?.labels?.[QUARANTINED_LABEL], undefined, 'quarantine label left');
    assert.equal(n.metadata?.annotations?.[CORDON_ANNOTATION], undefined, 'ownership record left');
    assert.equal(n.metadata?.annotations?.[HOLD_ANNOTATION], undefined, 'hold left');
  }

  /** The run's phase Events on the node: one per phase change, none twice. */
  async function phaseEvents(node: string, handle: Handle) {
    const events = await clients(stack.kc).core.listNamespacedEvent({
      namespace: NODE_EVENT_NAMESPACE,
      fieldSelector: `involvedObject.name=${node}`,
    });
    const ours = events.items.filter(
      (e) => e.metadata?.annotations?.['fleetmedic.io/workflow-id'] === handle.workflowId,
    );
    const sequences = ours.map((e) => Number(e.metadata?.annotations?.['fleetmedic.io/sequence']));
    assert.equal(new Set(sequences).size, sequences.length, `an Event twice: ${JSON.stringify(sequences)}`);
    return ours;
  }

  it('an XID 48 reset: killed after the cordon, the drain, the release, the count and the episode record', async () => {
    const node = nodeName('reset');
    const { apps } = clients(stack.kc);
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: deployment('kp', 2, { preferNode: node }),
    });
    await eventually('2 Ready pods on the node', async () => {
      const pods = await livePods(stack.kc, ns.name, 'kp');
      return pods.length === 2 && pods.every(isReady) && pods.every((p) => p.spec?.nodeName === node)
        ? true
        : undefined;
    });
    await gpus.set(node, withFault(healthyGpuState(node), { gpu: 3, xid: 48 }));
    const kills = ['quarantineFailedNode', 'drainNode', 'releaseNode', 'recordRemediation', 'recordEpisodes'];
    const worker = supervise(kills);
    try {
      const alert = xidAlert(48);
      const handle = await start(node, alert);
      const result = await handle.result();
      assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
      assert.deepEqual([...worker.killed].sort(), [...kills].sort(), 'a kill point was never reached');

      const n = await readNode(node);
      assertReturned(n);
      const count = JSON.parse(n.metadata?.annotations?.[REMEDIATIONS_ANNOTATION] ?? '[]') as string[];
      assert.equal(count.length, 1, `the remediation was counted ${count.length} times`);
      const episodes = n.metadata?.annotations?.[EPISODES_ANNOTATION] ?? '';
      assert.equal(
        episodes.split(alert.episodeKey.split('@')[0]!).length - 1,
        1,
        `episode record: ${episodes}`,
      );
      const events = await phaseEvents(node, handle);
      assert.ok(events.length >= 4, `${events.length} phase Events`);
      // The drain moved the pods once: two Ready replicas, none on the node.
      const pods = await livePods(stack.kc, ns.name, 'kp');
      assert.equal(pods.filter((p) => p.spec?.nodeName === node).length, 0);
    } finally {
      await worker.stop();
    }
  });

  it('an XID 79 rejected, then released: killed after the hold is marked and after it is cleared', async () => {
    const node = nodeName('held');
    await gpus.set(node, withFault(healthyGpuState(node), { gpu: 2, xid: 79 }));
    const kills = ['holdNode', 'clearHold'];
    const worker = supervise(kills);
    try {
      const handle = await start(node, xidAlert(79, { gpu: 2 }));
      await until(handle, 'waiting for approval', (s) => s.phase === 'awaiting-approval');
      await handle.executeUpdate(rejectUpdate, { args: [{ by: 'rma-desk', reason: 'RMA' }] });
      const mark = await eventually(
        'the hold on the node',
        async () => (await readNode(node)).metadata?.annotations?.[HOLD_ANNOTATION],
        180_000,
      );
      assert.match(mark, /rma-desk/);
      await until(handle, 'held with release offered', (s) => s.actions.includes('release'));
      await gpus.set(node, healthyGpuState(node));
      await handle.executeUpdate(releaseUpdate, { args: [{ by: 'ops', reason: 'board replaced' }] });
      const result = await handle.result();
      assert.equal(result.outcome, 'released-by-operator', result.reasons.join('\n'));
      assert.deepEqual([...worker.killed].sort(), [...kills].sort(), 'a kill point was never reached');
      assert.deepEqual(
        result.decisions.map((d) => [d.action, d.by]),
        [
          ['reject', 'rma-desk'],
          ['release', 'ops'],
        ],
      );
      assertReturned(await readNode(node));
      await phaseEvents(node, handle);
    } finally {
      await worker.stop();
    }
  });
});
