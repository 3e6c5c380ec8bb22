/**
 * A control worker for the kill-point tests (test/workflows/kill-points.e2e.test.ts), run as a child
 * process: wired as `fleetmedic worker` wires it (the test stack's Temporal and cluster, the prebuilt
 * workflow bundle at FLEETMEDIC_WORKFLOW_BUNDLE), plus one activity interceptor: right after an
 * activity named in FLEETMEDIC_TEST_KILL_AFTER (comma-separated) completes its side effect, and before
 * the worker reports the completion to Temporal, it writes the activity's name to
 * FLEETMEDIC_TEST_KILL_MARKER and kills its own process with SIGKILL. The drill tests
 * (test/drill/worker-kill.e2e.test.ts) also set FLEETMEDIC_DRILL_DIR, the drill activities' directory.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, type ActivityInterceptorsFactory } from '@temporalio/worker';
import fs from 'node:fs';
import { createControlWorkers, prebuiltWorkflowBundle } from '../../src/workers/control-worker.js';
import { useTestStack } from './stack.js';

const killAfter = new Set((process.env.FLEETMEDIC_TEST_KILL_AFTER ?? '').split(',').filter(Boolean));
const marker = process.env.FLEETMEDIC_TEST_KILL_MARKER;
const taskQueue = process.env.FLEETMEDIC_TASK_QUEUE;
const bundle = process.env.FLEETMEDIC_WORKFLOW_BUNDLE;
const drillDir = process.env.FLEETMEDIC_DRILL_DIR;
if (!marker || !taskQueue || !bundle) {
  throw new Error(
    'kill-after-worker needs FLEETMEDIC_TEST_KILL_MARKER, FLEETMEDIC_TASK_QUEUE, FLEETMEDIC_WORKFLOW_BUNDLE',
  );
}

const killer: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    async execute(input, next) {
      const result = await next(input);
      if (killAfter.has(ctx.info.activityType)) {
        fs.writeFileSync(marker, ctx.info.activityType);
        process.kill(process.pid, 'SIGKILL');
        await new Promise(() => {});
      }
      return result;
    },
  },
});

Runtime.install({ logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } });
const stack = await useTestStack();
const address = stack.state.temporal.address;
const connection = await NativeConnection.connect({ address });
const client = new Client({ connection: await Connection.connect({ address }) });
const workers = await createControlWorkers({
  connection,
  client,
  kc: stack.kc,
  clusterId: stack.state.clusterId,
  taskQueue,
  workflowBundle: await prebuiltWorkflowBundle(bundle),
  budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 4 },
  activityInterceptors: [killer],
  ...(drillDir && { drillDir }),
});
process.stdout.write('ready\n');
await Promise.all(workers.map((w) => w.run()));
