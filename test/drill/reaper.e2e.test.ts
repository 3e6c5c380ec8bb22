import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { createQuarantineSteps } from '../../src/activities/kubernetes/index.js';
import { DRILL_WORKFLOW, drillOwner, drillWorkflowId, type DrillInput } from '../../src/contracts/drill.js';
import { createDrillReaper, describeDrillRuns, type DrillReaper } from '../../src/drill/reaper.js';
import { parseCordonRecord } from '../../src/k8s/node-ownership.js';
import { mergePatch } from '../../src/k8s/patch.js';
import {
  CORDON_ANNOTATION,
  QUARANTINED_LABEL,
  QUARANTINE_TAINT_KEY,
} from '../../src/k8s/remediation-labels.js';
import { createControlWorkers, workflowBundleOptions } from '../../src/workers/control-worker.js';
import { stackCli } from '../helpers/cli.js';
import { clients, eventually, liftQuarantine } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';

installQuietRuntime();

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

// The drill reaper on the embedded stack: real drill workflows on the Temporal dev server (started on
// a task queue no worker polls, so they stay running until terminated) and real cordons written by the
// drill's own quarantine code on kwok nodes. The reaper, the control worker's loop and `fleetmedic
// release` (as a process) must revert exactly the cordons of closed drills.
describe('drill reaper (embedded stack)', { timeout: 300_000 }, () => {
  let stack: TestStack;
  let clientConnection: Connection;
  let client: Client;
  let reaper: DrillReaper;
  let nodes: string[];
  const idleQueue = `drill-reaper-idle-${process.pid}`;
  const started: WorkflowHandle[] = [];

  before(async () => {
    stack = await useTestStack();
    clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection: clientConnection });
    reaper = createDrillReaper({
      kc: stack.kc,
      clusterId: stack.state.clusterId,
      describe: describeDrillRuns(client),
    });
    nodes = (await clients(stack.kc).core.listNode()).items.map((n) => n.metadata!.name!);
    assert.ok(nodes.length >= 3);
  });

  // Each test starts with every node uncordoned and without a record.
  afterEach(async () => {
    for (const n of nodes) await liftQuarantine(stack.kc, n);
  });

  after(async () => {
    for (const h of started) await h.terminate('test finished').catch(() => undefined);
    await clientConnection?.close();
  });

  /** A drill workflow that stays running (no worker polls its task queue), holding `node`'s cordon. */
  async function startDrill(drillId: string, node: string): Promise<WorkflowHandle> {
    const input: DrillInput = {
      clusterId: stack.state.clusterId,
      drillId,
      namespace: 'default',
      deployment: 'drill-standin',
      targetUrl: 'http://127.0.0.1:1',
    };
    const handle = await client.workflow.start(DRILL_WORKFLOW, {
      workflowId: drillWorkflowId(stack.state.clusterId, drillId),
      taskQueue: idleQueue,
      args: [input],
    });
    started.push(handle);
    await cordon(node, drillOwner(drillId));
    return handle;
  }

  /** A drill terminated while it held `node`'s cordon: no rollback ran. */
  async function killedDrill(drillId: string, node: string): Promise<void> {
    await (await startDrill(drillId, node)).terminate('killed without its rollback');
  }

  /** The drill's cordon, written by the code its eviction phase uses. */
  async function cordon(node: string, owner: string): Promise<void> {
    const steps = createQuarantineSteps({ kc: stack.kc, clusterId: stack.state.clusterId });
    await steps.quarantine({ node, workflowId: owner, reason: `test ${owner}` });
  }

  async function view(node: string) {
    const n = await clients(stack.kc).core.readNode({ name: node });
    const r = parseCordonRecord(n.metadata?.annotations?.[CORDON_ANNOTATION]);
    return {
      cordoned: n.spec?.unschedulable === true,
      owner: r.kind === 'ok' ? r.record.workflowId : undefined,
      marked:
        n.metadata?.labels?.[QUARANTINED_LABEL] !== undefined ||
        (n.spec?.taints ?? []).some((t) => t.key === QUARANTINE_TAINT_KEY),
    };
  }

  const released = { cordoned: false, owner: undefined, marked: false };

  /** A pass of the reaper; what it did on `node`. */
  async function reapOn(node: string) {
    return (await reaper.reap()).find((x) => x.cordon.node === node);
  }

  it("reverts a terminated drill's cordon and leaves a running drill's cordon", async () => {
    const [a, b] = nodes as [string, string];
    const gone = await startDrill(`gone-${process.pid}`, a);
    const live = await startDrill(`live-${process.pid}`, b);
    // Both running: nothing is reverted.
    let outcomes = await reaper.reap();
    assert.deepEqual(
      outcomes
        .filter((o) => o.cordon.node === a || o.cordon.node === b)
        .map((o) => [o.cordon.node, o.result]),
      [
        [a, 'left'],
        [b, 'left'],
      ],
    );
    assert.equal((await view(a)).owner, drillOwner(`gone-${process.pid}`));

    await gone.terminate('a drill killed without its rollback');
    outcomes = await reaper.reap();
    const mine = outcomes.find((o) => o.cordon.node === a);
    assert.equal(mine?.result, 'uncordoned');
    assert.equal(mine?.run.state === 'closed' && mine.run.status, 'TERMINATED');
    assert.deepEqual(await view(a), released);
    const kept = await view(b);
    assert.deepEqual(kept, { cordoned: true, owner: drillOwner(`live-${process.pid}`), marked: true });
    assert.equal((await live.describe()).status.name, 'RUNNING');
  });

  it('reverts the cordon of a drill Temporal does not know', async () => {
    const node = nodes[0]!;
    await cordon(node, drillOwner(`never-started-${process.pid}`));
    const o = await reapOn(node);
    assert.equal(o?.run.state, 'not-found');
    assert.equal(o?.result, 'uncordoned', o?.error);
    assert.deepEqual(await view(node), released);
  });

  it('keeps a pre-existing cordon: only the record and marks go', async () => {
    const node = nodes[1]!;
    const drillId = `pre-${process.pid}`;
    await clients(stack.kc).core.patchNode(
      { name: node, body: { spec: { unschedulable: true } } },
      mergePatch,
    );
    await killedDrill(drillId, node);
    const o = await reapOn(node);
    assert.equal(o?.result, 'released');
    assert.deepEqual(await view(node), { cordoned: true, owner: undefined, marked: false });
  });

  it('leaves a cordon a remediation took over from a terminated drill', async () => {
    const node = nodes[2]!;
    const drillId = `taken-${process.pid}`;
    const remediation = `remediation/${stack.state.clusterId}/${node}`;
    await killedDrill(drillId, node);
    await cordon(node, remediation);
    assert.equal(await reapOn(node), undefined);
    assert.deepEqual(await view(node), { cordoned: true, owner: remediation, marked: true });
  });

  it('fleetmedic release: refuses a running drill with how to stop it, reverts a terminated one', async () => {
    const node = nodes[0]!;
    const drillId = `rel-${process.pid}`;
    const workflowId = drillWorkflowId(stack.state.clusterId, drillId);
    const cli = stackCli(() => stack, idleQueue);
    const handle = await startDrill(drillId, node);
    const refused = await cli('release', node, '--by', 'alice');
    assert.equal(refused.exitCode, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, new RegExp(`node ${node} is cordoned by drill ${drillId}, whose workflow`));
    assert.match(refused.stderr, new RegExp(`temporal workflow cancel --workflow-id ${workflowId}`));
    assert.equal((await view(node)).owner, drillOwner(drillId));

    await handle.terminate('killed');
    const done = await cli('release', node, '--by', 'alice');
    assert.equal(done.exitCode, 0, done.stdout + done.stderr);
    assert.match(done.stdout, new RegExp(`release ${node}: node ${node} is cordoned by drill ${drillId}`));
    assert.match(done.stdout, /is terminated: cordon reverted: node uncordoned/);
    assert.deepEqual(await view(node), released);
  });

  it('the control worker reaps at start and every interval, and stops with the worker', async () => {
    const [a, b] = nodes as [string, string];
    await killedDrill(`cw1-${process.pid}`, a);
    const connection = await NativeConnection.connect({ address: stack.state.temporal.address });
    const workers = await createControlWorkers({
      connection,
      client,
      kc: stack.kc,
      clusterId: stack.state.clusterId,
      taskQueue: `drill-reaper-cw-${process.pid}`,
      workflowBundle: await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent }),
      drillReaperIntervalMs: 1_000,
    });
    const running = Promise.all(workers.map((w) => w.run()));
    try {
      await eventually('the pass at start reverts the terminated drill', async () =>
        (await view(a)).owner === undefined ? true : undefined,
      );
      assert.deepEqual(await view(a), released);
      // A drill killed after the first pass is reverted by a later one.
      await killedDrill(`cw2-${process.pid}`, b);
      await eventually('a later pass reverts it', async () =>
        (await view(b)).owner === undefined ? true : undefined,
      );
      assert.deepEqual(await view(b), released);
    } finally {
      for (const w of workers) w.shutdown();
      await running;
      await connection.close();
    }
    // Stopped with the worker: a drill killed now stays cordoned.
    await killedDrill(`cw3-${process.pid}`, a);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.equal((await view(a)).owner, drillOwner(`cw3-${process.pid}`));
  });
});
