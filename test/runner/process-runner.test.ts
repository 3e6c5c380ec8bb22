import { KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ProcessRunner } from '../../src/runner/process-runner.js';

describe('process runner: one per state directory', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  function kubeconfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  }

  it('refuses to start beside a live runner, naming its pid, before touching any process', async () => {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-runner-lock-'));
    dirs.push(stateDir);
    await fs.mkdir(path.join(stateDir, 'runner', 'pids'), { recursive: true });
    // pid 1 is alive and is not this process.
    await fs.writeFile(path.join(stateDir, 'runner', 'runner.lock'), '1');
    await fs.writeFile(path.join(stateDir, 'runner', 'pids', 'some-uid.pid'), '1');
    const runner = new ProcessRunner({ kc: kubeconfig(), stateDir });
    await assert.rejects(runner.start(), /another process runner \(pid 1\) serves/);
    // The other runner's pid files are left alone.
    assert.equal(await fs.readFile(path.join(stateDir, 'runner', 'pids', 'some-uid.pid'), 'utf8'), '1');
  });

  it('takes over the lock of a runner that is gone', async () => {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-runner-lock-'));
    dirs.push(stateDir);
    await fs.mkdir(path.join(stateDir, 'runner'), { recursive: true });
    await fs.writeFile(path.join(stateDir, 'runner', 'runner.lock'), '999999999');
    const runner = new ProcessRunner({ kc: kubeconfig(), stateDir });
    // It gets past the lock (the API server is unreachable: its watch only retries).
    await runner.start();
    try {
      assert.equal(
        await fs.readFile(path.join(stateDir, 'runner', 'runner.lock'), 'utf8'),
        String(process.pid),
      );
    } finally {
      await runner.stop();
    }
    await assert.rejects(fs.access(path.join(stateDir, 'runner', 'runner.lock')), 'stop left the lock');
  });
});
