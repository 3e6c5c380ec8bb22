import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FailureType, FleetmedicError } from '../../src/errors.js';
import { execaRunner, type CommandRunner } from '../../src/gpu/command-runner.js';
import { withFault, healthyGpuState } from '../../src/sim/gpu-state.js';
import type { StandinState } from '../fixtures/standin/standin.js';

const bin = fileURLToPath(new URL('../fixtures/bin/', import.meta.url));

/** Is the process gone (a killed stand-in must not linger)? */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

// The real runner against the stand-in tools (test/fixtures/bin), named by absolute path: nothing
// here can reach a real dcgmi or nvidia-smi.
describe('execaRunner', () => {
  let dir: string;
  let runner: CommandRunner;
  const saved = { ...process.env };

  async function state(s: Omit<StandinState, 'node'>) {
    await fs.writeFile(path.join(dir, 'state.json'), JSON.stringify({ node: 'n1', ...s }));
  }
  async function calls(): Promise<Array<{ tool: string; args: string[]; pid: number }>> {
    const text = await fs.readFile(path.join(dir, 'calls.log'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { tool: string; args: string[]; pid: number });
  }
  async function lastPid(): Promise<number> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const last = (await calls()).at(-1);
      if (last) return last.pid;
      assert.ok(Date.now() < deadline, 'the stand-in never logged its call');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-runner-'));
    process.env.FLEETMEDIC_STANDIN_STATE = path.join(dir, 'state.json');
    process.env.FLEETMEDIC_STANDIN_LOG = path.join(dir, 'calls.log');
    process.env.FLEETMEDIC_STANDIN_NODE = process.execPath;
    runner = execaRunner({
      paths: { dcgmi: path.join(bin, 'dcgmi'), 'nvidia-smi': path.join(bin, 'nvidia-smi') },
      maxOutputBytes: 1024 * 1024,
      forceKillAfterMs: 1_000,
    });
  });

  after(async () => {
    process.env = saved;
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('returns what the tool printed and its exit code, also a non-zero one', async () => {
    await state({ gpus: { ...healthyGpuState('n1'), hostEngineReachable: false } });
    const list = await runner.run('nvidia-smi', ['-L'], { timeoutMs: 10_000 });
    assert.equal(list.exitCode, 0);
    assert.match(list.stdout, /^GPU 0: NVIDIA H100 80GB HBM3 \(UUID: GPU-/);
    const health = await runner.run('dcgmi', ['health', '-c', '-j'], { timeoutMs: 10_000 });
    assert.equal(health.exitCode, 235);
    assert.equal(health.timedOut, false);
  });

  it('kills a hanging tool at its timeout and says so (a transient error, not an exit code)', async () => {
    await state({ misbehave: { dcgmi: 'hang' } });
    await fs.rm(path.join(dir, 'calls.log'), { force: true });
    const err = await runner.run('dcgmi', ['health', '-c', '-j'], { timeoutMs: 1_500 }).then(
      () => assert.fail('a hanging tool returned'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FleetmedicError);
    assert.equal(err.code, ErrorCode.GpuToolTimedOut);
    assert.equal(err.permanent, false);
    assert.match(err.message, /dcgmi health -c -j timed out after 1500 ms/);
    assert.ok(gone(await lastPid()), 'the timed-out stand-in is still running');
  });

  it('kills the tool when the signal aborts (activity cancelled)', async () => {
    await state({ misbehave: { 'nvidia-smi': 'hang' } });
    await fs.rm(path.join(dir, 'calls.log'), { force: true });
    const controller = new AbortController();
    const running = runner.run('nvidia-smi', ['-L'], { timeoutMs: 60_000, signal: controller.signal });
    const pid = await lastPid();
    controller.abort();
    const err = await running.then(
      () => assert.fail('a cancelled tool returned'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FleetmedicError);
    assert.equal(err.code, ErrorCode.GpuToolCancelled);
    const deadline = Date.now() + 5_000;
    while (!gone(pid)) {
      assert.ok(Date.now() < deadline, 'the cancelled stand-in is still running');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  it('stops a tool that prints more than the output limit, with an error naming the limit', async () => {
    await state({ misbehave: { 'nvidia-smi': 'huge' } });
    const err = await runner.run('nvidia-smi', ['-L'], { timeoutMs: 30_000 }).then(
      () => assert.fail('a huge output was accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FleetmedicError);
    assert.equal(err.code, ErrorCode.GpuToolOutputTooLarge);
    assert.equal(err.permanent, true);
    assert.match(err.message, /more than the output limit of 1048576 bytes/);
  });

  it('reports a tool that cannot start as such, not as an exit code', async () => {
    const missing = execaRunner({ paths: { dcgmi: path.join(dir, 'no-such-dcgmi'), 'nvidia-smi': 'x' } });
    const err = await missing.run('dcgmi', ['--version'], { timeoutMs: 5_000 }).then(
      () => assert.fail('a missing tool ran'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FleetmedicError);
    assert.equal(err.code, ErrorCode.GpuToolNotStarted);
    assert.match(err.message, /ENOENT/);
  });

  it('a reset on the stand-in clears the fault it reports (the stand-in keeps state)', async () => {
    await state({ gpus: withFault(healthyGpuState('n1'), { gpu: 3, xid: 48, eccUncorrected: 2 }) });
    const reset = await runner.run('nvidia-smi', ['-r', '-i', '3'], { timeoutMs: 10_000 });
    assert.equal(reset.exitCode, 0, reset.stdout);
    const saved = JSON.parse(await fs.readFile(path.join(dir, 'state.json'), 'utf8')) as StandinState;
    assert.equal(saved.gpus?.gpus[3]?.xid, undefined);
  });

  it('rejects an output limit that is not a positive integer, naming it', () => {
    assert.throws(
      () => execaRunner({ maxOutputBytes: 0 }),
      /maxOutputBytes must be a positive integer, got 0/,
    );
  });
});

// The node's reboot command, as the agent runs it: a stand-in script in a temp dir that only writes a
// marker file with its argv (never a real reboot).
describe('execaRunner: the reboot command', () => {
  let dir: string;
  const marker = () => path.join(dir, 'rebooted');

  /** A stand-in reboot command: appends its argv to the marker, prints `stderr`, exits `code`. */
  async function standin(name: string, body: { code?: number; stderr?: string; sleep?: number } = {}) {
    const file = path.join(dir, name);
    await fs.writeFile(
      file,
      [
        '#!/bin/sh',
        `printf '%s\\n' "$0" "$@" >> '${marker()}'`,
        ...(body.stderr ? [`echo '${body.stderr}' >&2`] : []),
        ...(body.sleep ? [`exec sleep ${body.sleep}`] : []),
        `exit ${body.code ?? 0}`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    return file;
  }

  async function rebootError(runner: CommandRunner): Promise<FleetmedicError> {
    const err = await runner.reboot!().then(
      () => assert.fail('a failed reboot command succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FleetmedicError, String(err));
    assert.equal(err.code, FailureType.RebootFailed);
    assert.equal(err.permanent, true, 'a failed reboot command must not be retried blindly');
    return err;
  }

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fm-reboot-'));
  });

  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('has no reboot without a reboot command', () => {
    assert.ok(!('reboot' in execaRunner()));
  });

  it('runs the configured argv once, without a shell, and returns when it exits 0', async () => {
    await fs.rm(marker(), { force: true });
    const file = await standin('reboot-ok');
    const runner = execaRunner({
      reboot: {
        argv: [file, '--target', '1', '--', 'systemctl', 'reboot', '$(touch x) *'],
        timeoutMs: 10_000,
      },
    });
    await runner.reboot!();
    assert.deepEqual((await fs.readFile(marker(), 'utf8')).split('\n').filter(Boolean), [
      file,
      '--target',
      '1',
      '--',
      'systemctl',
      'reboot',
      '$(touch x) *',
    ]);
  });

  it('a command that exits non-zero is RebootFailed (permanent), naming the command, its exit code and stderr', async () => {
    const file = await standin('reboot-refused', { code: 3, stderr: 'Failed to connect to bus' });
    const err = await rebootError(execaRunner({ reboot: { argv: [file, 'reboot'], timeoutMs: 10_000 } }));
    assert.match(err.message, new RegExp(`reboot command ${file} reboot exited 3: Failed to connect to bus`));
  });

  it('a command that runs past its timeout is stopped: RebootFailed (permanent), saying the node may reboot all the same', async () => {
    const file = await standin('reboot-hangs', { sleep: 60, stderr: 'waiting' });
    const started = Date.now();
    const err = await rebootError(
      execaRunner({ reboot: { argv: [file], timeoutMs: 500 }, forceKillAfterMs: 1_000 }),
    );
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.match(
      err.message,
      new RegExp(
        `reboot command ${file} timed out after 500 ms and was stopped; the node may reboot all the same: waiting`,
      ),
    );
  });

  it('a command that cannot start is RebootFailed (permanent), naming it', async () => {
    const missing = path.join(dir, 'no-such-reboot');
    const err = await rebootError(execaRunner({ reboot: { argv: [missing], timeoutMs: 5_000 } }));
    assert.match(err.message, new RegExp(`reboot command ${missing} gave no result: .*ENOENT`));
  });

  it('refuses an empty reboot command or a timeout that is not positive', () => {
    assert.throws(() => execaRunner({ reboot: { argv: [], timeoutMs: 1_000 } }), /reboot needs a command/);
    assert.throws(() => execaRunner({ reboot: { argv: ['x'], timeoutMs: 0 } }), /positive timeoutMs/);
  });
});
