import { MockActivityEnvironment } from '@temporalio/testing';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNodeAgentActivities, processesOnGpu } from '../../src/activities/node-agent.js';
import type { CommandResult, CommandRunner, GpuTool } from '../../src/gpu/command-runner.js';

const LIST = [
  'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000000)',
  'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbbbbbb-0000-0000-0000-000000000000)',
  '',
].join('\n');

/** A runner that answers `nvidia-smi -L`, the compute-apps query and the reset from a script. */
function scriptedRunner(script: { list: CommandResult; apps: string }): {
  runner: CommandRunner;
  calls: string[];
} {
  const calls: string[] = [];
  const ok = (stdout: string): CommandResult => ({ stdout, stderr: '', exitCode: 0, timedOut: false });
  return {
    calls,
    runner: {
      run(tool: GpuTool, args: readonly string[]) {
        calls.push(`${tool} ${args.join(' ')}`);
        if (args[0] === '-L') return Promise.resolve(script.list);
        if (args[0]?.startsWith('--query-compute-apps')) return Promise.resolve(ok(script.apps));
        if (args[0] === '-r') return Promise.resolve(ok('GPU reset successfully'));
        return Promise.reject(new Error(`unexpected ${tool} ${args.join(' ')}`));
      },
    },
  };
}

const target = { clusterId: 'c1', node: 'n1', gpu: 1 };
const listed = { stdout: LIST, stderr: '', exitCode: 0, timedOut: false };

async function reset(script: { list: CommandResult; apps: string }) {
  const { runner, calls } = scriptedRunner(script);
  const activities = createNodeAgentActivities({ clusterId: 'c1', node: 'n1', runner });
  const result = await new MockActivityEnvironment()
    .run((t: typeof target) => activities.agentResetGpu(t), target)
    .then(
      (r) => ({ ok: true as const, r }),
      (err: Error) => ({ ok: false as const, err }),
    );
  return { result, resetRan: calls.some((c) => c.startsWith('nvidia-smi -r')) };
}

describe('GPU reset: the busy check fails closed', () => {
  it('resets a GPU no process holds (another GPU busy is no reason to refuse)', async () => {
    const { result, resetRan } = await reset({
      list: listed,
      apps: '4242, GPU-aaaaaaaa-0000-0000-0000-000000000000\n',
    });
    assert.equal(result.ok, true);
    assert.ok(resetRan);
  });

  it('refuses when a process holds the GPU', async () => {
    const { result, resetRan } = await reset({
      list: listed,
      apps: '4242, GPU-bbbbbbbb-0000-0000-0000-000000000000\n',
    });
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.err.message, /GPU 1 on n1 may be in use \(1 process\(es\)\)/);
    assert.equal(resetRan, false);
  });

  it('counts a process it cannot match to a GPU as busy', async () => {
    const { result, resetRan } = await reset({
      list: listed,
      apps: '4242, GPU-cccccccc-0000-0000-0000-000000000000\n',
    });
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.err.message, /1 on a GPU nvidia-smi -L does not list/);
    assert.equal(resetRan, false);
  });

  it('counts every GPU as busy when nvidia-smi -L failed, even with no process listed', async () => {
    const { result, resetRan } = await reset({
      list: { stdout: 'NVIDIA-SMI has failed', stderr: '', exitCode: 9, timedOut: false },
      apps: '',
    });
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.err.message, /nvidia-smi -L exited 9: the busy check cannot place/);
    assert.equal(resetRan, false);
  });

  it('counts every GPU as busy when nvidia-smi -L printed something unreadable', async () => {
    const { result, resetRan } = await reset({
      list: { stdout: 'garbage\n', stderr: '', exitCode: 0, timedOut: false },
      apps: '',
    });
    assert.equal(result.ok, false);
    assert.equal(resetRan, false);
  });

  it('processesOnGpu places matched processes and charges unmatched ones to every GPU', () => {
    assert.deepEqual(processesOnGpu({ byGpu: { 0: 2 }, total: 2, unmatched: 0 }, 1).count, 0);
    assert.deepEqual(processesOnGpu({ byGpu: { 0: 2 }, total: 3, unmatched: 1 }, 1).count, 1);
    assert.deepEqual(processesOnGpu({ byGpu: {}, total: 0, unmatched: 0, listError: 'x' }, 0).count, 1);
  });
});
