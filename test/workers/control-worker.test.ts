import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { createControlWorkers } from '../../src/workers/control-worker.js';
import {
  fleetBudgetState,
  fleetBudgetWorkflow,
  fleetBudgetWorkflowId,
} from '../../src/workflows/fleet-budget.js';
import { budgetTaskQueue } from '../../src/contracts/ids.js';
import { useTestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';

describe('control worker', () => {
  it('refuses an invalid fleet budget before connecting anything, naming the field', async () => {
    await assert.rejects(
      createControlWorkers({
        // Never reached: the budget is checked first.
        connection: undefined as never,
        client: undefined as never,
        kc: undefined as never,
        clusterId: 'lab-1',
        taskQueue: 'fleetmedic',
        budgetConfig: { breakerThreshold: 10 },
      }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /breakerThreshold is 10, expected a fraction from 0 to 1/.test(err.message),
    );
  });

  it('refuses a GPU DaemonSet selector that is not one before connecting anything, naming it', async () => {
    await assert.rejects(
      createControlWorkers({
        connection: undefined as never,
        client: undefined as never,
        kc: undefined as never,
        clusterId: 'lab-1',
        taskQueue: 'fleetmedic',
        gpuDaemonSetSelectors: ['app=nvidia-device-plugin-daemonset', 'app notin (a'],
      }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /gpuDaemonSetSelectors: "app notin \(a" is not a label selector/.test(err.message),
    );
  });

  it('names the fleet budget queue after the control queue, once', () => {
    assert.equal(budgetTaskQueue('fleetmedic'), 'fleetmedic-fleet-budget');
    assert.equal(budgetTaskQueue(budgetTaskQueue('fleetmedic')), 'fleetmedic-fleet-budget');
  });

  it('serves the fleet budget on a task queue of its own, beside the control queue', async () => {
    installQuietRuntime();
    const stack = await useTestStack();
    const connection = await NativeConnection.connect({ address: stack.state.temporal.address });
    const clientConnection = await Connection.connect({ address: stack.state.temporal.address });
    const client = new Client({ connection: clientConnection });
    const clusterId = `cw-${randomUUID().slice(0, 8)}`;
    const taskQueue = `control-${clusterId}`;
    const workers = await createControlWorkers({ connection, client, kc: stack.kc, clusterId, taskQueue });
    const running = Promise.all(workers.map((w) => w.run()));
    try {
      assert.deepEqual(
        workers.map((w) => w.options.taskQueue),
        [taskQueue, budgetTaskQueue(taskQueue)],
      );
      const handle = await client.workflow.start(fleetBudgetWorkflow, {
        workflowId: fleetBudgetWorkflowId(clusterId),
        taskQueue: budgetTaskQueue(taskQueue),
        args: [{ clusterId }],
      });
      // A query needs a worker polling the budget's queue.
      assert.deepEqual((await handle.query(fleetBudgetState)).draining, []);
      await handle.terminate('test finished');
    } finally {
      for (const w of workers) w.shutdown();
      await running;
      await clientConnection.close();
      await connection.close();
    }
  });
});
