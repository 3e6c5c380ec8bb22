import type { Client, WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { workflowsPath } from '../../src/workers/control-worker.js';
import {
  acquireDrainSlot,
  acquireDrainSlots,
  fleetBudgetState,
  fleetBudgetWorkflow,
  fleetBudgetWorkflowId,
  pauseAutomation,
  queueForDrainSlot,
  releaseDrainSlot,
  reportNodeFailures,
  resumeAutomation,
} from '../../src/workflows/fleet-budget.js';
import { remediationWorkflowId } from '../../src/contracts/ids.js';
import { eventually } from '../helpers/k8s.js';
import { createTemporalTestEnv, installQuietRuntime } from '../helpers/temporal.js';
import type { FleetBudgetRecords } from '../../src/activities/fleet-budget-records.js';
import type { BudgetSettings } from '../../src/k8s/budget-settings.js';

function emptyRecords(): FleetBudgetRecords {
  return {
    settings: { paused: null, breaker: { state: 'closed' } },
    settingsError: null,
    draining: [],
    failures: [],
    summary: 'nothing on record',
  };
}

// The fleet budget workflow alone, on a real Temporal dev server: its queue for drain slots. Callers
// pass the fleet view themselves (the activities read it from Kubernetes; see
// remediation-support.test.ts for that path). With FLEETMEDIC_RECORD_HISTORIES=1 the history is kept
// for the replay test (test/fixtures/histories/fleet-budget.json).
describe('fleet budget: the queue for drain slots (real Temporal dev server)', { timeout: 120_000 }, () => {
  let env: TestWorkflowEnvironment;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = 'fleet-budget-test';
  // The budget's records in the cluster, faked: what a budget started without state rebuilds from,
  // and every settings object it writes.
  let records: FleetBudgetRecords = emptyRecords();
  const written: BudgetSettings[] = [];
  let recordsRead = 0;
  let releaseRead: (() => void) | undefined;
  const clusterId = 'replay';
  const healthyNodes = ['n1', 'n2', 'n3', 'n4'];

  before(async () => {
    installQuietRuntime();
    env = await createTemporalTestEnv();
    client = env.client;
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      activities: {
        async readFleetBudgetRecords(): Promise<FleetBudgetRecords> {
          recordsRead++;
          if (releaseRead) await new Promise<void>((resolve) => (releaseRead = resolve));
          return records;
        },
        writeFleetBudgetSettings(settings: BudgetSettings): Promise<void> {
          written.push(settings);
          return Promise.resolve();
        },
      },
      workflowBundle: await bundleWorkflowCode({
        workflowsPath: workflowsPath(),
        logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
      }),
    });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });

  it('admits in queue order, signals the first when a slot frees, and drops a waiter whose remediation is gone', async () => {
    const budget = await client.workflow.start(fleetBudgetWorkflow, {
      workflowId: fleetBudgetWorkflowId(clusterId),
      taskQueue,
      args: [{ clusterId, config: { maxConcurrentDrains: 1, minHealthyFraction: 0 } }],
    });
    // As a worker asks (acquireDrainSlots), with the fleet view: every request is decided.
    const ask = async (node: string) => {
      const [answer] = await budget.executeUpdate(acquireDrainSlots, {
        args: [{ requests: [{ node }], fleet: { gpuNodeCount: 4, healthyNodes } }],
      });
      assert.ok(answer !== undefined && 'admission' in answer, JSON.stringify(answer));
      return answer.admission;
    };
    const queue = async () => (await budget.query(fleetBudgetState)).queue ?? [];
    // n2's remediation, a stand-in: any running workflow with its ID receives the signal (and keeps
    // it in its history, having no handler for it). n3 has none.
    const n2 = await client.workflow.start(fleetBudgetWorkflow, {
      workflowId: remediationWorkflowId(clusterId, 'n2'),
      taskQueue,
      args: [{ clusterId: 'stand-in' }],
    });
    try {
      await budget.executeUpdate(reportNodeFailures, {
        args: [{ nodes: ['n1'], gpuNodeCount: 4, healthyNodes }],
      });
      assert.equal((await ask('n1')).admitted, true);
      // Without a fleet view the budget answers what needs none: every slot is taken.
      const [unviewed, ...rest] = await budget.executeUpdate(acquireDrainSlots, {
        args: [{ requests: [{ node: 'n9', queue: false }] }],
      });
      assert.ok(
        rest.length === 0 && unviewed !== undefined && 'admission' in unviewed,
        JSON.stringify(unviewed),
      );
      assert.equal(!unviewed.admission.admitted && unviewed.admission.reason, 'max-concurrent');
      await assert.rejects(
        budget.executeUpdate(acquireDrainSlots, { args: [{ requests: [] }] }),
        (err: Error) =>
          /requests must be a non-empty list/.test(String((err.cause as Error | undefined)?.message)),
      );
      const n2Refused = await ask('n2');
      assert.ok(!n2Refused.admitted && n2Refused.reason === 'max-concurrent' && n2Refused.ahead === 0);
      const n3Refused = await ask('n3');
      assert.ok(!n3Refused.admitted && n3Refused.ahead === 1);
      await budget.signal(queueForDrainSlot, { node: 'n3' }); // already queued: no change
      assert.deepEqual(await queue(), ['n2', 'n3']);

      await budget.executeUpdate(releaseDrainSlot, { args: [{ node: 'n1' }] });
      await eventually('n2 signalled', async () =>
        ((await n2.fetchHistory()).events ?? []).some(
          (e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'drainSlotFree',
        )
          ? true
          : undefined,
      );
      const early = await ask('n3');
      assert.ok(!early.admitted && early.reason === 'queued', JSON.stringify(early));
      assert.equal((await ask('n2')).admitted, true);
      assert.deepEqual(await queue(), ['n3']);

      await budget.executeUpdate(releaseDrainSlot, { args: [{ node: 'n2' }] });
      await eventually('n3 dropped (its remediation does not exist)', async () =>
        (await queue()).length === 0 ? true : undefined,
      );
      const events = (await budget.fetchHistory()).events ?? [];
      assert.equal(events.filter((e) => e.signalExternalWorkflowExecutionFailedEventAttributes).length, 1);
    } finally {
      await budget.terminate('test finished');
      await n2.terminate('test finished');
    }
    await record(budget);
  });

  it('a budget started without state rebuilds itself from the cluster before it answers', async () => {
    records = {
      ...emptyRecords(),
      settings: {
        paused: { by: 'alice', reason: 'driver rollout', at: '2026-12-02T10:00:00.000Z' },
        breaker: { state: 'closed' },
      },
      draining: ['n1'],
      failures: [{ node: 'n1', at: Date.now() - 1000 }],
    };
    // The read is held until the update below is in: it must wait for the rebuild, not see an empty budget.
    releaseRead = () => {};
    const reads = recordsRead;
    const budget = await client.workflow.start(fleetBudgetWorkflow, {
      workflowId: fleetBudgetWorkflowId('rebuild'),
      taskQueue,
      args: [{ clusterId: 'rebuild', config: { maxConcurrentDrains: 1, minHealthyFraction: 0 } }],
    });
    try {
      await eventually('the records read', () => Promise.resolve(recordsRead > reads ? true : undefined));
      // Until its records are in, its state query says it is rebuilding (its figures are not the fleet's).
      assert.equal((await budget.query(fleetBudgetState)).rebuilding, true);
      const asked = budget.executeUpdate(acquireDrainSlot, {
        args: [{ node: 'n2', gpuNodeCount: 4, healthyNodes }],
      });
      const release = releaseRead;
      releaseRead = undefined;
      release();
      const refused = await asked;
      assert.ok(!refused.admitted && refused.reason === 'paused', JSON.stringify(refused));
      const state = await budget.query(fleetBudgetState);
      assert.equal(state.rebuilding, undefined);
      assert.equal(state.paused, true);
      assert.deepEqual(state.draining, ['n1']);
      assert.deepEqual(
        state.failures.map((f) => f.node),
        ['n1'],
      );

      // Resumed: the slot n1 holds still counts, and the resume is written to the settings object.
      await budget.executeUpdate(resumeAutomation, { args: [{ by: 'bob' }] });
      assert.deepEqual(written.at(-1), { paused: null, breaker: { state: 'closed' } });
      const full = await budget.executeUpdate(acquireDrainSlot, {
        args: [{ node: 'n2', gpuNodeCount: 4, healthyNodes }],
      });
      assert.ok(!full.admitted && full.reason === 'max-concurrent', JSON.stringify(full));

      // A pause is written with who and why; a breaker that opens is written without anyone waiting.
      await budget.executeUpdate(pauseAutomation, { args: [{ by: 'carol', reason: 'maintenance' }] });
      assert.deepEqual(
        { ...written.at(-1)!.paused, at: undefined },
        { by: 'carol', reason: 'maintenance', at: undefined },
      );
      await budget.executeUpdate(reportNodeFailures, {
        args: [{ nodes: ['n2', 'n3', 'n4'], gpuNodeCount: 4, healthyNodes }],
      });
      await eventually('the open breaker written', () =>
        Promise.resolve(written.at(-1)?.breaker.state === 'open' ? true : undefined),
      );
    } finally {
      await budget.terminate('test finished');
      records = emptyRecords();
    }
  });

  async function record(handle: WorkflowHandle): Promise<void> {
    if (process.env.FLEETMEDIC_RECORD_HISTORIES !== '1') return;
    const dir = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));
    await fs.writeFile(`${dir}fleet-budget.json`, historyToJSON(await handle.fetchHistory()));
  }
});
