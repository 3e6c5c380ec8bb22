import { execa } from 'execa';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/config.js';
import { PortInUseError, StackError } from '../../src/errors.js';
import { kwokClusterProcesses, kwokctlDryRun } from '../../src/stack/kwok-cluster.js';
import { isRunning } from '../../src/stack/processes.js';
import { down, stackHealth, up } from '../../src/stack/stack.js';
import { readStackState } from '../../src/stack/state.js';
import { resolveToolchain } from '../../src/toolchain/toolchain.js';
import { eventually } from '../helpers/k8s.js';
import { freeStackPorts, useTestStack, type TestStack } from '../helpers/stack.js';

const cli = fileURLToPath(new URL('../../bin/fleetmedic.js', import.meta.url));

/** True when something accepts connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

async function tempStateDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-updown-'));
}

describe('fleetmedic up / down', () => {
  let shared: TestStack;
  const cleanup: Array<() => Promise<unknown>> = [];
  before(async () => {
    shared = await useTestStack();
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  /** A state directory of a test's own stack, stopped and removed after the file. */
  async function ownStack() {
    const stateDir = await tempStateDir();
    const config = loadConfig({
      ...process.env,
      FLEETMEDIC_STATE_DIR: stateDir,
      FLEETMEDIC_CLUSTER_ID: undefined,
    });
    cleanup.push(async () => {
      await down(config, { purge: true }).catch(() => {});
      await fs.rm(stateDir, { recursive: true, force: true });
    });
    return { stateDir, config };
  }

  it('plans a cluster that downloads nothing and binds only 127.0.0.1 (kwokctl --dry-run)', async () => {
    const stateDir = await tempStateDir();
    cleanup.push(() => fs.rm(stateDir, { recursive: true, force: true }));
    const tools = await resolveToolchain({ cacheDir: shared.config.cacheDir });
    const plan = await kwokctlDryRun({
      name: 'dryrun',
      workdir: path.join(stateDir, 'kwok'),
      kwokctl: tools.kwokctl.path,
      ports: await freeStackPorts(),
      tools,
    });
    const urls = plan.match(/https?:\/\/[^\s"']+/g) ?? [];
    // The service-account issuer is an identifier written into tokens, never fetched.
    const foreign = urls.filter(
      (u) => !/^https?:\/\/127\.0\.0\.1[:/]/.test(u) && u !== 'https://kubernetes.default.svc.cluster.local',
    );
    assert.deepEqual(foreign, [], `dry-run mentions non-local URLs:\n${plan}`);
    assert.doesNotMatch(plan, /# Download https?:/);
    assert.doesNotMatch(plan, /0\.0\.0\.0/);
    assert.doesNotMatch(plan, /\.kube\/config/);
    for (const component of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) {
      assert.match(plan, new RegExp(`${component} [^\\n]*--bind-address=127\\.0\\.0\\.1`), component);
    }
    // The controller manager takes the not-ready taint off new nodes within seconds, and writes no
    // kubelet TTL hint on every node (see kwokctlConfig).
    assert.match(plan, /kube-controller-manager [^\n]*--kube-api-qps=200/);
    assert.match(plan, /kube-controller-manager [^\n]*--controllers=\*,-ttl-controller/);
    // A single instance elects no leader (a lease it cannot renew in time would stop it for good).
    for (const component of ['kube-controller-manager', 'kube-scheduler']) {
      assert.match(plan, new RegExp(`${component} [^\\n]*--leader-elect=false`), component);
    }
    assert.match(plan, /--listen-client-urls=http:\/\/127\.0\.0\.1:/);
    assert.match(plan, /--server-address=127\.0\.0\.1:/);
  });

  it('reports the running stack on a second up instead of starting another', async () => {
    const result = await up(shared.config, { nodes: shared.state.nodes });
    assert.equal(result.outcome, 'already-running');
    assert.equal(result.state.temporal.process.pid, shared.state.temporal.process.pid);
  });

  it('names the component and the port when a port is busy, and starts nothing', async () => {
    const stateDir = await tempStateDir();
    cleanup.push(() => fs.rm(stateDir, { recursive: true, force: true }));
    const ports = await freeStackPorts();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(ports.apiserver, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => blocker.close(resolve)));
    const config = loadConfig({ ...process.env, FLEETMEDIC_STATE_DIR: stateDir });
    await assert.rejects(
      up(config, { nodes: 1, ports, clusterName: 'busy' }),
      (err: Error) =>
        err instanceof PortInUseError &&
        err.component === 'kube-apiserver' &&
        err.message.includes(`127.0.0.1:${ports.apiserver}`),
    );
    assert.equal(await readStackState(stateDir), undefined);
    await assert.rejects(fs.access(path.join(stateDir, 'kwok', 'clusters', 'busy')));
  });

  it('recovers from a crash (killed processes, stale record) on the next up, and down stops everything', async () => {
    const { config } = await ownStack();
    const ports = await freeStackPorts();
    const first = await up(config, { nodes: 2, ports, clusterName: 'crash' });
    assert.equal(first.outcome, 'started');
    const ref = { name: 'crash', workdir: first.state.kube.workdir, kwokctl: first.state.kube.kwokctl };

    // Simulate a crash of the machine's processes: SIGKILL Temporal and the API server.
    process.kill(first.state.temporal.process.pid, 'SIGKILL');
    const apiserver = (await kwokClusterProcesses(ref)).find((p) => p.component === 'kube-apiserver');
    assert.ok(apiserver?.running);
    process.kill(apiserver.pid, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const health = await stackHealth(first.state);
    assert.equal(health.healthy, false);
    // Each stopped component is named, with the log that says why.
    assert.ok(
      health.problems.some(
        (p) =>
          p.startsWith('kube-apiserver of cluster crash is not running') && p.includes('kube-apiserver.log'),
      ),
      health.problems.join('\n'),
    );
    assert.ok(
      health.stoppedLogs.some((log) => log.endsWith('/kube-apiserver.log')),
      health.stoppedLogs.join('\n'),
    );

    const second = await up(config, { nodes: 2 });
    assert.equal(second.outcome, 'started');
    assert.ok((await stackHealth(second.state)).healthy);
    assert.notEqual(second.state.temporal.process.pid, first.state.temporal.process.pid);

    const components = await kwokClusterProcesses(ref);
    assert.equal(await down(config), 'stopped');
    assert.equal(await isRunning(second.state.temporal.process), false);
    for (const c of components) {
      assert.equal(
        await fs.readlink(`/proc/${c.pid}/cwd`).catch(() => 'gone'),
        'gone',
        `${c.component} still runs`,
      );
    }
    assert.equal(await down(config), 'not-running');
  });

  it('stops what an interrupted up had started and leaves no record (Ctrl-C while the cluster starts)', async () => {
    const { stateDir, config } = await ownStack();
    const ports = await freeStackPorts();
    const controller = new AbortController();
    const starting = up(config, { nodes: 2, ports, clusterName: 'interrupted', signal: controller.signal });
    starting.catch(() => {});
    const ref = { name: 'interrupted', workdir: path.join(stateDir, 'kwok'), kwokctl: '' };
    // Interrupted while kwokctl is creating the cluster: some components run, Temporal is starting.
    const running = await eventually('a component of the cluster running', async () => {
      const procs = (await kwokClusterProcesses(ref).catch(() => [])).filter((p) => p.running);
      return procs.length > 0 ? procs : undefined;
    });
    controller.abort();
    await assert.rejects(
      starting,
      (err: Error) => err instanceof StackError && /interrupted/.test(err.message),
    );

    assert.equal(await readStackState(stateDir), undefined);
    for (const c of running) {
      assert.equal(
        await fs.readlink(`/proc/${c.pid}/cwd`).catch(() => 'gone'),
        'gone',
        `${c.component} still runs`,
      );
    }
    // Nothing listens on the stack's ports (Temporal's included): the next up starts cleanly.
    for (const [name, port] of Object.entries(ports) as Array<[string, number]>) {
      assert.equal(await listening(port), false, `${name} port ${port} still taken`);
    }
    assert.equal(await down(config), 'not-running');
  });

  it('starts the process runner with the stack, starts it again when it alone died, and down stops it first', async () => {
    const { stateDir, config } = await ownStack();
    const first = await up(config, {
      nodes: 1,
      ports: await freeStackPorts(),
      clusterName: 'runner',
      runner: true,
    });
    assert.equal(first.outcome, 'started');
    const runner = first.state.runner!;
    assert.ok(runner, 'no runner recorded');
    assert.equal(await isRunning(runner.process), true);
    // It serves this stack: it holds the lock of this state directory.
    assert.equal(
      (await fs.readFile(path.join(stateDir, 'runner', 'runner.lock'), 'utf8')).trim(),
      String(runner.process.pid),
    );

    process.kill(runner.process.pid, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = await up(config, { nodes: 1, runner: true });
    assert.equal(second.outcome, 'already-running');
    assert.notEqual(second.state.runner?.process.pid, runner.process.pid);
    assert.equal(await isRunning(second.state.runner!.process), true);
    assert.deepEqual((await readStackState(stateDir))?.runner, second.state.runner);

    assert.equal(await down(config), 'stopped');
    assert.equal(await isRunning(second.state.runner!.process), false);
    await assert.rejects(fs.access(path.join(stateDir, 'runner', 'runner.lock')), 'the runner left its lock');
  });

  it('shows status and doctor through the CLI', async () => {
    const env = { ...process.env, FLEETMEDIC_STATE_DIR: shared.config.stateDir };
    const status = await execa(process.execPath, [cli, 'stack', 'status', '--json'], { env, reject: false });
    assert.equal(status.exitCode, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as { healthy: boolean; readyNodes: number };
    assert.equal(parsed.healthy, true);
    assert.ok(parsed.readyNodes >= 4);
    const doctor = await execa(process.execPath, [cli, 'doctor'], { env, reject: false });
    assert.equal(doctor.exitCode, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /kube-apiserver v1\.35\.4 at https:\/\/127\.0\.0\.1:/);
    assert.match(doctor.stdout, /Temporal dev server: server 1\.29\.1/);
    assert.match(doctor.stdout, /simulation marker present/);

    const badConfig = await execa(process.execPath, [cli, 'stack', 'status'], {
      env: { ...process.env, FLEETMEDIC_STATE_DIR: 'relative/dir' },
      reject: false,
    });
    assert.equal(badConfig.exitCode, 1);
    assert.match(badConfig.stderr, /FLEETMEDIC_STATE_DIR="relative\/dir": expected an absolute path/);
  });
});
