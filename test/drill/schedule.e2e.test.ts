import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, ChildWorkflowFailure } from '@temporalio/common';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { Command } from 'commander';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { registerDrillScheduleCommands } from '../../src/cli/commands/drill-schedule.js';
import { registerOperatorCommands } from '../../src/cli/commands/operator.js';
import { addGlobalFlags } from '../../src/cli/context.js';
import {
  DRILL_WORKFLOW,
  drillProgressQuery,
  drillWorkflowId,
  type DrillResult,
} from '../../src/contracts/drill.js';
import {
  drillScheduleId,
  scheduledDrillId,
  SCHEDULED_DRILL_WORKFLOW,
  type ScheduledDrillInput,
} from '../../src/contracts/drill-schedule.js';
import { fleetBudgetWorkflowId } from '../../src/contracts/fleet-budget.js';
import { ConfigError, FailureType } from '../../src/errors.js';
import { workflowBundleOptions } from '../../src/workers/control-worker.js';
import { stackCli } from '../helpers/cli.js';
import { eventually } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { finishDrill, stubInputQuery } from '../fixtures/workflows/stub-drill.js';

// Drill schedules on the embedded stack's Temporal dev server, through the CLI's code: create, list,
// trigger, drill-cancel, pause on failure, delete. The launcher is the real one; the drill it starts
// is a stub of the same type (test/fixtures/workflows/stub-drill.ts) that holds a "cordon" until
// signalled and rolls back on cancel, so the test checks the launcher's naming and cancellation
// semantics without a full drill's minutes (test/drill/workflow.e2e.test.ts runs the real one).
const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
const STUB = fileURLToPath(new URL('../fixtures/workflows/stub-drill.ts', import.meta.url));

describe('drill schedules (embedded stack Temporal, real launcher, stub drill)', { timeout: 300_000 }, () => {
  let stack: TestStack;
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `drill-schedule-e2e-${process.pid}`;
  const name = `nightly-${process.pid}`;

  before(async () => {
    stack = await useTestStack();
    // The CLI reads its targets from the environment and the stack's record, as an operator's shell has them.
    process.env.FLEETMEDIC_STATE_DIR = stack.config.stateDir;
    process.env.FLEETMEDIC_TASK_QUEUE = taskQueue;
    nativeConnection = await NativeConnection.connect({ address: stack.state.temporal.address });
    connection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection });
    worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowBundle: await bundleWorkflowCode({ workflowsPath: STUB, logger: silent }),
    });
    running = worker.run();
  });

  after(async () => {
    await client.schedule
      .getHandle(drillScheduleId(stack.state.clusterId, name))
      .delete()
      .catch(() => undefined);
    worker.shutdown();
    await running;
    await connection?.close();
    await nativeConnection?.close();
  });

  /** Runs `fleetmedic <args>` in this process; resolves to what it printed and its exit code. */
  async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    let stdout = '';
    let stderr = '';
    const program = new Command().exitOverride();
    program.configureOutput({ writeErr() {}, writeOut() {} });
    addGlobalFlags(program);
    registerDrillScheduleCommands(program, {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
    });
    registerOperatorCommands(program, { out: (t) => (stdout += t) });
    process.exitCode = 0;
    await program.parseAsync(args, { from: 'user' });
    const code = Number(process.exitCode ?? 0);
    process.exitCode = 0;
    return { stdout, stderr, code };
  }

  async function forgetClosedBudget(): Promise<void> {
    const budget = client.workflow.getHandle(fleetBudgetWorkflowId(stack.state.clusterId));
    const d = await budget.describe().catch(() => undefined);
    if (!d || d.status.name === 'RUNNING') return;
    await client.workflowService.deleteWorkflowExecution({
      namespace: 'default',
      workflowExecution: { workflowId: budget.workflowId },
    });
    await eventually('the closed budget forgotten', () =>
      budget.describe().then(
        () => undefined,
        () => true,
      ),
    );
  }

  const scheduleId = () => drillScheduleId(stack.state.clusterId, name);
  const schedule = () => client.schedule.getHandle(scheduleId());

  /** The launcher the schedule started last, once it has one, and the drill ID it derives. */
  async function lastLauncher() {
    const run = await eventually('a run of the schedule', async () => {
      return (await schedule().describe()).info.recentActions.at(-1)?.action.workflow;
    });
    const launcher = client.workflow.getHandle(run.workflowId, run.firstExecutionRunId);
    const drillId = scheduledDrillId(scheduleId(), (await launcher.describe()).startTime.getTime());
    return { launcher, drillId };
  }

  it('create makes a schedule of the launcher, SKIP overlap, a 5 min catch-up window, pause on failure', async () => {
    const out = await cli(
      'drill-schedule',
      'create',
      name,
      '--every',
      '1d',
      '--target-url',
      'http://127.0.0.1:1',
      '--deployment',
      'llama',
      '--rate',
      '7',
    );
    assert.match(out.stdout, new RegExp(`drill schedule ${name}: every 1d, next run \\d{4}-`));
    const d = await schedule().describe();
    assert.equal(d.action.workflowType, SCHEDULED_DRILL_WORKFLOW);
    assert.equal(d.action.taskQueue, taskQueue);
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal(d.policies.catchupWindow, 5 * 60_000);
    assert.equal(d.policies.pauseOnFailure, true);
    assert.equal(d.spec.intervals?.[0]?.every, 86_400_000);
    await assert.rejects(
      cli('drill-schedule', 'create', name, '--every', '1d', '--target-url', 'http://127.0.0.1:1'),
      (err: unknown) => err instanceof ConfigError && /exists on cluster/.test(err.message),
    );
  });

  it('list (through bin/fleetmedic.js) names it with its interval and no run yet', async () => {
    const run = stackCli(() => stack, taskQueue);
    const out = await run('drill-schedule', 'list');
    assert.equal(out.exitCode, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`^${name}  every 1d  next \\S+  last: none yet$`, 'm'));
  });

  it('trigger starts the launcher, whose child drill has the derived ID, the queue and the input', async () => {
    const out = await cli('drill-schedule', 'trigger', name);
    assert.match(out.stdout, /triggered/);
    const { drillId } = await lastLauncher();
    assert.match(drillId, new RegExp(`^${name}-\\d{8}t\\d{6}\\.\\d{3}z$`));
    const drill = client.workflow.getHandle(drillWorkflowId(stack.state.clusterId, drillId));
    const input = await eventually('the drill answers', () => drill.query(stubInputQuery));
    assert.equal(input.drillId, drillId);
    assert.equal(input.deployment, 'llama');
    assert.equal(input.targetUrl, 'http://127.0.0.1:1');
    assert.deepEqual(input.probe, { rate: 7 });
    assert.equal(input.drainNode, true); // the embedded stack: the guard allows the node drain
    const d = await drill.describe();
    assert.equal(d.type, DRILL_WORKFLOW);
    assert.equal(d.taskQueue, taskQueue);
    const list = await cli('drill-schedule', 'list');
    assert.match(list.stdout, new RegExp(`last: ${drillId} running`));
    // `fleetmedic status` lists the running drill (visibility catches up within moments). It also
    // queries the fleet budget, and a closed one an earlier file left answers no query (no worker
    // serves its queue): status would fail on it, so its record goes first.
    await forgetClosedBudget();
    const status = await eventually('status lists the drill', async () => {
      const out = await cli('status');
      return out.stdout.includes(`drill ${drillId}`) ? out.stdout : undefined;
    });
    assert.match(
      status,
      new RegExp(`^drill ${drillId}  eviction  \\d+s  cordoned gpu-node-1  started by ${scheduleId()}-`, 'm'),
    );
    // One drill of a schedule at a time.
    await assert.rejects(
      cli('drill-schedule', 'trigger', name),
      (err: unknown) => err instanceof ConfigError && /still runs/.test(err.message),
    );
  });

  it('drill-cancel rolls the drill back and waits for it; its launcher fails and the schedule pauses', async () => {
    const { launcher, drillId } = await lastLauncher();
    const out = await cli('drill-cancel', drillId, '--wait', '60');
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, new RegExp(`drill ${drillId}: cancel requested`));
    assert.match(
      out.stdout,
      new RegExp(`drill ${drillId}: cancelled and rolled back; nothing left cordoned`),
    );
    await assert.rejects(launcher.result(), (err: unknown) => err instanceof WorkflowFailedError);
    const paused = await eventually('the schedule paused', async () => {
      const d = await schedule().describe();
      return d.state.paused ? d : undefined;
    });
    assert.ok(paused.state.note, 'the server says why it paused');
    const list = await cli('drill-schedule', 'list');
    assert.match(list.stdout, new RegExp(`^${name}  every 1d  paused  last: ${drillId} failed$`, 'm'));
    assert.match((await cli('drill-schedule', 'unpause', name)).stdout, /unpaused/);
    assert.equal((await schedule().describe()).state.paused, false);
    const again = await cli('drill-cancel', drillId);
    assert.match(again.stdout, /not running \(cancelled\)/);
  });

  it('delete removes it; a schedule that is not there is named in the error', async () => {
    assert.match((await cli('drill-schedule', 'delete', name)).stdout, /deleted/);
    await assert.rejects(
      cli('drill-schedule', 'delete', name),
      (err: unknown) =>
        err instanceof ConfigError && new RegExp(`no drill schedule ${name}`).test(err.message),
    );
    await eventually('the listing without it', async () => {
      const out = await cli('drill-schedule', 'list');
      return out.stdout.includes(name) ? undefined : true;
    });
  });

  /** A launcher started the way the schedule starts it, and its drill once running. */
  async function launch(tag: string) {
    const id = drillScheduleId(stack.state.clusterId, `${tag}-${process.pid}`);
    const input: ScheduledDrillInput = {
      scheduleId: id,
      drill: {
        clusterId: stack.state.clusterId,
        namespace: 'default',
        deployment: 'llama',
        targetUrl: 'http://127.0.0.1:1',
      },
    };
    const launcher = await client.workflow.start(SCHEDULED_DRILL_WORKFLOW, {
      workflowId: `${id}-${Date.now()}`,
      taskQueue,
      args: [input],
    });
    const drillId = scheduledDrillId(id, (await launcher.describe()).startTime.getTime());
    const drill = client.workflow.getHandle(drillWorkflowId(stack.state.clusterId, drillId));
    await eventually('the drill answers', () => drill.query(drillProgressQuery));
    return { launcher, drill, drillId };
  }

  it("returns the drill's result when the drill finishes", async () => {
    const { launcher, drill, drillId } = await launch('finish');
    await drill.signal(finishDrill);
    const r = (await launcher.result()) as DrillResult;
    assert.equal(r.drillId, drillId);
    assert.equal(r.pass, true);
  });

  it('cancelling the launcher cancels the drill and waits for its rollback', async () => {
    const { launcher, drill } = await launch('cancel');
    await launcher.cancel();
    await assert.rejects(
      launcher.result(),
      (err: unknown) => err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure,
    );
    // WAIT_CANCELLATION_COMPLETED: the launcher closed only after the drill had rolled back.
    assert.equal((await drill.describe()).status.name, 'CANCELLED');
    const p = await drill.query(drillProgressQuery);
    assert.equal(p.stage, 'rolling-back');
    assert.deepEqual(p.cordoned, []);
  });

  it('terminating the launcher still rolls the drill back (parent close policy REQUEST_CANCEL)', async () => {
    const { launcher, drill } = await launch('terminate');
    await launcher.terminate('test: the launcher is terminated');
    const closed = await eventually('the drill closed', async () => {
      const d = await drill.describe();
      return d.status.name === 'RUNNING' ? undefined : d.status.name;
    });
    assert.equal(closed, 'CANCELLED');
    assert.deepEqual((await drill.query(drillProgressQuery)).cordoned, []);
  });

  it('a launcher whose drill fails (here: cancelled on its own) fails with the child failure', async () => {
    const { launcher, drill } = await launch('child-cancel');
    await drill.cancel();
    await assert.rejects(
      launcher.result(),
      (err: unknown) => err instanceof WorkflowFailedError && err.cause instanceof ChildWorkflowFailure,
    );
  });
});

// The control worker's own bundle (src/workflows/index.ts) has the launcher and the real drill under
// the names the schedule and the launcher use: the real drill refuses an invalid input at once, before
// any activity, and its failure comes back through the launcher.
describe("drill schedules: the control worker's bundle", { timeout: 300_000 }, () => {
  let stack: TestStack;
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `drill-schedule-bundle-e2e-${process.pid}`;

  before(async () => {
    stack = await useTestStack();
    nativeConnection = await NativeConnection.connect({ address: stack.state.temporal.address });
    connection = await Connection.connect({ address: stack.state.temporal.address });
    client = new Client({ connection });
    worker = await Worker.create({
      connection: nativeConnection,
      taskQueue,
      workflowBundle: await bundleWorkflowCode({ ...workflowBundleOptions(), logger: silent }),
    });
    running = worker.run();
  });

  after(async () => {
    worker.shutdown();
    await running;
    await connection?.close();
    await nativeConnection?.close();
  });

  it('runs the real drillWorkflow as the child, under the derived ID', async () => {
    const scheduleId = drillScheduleId(stack.state.clusterId, `bundle-${process.pid}`);
    const input: ScheduledDrillInput = {
      scheduleId,
      drill: {
        clusterId: stack.state.clusterId,
        namespace: 'default',
        deployment: 'Not_A_Name',
        targetUrl: 'http://127.0.0.1:1',
      },
    };
    const launcher = await client.workflow.start(SCHEDULED_DRILL_WORKFLOW, {
      workflowId: `${scheduleId}-${Date.now()}`,
      taskQueue,
      args: [input],
    });
    await assert.rejects(
      launcher.result(),
      (err: unknown) =>
        err instanceof WorkflowFailedError &&
        err.cause instanceof ChildWorkflowFailure &&
        err.cause.cause instanceof ApplicationFailure &&
        err.cause.cause.type === FailureType.InvalidInput &&
        /deployment "Not_A_Name" is not a name/.test(err.cause.cause.message),
    );
    const drillId = scheduledDrillId(scheduleId, (await launcher.describe()).startTime.getTime());
    const drill = await client.workflow.getHandle(drillWorkflowId(stack.state.clusterId, drillId)).describe();
    assert.equal(drill.type, DRILL_WORKFLOW);
    assert.equal(drill.status.name, 'FAILED');
    assert.equal(drill.parentExecution?.workflowId, launcher.workflowId);
  });
});
