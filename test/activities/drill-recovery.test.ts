import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { MockActivityEnvironment } from '@temporalio/testing';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { watchRecovery, type RecoveryWatch } from '../../src/activities/drill/recovery.js';
import type { RecoveryStep } from '../../src/drill/report.js';

// watchRecovery (src/activities/drill/recovery.ts) against a scripted pod list. A retry after the
// worker died must date what happened meanwhile by the cluster's records, not by its first poll:
// otherwise the worker's downtime is reported as the Deployment's recovery time. The records are to
// the second: a step is dated at the end of its second (never before it happened), at most the poll.
const quiet = { logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } };
const VICTIM = { name: 'app-a', uid: 'uid-a' };
const BEFORE = new Set(['uid-a', 'uid-b', 'uid-c']);

/** A pod of the Deployment; `ready`/`created`/`scheduled` are epoch ms the cluster recorded. */
function pod(name: string, uid: string, t: { created: number; scheduled?: number; ready?: number }): V1Pod {
  const conditions = [
    ...(t.scheduled !== undefined
      ? [{ type: 'PodScheduled', status: 'True', lastTransitionTime: new Date(t.scheduled) }]
      : []),
    t.ready !== undefined
      ? { type: 'Ready', status: 'True', lastTransitionTime: new Date(t.ready) }
      : { type: 'Ready', status: 'False' },
  ];
  return {
    metadata: { name, uid, creationTimestamp: new Date(t.created) },
    spec: { nodeName: 'node-1', containers: [{ name: 'server' }] },
    status: { conditions },
  };
}

/** A CoreV1Api whose pod list is each of `polls` in turn (the last one repeated). */
function scripted(polls: V1Pod[][]): { core: CoreV1Api; polled: () => number } {
  let n = 0;
  const core = {
    listNamespacedPod: () => Promise.resolve({ items: polls[Math.min(n++, polls.length - 1)] }),
  } as unknown as CoreV1Api;
  return { core, polled: () => n };
}

function watch(
  env: MockActivityEnvironment,
  core: CoreV1Api,
  over: Partial<Parameters<typeof watchRecovery>[0]> = {},
): Promise<RecoveryWatch> {
  return env.run<[], RecoveryWatch, () => Promise<RecoveryWatch>>(() =>
    watchRecovery({
      core,
      namespace: 'ns',
      selector: 'app=app',
      replicas: 3,
      victim: VICTIM,
      before: BEFORE,
      withEviction: true,
      deadlineMs: Date.now() + 10_000,
      pollMs: 5,
      ...over,
    }),
  );
}

const at = (w: RecoveryWatch, step: RecoveryStep['step']) => w.steps.find((s) => s.step === step)?.at;

/** The Deployment recovered a while ago: the victim gone, its replacement Ready since `t0 + 3 s`. */
function recovered(t0: number): V1Pod[] {
  return [
    pod('app-b', 'uid-b', { created: t0 - 60_000, scheduled: t0 - 60_000, ready: t0 - 50_000 }),
    pod('app-c', 'uid-c', { created: t0 - 60_000, scheduled: t0 - 60_000, ready: t0 - 50_000 }),
    pod('app-d', 'uid-d', { created: t0 + 1_000, scheduled: t0 + 1_000, ready: t0 + 3_000 }),
  ];
}

describe('watchRecovery', () => {
  it("a retry dates the steps done before its first poll by the pods' records, not by the poll", async () => {
    const t0 = Date.now() - 40_000;
    const env = new MockActivityEnvironment({ attempt: 2 }, quiet);
    const w = await watch(env, scripted([recovered(t0)]).core);
    assert.equal(at(w, 'eviction'), t0 + 1_999, 'evicted no later than its replacement was created');
    assert.equal(at(w, 'replacement-created'), t0 + 1_999);
    assert.equal(at(w, 'scheduled'), t0 + 1_999);
    assert.equal(at(w, 'ready'), t0 + 3_999);
    assert.equal(at(w, 'all-ready'), t0 + 3_999);
    // When the victim went is unknown: the poll's time, which only widens the phase's window.
    assert.ok(w.victimGoneAt >= t0 + 40_000);
  });

  it("a record in the poll's own second dates its step no later than the poll", async () => {
    const now = Date.now();
    const env = new MockActivityEnvironment({ attempt: 2 }, quiet);
    const w = await watch(env, scripted([recovered(now - 3_000 + 1)]).core);
    const done = Date.now();
    for (const s of w.steps) assert.ok(s.at <= done, `${s.step} ${s.at - done} ms after the poll`);
    assert.equal(at(w, 'replacement-created'), now - 2_000 + 1_000);
  });

  it('a retry keeps the steps and the victim end an earlier attempt heartbeated', async () => {
    const t0 = Date.now() - 40_000;
    const env = new MockActivityEnvironment(
      {
        attempt: 3,
        heartbeatDetails: {
          steps: [{ step: 'eviction', at: t0 + 120, detail: 'app-a' }],
          victimGoneAt: t0 + 900,
        },
      },
      quiet,
    );
    const w = await watch(env, scripted([recovered(t0)]).core);
    assert.equal(at(w, 'eviction'), t0 + 120);
    assert.equal(w.victimGoneAt, t0 + 900);
    assert.equal(at(w, 'ready'), t0 + 3_999);
  });

  it("a first attempt dates each step by the poll that saw it (the records' second is too coarse)", async () => {
    const t0 = Date.now() - 40_000;
    const start = Date.now();
    const env = new MockActivityEnvironment(undefined, quiet);
    const w = await watch(env, scripted([recovered(t0)]).core);
    for (const s of w.steps) assert.ok(s.at >= start, `${s.step} at ${s.at - start} ms`);
  });

  it('only the first poll of a retry catches up: later steps are dated by their polls', async () => {
    const t0 = Date.now() - 40_000;
    const victim = { ...pod('app-a', 'uid-a', { created: t0 - 60_000, ready: t0 - 50_000 }) };
    victim.metadata!.deletionTimestamp = new Date(t0 + 30_000);
    victim.metadata!.deletionGracePeriodSeconds = 30;
    const pending = pod('app-d', 'uid-d', { created: t0 + 1_000, scheduled: t0 + 1_000 });
    const others = recovered(t0).slice(0, 2);
    const { core } = scripted([[victim, ...others, pending], [...others, pending], recovered(t0)]);
    const start = Date.now();
    const env = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: { steps: ['eviction'] } }, quiet);
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const w = await watch(env, core);
    // Seen terminating on the first poll: asked for at its deletion timestamp less its grace period.
    assert.equal(at(w, 'eviction'), t0 + 999);
    assert.equal(at(w, 'replacement-created'), t0 + 1_999);
    // Ready only on a later poll: dated by that poll (its record says t0 + 3 s, long before).
    assert.ok(at(w, 'ready')! >= start, `ready at ${at(w, 'ready')! - start} ms`);
    assert.ok(w.victimGoneAt >= start);
    // The heartbeats carry the steps with their times, for the next retry.
    const first = beats[0] as { steps: RecoveryStep[] };
    assert.deepEqual(
      first.steps.map((s) => [s.step, s.at]),
      [
        ['eviction', t0 + 999],
        ['replacement-created', t0 + 1_999],
        ['scheduled', t0 + 1_999],
      ],
    );
  });

  it("carries its caller's record in every heartbeat, so that a retried deletion never deletes a second pod", async () => {
    const t0 = Date.now() - 40_000;
    const victim = pod('app-a', 'uid-a', { created: t0 - 60_000, ready: t0 - 50_000 });
    victim.metadata!.deletionTimestamp = new Date(t0 + 30_000);
    const others = recovered(t0).slice(0, 2);
    const pending = pod('app-d', 'uid-d', { created: t0 + 1_000, scheduled: t0 + 1_000 });
    const { core } = scripted([[victim, ...others, pending], [...others, pending], recovered(t0)]);
    const env = new MockActivityEnvironment(undefined, quiet);
    const beats: Record<string, unknown>[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d as Record<string, unknown>));
    const injection = { victim: VICTIM, injectedAt: t0, before: [...BEFORE] };
    await watch(env, core, { withEviction: false, carry: injection });
    assert.ok(beats.length >= 2, `${beats.length} heartbeat(s)`);
    for (const beat of beats) {
      assert.deepEqual(
        { victim: beat.victim, injectedAt: beat.injectedAt, before: beat.before },
        injection,
        "a heartbeat without the deletion's record",
      );
      assert.ok(Array.isArray(beat.steps));
    }
  });
});
