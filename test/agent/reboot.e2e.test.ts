import type { Client } from '@temporalio/client';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { execa, type ResultPromise } from 'execa';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import { approveUpdate, rejectUpdate, releaseUpdate, statusQuery } from '../../src/contracts/remediation.js';
import type { RemediationPolicy } from '../../src/domain/remediation-plan.js';
import { healthyGpuState, MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import type { StandinState } from '../fixtures/standin/standin.js';
import { clearRemediationHistory, clients, eventually, liftQuarantine } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';
import { createReadyNode, removeAgentNode, standinAgentEnv } from '../helpers/agent-node.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, waitForPhase, type RemediationWorkers } from '../helpers/workers.js';

installQuietRuntime();

const cli = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));
const policy: Partial<RemediationPolicy> = { ...FAST_POLICY, approvalReminderMs: 60_000 };
const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

// The real node agent (`fleetmedic agent`) started as on a node, with stand-in dcgmi / nvidia-smi and
// a reboot command that is a stand-in script writing a marker file (never a real reboot): an XID 79
// remediation, approved, reboots through the agent's --reboot-command once; the test plays the node
// coming back (a new boot ID, Ready) and the remediation validates and returns the node to service.
// The node is created after the control worker started, so the in-process simulated agents never
// serve its task queue.
describe('fleetmedic agent reboots its node with its --reboot-command', () => {
  let stack: TestStack;
  let workers: RemediationWorkers | undefined;
  let client: Client;
  let dir: string;
  let agent: ResultPromise | undefined;
  const taskQueue = `fleetmedic-reboot-e2e-${process.pid}`;
  const node = `fm-reboot-${process.pid}`;
  let env: Record<string, string>;
  let rebootStandin: string;

  const stateFile = () => path.join(dir, 'state.json');
  const marker = () => path.join(dir, 'rebooted');
  const failSwitch = () => path.join(dir, 'reboot-fails');

  async function setState(s: Omit<StandinState, 'node'>) {
    await fs.writeFile(stateFile(), JSON.stringify({ node, ...s }));
  }

  /** The stand-in reboot command's calls: one argv per line of JSON. */
  async function reboots(): Promise<string[][]> {
    const text = await fs.readFile(marker(), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string[]);
  }

  /** Starts the agent and waits for its start report; returns the report. */
  async function startAgent(
    extraEnv: Record<string, string>,
  ): Promise<{ agent: ResultPromise; report: string }> {
    const child = execa(
      process.execPath,
      [cli, 'agent', '--node', node, '--query-timeout', '5', '--reboot-timeout', '10'],
      {
        env: { ...env, ...extraEnv },
        reject: false,
        stdin: 'ignore',
        all: true,
      },
    );
    const output: string[] = [];
    let exited = false;
    void child.then(() => (exited = true));
    child.all?.on('data', (d: Buffer) => output.push(d.toString()));
    const report = await eventually(
      'the agent started',
      () => {
        const text = output.join('');
        if (exited) assert.fail(`the agent exited: ${text}`);
        return Promise.resolve(/ {2}reboot: .*\n/.test(text) ? text : undefined);
      },
      60_000,
    );
    return { agent: child, report };
  }

  /** An XID 79 remediation (the GPU fell off the bus) waiting for the approval of its reboot. */
  async function startXid79() {
    await setState({ gpus: withFault(healthyGpuState(node), { gpu: 3, xid: 79 }) });
    await clearRemediationHistory(stack.kc, [node]);
    const handle = await startOrJoinRemediation(client, {
      clusterId: stack.state.clusterId,
      node,
      taskQueue,
      alert: xidAlert(79),
      policy,
    });
    const waiting = await waitForPhase(handle, 'awaiting-approval', 120_000);
    assert.equal(waiting.class, 'reboot-node', waiting.reasons.join('\n'));
    return handle;
  }

  before(async () => {
    stack = await useTestStack();
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus: new MemoryGpuStateStore(),
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 1 },
    });
    client = workers.client;
    await createReadyNode(stack, node, 94);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-reboot-'));
    // The reboot command: records its argv and returns at once, as `systemctl reboot` does once the
    // reboot is queued. Named by absolute path: nothing here can reach a real reboot.
    rebootStandin = path.join(dir, 'standin-reboot');
    await fs.writeFile(
      rebootStandin,
      [
        '#!/bin/sh',
        `"$FLEETMEDIC_STANDIN_NODE" -e 'require("node:fs").appendFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)) + "\\n")' '${marker()}' "$@"`,
        // With the switch file present it fails, as systemctl does without a system bus.
        `if [ -e '${failSwitch()}' ]; then echo 'Failed to connect to bus: No such file or directory' >&2; exit 1; fi`,
        'exit 0',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    env = await standinAgentEnv(stack, { state: stateFile(), callLog: path.join(dir, 'calls.log') });
    await setState({});
  });

  after(async () => {
    await removeAgentNode({ stack, node, agent, workers, dir });
  });

  it('refuses to start with a reboot command it cannot run, naming the flag and its variable', async () => {
    const missing = path.join(dir, 'no-such-nsenter');
    const result = await execa(process.execPath, [cli, 'agent', '--node', node], {
      env: { ...env, FLEETMEDIC_REBOOT_COMMAND: JSON.stringify([missing, '--target', '1']) },
      reject: false,
      stdin: 'ignore',
      all: true,
    });
    assert.equal(result.exitCode, 1, String(result.all));
    assert.ok(
      String(result.all).includes(
        `--reboot-command / FLEETMEDIC_REBOOT_COMMAND=${JSON.stringify(missing)}: not an executable file`,
      ),
      String(result.all),
    );
    assert.deepEqual(await reboots(), []);
  });

  it('without --reboot-command, says at start that reboots are disabled', async () => {
    const started = await startAgent({});
    assert.match(started.report, /reboot: disabled, no --reboot-command \(a reboot goes to an operator\)/);
    started.agent.kill('SIGTERM');
    assert.equal((await started.agent).exitCode, 0);
  });

  it('XID 79, approved: the reboot command runs once, the node comes back with a new boot ID, is validated and returned to service', async () => {
    const argv = [rebootStandin, '--target', '1', '--', 'reboot', 'now'];
    const started = await startAgent({ FLEETMEDIC_REBOOT_COMMAND: JSON.stringify(argv) });
    agent = started.agent;
    assert.ok(
      started.report.includes(`reboot: enabled, runs ${JSON.stringify(argv)} (at most 10 s)`),
      started.report,
    );

    const handle = await startXid79();
    assert.deepEqual(await reboots(), [], 'rebooted before the approval');
    const core = clients(stack.kc).core;
    const bootBefore = (await core.readNode({ name: node })).status?.nodeInfo?.bootID;
    assert.ok(bootBefore, 'the node reports a boot ID');

    await handle.executeUpdate(approveUpdate, { args: [{ by: 'test', reason: 'reboot ok' }] });
    await eventually(
      'the reboot command ran',
      async () => ((await reboots()).length > 0 ? true : undefined),
      60_000,
    );

    // The node comes back: its GPU is on the bus again, the kubelet reports a new boot ID, Ready.
    await setState({ gpus: healthyGpuState(node) });
    const bootAfter = randomUUID();
    const now = new Date().toISOString();
    await core.patchNodeStatus(
      {
        name: node,
        body: {
          status: {
            nodeInfo: { bootID: bootAfter },
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: 'KubeletReady',
                message: 'kubelet is posting ready status (after the test reboot)',
                lastHeartbeatTime: now,
                lastTransitionTime: now,
              },
            ],
          },
        },
      },
      strategicMerge,
    );

    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons.join('\n'));
    assert.ok(
      result.reasons.some((r) => r.includes(`reboot scheduled (boot ${bootBefore})`)) &&
        result.reasons.some((r) => r.includes(`back from its reboot (boot ${bootAfter})`)),
      result.reasons.join('\n'),
    );
    const released = await core.readNode({ name: node });
    assert.notEqual(released.spec?.unschedulable, true);
    assert.deepEqual(await reboots(), [argv.slice(1)], 'the reboot command ran other than exactly once');
    const ran = (await fs.readFile(path.join(dir, 'calls.log'), 'utf8')).split('\n').filter(Boolean);
    assert.ok(
      ran.some(
        (l) => (JSON.parse(l) as { args: string[] }).args.join(' ') === 'diag --host 127.0.0.1 -r 1 -j',
      ),
      'no validation after the reboot',
    );
  });

  it('a reboot command that fails: RebootFailed, not run again, the node waits quarantined for an operator', async () => {
    await fs.rm(marker(), { force: true });
    await fs.writeFile(failSwitch(), '');
    const handle = await startXid79();
    const core = clients(stack.kc).core;
    const bootBefore = (await core.readNode({ name: node })).status?.nodeInfo?.bootID;
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'test', reason: 'reboot ok' }] });
    const held = await eventually(
      'the failed reboot handed to an operator',
      async () => {
        const status = await handle.query(statusQuery);
        return status.reasons.some((r) => r.includes('automatic reboot not possible')) ? status : undefined;
      },
      60_000,
    );
    assert.ok(
      held.reasons.some((r) =>
        /reboot command .*standin-reboot --target 1 -- reboot now exited 1: Failed to connect to bus/.test(r),
      ),
      held.reasons.join('\n'),
    );
    assert.equal((await reboots()).length, 1, 'the failed reboot command was run again');
    const n = await core.readNode({ name: node });
    assert.equal(n.spec?.unschedulable, true, 'the node was released');
    assert.equal(n.status?.nodeInfo?.bootID, bootBefore);
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'test', reason: 'scenario done' }] });
    await eventually('held by the reject', async () =>
      (await handle.query(statusQuery)).actions.includes('release') ? true : undefined,
    );
    await handle.executeUpdate(releaseUpdate, { args: [{ by: 'test', reason: 'scenario done' }] });
    assert.equal((await handle.result()).outcome, 'released-by-operator');
    await liftQuarantine(stack.kc, node);
    await fs.rm(failSwitch(), { force: true });
  });
});
