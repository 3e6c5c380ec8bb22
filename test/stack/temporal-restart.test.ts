import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  startTemporalServer,
  stopTemporalServer,
  type TemporalServerOptions,
} from '../../src/stack/temporal-server.js';
import { isPortFree, pickFreePorts } from '../../src/stack/processes.js';
import { installQuietRuntime, temporalBinary } from '../helpers/temporal.js';
import { proceed } from '../fixtures/workflows/restart.js';

const workflowsPath = fileURLToPath(new URL('../fixtures/workflows/restart.ts', import.meta.url));

async function runWorkerUntil<T>(
  address: string,
  taskQueue: string,
  bundle: { code: string },
  fn: () => Promise<T>,
) {
  const connection = await NativeConnection.connect({ address });
  try {
    const worker = await Worker.create({ connection, taskQueue, workflowBundle: bundle });
    return await worker.runUntil(fn());
  } finally {
    await connection.close();
  }
}

installQuietRuntime();

describe('embedded Temporal dev server', () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it('completes a workflow started before a restart of the server, from its SQLite file', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-temporal-'));
    cleanup.push(() => fs.rm(dataDir, { recursive: true, force: true }));
    const ports = await pickFreePorts(4);
    const options: TemporalServerOptions = {
      binary: await temporalBinary(),
      dataDir,
      port: ports[0]!,
      uiPort: ports[1]!,
      httpPort: ports[2]!,
      metricsPort: ports[3]!,
    };
    const bundle = await bundleWorkflowCode({ workflowsPath, logger: quietLogger });

    let server = await startTemporalServer(options);
    cleanup.push(async () => {
      await stopTemporalServer(server.process);
    });
    const taskQueue = 'restart-test';
    const workflowId = `restart-${Date.now()}`;
    let connection = await Connection.connect({ address: server.address });
    const handle = await new Client({ connection }).workflow.start('waitForProceed', {
      taskQueue,
      workflowId,
    });
    // Let a worker pick up the first workflow task, so the workflow is mid-flight when the server stops.
    await runWorkerUntil(server.address, taskQueue, bundle, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    });
    await connection.close();

    assert.equal(await stopTemporalServer(server.process), 'stopped');
    assert.ok(await isPortFree(options.port), 'the frontend port is still taken after stop');
    server = await startTemporalServer(options);

    connection = await Connection.connect({ address: server.address });
    try {
      const client = new Client({ connection });
      const resumed = client.workflow.getHandle(workflowId, handle.firstExecutionRunId);
      const result = await runWorkerUntil(server.address, taskQueue, bundle, async (): Promise<string> => {
        await resumed.signal(proceed, 'after-restart');
        return (await resumed.result()) as string;
      });
      assert.equal(result, 'proceeded with after-restart');
    } finally {
      await connection.close();
    }
  });
});

const quietLogger = {
  log: () => {},
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
