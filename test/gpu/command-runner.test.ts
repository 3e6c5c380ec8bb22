import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode, FleetmedicError } from '../../src/errors.js';
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
