import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROCESS_LABEL } from '../../src/k8s/labels.js';
import { ProcessRunner } from '../../src/runner/process-runner.js';
import { pidAlive } from '../../src/stack/processes.js';
import { clients, eventually, isReady, livePods, tempNamespace } from '../helpers/k8s.js';
import { useTestStack, type TestStack } from '../helpers/stack.js';

// The process runner against the embedded cluster: kwok starts pods labelled fleetmedic.io/process
// Running with a 127.x IP but never Ready and never deletes them once terminating; the runner runs a
// real stand-in replica on each pod IP, turns the pod Ready from its readiness probe, restarts a
// process that dies, and on deletion runs preStop, SIGTERM and SIGKILL at the end of the grace period
// before it removes the pod.
function standins(name: string, replicas: number, options: { preStopSeconds?: number; grace?: number } = {}) {
  const labels = { app: name, [PROCESS_LABEL]: 'standin' };
  const body: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: options.grace ?? 5,
          containers: [
            {
              name: 'server',
              image: 'fleetmedic/standin:sim',
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 1 },
              lifecycle: options.preStopSeconds
                ? { preStop: { sleep: { seconds: options.preStopSeconds } } }
                : undefined,
            },
          ],
        },
      },
    },
  };
  return body;
}

async function answers(pod: V1Pod): Promise<boolean> {
  const res = await fetch(`http://${pod.status!.podIP!}:8080/v1/models`, {
    signal: AbortSignal.timeout(2_000),
  }).catch(() => undefined);
  return res?.status === 200;
}

async function postFaults(pod: V1Pod, faults: Record<string, unknown>): Promise<void> {
  const res = await fetch(`http://${pod.status!.podIP!}:8080/admin/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
    signal: AbortSignal.timeout(2_000),
  });
  assert.equal(res.status, 200);
}

const alive = pidAlive;

describe('process runner: real processes for simulated pods (embedded cluster)', { timeout: 240_000 }, () => {
  let stack: TestStack;
  let ns: { name: string; remove: () => Promise<void> };
  let stateDir: string;
  let runner: ProcessRunner | undefined;
  const logs: string[] = [];

  const startRunner = async () => {
    runner = new ProcessRunner({
      kc: stack.kc,
      stateDir,
      restartBackoffMs: 200,
      log: (message, fields) => logs.push(`${message} ${JSON.stringify(fields ?? {})}`),
    });
    await runner.start();
  };

  const pidOf = (name: string) => runner!.processes().find((p) => p.name === name)?.pid;

  before(async () => {
    stack = await useTestStack();
    ns = await tempNamespace(stack.kc, 'fmrunner');
    stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetmedic-runner-'));
  });

  after(async () => {
    await runner?.stop();
    const { apps } = clients(stack.kc);
    await apps.deleteCollectionNamespacedDeployment({ namespace: ns.name }).catch(() => undefined);
    // Pods the runner no longer serves stay terminating: delete them for good before the namespace.
    const { core } = clients(stack.kc);
    for (const pod of (await core.listNamespacedPod({ namespace: ns.name })).items) {
      await core
        .deleteNamespacedPod({ name: pod.metadata!.name!, namespace: ns.name, gracePeriodSeconds: 0 })
        .catch(() => undefined);
    }
    await ns?.remove();
    await fs.rm(stateDir, { recursive: true, force: true });
  });

  it('kwok starts runner pods Running with a loopback IP and never marks them Ready itself', async () => {
    const { apps } = clients(stack.kc);
    await apps.createNamespacedDeployment({ namespace: ns.name, body: standins('idle', 1) });
    const [pod] = await eventually('a Running pod with an IP', async () => {
      const live = await livePods(stack.kc, ns.name, 'idle');
      return live.length === 1 && live[0]!.status?.phase === 'Running' && live[0]!.status.podIP
        ? live
        : undefined;
    });
    assert.match(pod!.status!.podIP!, /^127\./);
    await sleep(2_000);
    const again = (await livePods(stack.kc, ns.name, 'idle'))[0]!;
    assert.equal(isReady(again), false, 'kwok marked a runner pod Ready without its process');
    assert.equal(await answers(again), false);
    await apps.deleteNamespacedDeployment({ name: 'idle', namespace: ns.name });
  });

  it('runs a process on each pod IP and turns the pod Ready only once its probe passes', async () => {
    const { apps } = clients(stack.kc);
    await startRunner();
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: standins('replicas', 2, { preStopSeconds: 1, grace: 5 }),
    });
    const pods = await eventually(
      '2 Ready runner pods',
      async () => {
        const live = await livePods(stack.kc, ns.name, 'replicas');
        return live.length === 2 && live.every(isReady) ? live : undefined;
      },
      60_000,
    );
    for (const pod of pods) {
      assert.equal(await answers(pod), true, `pod ${pod.metadata!.name} has no process answering`);
      assert.equal(pod.status?.containerStatuses?.[0]?.ready, true);
      assert.ok(pidOf(pod.metadata!.name!), 'no process recorded');
    }
    // The idle pod of the first test, terminating with no process, was removed by the runner.
    await eventually('the idle deployment pod removed', async () =>
      (await livePods(stack.kc, ns.name, 'idle')).length === 0 ? true : undefined,
    );
  });

  it('deletion: not Ready at once, preStop, SIGTERM, then the pod is removed and replaced', async () => {
    const { core } = clients(stack.kc);
    const [victim] = await livePods(stack.kc, ns.name, 'replicas');
    const name = victim!.metadata!.name!;
    const pid = pidOf(name)!;
    const started = Date.now();
    await core.deleteNamespacedPod({ name, namespace: ns.name });
    // Still serving during preStop (1 s): the gateway's watch has time to drop it first.
    await sleep(300);
    assert.equal(alive(pid), true, 'the process was stopped before its preStop sleep ended');
    const terminating = await core.readNamespacedPod({ name, namespace: ns.name });
    assert.ok(terminating.metadata?.deletionTimestamp);
    await eventually('the pod object gone', async () => {
      const left = await core.readNamespacedPod({ name, namespace: ns.name }).catch(() => undefined);
      return left ? undefined : true;
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1_000, `removed after ${elapsed} ms, before the 1 s preStop`);
    assert.ok(elapsed < 5_000, `removed after ${elapsed} ms: SIGTERM did not stop the stand-in`);
    assert.equal(alive(pid), false, 'the process outlived its pod');
    await eventually(
      'the replacement Ready',
      async () => {
        const live = await livePods(stack.kc, ns.name, 'replicas');
        return live.length === 2 && live.every(isReady) && !live.some((p) => p.metadata!.name === name)
          ? true
          : undefined;
      },
      60_000,
    );
  });

  it('a process that ignores SIGTERM is killed when the grace period ends', async () => {
    const { core } = clients(stack.kc);
    const [victim] = await livePods(stack.kc, ns.name, 'replicas');
    const name = victim!.metadata!.name!;
    const pid = pidOf(name)!;
    await postFaults(victim!, { ignoreSigterm: true });
    const started = Date.now();
    await core.deleteNamespacedPod({ name, namespace: ns.name, gracePeriodSeconds: 3 });
    await eventually('the pod object gone', async () => {
      const left = await core.readNamespacedPod({ name, namespace: ns.name }).catch(() => undefined);
      return left ? undefined : true;
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 2_800, `removed after ${elapsed} ms, before the 3 s grace period ended`);
    assert.equal(alive(pid), false);
  });

  it('restarts a process that dies, counting the restart, and turns the pod Ready again', async () => {
    const [pod] = await eventually('2 Ready pods', async () => {
      const live = await livePods(stack.kc, ns.name, 'replicas');
      return live.length === 2 && live.every(isReady) ? live : undefined;
    });
    const name = pod!.metadata!.name!;
    process.kill(pidOf(name)!, 'SIGKILL');
    await eventually('the pod not Ready', async () => {
      const now = (await livePods(stack.kc, ns.name, 'replicas')).find((p) => p.metadata!.name === name);
      return now && !isReady(now) ? true : undefined;
    });
    const back = await eventually('the pod Ready again, restarted once', async () => {
      const now = (await livePods(stack.kc, ns.name, 'replicas')).find((p) => p.metadata!.name === name);
      return now && isReady(now) && now.status?.containerStatuses?.[0]?.restartCount === 1 ? now : undefined;
    });
    assert.equal(await answers(back), true);
  });

  it('a runner restarted after a crash kills what its predecessor left and serves the pods again', async () => {
    const before = runner!.processes().map((p) => p.pid!);
    // A crash: the runner object is dropped without stopping its children (no SIGTERM, no status).
    const crashed = runner!;
    runner = undefined;
    await (crashed as unknown as { informer?: { stop(): Promise<void> } }).informer?.stop();
    (crashed as unknown as { stopped: boolean }).stopped = true;
    for (const pid of before) assert.equal(alive(pid), true);
    await startRunner();
    for (const pid of before) {
      await eventually(`leftover ${pid} killed`, () => Promise.resolve(alive(pid) ? undefined : true));
    }
    const pods = await eventually('2 Ready pods served by the new runner', async () => {
      const live = await livePods(stack.kc, ns.name, 'replicas');
      // The new runner's own view: each pod's process started by it and probed Ready (the pods'
      // Ready condition alone can still be the crashed runner's).
      const served = runner!.processes();
      const fresh = (p: (typeof served)[number]) => p.pid !== undefined && !before.includes(p.pid) && p.ready;
      return live.length === 2 && live.every(isReady) && served.length === 2 && served.every(fresh)
        ? live
        : undefined;
    });
    for (const pod of pods) assert.equal(await answers(pod), true);
  });
});
