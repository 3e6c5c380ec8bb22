import type { Client, WorkflowHandle } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startOrJoinRemediation } from '../../src/client/remediation-client.js';
import type { RemediationPolicy } from '../../src/domain/remediation-plan.js';
import { healthyGpuState, MemoryGpuStateStore, withFault } from '../../src/sim/gpu-state.js';
import { rejectUpdate, releaseUpdate, statusQuery } from '../../src/contracts/remediation.js';
import type { gpuRemediationWorkflow } from '../../src/workflows/remediation/workflow.js';
import type { StandinState } from '../fixtures/standin/standin.js';
import { clearRemediationHistory, clients, eventually, liftQuarantine } from '../helpers/k8s.js';
import { FAST_POLICY, xidAlert } from '../helpers/remediation-inputs.js';
import { createReadyNode, removeAgentNode, standinAgentEnv, STANDINS } from '../helpers/agent-node.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';
import { installQuietRuntime } from '../helpers/temporal.js';
import { startRemediationWorkers, waitForPhase, type RemediationWorkers } from '../helpers/workers.js';

installQuietRuntime();

const cli = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));
const policy: Partial<RemediationPolicy> = { ...FAST_POLICY, approvalReminderMs: 60_000 };
const QUERY_TIMEOUT_S = 2;
const SHUTDOWN_GRACE_S = 3;

interface Call {
  tool: string;
  args: string[];
  pid: number;
}

// The real node agent (`fleetmedic agent`), started as on a node, whose dcgmi / nvidia-smi are the
// stand-ins of test/fixtures/bin first on its PATH, printing the real formats: remediations on the
// embedded stack end to end. The node is created after the control worker started, so the in-process
// simulated agents (one per node of the stack at start) never serve its task queue.
describe('fleetmedic agent on a node, with stand-in dcgmi / nvidia-smi', () => {
  let stack: TestStack;
  let workers: RemediationWorkers | undefined;
  let client: Client;
  let dir: string;
  let agent: ResultPromise | undefined;
  const output: string[] = [];
  const taskQueue = `fleetmedic-agent-e2e-${process.pid}`;
  const node = `fm-agent-${process.pid}`;
  let env: Record<string, string>;

  const stateFile = () => path.join(dir, 'state.json');
  const callLog = () => path.join(dir, 'calls.log');

  async function setState(s: Omit<StandinState, 'node'>) {
    await fs.writeFile(stateFile(), JSON.stringify({ node, ...s }));
    await fs.rm(callLog(), { force: true });
  }

  async function calls(): Promise<Call[]> {
    const text = await fs.readFile(callLog(), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Call);
  }

  function runAgent(nodeName: string, extraEnv: Record<string, string> = {}): ResultPromise {
    // reject: false: a failed or signalled child resolves with its exit code or signal.
    return execa(
      process.execPath,
      [
        cli,
        'agent',
        '--node',
        nodeName,
        '--query-timeout',
        String(QUERY_TIMEOUT_S),
        '--shutdown-grace',
        String(SHUTDOWN_GRACE_S),
      ],
      { env: { ...env, ...extraEnv }, reject: false, stdin: 'ignore', all: true },
    );
  }

  async function start() {
    await clearRemediationHistory(stack.kc, [node]);
    return startOrJoinRemediation(client, {
      clusterId: stack.state.clusterId,
      node,
      taskQueue,
      alert: xidAlert(48),
      policy,
    });
  }

  const phaseOf = (handle: WorkflowHandle<typeof gpuRemediationWorkflow>, phase: string) =>
    waitForPhase(handle, phase, 120_000);

  /** A failed triage: the node waits for an operator, quarantined, and no GPU was reset. */
  async function assertHeldForOperator(
    handle: WorkflowHandle<typeof gpuRemediationWorkflow>,
    why: RegExp,
  ): Promise<void> {
    const waiting = await phaseOf(handle, 'awaiting-approval');
    assert.equal(waiting.class, 'needs-operator');
    assert.ok(
      waiting.reasons.some((r) => why.test(r)),
      waiting.reasons.join('\n'),
    );
    const n = await clients(stack.kc).core.readNode({ name: node });
    assert.equal(n.spec?.unschedulable, true, 'the node was released');
    assert.ok(!(await calls()).some((c) => c.args[0] === '-r'), 'a GPU was reset');
    await handle.executeUpdate(rejectUpdate, { args: [{ by: 'test', reason: 'scenario done' }] });
    // A reject holds the node until an operator releases it: the next scenario starts from a clean node.
    await eventually('held by the reject', async () =>
      (await handle.query(statusQuery)).actions.includes('release') ? true : undefined,
    );
    await handle.executeUpdate(releaseUpdate, { args: [{ by: 'test', reason: 'scenario done' }] });
    assert.equal((await handle.result()).outcome, 'released-by-operator');
    await liftQuarantine(stack.kc, node);
  }

  before(async () => {
    stack = await useTestStack();
    workers = await startRemediationWorkers(stack, {
      taskQueue,
      gpus: new MemoryGpuStateStore(),
      budgetConfig: { breakerThreshold: 1, minHealthyFraction: 0, maxConcurrentDrains: 1 },
    });
    client = workers.client;
    await createReadyNode(stack, node, 93);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-agent-'));
    env = await standinAgentEnv(stack, { state: stateFile(), callLog: callLog() });
    await setState({});
  });

  after(async () => {
    await removeAgentNode({ stack, node, agent, workers, dir });
  });

  it('refuses to start for a node that does not exist, saying so', async () => {
    const missing = `fm-no-such-node-${process.pid}`;
    const result = await runAgent(missing);
    assert.equal(result.exitCode, 1, String(result.all));
    assert.match(String(result.all), new RegExp(`node ${missing} does not exist in the cluster`));
    assert.deepEqual(await calls(), [], 'it ran a GPU tool before checking its node');
  });

  it('refuses to start without a dcgmi it can run, naming the flag and its variable', async () => {
    const result = await runAgent(node, { FLEETMEDIC_DCGMI: path.join(dir, 'no-such-dcgmi') });
    assert.equal(result.exitCode, 1, String(result.all));
    assert.match(String(result.all), /--dcgmi \/ FLEETMEDIC_DCGMI=".*no-such-dcgmi": not an executable file/);
  });

  it('starts on its node: reports the stand-ins it resolved on PATH and their versions', async () => {
    agent = runAgent(node);
    let exited = false;
    void agent.then(() => (exited = true));
    agent.all?.on('data', (d: Buffer) => output.push(d.toString()));
    const started = await eventually(
      'the agent started',
      () => {
        const text = output.join('');
        if (exited) assert.fail(`the agent exited: ${text}`);
        return Promise.resolve(/node agent for node[^]*dcgmi .*\n/.test(text) ? text : undefined);
      },
      60_000,
    );
    assert.match(
      started,
      new RegExp(`dcgmi ${path.join(STANDINS, 'dcgmi')}: dcgmi version: 4.2.3; host engine 127.0.0.1`),
    );
  });

  it('XID 48: triage on the stand-ins, nvidia-smi -r -i 3, dcgmi diag passes -> returned to service', async () => {
    await setState({ gpus: withFault(healthyGpuState(node), { gpu: 3, xid: 48, eccUncorrected: 2 }) });
    const handle = await start();
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons?.join('\n'));
    const ran = (await calls()).map((c) => `${c.tool} ${c.args.join(' ')}`);
    assert.ok(ran.includes('dcgmi health --host 127.0.0.1 -c -j'), ran.join('\n'));
    assert.ok(
      ran.some((c) => c.startsWith('nvidia-smi --query-gpu=')),
      ran.join('\n'),
    );
    assert.ok(ran.includes('nvidia-smi -r -i 3'), ran.join('\n'));
    assert.ok(ran.includes('dcgmi diag --host 127.0.0.1 -r 1 -j'), ran.join('\n'));
    assert.ok(ran.indexOf('nvidia-smi -r -i 3') < ran.indexOf('dcgmi diag --host 127.0.0.1 -r 1 -j'));
    const n = await clients(stack.kc).core.readNode({ name: node });
    assert.notEqual(n.spec?.unschedulable, true);
    const saved = JSON.parse(await fs.readFile(stateFile(), 'utf8')) as StandinState;
    assert.equal(saved.gpus?.gpus[3]?.xid, undefined, 'the reset did not clear the fault');
  });

  it('host engine down (dcgmi exit 235): triage fails after its retries, the node waits for an operator', async () => {
    await setState({
      gpus: {
        ...withFault(healthyGpuState(node), { gpu: 3, xid: 48 }),
        hostEngineReachable: false,
      },
    });
    await assertHeldForOperator(await start(), /host engine \(nv-hostengine\) is not reachable/);
  });

  it('garbage output: a parse error, the node stays quarantined for an operator', async () => {
    await setState({ misbehave: { dcgmi: 'garbage' } });
    await assertHeldForOperator(await start(), /cannot parse the output/);
  });

  it('a hanging dcgmi: each attempt times out and is killed, the node is not released', async () => {
    await setState({ misbehave: { dcgmi: 'hang' } });
    await assertHeldForOperator(await start(), new RegExp(`timed out after ${QUERY_TIMEOUT_S * 1000} ms`));
    const hung = (await calls()).filter((c) => c.tool === 'dcgmi');
    assert.ok(hung.length >= 1);
    for (const c of hung)
      assert.throws(() => process.kill(c.pid, 0), /ESRCH/, `stand-in ${c.pid} still runs`);
  });

  it('XID 48 on a GPU held by host services: the configured holders are stopped, the GPU reset, the holders started again', async () => {
    // The agent as deployed with a holders file (its argv: the stand-in gpu-holder on its PATH).
    const holdersFile = path.join(dir, 'holders.yaml');
    await fs.writeFile(
      holdersFile,
      [
        'holders:',
        '  - { name: nvidia-persistenced, stop: [gpu-holder, stop, nvidia-persistenced], start: [gpu-holder, start, nvidia-persistenced] }',
        '  - { name: nv-hostengine, stop: [gpu-holder, stop, nv-hostengine], start: [gpu-holder, start, nv-hostengine] }',
        '',
      ].join('\n'),
    );
    const previous = agent!;
    previous.kill('SIGTERM');
    await previous;
    output.length = 0;
    agent = runAgent(node, { FLEETMEDIC_RESET_HOLDERS: holdersFile });
    agent.all?.on('data', (d: Buffer) => output.push(d.toString()));
    await eventually(
      'the agent started with its holders',
      () =>
        Promise.resolve(
          /GPU reset: stops and restarts nvidia-persistenced, nv-hostengine around it/.test(output.join(''))
            ? true
            : undefined,
        ),
      60_000,
    );
    await setState({
      gpus: withFault(healthyGpuState(node), { gpu: 3, xid: 48, eccUncorrected: 2 }),
      holders: ['nvidia-persistenced', 'nv-hostengine'],
    });
    const handle = await start();
    const result = await handle.result();
    assert.equal(result.outcome, 'returned-to-service', result.reasons?.join('\n'));
    const ran = (await calls())
      .filter((c) => c.tool === 'gpu-holder' || c.args[0] === '-r')
      .map((c) => `${c.tool} ${c.args.join(' ')}`);
    assert.deepEqual(ran, [
      'gpu-holder stop nvidia-persistenced',
      'gpu-holder stop nv-hostengine',
      'nvidia-smi -r -i 3',
      'gpu-holder start nv-hostengine',
      'gpu-holder start nvidia-persistenced',
    ]);
    const saved = JSON.parse(await fs.readFile(stateFile(), 'utf8')) as StandinState;
    assert.deepEqual([...(saved.holders ?? [])].sort(), ['nv-hostengine', 'nvidia-persistenced']);
    assert.equal(saved.gpus?.gpus[3]?.xid, undefined, 'the reset did not clear the fault');
  });

  it('stops on SIGTERM within its shutdown grace time', async () => {
    const running = agent!;
    const sent = Date.now();
    running.kill('SIGTERM');
    const result = await running;
    const took = Date.now() - sent;
    assert.equal(result.exitCode, 0, String(result.all));
    assert.ok(took < (SHUTDOWN_GRACE_S + 5) * 1000, `took ${took} ms`);
    assert.match(String(result.all), /SIGTERM, stopping/);
    assert.match(String(result.all), new RegExp(`node agent ${node}: stopped`));
  });
});
