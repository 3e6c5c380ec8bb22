import { MockActivityEnvironment } from '@temporalio/testing';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createNodeAgentActivities, processesOnGpu } from '../../src/activities/node-agent.js';
import type { CommandResult, CommandRunner, GpuTool } from '../../src/gpu/command-runner.js';
import { FailureType, FleetmedicError } from '../../src/errors.js';
import { BootIdUnavailable } from '../../src/k8s/boot-id.js';
import type { ApplicationFailure } from '@temporalio/common';

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

/**
 * A node whose GPU is held by host services: `nvidia-smi -r` refuses ("In use by another client")
 * while any holder in `running` runs; each holder's stop and start command (argv `svc stop|start
 * <name>`) changes `running`, and `failing` makes one command fail.
 */
function heldNode(holders: string[], failing: string[] = []) {
  const running = new Set(holders);
  const calls: string[] = [];
  const ok = (stdout: string, exitCode = 0): CommandResult => ({
    stdout,
    stderr: '',
    exitCode,
    timedOut: false,
  });
  const runner: CommandRunner = {
    run(tool: GpuTool, args: readonly string[]) {
      calls.push(`${tool} ${args.join(' ')}`);
      if (args[0] === '-L') return Promise.resolve(listed);
      if (args[0]?.startsWith('--query-compute-apps')) return Promise.resolve(ok(''));
      if (args[0] === '-r') {
        return Promise.resolve(
          running.size > 0
            ? ok('GPU 00000000:3B:00.0: In use by another client\n', 255)
            : ok('GPU 00000000:3B:00.0 was successfully reset.\n'),
        );
      }
      return Promise.reject(new Error(`unexpected ${tool} ${args.join(' ')}`));
    },
    exec(argv: readonly string[]) {
      const line = argv.join(' ');
      calls.push(line);
      if (failing.includes(line)) return Promise.resolve(ok('Job failed\n', 1));
      const [, action, name] = argv;
      if (action === 'stop') running.delete(name!);
      else running.add(name!);
      return Promise.resolve(ok(''));
    },
  };
  const resetHolders = holders.map((name) => ({
    name,
    stop: ['svc', 'stop', name],
    start: ['svc', 'start', name],
    timeoutSeconds: 5,
  }));
  return { runner, calls, running, resetHolders };
}

async function resetOn(node: ReturnType<typeof heldNode>, withHolders: boolean) {
  const activities = createNodeAgentActivities({
    clusterId: 'c1',
    node: 'n1',
    runner: node.runner,
    ...(withHolders && { resetHolders: node.resetHolders }),
  });
  return new MockActivityEnvironment()
    .run((t: typeof target) => activities.agentResetGpu(t), target)
    .then(
      (r) => ({ ok: true as const, r }),
      (err: Error) => ({ ok: false as const, err }),
    );
}

describe('GPU reset on a real node: the holders of the device', () => {
  it('without holders configured, a held device fails the reset with what to do', async () => {
    const node = heldNode(['nvidia-persistenced']);
    const result = await resetOn(node, false);
    assert.equal(result.ok, false);
    assert.match(
      result.ok ? '' : result.err.message,
      /In use by another client.*the device is held .*configure the agent's reset holders \(--reset-holders/,
    );
  });

  it('stops the holders in order, resets, and starts them again in reverse order', async () => {
    const node = heldNode(['nvidia-persistenced', 'nv-hostengine']);
    const result = await resetOn(node, true);
    assert.equal(result.ok, true, result.ok ? '' : result.err.message);
    assert.deepEqual(node.calls.slice(2), [
      'svc stop nvidia-persistenced',
      'svc stop nv-hostengine',
      'nvidia-smi -r -i 1',
      'svc start nv-hostengine',
      'svc start nvidia-persistenced',
    ]);
    assert.deepEqual([...node.running].sort(), ['nv-hostengine', 'nvidia-persistenced']);
  });

  it('a holder that will not stop: the ones stopped start again, nothing is reset', async () => {
    const node = heldNode(['nvidia-persistenced', 'nv-hostengine'], ['svc stop nv-hostengine']);
    const result = await resetOn(node, true);
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.err.message, /could not stop nv-hostengine .*nothing was reset/);
    assert.ok(!node.calls.some((c) => c.startsWith('nvidia-smi -r')), node.calls.join('\n'));
    assert.deepEqual([...node.running].sort(), ['nv-hostengine', 'nvidia-persistenced']);
  });

  it('a holder that does not start again fails the activity, naming it, after the reset', async () => {
    const node = heldNode(['nv-hostengine'], ['svc start nv-hostengine']);
    const result = await resetOn(node, true);
    assert.equal(result.ok, false);
    assert.match(
      result.ok ? '' : result.err.message,
      /GPU 1 on n1 was reset, but nv-hostengine \(svc start nv-hostengine exited 1: Job failed\) did not start again/,
    );
    assert.ok(node.calls.includes('nvidia-smi -r -i 1'));
  });
});

describe('reboot: verified by the node boot ID, never twice', () => {
  /** An agent whose node reports `bootIds` in turn (the last one repeated) and counts its reboots. */
  /**
   * The agent's reboot activity with a fake runner and boot ID: `bootIds` answered one read after
   * another (the last one repeated), or a read of its own; `reboot` true (the runner reboots), false
   * (it cannot), or what its reboot does. Counts the reboots the runner was asked for.
   */
  function rebooting(
    bootIds: string[] | (() => Promise<string>),
    reboot: boolean | (() => Promise<void>) = true,
  ) {
    let reboots = 0;
    let reads = 0;
    const runner: CommandRunner = {
      run: () => Promise.reject(new Error('no tool runs for a reboot')),
      ...(reboot !== false && {
        reboot: () => {
          reboots++;
          return reboot === true ? Promise.resolve() : reboot();
        },
      }),
    };
    const activities = createNodeAgentActivities({
      clusterId: 'c1',
      node: 'n1',
      runner,
      readBootId: Array.isArray(bootIds)
        ? () => Promise.resolve(bootIds[Math.min(reads++, bootIds.length - 1)]!)
        : bootIds,
    });
    const run = (input: { clusterId: string; node: string; bootIdBefore?: string }) =>
      new MockActivityEnvironment().run((t: typeof input) => activities.agentRebootNode(t), input);
    return { reboot: run, reboots: () => reboots };
  }

  it('reads the boot ID, reboots and returns it', async () => {
    const agent = rebooting(['boot-1']);
    assert.deepEqual(await agent.reboot({ clusterId: 'c1', node: 'n1' }), {
      bootIdBefore: 'boot-1',
      alreadyRebooted: false,
    });
    assert.equal(agent.reboots(), 1);
  });

  it('reboots when the recorded boot ID is still the node one', async () => {
    const agent = rebooting(['boot-1']);
    const r = await agent.reboot({ clusterId: 'c1', node: 'n1', bootIdBefore: 'boot-1' });
    assert.deepEqual(r, { bootIdBefore: 'boot-1', alreadyRebooted: false });
    assert.equal(agent.reboots(), 1);
  });

  it('an attempt retried after the reboot happened sees a new boot ID and does not reboot again', async () => {
    const agent = rebooting(['boot-2']);
    const r = await agent.reboot({ clusterId: 'c1', node: 'n1', bootIdBefore: 'boot-1' });
    assert.deepEqual(r, { bootIdBefore: 'boot-1', alreadyRebooted: true });
    assert.equal(agent.reboots(), 0);
  });

  it('a node that reports no boot ID is not rebooted (BootIdUnknown, non-retryable)', async () => {
    const agent = rebooting(() => Promise.reject(new BootIdUnavailable('n1', 'none')));
    await assert.rejects(
      agent.reboot({ clusterId: 'c1', node: 'n1' }),
      (err: ApplicationFailure) => err.type === 'BootIdUnknown' && err.nonRetryable === true,
    );
    assert.equal(agent.reboots(), 0);
  });

  it('an agent that cannot reboot refuses with RebootUnsupported', async () => {
    const agent = rebooting(['boot-1'], false);
    await assert.rejects(
      agent.reboot({ clusterId: 'c1', node: 'n1' }),
      (err: ApplicationFailure) => err.type === 'RebootUnsupported',
    );
  });

  it('a reboot command that failed or timed out is RebootFailed, non-retryable: never run again blindly', async () => {
    const agent = rebooting(['boot-1'], () =>
      Promise.reject(
        new FleetmedicError(FailureType.RebootFailed, 'reboot command systemctl reboot exited 1: no bus'),
      ),
    );
    await assert.rejects(
      agent.reboot({ clusterId: 'c1', node: 'n1' }),
      (err: ApplicationFailure) =>
        err.type === 'RebootFailed' &&
        err.nonRetryable === true &&
        /reboot of n1: reboot command systemctl reboot exited 1: no bus/.test(err.message),
    );
    assert.equal(agent.reboots(), 1);
  });

  it('refuses a bootIdBefore that is not a boot ID (InvalidInput)', async () => {
    const agent = rebooting(['boot-1']);
    await assert.rejects(
      agent.reboot({ clusterId: 'c1', node: 'n1', bootIdBefore: '' }),
      (err: ApplicationFailure) => err.type === 'InvalidInput',
    );
    assert.equal(agent.reboots(), 0);
  });
});
