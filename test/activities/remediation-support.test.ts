import assert from 'node:assert/strict';
import { createFleetBudgetRecordActivities } from '../../src/activities/fleet-budget-records.js';
import { DEFAULT_SETTINGS_NAMESPACE } from '../../src/k8s/budget-settings.js';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import {
  coalesce,
  createRemediationSupportActivities,
  type RemediationSupportActivities,
} from '../../src/activities/remediation-support/index.js';
import { GPU_RESOURCE } from '../../src/k8s/labels.js';
import { workflowsPath } from '../../src/workers/control-worker.js';
import {
  fleetBudgetState,
  fleetBudgetWorkflowId,
  pauseAutomation,
  resetFleetBreaker,
  resumeAutomation,
} from '../../src/workflows/fleet-budget.js';
import { remediationWorkflowId } from '../../src/contracts/ids.js';
import { drillOwner, drillWorkflowId } from '../../src/contracts/drill.js';
import { formatCordonRecord } from '../../src/k8s/node-ownership.js';
import { CORDON_ANNOTATION } from '../../src/k8s/remediation-labels.js';
import { clients, eventually } from '../helpers/k8s.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { useTestStack } from '../helpers/stack.js';
import { forgetBudgetSettings } from '../helpers/workers.js';

/** A promise with its resolve/reject, to hold a send in flight. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('coalesce', () => {
  it('sends the first call alone and the calls that arrive meanwhile together, answering each its own result', async () => {
    const sends: { items: number[]; done: ReturnType<typeof deferred<string[]>> }[] = [];
    const call = coalesce<number, string>((items) => {
      const done = deferred<string[]>();
      sends.push({ items, done });
      return done.promise;
    }, 3);
    const results = [1, 2, 3, 4, 5, 6].map((n) => call(n));
    assert.deepEqual(
      sends.map((s) => s.items),
      [[1]],
    );
    sends[0]!.done.resolve(['r1']);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      sends.map((s) => s.items),
      [[1], [2, 3, 4]],
      'at most maxBatch items per send, one send in flight',
    );
    sends[1]!.done.resolve(['r2', 'r3', 'r4']);
    await new Promise((r) => setImmediate(r));
    sends[2]!.done.resolve(['r5', 'r6']);
    assert.deepEqual(await Promise.all(results), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
  });

  it('fails every call of a failed send (and only those), then goes on with the next batch', async () => {
    let n = 0;
    const call = coalesce<string, string>((items) => {
      n += 1;
      return n === 2
        ? Promise.reject(new Error('update refused'))
        : Promise.resolve(items.map((i) => `ok ${i}`));
    }, 10);
    const [a, b, c] = [call('a'), call('b'), call('c')];
    assert.equal(await a, 'ok a');
    await assert.rejects(b, /update refused/);
    await assert.rejects(c, /update refused/);
    assert.equal(await call('d'), 'ok d');
  });

  it('fails the calls of a send answered with the wrong number of results', async () => {
    const call = coalesce<string, string>(() => Promise.resolve([]), 10);
    await assert.rejects(call('a'), /a batch of 1 was answered with 0 result\(s\)/);
  });

  it('keeps up to maxInFlight sends in flight, and batches only what waits behind them', async () => {
    const sends: { items: number[]; done: ReturnType<typeof deferred<string[]>> }[] = [];
    const call = coalesce<number, string>(
      (items) => {
        const done = deferred<string[]>();
        sends.push({ items, done });
        return done.promise;
      },
      10,
      2,
    );
    const results = [1, 2, 3, 4, 5].map((n) => call(n));
    assert.deepEqual(
      sends.map((s) => s.items),
      [[1], [2]],
      'two sends in flight at once',
    );
    sends[1]!.done.resolve(['r2']);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      sends.map((s) => s.items),
      [[1], [2], [3, 4, 5]],
      'the freed place takes everything that waited',
    );
    sends[0]!.done.resolve(['r1']);
    sends[2]!.done.resolve(['r3', 'r4', 'r5']);
    assert.deepEqual(await Promise.all(results), ['r1', 'r2', 'r3', 'r4', 'r5']);
    assert.throws(
      () => coalesce(() => Promise.resolve([]), 1, 0),
      /maxInFlight is 0, expected an integer >= 1/,
    );
  });

  it('refuses a batch size that is not a positive integer', () => {
    assert.throws(() => coalesce(() => Promise.resolve([]), 0), /maxBatch is 0, expected an integer >= 1/);
  });
});

/**
 * A worker of the real workflows on its own task queue, with a client, on the test stack's Temporal
 * (each describe below runs its own fleet budget: its own cluster ID). `stop` terminates the named
 * workflows, then closes everything.
 */
async function budgetWorker(taskQueue: string, clusterId: string) {
  installQuietRuntime();
  const stack = await useTestStack();
  const connection = await NativeConnection.connect({ address: stack.state.temporal.address });
  const clientConnection = await Connection.connect({ address: stack.state.temporal.address });
  const client = new Client({ connection: clientConnection });
  const worker = await Worker.create({
    connection,
    taskQueue,
    // The budget rebuilds itself from the cluster at start (nothing on record for this cluster ID).
    activities: createFleetBudgetRecordActivities({
      kc: stack.kc,
      client,
      clusterId,
      settingsNamespace: DEFAULT_SETTINGS_NAMESPACE,
    }),
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: workflowsPath(),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    }),
  });
  const running = worker.run();
  return {
    stack,
    client,
    clientConnection,
    async stop(workflowIds: readonly string[]): Promise<void> {
      for (const id of workflowIds) {
        await client.workflow
          .getHandle(id)
          .terminate('test finished')
          .catch(() => {});
      }
      await forgetBudgetSettings(stack.kc, clusterId);
      worker.shutdown();
      await running;
      await connection.close();
      await clientConnection.close();
    },
  };
}

// Against the real stack: the fleet budget workflow runs on a worker of this file (its own cluster ID,
// so its budget is its own), the fleet view is read from the stack's kube-apiserver.
describe('budgetReportFailure under a storm', () => {
  const clusterId = `rs-${randomUUID().slice(0, 8)}`;
  const taskQueue = `remediation-support-${clusterId}`;
  let setup: Awaited<ReturnType<typeof budgetWorker>> | undefined;
  let client: Client;
  let activities: RemediationSupportActivities;
  let gpuNodes: number;
  let listNodeCalls = 0;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the instance as `this`
  const listNode = CoreV1Api.prototype.listNode;

  before(async () => {
    setup = await budgetWorker(taskQueue, clusterId);
    const { stack } = setup;
    client = setup.client;
    gpuNodes = (await clients(stack.kc).core.listNode()).items.filter(
      (n) => Number(n.status?.capacity?.[GPU_RESOURCE] ?? 0) > 0,
    ).length;
    assert.ok(gpuNodes > 0, 'the test stack has GPU nodes');
    // Counts the fleet views the activities read (each is one listNode).
    CoreV1Api.prototype.listNode = function (this: CoreV1Api, ...args: Parameters<typeof listNode>) {
      listNodeCalls += 1;
      return listNode.apply(this, args);
    };
    activities = createRemediationSupportActivities({
      kc: stack.kc,
      client,
      clusterId,
      taskQueue,
      // The breaker opens when more than half of the GPU nodes failed within the window.
      budgetConfig: { breakerThreshold: 0.5 },
    });
  });

  after(async () => {
    CoreV1Api.prototype.listNode = listNode;
    await setup?.stop([fleetBudgetWorkflowId(clusterId)]);
  });

  it('gives each concurrent report the verdict it would get alone, with far fewer updates and fleet views than reports', async () => {
    const reports = 3 * gpuNodes + 4;
    const nodes = Array.from({ length: reports }, (_, i) => `storm-node-${i}`);
    listNodeCalls = 0;
    const verdicts = await Promise.all(nodes.map((node) => activities.budgetReportFailure({ node })));

    // Reported one after another (in the order the budget receives them: a few batches are in
    // flight at once), the first floor(gpuNodes / 2) failures keep the fraction at or below one
    // half; every later one finds the breaker open.
    const allowedAlone = Math.floor(gpuNodes / 2);
    assert.equal(verdicts.filter((v) => v.allowed).length, allowedAlone);
    assert.ok(
      verdicts.filter((v) => !v.allowed).every((v) => v.reason === 'breaker-open'),
      JSON.stringify(verdicts),
    );
    assert.ok(listNodeCalls < reports / 2, `${listNodeCalls} fleet views for ${reports} reports`);
    // Each verdict counts the nodes failed within the last minute, its own included: in the order
    // the budget applied the reports, 1, 2, ..., one count per report.
    assert.deepEqual(
      verdicts.map((v) => v.recentFailures).sort((a, b) => (a ?? 0) - (b ?? 0)),
      Array.from({ length: reports }, (_, i) => i + 1),
    );

    const handle = client.workflow.getHandle(fleetBudgetWorkflowId(clusterId));
    const state = await handle.query(fleetBudgetState);
    assert.deepEqual(
      new Set(state.failures.map((f) => f.node)),
      new Set(nodes),
      'every failure was recorded once',
    );
    assert.equal(state.failures.length, reports);
    const history = await handle.fetchHistory();
    const updates = (history.events ?? []).filter(
      (e) => e.workflowExecutionUpdateAcceptedEventAttributes,
    ).length;
    assert.ok(updates > 0 && updates < reports, `${updates} updates for ${reports} reports`);
  });

  it('starts the budget again when it was terminated, with its open breaker, and reports to the new run', async () => {
    const handle = client.workflow.getHandle(fleetBudgetWorkflowId(clusterId));
    const before = (await handle.describe()).runId;
    assert.equal((await handle.query(fleetBudgetState)).breaker.state, 'open', 'the storm above tripped it');
    await handle.terminate('an operator ended the budget');
    const verdict = await activities.budgetReportFailure({ node: 'after-restart' });
    assert.equal(verdict.allowed, false, 'the budget started again forgot its open breaker');
    assert.equal(!verdict.allowed && verdict.reason, 'breaker-open');
    const now = await handle.describe();
    assert.notEqual(now.runId, before);
    assert.equal(now.status.name, 'RUNNING');
    assert.deepEqual(
      (await handle.query(fleetBudgetState)).failures.map((f) => f.node),
      ['after-restart'],
    );
    // An operator's reset is kept the same way.
    await handle.executeUpdate(resetFleetBreaker, { args: [{ by: 'test', reason: 'fleet checked' }] });
    await handle.terminate('an operator ended the budget again');
    const afterReset = await activities.budgetReportFailure({ node: 'after-reset' });
    assert.equal(afterReset.allowed, true, afterReset.detail);
  });

  it('refuses a drain slot while automation is paused without listing the nodes', async () => {
    const handle = client.workflow.getHandle(fleetBudgetWorkflowId(clusterId));
    await handle.executeUpdate(pauseAutomation, { args: [{ by: 'test' }] });
    try {
      listNodeCalls = 0;
      const admission = await activities.budgetAcquire({ node: 'paused-node', remediationTimestamps: [] });
      assert.equal(admission.admitted, false);
      assert.equal(!admission.admitted && admission.reason, 'paused');
      assert.equal(listNodeCalls, 0, 'a refusal that does not depend on the fleet needs no node list');
    } finally {
      await handle.executeUpdate(resumeAutomation, { args: [{ by: 'test' }] });
    }
  });

  it('answers concurrent drain-slot requests in one batch, decided by the budget', async () => {
    // The same activities through a client that counts the budget queries and updates it sends.
    let queries = 0;
    let updates = 0;
    const counting = new Client({
      connection: setup!.clientConnection,
      interceptors: {
        workflow: [
          {
            query: (input, next) => {
              queries++;
              return next(input);
            },
            startUpdate: (input, next) => {
              updates++;
              return next(input);
            },
          },
        ],
      },
    });
    const stack = await useTestStack();
    const shared = createRemediationSupportActivities({
      kc: stack.kc,
      client: counting,
      clusterId,
      taskQueue,
      budgetConfig: { breakerThreshold: 0.5 },
    });
    const handle = client.workflow.getHandle(fleetBudgetWorkflowId(clusterId));
    await handle.executeUpdate(pauseAutomation, { args: [{ by: 'test' }] });
    try {
      listNodeCalls = 0;
      const requests = 20;
      const admissions = await Promise.all(
        Array.from({ length: requests }, (_, i) =>
          shared.budgetAcquire({ node: `waiting-node-${i}`, remediationTimestamps: [] }),
        ),
      );
      assert.ok(
        admissions.every((a) => !a.admitted && a.reason === 'paused'),
        JSON.stringify(admissions),
      );
      // The first request goes at once, the 19 that came while it was in flight go together.
      assert.ok(queries <= 2, `${queries} queries of the budget for ${requests} concurrent requests`);
      assert.ok(updates <= 2, `${updates} updates of the budget for ${requests} concurrent requests`);
      assert.equal(listNodeCalls, 0, 'refusals that do not depend on the fleet need no node list');
      // A request after those batches asks again.
      const [q, u] = [queries, updates];
      await shared.budgetAcquire({ node: 'later-node', remediationTimestamps: [] });
      assert.deepEqual([queries - q, updates - u], [1, 1]);
    } finally {
      await handle.executeUpdate(resumeAutomation, { args: [{ by: 'test' }] });
    }
    // Resumed, a request passes the budget's own checks and is decided with one list of the nodes.
    listNodeCalls = 0;
    const [q, u] = [queries, updates];
    const admitted = await shared.budgetAcquire({ node: 'batch-node', remediationTimestamps: [] });
    assert.ok(admitted.admitted, admitted.detail);
    assert.deepEqual([queries - q, updates - u], [1, 2]);
    await shared.budgetRelease({ node: 'batch-node' });
  });

  it('asks the budget started again for a drain slot when it was terminated', async () => {
    const handle = client.workflow.getHandle(fleetBudgetWorkflowId(clusterId));
    const before = (await handle.describe()).runId;
    await handle.terminate('an operator ended the budget');
    const admission = await activities.budgetAcquire({ node: 'acquire-node', remediationTimestamps: [] });
    const now = await handle.describe();
    assert.notEqual(now.runId, before);
    assert.equal(now.status.name, 'RUNNING');
    const state = await handle.query(fleetBudgetState);
    assert.equal(state.draining.includes('acquire-node'), admission.admitted, admission.detail);
    await activities.budgetRelease({ node: 'acquire-node' });
    assert.deepEqual((await handle.query(fleetBudgetState)).draining, []);
  });
});

// Against the real stack: the queue for drain slots in the budget workflow. The budget signals the
// remediation of the first queued node (`remediation/<cluster>/<node>`) when a slot frees; here a
// stand-in workflow with that ID receives it (a signal without a handler stays in its history).
describe('drain slots: first come, first served', () => {
  const clusterId = `fifo-${randomUUID().slice(0, 8)}`;
  const taskQueue = `remediation-support-${clusterId}`;
  let setup: Awaited<ReturnType<typeof budgetWorker>> | undefined;
  let client: Client;
  let activities: RemediationSupportActivities;

  before(async () => {
    setup = await budgetWorker(taskQueue, clusterId);
    const { stack } = setup;
    client = setup.client;
    activities = createRemediationSupportActivities({
      kc: stack.kc,
      client,
      clusterId,
      taskQueue,
      budgetConfig: { maxConcurrentDrains: 1, minHealthyFraction: 0 },
    });
  });

  after(async () => {
    await setup?.stop([
      fleetBudgetWorkflowId(clusterId),
      remediationWorkflowId(clusterId, 'first'),
      remediationWorkflowId(clusterId, 'second'),
    ]);
  });

  const ask = (node: string) => activities.budgetAcquire({ node, remediationTimestamps: [] });
  const queueOf = async () =>
    (await client.workflow.getHandle(fleetBudgetWorkflowId(clusterId)).query(fleetBudgetState)).queue ?? [];

  it('queues refused nodes in order, wakes the first when the slot frees, and skips one whose remediation ended', async () => {
    // Stand-ins for the remediations of first and second (a slot holder or queued node without a
    // running remediation is recovered as stale); third has none.
    const standIn = (node: string) =>
      client.workflow.start('fleetBudgetWorkflow', {
        workflowId: remediationWorkflowId(clusterId, node),
        taskQueue,
        args: [{ clusterId: `${clusterId}-stand-in-${node}` }],
      });
    await standIn('first');
    const secondsRemediation = await standIn('second');
    assert.equal((await ask('first')).admitted, true);
    const second = await ask('second');
    assert.ok(
      !second.admitted && second.reason === 'max-concurrent' && second.ahead === 0,
      JSON.stringify(second),
    );
    await eventually('second queued', async () => ((await queueOf()).length === 1 ? true : undefined));
    const third = await ask('third');
    assert.ok(
      !third.admitted && third.reason === 'max-concurrent' && third.ahead === 1,
      JSON.stringify(third),
    );
    await eventually('third queued behind second', async () =>
      (await queueOf()).join() === 'second,third' ? true : undefined,
    );
    // Asking again keeps the place.
    assert.equal((await ask('third')).admitted, false);
    assert.deepEqual(await queueOf(), ['second', 'third']);

    await activities.budgetRelease({ node: 'first' });
    await eventually('second told that a slot is free', async () => {
      const events = (await secondsRemediation.fetchHistory()).events ?? [];
      return events.some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'drainSlotFree')
        ? true
        : undefined;
    });
    // The slot is second's: third, behind it, is refused although the slot is free.
    const early = await ask('third');
    assert.ok(!early.admitted && early.reason === 'queued' && early.ahead === 1, JSON.stringify(early));
    assert.equal((await ask('second')).admitted, true);
    assert.deepEqual(await queueOf(), ['third']);

    // third has no remediation: when second releases, the signal fails and third leaves the queue.
    await activities.budgetRelease({ node: 'second' });
    await eventually('third dropped from the queue', async () =>
      (await queueOf()).length === 0 ? true : undefined,
    );
  });
});

describe("a drill's drain slot", () => {
  const clusterId = `drillslot-${randomUUID().slice(0, 8)}`;
  const taskQueue = `remediation-support-${clusterId}`;
  const node = `drill-slot-${clusterId}`;
  const drillId = 'slot-holder';
  let setup: Awaited<ReturnType<typeof budgetWorker>> | undefined;
  let client: Client;
  let activities: RemediationSupportActivities;

  before(async () => {
    setup = await budgetWorker(taskQueue, clusterId);
    client = setup.client;
    activities = createRemediationSupportActivities({
      kc: setup.stack.kc,
      client,
      clusterId,
      taskQueue,
      budgetConfig: { maxConcurrentDrains: 1, minHealthyFraction: 0 },
    });
    // A node the drill cordoned: its ownership record names the drill (`drill/<drill ID>`).
    await clients(setup.stack.kc).core.createNode({
      body: {
        metadata: {
          name: node,
          annotations: {
            [CORDON_ANNOTATION]: formatCordonRecord({
              workflowId: drillOwner(drillId),
              reason: `drill ${drillId}: node eviction`,
              at: new Date().toISOString(),
              preexistingCordon: false,
            }),
          },
        },
        spec: { unschedulable: true },
      },
    });
  });

  after(async () => {
    await clients(setup!.stack.kc)
      .core.deleteNode({ name: node })
      .catch(() => undefined);
    await setup?.stop([fleetBudgetWorkflowId(clusterId), drillWorkflowId(clusterId, drillId)]);
  });

  it('is held while the drill runs, never queued when refused, and recovered once the drill has closed', async () => {
    // A stand-in for the running drill workflow (any workflow that stays open under its ID).
    const drill = await client.workflow.start('fleetBudgetWorkflow', {
      workflowId: drillWorkflowId(clusterId, drillId),
      taskQueue,
      args: [{ clusterId: `${clusterId}-stand-in-drill` }],
    });
    // And one for the remediation of `other`: a queued node whose remediation is gone is dropped.
    const othersRemediation = await client.workflow.start('fleetBudgetWorkflow', {
      workflowId: remediationWorkflowId(clusterId, 'other'),
      taskQueue,
      args: [{ clusterId: `${clusterId}-stand-in-other` }],
    });
    const first = await activities.budgetAcquire({ node, remediationTimestamps: [], queue: false });
    assert.equal(first.admitted, true, JSON.stringify(first));
    // No remediation runs for the node, but the drill does: its slot is not stale.
    const other = await activities.budgetAcquire({ node: 'other', remediationTimestamps: [] });
    assert.ok(!other.admitted && other.reason === 'max-concurrent', JSON.stringify(other));
    const drillAgain = await activities.budgetAcquire({
      node: 'another-drill-node',
      remediationTimestamps: [],
      queue: false,
    });
    assert.equal(drillAgain.admitted, false);
    const state = await client.workflow.getHandle(fleetBudgetWorkflowId(clusterId)).query(fleetBudgetState);
    assert.deepEqual(state.draining, [node]);
    await eventually('other queued', async () =>
      (
        await client.workflow.getHandle(fleetBudgetWorkflowId(clusterId)).query(fleetBudgetState)
      ).queue?.includes('other')
        ? true
        : undefined,
    );
    const queue =
      (await client.workflow.getHandle(fleetBudgetWorkflowId(clusterId)).query(fleetBudgetState)).queue ?? [];
    assert.ok(!queue.includes('another-drill-node'), `a refused drill joined the queue: ${queue.join()}`);

    // Terminated (no rollback ran): the next request recovers the slot.
    await drill.terminate('the drill was terminated');
    const after = await activities.budgetAcquire({ node: 'other', remediationTimestamps: [] });
    assert.equal(after.admitted, true, JSON.stringify(after));
    await othersRemediation.terminate('test finished');
  });
});
