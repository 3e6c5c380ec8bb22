import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { mergePatch } from '../../src/k8s/patch.js';
import { fleetBudgetWorkflowId } from '../../src/workflows/fleet-budget.js';
import { clearRemediationHistory, clients, liftQuarantine } from '../helpers/k8s.js';
import { xidAlert } from '../helpers/remediation-inputs.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

const CLI = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));

// `fleetmedic demo` (what scripts/quickstart.sh runs before its drill) runs end to end on the embedded stack:
// its own control worker and simulated agents, two faults, both nodes back in service.
describe('fleetmedic demo', () => {
  let stack: TestStack;
  let dir: string;
  let nodes: string[] = [];

  async function clearNodeHistory() {
    for (const name of nodes) {
      await liftQuarantine(stack.kc, name).catch(() => {});
      await clearRemediationHistory(stack.kc, [name]).catch(() => {});
    }
  }

  before(async () => {
    stack = await useTestStack();
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-demo-'));
    nodes = (await clients(stack.kc).core.listNode()).items.map((n) => n.metadata!.name!);
    await clearNodeHistory();
  });

  after(async () => {
    // The demo's fleet budget ran on the demo's own task queue, whose worker is gone: end it so the
    // next test's workers start their own.
    const connection = await Connection.connect({ address: stack.state.temporal.address });
    await new Client({ connection }).workflow
      .getHandle(fleetBudgetWorkflowId(stack.state.clusterId))
      .terminate('demo test finished')
      .catch(() => {});
    await connection.close();
    await clearNodeHistory();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('remediates an XID 48 (reset) and an XID 79 (approved reboot) and returns both nodes to service', async () => {
    const demo = () =>
      execa(process.execPath, [CLI, 'demo'], {
        env: {
          FLEETMEDIC_STATE_DIR: dir,
          FLEETMEDIC_TEMPORAL_ADDRESS: stack.state.temporal.address,
          FLEETMEDIC_KUBECONFIG: stack.state.kube.kubeconfig,
          FLEETMEDIC_CLUSTER_ID: stack.state.clusterId,
        },
        extendEnv: true,
        reject: false,
        timeout: 300_000,
      });
    const r = await demo();
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /injected on \S+ GPU 2: XID 48/);
    assert.match(r.stdout, /the demo approves as "demo"/);
    assert.equal(r.stdout.match(/: returned-to-service;/g)?.length, 2, r.stdout);
    // What a person reads is the demo's story: the workers' logs (SDK warnings, the notifications'
    // JSON lines) go to the log file the demo names, at the default log level too.
    const terminal = `${r.stdout}\n${r.stderr}`;
    assert.doesNotMatch(terminal, /^\s*\{"/m, 'a JSON log line in the terminal');
    assert.doesNotMatch(terminal, /\[(WARN|INFO|ERROR)\]/, 'an SDK log line in the terminal');
    const logFile = path.join(dir, 'logs', 'demo.log');
    assert.match(r.stdout, new RegExp(`worker logs: ${logFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(await fs.readFile(logFile, 'utf8'), /"msg":"notification","kind":"returned-to-service"/);
    // The budget its worker served is ended with it: left on the demo's queue, no worker would ever
    // answer a later drain (a drill's, the next demo's).
    {
      const connection = await Connection.connect({ address: stack.state.temporal.address });
      try {
        const budget = await new Client({ connection }).workflow
          .getHandle(fleetBudgetWorkflowId(stack.state.clusterId))
          .describe();
        assert.notEqual(budget.status.name, 'RUNNING', `the budget still runs on ${budget.taskQueue}`);
      } finally {
        await connection.close();
      }
    }

    // Run again (a user who runs the quickstart twice): the nodes' earlier remediations must not send
    // them to replace-hardware, and the demo must not wait forever.
    // An earlier demo killed mid-way left a remediation open on the demo's task queue (no worker
    // polls it) with its node cordoned: the next demo ends it and returns the node to service.
    const leftover = nodes.at(-1)!;
    const connection = await Connection.connect({ address: stack.state.temporal.address });
    try {
      await startOrJoinRemediation(new Client({ connection }), {
        clusterId: stack.state.clusterId,
        node: leftover,
        taskQueue: 'fleetmedic-demo',
        alert: { ...xidAlert(79), source: 'a demo killed mid-way' },
      });
    } finally {
      await connection.close();
    }
    await clients(stack.kc).core.patchNode(
      {
        name: leftover,
        body: {
          spec: { unschedulable: true },
          metadata: { labels: { 'fleetmedic.io/quarantined': 'true' } },
        },
      },
      mergePatch,
    );
    const again = await demo();
    assert.equal(again.exitCode, 0, `${again.stdout}\n${again.stderr}`);
    assert.match(
      again.stdout,
      new RegExp(
        `${leftover}: ended the remediation an earlier demo left open, and returned the node to service`,
      ),
    );
    assert.notEqual((await clients(stack.kc).core.readNode({ name: leftover })).spec?.unschedulable, true);
    assert.match(again.stdout, /forgot the remediations of earlier demo runs/);
    assert.equal(again.stdout.match(/: returned-to-service;/g)?.length, 2, again.stdout);
  });
});
